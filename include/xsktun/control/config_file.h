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

namespace xsktun::control {

constexpr size_t kMaxConfigLine = 4096;
// Same bound as one UAPI set transaction (UapiServer::kMaxSetBody): a file bigger than this is
// refused before parsing, and reading a FIFO or /dev/zero by mistake ends instead of eating RAM.
constexpr size_t kMaxConfigFile = 16 << 20;

// Reads a configuration file into *out (at most kMaxConfigFile bytes). On failure returns false
// and sets *err to "cannot read PATH: reason" or "PATH: larger than 16 MiB".
bool read_config_file(const std::string& path, std::string* out, std::string* err);

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

// `wg showconf` output for a snapshot (loadable again by parse_config_file).
std::string format_config_file(const DeviceSnapshot& snap);

}  // namespace xsktun::control
