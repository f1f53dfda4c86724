// Addresses, prefixes and UDP endpoints shared by routing, protocol and I/O code.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace xsktun {

// An IPv4 or IPv6 address; IPv4 uses the first 4 bytes of `bytes`, the rest are zero.
struct IpAddr {
  uint8_t family = 0;  // AF_INET or AF_INET6; 0 = unset
  std::array<uint8_t, 16> bytes{};

  static IpAddr v4(const uint8_t* b) {
    IpAddr a;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), b, 4);
    return a;
  }
  static IpAddr v6(const uint8_t* b) {
    IpAddr a;
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), b, 16);
    return a;
  }
  size_t len() const { return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0; }
  bool operator==(const IpAddr&) const = default;
  // Parses dotted-quad or RFC 4291 text; nullopt on anything else.
  static std::optional<IpAddr> parse(std::string_view s);
  std::string str() const;
};

// A CIDR prefix. Host bits are cleared by whoever stores it (AllowedIps::insert does).
struct Prefix {
  IpAddr addr;
  uint8_t cidr = 0;
  bool operator==(const Prefix&) const = default;
  // "10.0.0.0/8", "fd00::/64"; a bare address means a host prefix (/32 or /128).
  static std::optional<Prefix> parse(std::string_view s);
  std::string str() const;
  Prefix masked() const;
};

// A UDP endpoint (address + port), convertible to and from sockaddr.
struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;  // host byte order
  bool operator==(const Endpoint&) const = default;
  bool valid() const { return addr.family != 0; }
  // "1.2.3.4:51820" or "[fd00::1]:51820" (numeric only; hostnames are resolved by the caller).
  static std::optional<Endpoint> parse(std::string_view s);
  std::string str() const;
  socklen_t to_sockaddr(sockaddr_storage* ss) const;
  static Endpoint from_sockaddr(const sockaddr* sa);
};

}  // namespace xsktun
