#include "xsktun/control/uapi.h"

#include <sodium.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

#include "xsktun/control/keys.h"

namespace xsktun::control {

using SetResult = std::variant<ConfigChange, UapiError>;

namespace {

UapiError invalid(std::string msg) { return UapiError{EINVAL, std::move(msg)}; }

// Go's strconv.ParseUint(s, 10, bits): digits only (no sign, no spaces), must fit.
template <typename T>
std::optional<T> parse_decimal(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > std::numeric_limits<T>::max()) {
    return std::nullopt;
  }
  return static_cast<T>(v);
}

// Input echoed into an error message, cut short: a 1 MB garbage line must give a readable
// error (and log line), not a 1 MB one.
std::string shown(std::string_view s) {
  constexpr size_t kMaxShown = 64;
  if (s.size() <= kMaxShown) return std::string(s);
  return std::string(s.substr(0, kMaxShown)) + "... (" + std::to_string(s.size()) + " bytes)";
}

std::string quoted(std::string_view key, std::string_view value) { return shown(key) + "=" + shown(value); }

std::optional<UapiError> device_line(ConfigChange& cc, std::string_view key, std::string_view value) {
  if (key == "private_key") {
    // All-zero is allowed and means "remove the private key" (wireguard-go FromMaybeZeroHex).
    auto k = secret_from_hex(value);
    if (!k) return invalid("failed to set private_key: not 64 hex digits");
    cc.private_key = *k;
  } else if (key == "listen_port") {
    auto port = parse_decimal<uint16_t>(value);
    if (!port) return invalid("failed to parse listen_port: " + quoted(key, value));
    cc.listen_port = *port;
  } else if (key == "fwmark") {
    auto mark = parse_decimal<uint32_t>(value);
    if (!mark) return invalid("invalid fwmark: " + quoted(key, value));
    cc.fwmark = *mark;
  } else if (key == "replace_peers") {
    if (value != "true") return invalid("failed to set replace_peers, invalid value: " + shown(value));
    cc.replace_peers = true;
  } else {
    return invalid("invalid UAPI device key: " + shown(key));
  }
  return std::nullopt;
}

std::optional<UapiError> peer_line(PeerChange& p, std::string_view key, std::string_view value) {
  if (key == "update_only") {
    if (value != "true") return invalid("failed to set update only, invalid value: " + shown(value));
    p.update_only = true;
  } else if (key == "remove") {
    if (value != "true") return invalid("failed to set remove, invalid value: " + shown(value));
    p.remove = true;
  } else if (key == "preshared_key") {
    auto k = secret_from_hex(value);
    if (!k) return invalid("failed to set preshared key: not 64 hex digits");
    p.preshared_key = *k;
  } else if (key == "endpoint") {
    auto ep = parse_numeric_endpoint(value);
    if (!ep) return invalid("failed to set endpoint " + shown(value));
    p.endpoint = *ep;
  } else if (key == "persistent_keepalive_interval") {
    auto secs = parse_decimal<uint16_t>(value);
    if (!secs) return invalid("failed to set persistent keepalive interval: " + shown(value));
    p.persistent_keepalive = *secs;
  } else if (key == "replace_allowed_ips") {
    if (value != "true") return invalid("failed to replace allowedips, invalid value: " + shown(value));
    // Lines are applied in order in wireguard-go: earlier allowed_ip lines are wiped too.
    p.replace_allowed_ips = true;
    p.allowed_ips.clear();
  } else if (key == "allowed_ip") {
    auto prefix = parse_strict_prefix(value);
    if (!prefix) return invalid("failed to set allowed ip: " + shown(value));
    p.allowed_ips.push_back(*prefix);
  } else if (key == "protocol_version") {
    if (value != "1") return invalid("invalid protocol version: " + shown(value));
  } else {
    return invalid("invalid UAPI peer key: " + shown(key));
  }
  return std::nullopt;
}

}  // namespace

std::optional<Endpoint> parse_numeric_endpoint(std::string_view s) { return Endpoint::parse(s); }

std::optional<Prefix> parse_strict_prefix(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos || slash + 1 >= s.size()) return std::nullopt;
  auto bits = s.substr(slash + 1);
  if (bits.size() > 1 && bits[0] == '0') return std::nullopt;
  return Prefix::parse(s);
}

std::optional<UapiError> UapiSetParser::line(std::string_view line) {
  if (error_) return error_;  // the rest of a failed set is read and dropped
  size_t eq = line.find('=');
  if (eq == std::string_view::npos)
    return fail(UapiError{EPROTO, "failed to parse line \"" + shown(line) + "\""});
  std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
  if (key == "public_key") {
    auto k = key_from_hex(value);
    if (!k) return fail(invalid("failed to get peer by public key: not 64 hex digits"));
    if (cc_.peers.size() >= max_peer_blocks_)
      return fail(
          UapiError{ENOSPC, "more than " + std::to_string(max_peer_blocks_) + " peer blocks in one set"});
    cc_.peers.emplace_back().public_key = *k;
    return std::nullopt;
  }
  if (key == "allowed_ip" && ++prefixes_ > max_prefixes_)
    return fail(UapiError{ENOSPC, "more than " + std::to_string(max_prefixes_) + " allowed IPs in one set"});
  auto err = cc_.peers.empty() ? device_line(cc_, key, value) : peer_line(cc_.peers.back(), key, value);
  if (err) return fail(std::move(*err));
  return std::nullopt;
}

std::optional<UapiError> UapiSetParser::fail(UapiError e) {
  error_ = std::move(e);
  cc_ = ConfigChange{};  // nothing of a failed set is kept
  return error_;
}

SetResult UapiSetParser::finish() {
  if (error_) return *error_;
  // wireguard-go turns a removed peer into a dummy that swallows the rest of its block; drop
  // those attributes here so the device never sees a half-meaningful removal.
  for (auto& p : cc_.peers) {
    if (!p.remove) continue;
    PeerChange removal;
    removal.public_key = p.public_key;
    removal.remove = true;
    p = std::move(removal);
  }
  return std::move(cc_);
}

SetResult parse_uapi_set(std::string_view body) {
  UapiSetParser parser;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    std::string_view line =
        body.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? body.size() : nl + 1;
    if (line.empty()) break;  // the blank line ends the operation
    if (auto err = parser.line(line)) return std::move(*err);
  }
  return parser.finish();
}

std::string format_uapi_errno(int errno_value) {
  int wire = errno_value > 0 ? -errno_value : errno_value;
  return "errno=" + std::to_string(wire) + "\n\n";
}

std::string format_uapi_get(const DeviceSnapshot& snap) {
  std::string out;
  out.reserve(256 + snap.peers.size() * 400);
  auto line = [&out](std::string_view key, const std::string& value) {
    out.append(key).append("=").append(value).append("\n");
  };
  // Secret hex strings are wiped once copied into the reply (best effort; the caller owns `out`).
  auto secret_line = [&line](std::string_view key, std::string hex) {
    line(key, hex);
    sodium_memzero(hex.data(), hex.size());
  };
  if (snap.private_key && !snap.private_key->is_zero())
    secret_line("private_key", key_to_hex(*snap.private_key));
  if (snap.listen_port != 0) line("listen_port", std::to_string(snap.listen_port));
  if (snap.fwmark != 0) line("fwmark", std::to_string(snap.fwmark));
  for (const auto& p : snap.peers) {
    line("public_key", key_to_hex(p.public_key));
    secret_line("preshared_key", key_to_hex(p.preshared_key));
    line("protocol_version", "1");
    if (p.endpoint && p.endpoint->valid()) line("endpoint", p.endpoint->str());
    line("last_handshake_time_sec", std::to_string(p.last_handshake_sec));
    line("last_handshake_time_nsec", std::to_string(p.last_handshake_nsec));
    line("tx_bytes", std::to_string(p.tx_bytes));
    line("rx_bytes", std::to_string(p.rx_bytes));
    line("persistent_keepalive_interval", std::to_string(p.persistent_keepalive));
    for (const auto& a : p.allowed_ips) line("allowed_ip", a.masked().str());
  }
  out += format_uapi_errno(0);
  return out;
}

}  // namespace xsktun::control
