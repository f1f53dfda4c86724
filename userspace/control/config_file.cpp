#include "xsktun/control/config_file.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "xsktun/control/keys.h"
#include "xsktun/control/uapi.h"

namespace xsktun::control {
namespace {

using Result = std::variant<ConfigChange, std::string>;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::optional<uint64_t> parse_number(std::string_view s, int base, uint64_t max) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

// wg's parse_fwmark: "off", decimal, or 0x-prefixed hex, at most 32 bits.
std::optional<uint32_t> parse_fwmark(std::string_view v) {
  if (lower(v) == "off") return 0;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    auto n = parse_number(v.substr(2), 16, UINT32_MAX);
    if (n) return static_cast<uint32_t>(*n);
    return std::nullopt;
  }
  auto n = parse_number(v, 10, UINT32_MAX);
  if (n) return static_cast<uint32_t>(*n);
  return std::nullopt;
}

// Keys that only wg-quick(8) understands; `wg-quick strip` removes them, we skip them.
bool is_wg_quick_key(const std::string& k) {
  static const std::unordered_set<std::string> kKeys = {
      "address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig"};
  return kKeys.count(k) != 0;
}

class Parser {
 public:
  explicit Parser(const EndpointResolver& resolver, ConfigCaps caps = {}) : resolver_(resolver), caps_(caps) {
    cc_.replace_peers = true;
  }

  Result run(std::string_view text);
  // One line (without its newline); an error comes back as "line N: problem".
  std::optional<std::string> feed(std::string_view raw);
  Result finish();

 private:
  enum class Section { kNone, kInterface, kPeer };

  std::optional<std::string> line(std::string_view raw);
  std::optional<std::string> interface_key(const std::string& key, std::string_view value);
  std::optional<std::string> peer_key(const std::string& key, std::string_view value);
  std::optional<std::string> allowed_ips(std::string_view value);
  std::optional<std::string> endpoint(std::string_view value);
  std::optional<std::string> finish_peer();

  const EndpointResolver& resolver_;
  ConfigCaps caps_;
  size_t prefixes_ = 0;
  ConfigChange cc_;
  Section section_ = Section::kNone;
  bool peer_has_key_ = false;
  size_t peer_line_ = 0;
  std::vector<size_t> key_lines_;  // per peer, the line of its PublicKey (to name duplicates)
  size_t line_no_ = 0;
  size_t err_line_ = 0;  // set when an error belongs to an earlier line than the current one
};

Result Parser::run(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (auto err = feed(raw)) return *err;
  }
  return finish();
}

std::optional<std::string> Parser::feed(std::string_view raw) {
  ++line_no_;
  auto err =
      raw.size() > kMaxConfigLine ? std::optional<std::string>("line longer than 4096 bytes") : line(raw);
  if (!err && cc_.peers.size() > caps_.peers) err = "more than " + std::to_string(caps_.peers) + " peers";
  if (!err && prefixes_ > caps_.prefixes)
    err = "more than " + std::to_string(caps_.prefixes) + " allowed IPs";
  if (err) return "line " + std::to_string(err_line_ ? err_line_ : line_no_) + ": " + *err;
  return std::nullopt;
}

Result Parser::finish() {
  if (auto err = finish_peer()) return "line " + std::to_string(err_line_) + ": " + *err;
  // `wg setconf` (not addconf) always sets these three; absent means zero (wg config_read_init).
  if (!cc_.private_key) cc_.private_key.emplace();
  if (!cc_.listen_port) cc_.listen_port = 0;
  if (!cc_.fwmark) cc_.fwmark = 0;
  return std::move(cc_);
}

std::optional<std::string> Parser::line(std::string_view raw) {
  raw = raw.substr(0, raw.find('#'));
  std::string l;
  for (char c : raw) {
    if (!std::isspace(static_cast<unsigned char>(c))) l.push_back(c);
  }
  if (l.empty()) return std::nullopt;
  if (l.front() == '[') {
    std::string name = lower(l);
    if (name == "[interface]") {
      if (auto err = finish_peer()) return err;
      section_ = Section::kInterface;
    } else if (name == "[peer]") {
      if (auto err = finish_peer()) return err;
      section_ = Section::kPeer;
      cc_.peers.emplace_back().replace_allowed_ips = true;
      key_lines_.push_back(0);
      peer_has_key_ = false;
      peer_line_ = line_no_;
    } else {
      return "unknown section " + l;
    }
    return std::nullopt;
  }
  size_t eq = l.find('=');
  if (eq == std::string::npos) return "expected Key = Value, got `" + l + "'";
  std::string key = lower(std::string_view(l).substr(0, eq));
  std::string_view value = std::string_view(l).substr(eq + 1);
  if (section_ == Section::kInterface) return interface_key(key, value);
  if (section_ == Section::kPeer) return peer_key(key, value);
  return "key outside of an [Interface] or [Peer] section";
}

std::optional<std::string> Parser::interface_key(const std::string& key, std::string_view value) {
  if (key == "privatekey") {
    auto k = secret_from_base64(value);
    if (!k) return std::string("PrivateKey is not a 44-character base64 key");
    cc_.private_key = *k;
  } else if (key == "listenport") {
    auto port = parse_number(value, 10, 65535);
    if (!port) return "ListenPort is not a port number 0-65535: `" + std::string(value) + "'";
    cc_.listen_port = static_cast<uint16_t>(*port);
  } else if (key == "fwmark") {
    auto mark = parse_fwmark(value);
    if (!mark) return "FwMark is neither off nor 0-0xffffffff: `" + std::string(value) + "'";
    cc_.fwmark = *mark;
  } else if (!is_wg_quick_key(key)) {
    return "unknown [Interface] key `" + key + "'";
  }
  return std::nullopt;
}

std::optional<std::string> Parser::peer_key(const std::string& key, std::string_view value) {
  PeerChange& p = cc_.peers.back();
  if (key == "publickey") {
    auto k = key_from_base64(value);
    if (!k) return std::string("PublicKey is not a 44-character base64 key");
    // Applied in order, a second [Peer] would silently merge into (or override) the first one,
    // which is never what a hand-written file means: name both places instead.
    for (size_t i = 0; i + 1 < cc_.peers.size(); ++i) {
      if (cc_.peers[i].public_key == *k) {
        return "duplicate peer " + std::string(value) + ": already defined on line " +
               std::to_string(key_lines_[i]);
      }
    }
    p.public_key = *k;
    key_lines_.back() = line_no_;
    peer_has_key_ = true;
  } else if (key == "presharedkey") {
    auto k = secret_from_base64(value);
    if (!k) return std::string("PresharedKey is not a 44-character base64 key");
    p.preshared_key = *k;
  } else if (key == "allowedips") {
    return allowed_ips(value);
  } else if (key == "endpoint") {
    return endpoint(value);
  } else if (key == "persistentkeepalive") {
    auto secs = lower(value) == "off" ? std::optional<uint64_t>(0) : parse_number(value, 10, 65535);
    if (!secs) return "PersistentKeepalive is neither off nor 0-65535: `" + std::string(value) + "'";
    p.persistent_keepalive = static_cast<uint16_t>(*secs);
  } else {
    return "unknown [Peer] key `" + key + "'";
  }
  return std::nullopt;
}

std::optional<std::string> Parser::allowed_ips(std::string_view value) {
  PeerChange& p = cc_.peers.back();
  if (value.empty()) return std::nullopt;  // "AllowedIPs =" is legal: no prefixes
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    std::string_view item =
        value.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
    if (!item.empty() && (item[0] == '+' || item[0] == '-')) {
      return "incremental AllowedIPs (+/-) are not supported: `" + std::string(item) + "'";
    }
    auto prefix = Prefix::parse(item);
    if (!prefix) return "AllowedIPs entry is not an address or CIDR prefix: `" + std::string(item) + "'";
    p.allowed_ips.push_back(*prefix);
    ++prefixes_;
  }
  return std::nullopt;
}

std::optional<std::string> Parser::endpoint(std::string_view value) {
  PeerChange& p = cc_.peers.back();
  if (auto ep = parse_numeric_endpoint(value)) {
    p.endpoint = *ep;
    return std::nullopt;
  }
  size_t colon = value.rfind(':');
  bool bracketed = !value.empty() && value.front() == '[';
  if (bracketed || colon == std::string_view::npos || colon == 0) {
    return "Endpoint is not host:port, a.b.c.d:port or [ipv6]:port: `" + std::string(value) + "'";
  }
  auto port = parse_number(value.substr(colon + 1), 10, 65535);
  if (!port) return "Endpoint port is not 0-65535: `" + std::string(value) + "'";
  std::string host(value.substr(0, colon));
  // Stricter than wg, which hands any such host to getaddrinfo: an unbracketed IPv6 address is
  // ambiguous ("fd00::1:51820" is also an address without a port), and a host of digits and
  // dots that is not a.b.c.d would be read by inet_aton's legacy rules ("10.1" = 10.0.0.1) or
  // sent to DNS; an all-numeric name is no hostname (RFC 1123 2.1, RFC 3696 2).
  if (host.find(':') != std::string::npos) {
    return "Endpoint IPv6 address must be in brackets, [addr]:port: `" + std::string(value) + "'";
  }
  if (host.find_first_not_of("0123456789.") == std::string::npos) {
    return "Endpoint address `" + host + "' is not a valid IPv4 address a.b.c.d";
  }
  auto res = resolver_ ? resolver_(host, static_cast<uint16_t>(*port))
                       : resolve_endpoint(host, static_cast<uint16_t>(*port));
  if (auto* err = std::get_if<std::string>(&res)) return "Endpoint `" + std::string(value) + "': " + *err;
  p.endpoint = std::get<Endpoint>(res);
  return std::nullopt;
}

std::optional<std::string> Parser::finish_peer() {
  if (section_ != Section::kPeer || peer_has_key_) return std::nullopt;
  err_line_ = peer_line_;  // name the [Peer] header, not the line where the section ended
  return std::string("[Peer] has no PublicKey");
}

}  // namespace

std::variant<Endpoint, std::string> resolve_endpoint(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return std::string(gai_strerror(rc));
  std::optional<Endpoint> ep;
  for (addrinfo* ai = res; ai && !ep; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) ep = Endpoint::from_sockaddr(ai->ai_addr);
  }
  freeaddrinfo(res);
  if (!ep) return std::string("neither IPv4 nor IPv6 address found");
  ep->port = port;
  return *ep;
}

std::variant<ConfigChange, std::string> parse_config_file(std::string_view text,
                                                          const EndpointResolver& resolver) {
  return Parser(resolver).run(text);
}

std::string format_config_file(const DeviceSnapshot& snap) {
  std::string out = "[Interface]\n";
  if (snap.listen_port) out += "ListenPort = " + std::to_string(snap.listen_port) + "\n";
  if (snap.fwmark) {
    char hex[16];
    auto [end, ec] = std::to_chars(hex, hex + sizeof hex, snap.fwmark, 16);
    out += "FwMark = 0x" + std::string(hex, end) + "\n";
  }
  if (snap.private_key && !snap.private_key->is_zero()) {
    out += "PrivateKey = " + key_to_base64(*snap.private_key) + "\n";
  }
  out += "\n";
  for (size_t i = 0; i < snap.peers.size(); ++i) {
    const PeerSnapshot& p = snap.peers[i];
    out += "[Peer]\nPublicKey = " + key_to_base64(p.public_key) + "\n";
    if (!p.preshared_key.is_zero()) out += "PresharedKey = " + key_to_base64(p.preshared_key) + "\n";
    if (!p.allowed_ips.empty()) {
      out += "AllowedIPs = ";
      for (size_t j = 0; j < p.allowed_ips.size(); ++j) {
        out += (j ? ", " : "") + p.allowed_ips[j].masked().str();
      }
      out += "\n";
    }
    if (p.endpoint && p.endpoint->valid()) out += "Endpoint = " + p.endpoint->str() + "\n";
    if (p.persistent_keepalive)
      out += "PersistentKeepalive = " + std::to_string(p.persistent_keepalive) + "\n";
    if (i + 1 < snap.peers.size()) out += "\n";
  }
  return out;
}

std::variant<ConfigChange, std::string> load_config_file(const std::string& path,
                                                         const EndpointResolver& resolver, ConfigCaps caps) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot read " + path + ": " + strerror(errno);
  // Lines are parsed as they are read: memory holds the parsed configuration (capped) and at
  // most one line, whatever the file's size. /dev/zero ends as an overlong line.
  Parser parser(resolver, caps);
  std::string carry;
  char chunk[65536];
  std::optional<std::string> err;
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      err = "cannot read " + path + ": " + strerror(errno);
      break;
    }
    if (r == 0) {
      if (!carry.empty()) err = parser.feed(carry);
      break;
    }
    std::string_view data(chunk, static_cast<size_t>(r));
    size_t nl;
    while (!err && (nl = data.find('\n')) != std::string_view::npos) {
      if (carry.empty()) {
        err = parser.feed(data.substr(0, nl));
      } else {
        carry.append(data.substr(0, nl));
        err = parser.feed(carry);
        carry.clear();
      }
      data.remove_prefix(nl + 1);
    }
    if (err) break;
    carry.append(data);
    if (carry.size() > kMaxConfigLine) {
      err = parser.feed(carry);  // reports the overlong line
      break;
    }
  }
  close(fd);
  std::fill(carry.begin(), carry.end(), '\0');
  std::fill(chunk, chunk + sizeof chunk, '\0');  // lines carry keys
  if (err) return path + ": " + *err;
  auto result = parser.finish();
  if (auto* e = std::get_if<std::string>(&result)) return path + ": " + *e;
  return result;
}

}  // namespace xsktun::control
