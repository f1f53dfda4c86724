// The WireGuard cross-platform configuration protocol ("UAPI"), as spoken by `wg` to userspace
// implementations over /var/run/wireguard/IFNAME.sock (https://www.wireguard.com/xplatform/).
// This file holds the pure text layer: parsing a "set=1" body into a ConfigChange and printing a
// DeviceSnapshot as a "get=1" reply. The socket side lives in uapi_server.h.
//
// Semantics follow wireguard-go's device/uapi.go, with one deliberate difference: wireguard-go
// applies each line as it reads it, so a bad line leaves earlier lines applied; here the whole
// set is parsed (as it arrives) first and the device applies the ConfigChange atomically.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "xsktun/control/config.h"
#include "xsktun_shared.h"

namespace xsktun::control {

// errno_value is a positive errno (EINVAL, EPROTO, EADDRINUSE...), 0 = success. On the wire it
// is sent negated ("errno=-22"), because wireguard-tools' ipc-uapi.h returns the value as its
// own negative-errno result.
struct UapiError {
  int errno_value = 0;
  std::string message;
};

// `body` is everything after the "set=1\n" line, up to (and optionally including) the blank
// terminator line. Errors, as wireguard-go reports them:
//  - a line without '=' -> EPROTO;
//  - an unknown key, a bad value, a device key after the first public_key -> EINVAL.
// The peers vector keeps the order of the public_key lines; the same key may appear more than
// once and the device must then apply the entries in order (wireguard-go looks the peer up
// again, so a later block modifies, or after remove=true re-creates, the peer).
// Within one block, remove=true makes every other attribute moot (wireguard-go switches to a
// dummy peer), and replace_allowed_ips=true drops the allowed_ip lines that came before it.
// The device must also ignore a peer whose key equals its own public key (wireguard-go does).
std::variant<ConfigChange, UapiError> parse_uapi_set(std::string_view body);

// The same, a line at a time, so a set of any length is parsed as it arrives without keeping its
// text: memory grows with what the set configures, and that is capped by the device's limits
// (bpf/xsktun_shared.h), not by bytes. After the first error the remaining lines are dropped
// and finish() returns that error.
class UapiSetParser {
 public:
  // Peer blocks and allowed_ip lines one set may carry: twice the device's limits, so a set
  // can remove a whole configuration and add a new one; anything longer could never apply.
  static constexpr size_t kMaxPeerBlocks = 2 * size_t{XSKTUN_MAX_PEERS};
  static constexpr size_t kMaxPrefixes = 4 * size_t{XSKTUN_MAX_ALLOWED_IPS};

  UapiSetParser() = default;
  UapiSetParser(size_t max_peer_blocks, size_t max_prefixes)
      : max_peer_blocks_(max_peer_blocks), max_prefixes_(max_prefixes) {}
  // One key=value line (without its newline; not the blank terminator).
  std::optional<UapiError> line(std::string_view line);
  std::variant<ConfigChange, UapiError> finish();

 private:
  std::optional<UapiError> fail(UapiError e);
  size_t max_peer_blocks_ = kMaxPeerBlocks, max_prefixes_ = kMaxPrefixes;
  ConfigChange cc_;
  size_t prefixes_ = 0;
  std::optional<UapiError> error_;
};

// The complete "get=1" reply: device lines, then per peer its lines, then "errno=0\n\n".
// Order and omissions match wireguard-go's IpcGetOperation: private_key only if set and
// non-zero, listen_port and fwmark only if non-zero; peers in snapshot order.
std::string format_uapi_get(const DeviceSnapshot& snap);

// "errno=-N\n\n" (or "errno=0\n\n"): the status line that ends every reply.
std::string format_uapi_errno(int errno_value);

// Strict numeric parsers with wireguard-go's rules (Go's netip.ParseAddrPort / ParsePrefix),
// shared with the config-file parser:
//  - endpoint: "1.2.3.4:51820" or "[fd00::1]:51820"; brackets only and always around IPv6, no
//    zone, port 0-65535. An IPv4-mapped IPv6 address is returned as plain IPv4 (the same
//    destination, and the form Endpoint::from_sockaddr produces for received packets).
//  - prefix: "addr/bits" with the "/bits" required and no leading zero in bits.
std::optional<Endpoint> parse_numeric_endpoint(std::string_view s);
std::optional<Prefix> parse_strict_prefix(std::string_view s);

}  // namespace xsktun::control
