#include "xsktun/xdp/frame.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "xsktun/io/offload.h"
#include "xsktun_parse.h"
#include "xsktun_shared.h"

namespace xsktun::xdp {

namespace {
constexpr uint16_t kEthIp = XSKTUN_ETH_P_IP, kEthIp6 = XSKTUN_ETH_P_IPV6, kEthVlan = XSKTUN_ETH_P_8021Q;
constexpr size_t kEthLen = 14, kVlanLen = 4, kIp4Len = 20, kIp6Len = 40, kUdpLen = 8;

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
  // The XDP program's own parser (bpf/xsktun_parse.h): what it redirects, this accepts.
  const uint8_t* end = f + len;
  xsktun_frame fr{};
  if (xsktun_parse_to_udp(f, end, &fr) != XSKTUN_PARSE_OK) return false;
  long payload = xsktun_udp_payload_len(&fr, end);
  if (payload < 0) return false;
  std::memcpy(out->reply.dst_mac.data(), f + 6, 6);
  std::memcpy(out->reply.src_mac.data(), f, 6);
  out->reply.vlan_tci = fr.vlan_tci & 0x0fff;  // the innermost tag's VLAN id (TX supports one tag)
  if (fr.family == XSKTUN_AF_INET) {
    out->source.addr = IpAddr::v4(fr.l3 + 12);
    out->reply.src_ip = IpAddr::v4(fr.l3 + 16);
  } else {
    out->source.addr = IpAddr::v6(fr.l3 + 8);
    out->reply.src_ip = IpAddr::v6(fr.l3 + 24);
  }
  out->source.port = xsktun_rd16(fr.udp);
  out->reply.src_port = xsktun_rd16(fr.udp + 2);
  out->payload = fr.udp + kUdpLen;
  out->payload_len = static_cast<size_t>(payload);
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
    if (c == 0) c = 0xffff;       // RFC 8200 8.1: zero means "no checksum", not allowed over IPv6
    std::memcpy(udp + 6, &c, 2);  // host-order sum stored host-order lands in network order
  }
  return static_cast<size_t>(udp - f) + udp_total;
}

}  // namespace xsktun::xdp
