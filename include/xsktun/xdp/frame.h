// Ethernet/IP/UDP framing for the AF_XDP path: parsing received frames down to the WireGuard
// message, and building headers in front of an outgoing one. Pure functions, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "xsktun/common/ip.h"

namespace xsktun::xdp {

// Everything needed to send to an endpoint without the kernel: learned from an authenticated
// frame received from it (the return path), so it follows the peer's actual route.
struct Path {
  std::array<uint8_t, 6> src_mac{};  // ours
  std::array<uint8_t, 6> dst_mac{};  // the peer's next hop
  uint16_t vlan_tci = 0;             // 0 = untagged (one 802.1Q tag supported on TX)
  IpAddr src_ip;                     // our address the peer sent to
  uint16_t src_port = 0;             // our listen port
  bool operator==(const Path&) const = default;
};

struct ParsedFrame {
  const uint8_t* payload = nullptr;  // the UDP payload (the WireGuard message)
  size_t payload_len = 0;
  Endpoint source;  // the sender's IP and UDP port
  Path reply;       // the path that sends back to `source`
};

// Parses a frame with the XDP program's parser (bpf/xsktun_parse.h: Ethernet with up to two VLAN
// tags, IPv4 with options and no fragments or IPv6 with up to 4 hop-by-hop/routing/destination
// options headers, UDP). False for anything else or anything truncated; every frame the program
// redirects parses.
bool parse_frame(const uint8_t* frame, size_t len, ParsedFrame* out);

// Bytes of headers build_headers writes for a path and destination family.
size_t header_len(const Path& path, int family);

// Writes Ethernet/IP/UDP headers for a payload of payload_len bytes that starts right after
// them, i.e. at frame + header_len(path, dst.addr.family). IPv4 gets a header checksum and a
// zero UDP checksum (RFC 768 allows it); IPv6 gets the mandatory UDP checksum (RFC 8200 8.1).
// Returns the full frame length.
size_t build_headers(uint8_t* frame, const Path& path, const Endpoint& dst, size_t payload_len);

uint16_t ipv4_checksum(const uint8_t* hdr, size_t len);

}  // namespace xsktun::xdp
