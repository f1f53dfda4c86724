// The wg(8) configuration file, as read by `wg setconf` and printed by `wg showconf`:
//
//   [Interface]
//   PrivateKey = <base64>          ListenPort = 51820          FwMark = 0x1234 | 42 | off
//   [Peer]
//   PublicKey = <base64>           PresharedKey = <base64>
//   AllowedIPs = 10.0.0.0/24, fd00::/64     (may repeat; a bare address is a host prefix)
//   Endpoint = 1.2.3.4:51820 | [fd00::1]:51820 | host.example:51820
//   PersistentKeepalive = 25 | off
//
// Parsing follows wireguard-tools' src/config.c: '#' starts a comment, all whitespace inside a
// line is dropped before parsing, section names and keys are case-insensitive, a later value
// overrides an earlier one (AllowedIPs accumulate). wg-quick's own [Interface] keys (Address,
// DNS, MTU, Table, Pre/PostUp, Pre/PostDown, SaveConfig) are ignored so unstripped wg-quick
// files load. Stricter than wg: unknown keys or sections, a public key used by two peers (the
// error names both lines), lines over 4096 bytes, an unbracketed IPv6 Endpoint and an Endpoint
// host of digits and dots that is not a.b.c.d are errors; incremental AllowedIPs
// ("+10.0.0.0/8", "-...") are refused. Any error returns no change at all.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>

#include "xsktun/control/config.h"
#include "xsktun_shared.h"

namespace xsktun::control {

constexpr size_t kMaxConfigLine = 4096;

// What one configuration may carry, as for a UAPI set (UapiSetParser): twice the device's limits
// (bpf/xsktun_shared.h). The bound on memory is this, not a size in bytes.
struct ConfigCaps {
  size_t peers = 2 * size_t{XSKTUN_MAX_PEERS};
  size_t prefixes = 4 * size_t{XSKTUN_MAX_ALLOWED_IPS};
};

// Resolves a non-numeric Endpoint host. Returns the endpoint, or an error message.
using EndpointResolver =
    std::function<std::variant<Endpoint, std::string>(const std::string& host, uint16_t port)>;

// getaddrinfo(host) for UDP, first result wins (as wg does). Blocks while DNS answers; unlike
// wg it does not retry transient failures.
std::variant<Endpoint, std::string> resolve_endpoint(const std::string& host, uint16_t port);

// Returns the change `wg setconf` would apply: replace_peers=true, every peer with
// replace_allowed_ips=true, and (as wg's config_read_init does for setconf) private_key,
// listen_port and fwmark always set, to zero when the file omits them.
// On error returns "line N: problem". An empty resolver means resolve_endpoint.
std::variant<ConfigChange, std::string> parse_config_file(std::string_view text,
                                                          const EndpointResolver& resolver = {});

// Reads and parses a file line by line as parse_config_file does (memory: the parsed result and
// one line, whatever the file's size). Errors: "cannot read PATH: reason", "PATH: line N: ...".
std::variant<ConfigChange, std::string> load_config_file(const std::string& path,
                                                         const EndpointResolver& resolver = {},
                                                         ConfigCaps caps = {});

// `wg showconf` output for a snapshot (loadable again by parse_config_file).
std::string format_config_file(const DeviceSnapshot& snap);

}  // namespace xsktun::control
