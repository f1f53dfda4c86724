#include "xsktun/xdp/frame.h"

#include "xsktun/io/offload.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace xsktun::xdp {

namespace {
constexpr uint16_t kEthIp = 0x0800, kEthIp6 = 0x86dd, kEthVlan = 0x8100, kEthQinQ = 0x88a8;
constexpr size_t kEthLen = 14, kVlanLen = 4, kIp4Len = 20, kIp6Len = 40, kUdpLen = 8;

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

}  // namespace

// RFC 1071 sums shared with the TUN offload code (io/offload.h).
uint16_t ipv4_checksum(const uint8_t* hdr, size_t len) {
  uint16_t c = static_cast<uint16_t>(~io::offload::csum_fold(io::offload::csum_add(hdr, len)));
  return ntohs(c);  // the sum is in host order; callers store with wr16 (network order)
}

bool parse_frame(const uint8_t* f, size_t len, ParsedFrame* out) {
  if (len < kEthLen) return false;
  size_t off = 12;
  uint16_t proto = rd16(f + off);
  uint16_t tci = 0;
  for (int tags = 0; (proto == kEthVlan || proto == kEthQinQ) && tags < 2; ++tags) {
    if (len < off + 2 + kVlanLen) return false;
    tci = rd16(f + off + 2) & 0x0fff;  // the innermost tag wins (TX supports one tag)
    off += kVlanLen;
    proto = rd16(f + off);
  }
  off += 2;
  std::memcpy(out->reply.dst_mac.data(), f + 6, 6);
  std::memcpy(out->reply.src_mac.data(), f, 6);
  out->reply.vlan_tci = tci;
  const uint8_t* udp;
  if (proto == kEthIp) {
    if (len < off + kIp4Len) return false;
    const uint8_t* ip = f + off;
    size_t ihl = size_t{ip[0] & 0x0fu} * 4;
    if ((ip[0] >> 4) != 4 || ihl < kIp4Len || len < off + ihl + kUdpLen || ip[9] != IPPROTO_UDP) return false;
    if (rd16(ip + 6) & 0x3fff) return false;  // MF or a fragment offset
    out->source.addr = IpAddr::v4(ip + 12);
    out->reply.src_ip = IpAddr::v4(ip + 16);
    udp = ip + ihl;
  } else if (proto == kEthIp6) {
    if (len < off + kIp6Len + kUdpLen) return false;
    const uint8_t* ip = f + off;
    if ((ip[0] >> 4) != 6 || ip[6] != IPPROTO_UDP) return false;
    out->source.addr = IpAddr::v6(ip + 8);
    out->reply.src_ip = IpAddr::v6(ip + 24);
    udp = ip + kIp6Len;
  } else {
    return false;
  }
  size_t udp_len = rd16(udp + 4);
  size_t avail = len - static_cast<size_t>(udp - f);
  if (udp_len < kUdpLen || udp_len > avail) return false;
  out->source.port = rd16(udp);
  out->reply.src_port = rd16(udp + 2);
  out->payload = udp + kUdpLen;
  out->payload_len = udp_len - kUdpLen;
  return true;
}

size_t header_len(const Path& path, int family) {
  return kEthLen + (path.vlan_tci ? kVlanLen : 0) + (family == AF_INET ? kIp4Len : kIp6Len) + kUdpLen;
}

size_t build_headers(uint8_t* f, const Path& path, const Endpoint& dst, size_t payload_len) {
  bool v4 = dst.addr.family == AF_INET;
  std::memcpy(f, path.dst_mac.data(), 6);
  std::memcpy(f + 6, path.src_mac.data(), 6);
  size_t off = 12;
  if (path.vlan_tci) {
    wr16(f + off, kEthVlan);
    wr16(f + off + 2, path.vlan_tci);
    off += kVlanLen;
  }
  wr16(f + off, v4 ? kEthIp : kEthIp6);
  off += 2;
  uint8_t* ip = f + off;
  size_t udp_total = kUdpLen + payload_len;
  uint8_t* udp;
  if (v4) {
    std::memset(ip, 0, kIp4Len);
    ip[0] = 0x45;
    wr16(ip + 2, static_cast<uint16_t>(kIp4Len + udp_total));
    wr16(ip + 6, 0x4000);  // DF, like the kernel's WireGuard sockets
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    std::memcpy(ip + 12, path.src_ip.bytes.data(), 4);
    std::memcpy(ip + 16, dst.addr.bytes.data(), 4);
    wr16(ip + 10, ipv4_checksum(ip, kIp4Len));
    udp = ip + kIp4Len;
  } else {
    std::memset(ip, 0, kIp6Len);
    ip[0] = 0x60;
    wr16(ip + 4, static_cast<uint16_t>(udp_total));
    ip[6] = IPPROTO_UDP;
    ip[7] = 64;
    std::memcpy(ip + 8, path.src_ip.bytes.data(), 16);
    std::memcpy(ip + 24, dst.addr.bytes.data(), 16);
    udp = ip + kIp6Len;
  }
  wr16(udp, path.src_port);
  wr16(udp + 2, dst.port);
  wr16(udp + 4, static_cast<uint16_t>(udp_total));
  wr16(udp + 6, 0);
  if (!v4) {
    uint64_t acc = io::offload::pseudo_header_sum(ip, true, IPPROTO_UDP, udp_total);
    uint16_t c = static_cast<uint16_t>(~io::offload::csum_fold(io::offload::csum_add(udp, udp_total, acc)));
    if (c == 0) c = 0xffff;  // RFC 8200 8.1: zero means "no checksum", not allowed over IPv6
    std::memcpy(udp + 6, &c, 2);  // host-order sum stored host-order lands in network order
  }
  return static_cast<size_t>(udp - f) + udp_total;
}

}  // namespace xsktun::xdp
