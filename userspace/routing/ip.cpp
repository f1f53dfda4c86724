#include "xsktun/common/ip.h"

#include <arpa/inet.h>

#include <charconv>

namespace xsktun {

std::optional<IpAddr> IpAddr::parse(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  IpAddr a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (family == AF_INET || family == AF_INET6) inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

Prefix Prefix::masked() const {
  Prefix p = *this;
  size_t bits = addr.len() * 8;
  for (size_t i = 0; i < 16; ++i) {
    size_t lo = i * 8;
    if (lo >= bits || lo >= cidr) {
      p.addr.bytes[i] = 0;
    } else if (cidr < lo + 8) {
      p.addr.bytes[i] &= static_cast<uint8_t>(0xff << (lo + 8 - cidr));
    }
  }
  return p;
}

std::optional<Prefix> Prefix::parse(std::string_view s) {
  auto slash = s.find('/');
  auto ip = IpAddr::parse(s.substr(0, slash));
  if (!ip) return std::nullopt;
  Prefix p;
  p.addr = *ip;
  unsigned max = static_cast<unsigned>(ip->len() * 8);
  if (slash == std::string_view::npos) {
    p.cidr = static_cast<uint8_t>(max);
    return p;
  }
  auto num = s.substr(slash + 1);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (num.empty() || ec != std::errc() || end != num.data() + num.size() || v > max) return std::nullopt;
  p.cidr = static_cast<uint8_t>(v);
  return p;
}

std::string Prefix::str() const { return addr.str() + "/" + std::to_string(cidr); }

std::optional<Endpoint> Endpoint::parse(std::string_view s) {
  // "a.b.c.d:port" or "[v6]:port" (brackets required for IPv6, refused for IPv4, as wg does);
  // a v4-mapped IPv6 address is stored as IPv4.
  std::string_view host, port;
  bool bracketed = !s.empty() && s.front() == '[';
  if (bracketed) {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  auto ip = IpAddr::parse(host);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (!ip || port.empty() || ec != std::errc() || end != port.data() + port.size() || v > 65535)
    return std::nullopt;
  if ((ip->family == AF_INET6) != bracketed) return std::nullopt;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (ip->family == AF_INET6 && std::memcmp(ip->bytes.data(), kMapped, 12) == 0)
    *ip = IpAddr::v4(ip->bytes.data() + 12);
  return Endpoint{*ip, static_cast<uint16_t>(v)};
}

std::string Endpoint::str() const {
  if (addr.family == AF_INET6) return "[" + addr.str() + "]:" + std::to_string(port);
  return addr.str() + ":" + std::to_string(port);
}

socklen_t Endpoint::to_sockaddr(sockaddr_storage* ss) const {
  std::memset(ss, 0, sizeof *ss);
  if (addr.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, addr.bytes.data(), 4);
    return sizeof *sin;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, addr.bytes.data(), 16);
  return sizeof *sin6;
}

Endpoint Endpoint::from_sockaddr(const sockaddr* sa) {
  Endpoint e;
  if (sa->sa_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    e.addr = IpAddr::v4(reinterpret_cast<const uint8_t*>(&sin->sin_addr));
    e.port = ntohs(sin->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&sin6->sin6_addr);
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; keep them as IPv4.
    e.addr = std::memcmp(b, kMapped, 12) == 0 ? IpAddr::v4(b + 12) : IpAddr::v6(b);
    e.port = ntohs(sin6->sin6_port);
  }
  return e;
}

}  // namespace xsktun
