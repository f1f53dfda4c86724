// Shared by the TUN offload tests: packet builders and a byte-wise RFC 1071 reference that is
// independent of the code under test (include/xsktun/io/offload.h).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <vector>

#include "xsktun/io/offload.h"

namespace xsktun::io::offload::test_util {

using Bytes = std::vector<uint8_t>;

inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10, kCwr = 0x80;

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }
inline void put16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

// Reference RFC 1071 sum over big-endian 16-bit words, folded, not complemented.
inline uint32_t ref_sum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += be16(p + i);
  if (n & 1) sum += p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

inline uint32_t ref_pseudo(const Bytes& pkt, size_t l4_off, uint8_t proto) {
  bool v6 = (pkt[0] >> 4) == 6;
  uint32_t s = v6 ? ref_sum(&pkt[8], 32) : ref_sum(&pkt[12], 8);
  return ref_sum(nullptr, 0, s + proto + static_cast<uint32_t>(pkt.size() - l4_off));
}

inline bool ref_l4_ok(const Bytes& pkt, size_t l4_off, uint8_t proto) {
  return ref_sum(&pkt[l4_off], pkt.size() - l4_off, ref_pseudo(pkt, l4_off, proto)) == 0xffff;
}
inline bool ref_ipv4_ok(const Bytes& pkt) { return ref_sum(pkt.data(), (pkt[0] & 0xf) * 4u) == 0xffff; }

struct Tcp {
  bool v6 = false;
  uint16_t sport = 40000, dport = 5201;
  uint32_t seq = 1000, ack = 777;
  uint8_t flags = kAck;
  Bytes options;  // a multiple of 4
  uint16_t id = 0x1234;
  uint8_t ttl = 64;
};

inline Bytes payload_bytes(size_t n, uint32_t seed) {
  Bytes p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((seed + i) * 131 + (i >> 7));
  return p;
}

// A complete, valid IPv4 or IPv6 TCP packet.
inline Bytes tcp_packet(const Tcp& t, const Bytes& payload) {
  size_t ip = t.v6 ? 40 : 20, th = 20 + t.options.size();
  Bytes p(ip + th + payload.size());
  if (t.v6) {
    p[0] = 0x60;
    put16(&p[4], static_cast<uint32_t>(p.size() - 40));
    p[6] = 6;
    p[7] = t.ttl;
    p[8] = 0xfd;  // fd00::1 -> fd00::2
    p[23] = 1;
    p[24] = 0xfd;
    p[39] = 2;
  } else {
    p[0] = 0x45;
    put16(&p[2], static_cast<uint32_t>(p.size()));
    put16(&p[4], t.id);
    p[6] = 0x40;  // DF
    p[8] = t.ttl;
    p[9] = 6;
    const uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
    std::memcpy(&p[12], src, 4);
    std::memcpy(&p[16], dst, 4);
    put16(&p[10], ~ref_sum(p.data(), 20) & 0xffff);
  }
  uint8_t* h = &p[ip];
  put16(h, t.sport);
  put16(h + 2, t.dport);
  put32(h + 4, t.seq);
  put32(h + 8, t.ack);
  h[12] = static_cast<uint8_t>((th / 4) << 4);
  h[13] = t.flags;
  put16(h + 14, 512);
  std::copy(t.options.begin(), t.options.end(), h + 20);
  std::copy(payload.begin(), payload.end(), h + th);
  put16(h + 16, ~ref_sum(h, p.size() - ip, ref_pseudo(p, ip, 6)) & 0xffff);
  return p;
}

inline Bytes udp_packet(bool v6, const Bytes& payload, uint16_t id = 0x4321) {
  Tcp t;
  t.v6 = v6;
  Bytes p = tcp_packet(t, {});  // reuse the IP header, then swap in UDP
  size_t ip = v6 ? 40 : 20;
  p.resize(ip + 8 + payload.size());
  if (v6) {
    p[6] = 17;
    put16(&p[4], static_cast<uint32_t>(p.size() - 40));
  } else {
    p[9] = 17;
    put16(&p[2], static_cast<uint32_t>(p.size()));
    put16(&p[4], id);
    p[10] = p[11] = 0;
    put16(&p[10], ~ref_sum(p.data(), 20) & 0xffff);
  }
  uint8_t* u = &p[ip];
  put16(u, 5353);
  put16(u + 2, 9999);
  put16(u + 4, static_cast<uint32_t>(8 + payload.size()));
  u[6] = u[7] = 0;
  std::copy(payload.begin(), payload.end(), u + 8);
  put16(u + 6, ~ref_sum(u, p.size() - ip, ref_pseudo(p, ip, 17)) & 0xffff);
  return p;
}

// What the kernel hands a TUN reader for a TSO/USO skb: full-length IP header and, in the L4
// checksum field, the uncomplemented pseudo-header sum (CHECKSUM_PARTIAL).
inline Bytes to_partial(Bytes p, size_t l4_off, uint8_t proto) {
  size_t at = l4_off + (proto == 6 ? 16 : 6);
  put16(&p[at], ref_pseudo(p, l4_off, proto));
  return p;
}

inline VirtioNetHdr gso_hdr(uint8_t type, size_t l4_off, uint16_t gso_size, uint8_t proto) {
  // hdr_len deliberately wrong (the forward path reports skb_headlen): it must not be trusted.
  return VirtioNetHdr{kFlagNeedsCsum,
                      type,
                      1234,
                      gso_size,
                      static_cast<uint16_t>(l4_off),
                      static_cast<uint16_t>(proto == 6 ? 16 : 6)};
}

// Splits `super` as the kernel would, or with TCP segments aligned to `align` bytes (0: not).
inline std::vector<Bytes> split_all(const VirtioNetHdr& h, const Bytes& super, size_t align = 0) {
  auto g = parse_gso(h, super);
  EXPECT_TRUE(g.has_value());
  std::vector<Bytes> out;
  if (!g) return out;
  align_tcp_segments(*g, super.size(), align);
  for (size_t i = 0; i < g->segments; ++i) {
    Bytes seg(2048);
    size_t n = write_segment(*g, super, i, seg.data(), seg.size());
    EXPECT_GT(n, 0u);
    seg.resize(n);
    out.push_back(seg);
  }
  return out;
}

struct Batch {
  std::vector<Bytes> pkts;
  std::vector<PacketBuf> bufs;
  void add(Bytes p) { pkts.push_back(std::move(p)); }
  std::span<const PacketBuf> span() {
    bufs.clear();
    for (auto& p : pkts) bufs.push_back(PacketBuf{p.data(), p.size(), p.size(), {}});
    return bufs;
  }
};

inline std::vector<uint32_t> counts(const GroBatch& b) {
  std::vector<uint32_t> c;
  for (auto& g : b.groups) c.push_back(g.count);
  return c;
}

// `n` consecutive segments of one flow, `mss` bytes each (the last `last` bytes if non-zero).
inline std::vector<Bytes> run(Tcp t, size_t n, size_t mss, size_t last = 0) {
  std::vector<Bytes> v;
  for (size_t i = 0; i < n; ++i) {
    size_t len = (i + 1 == n && last) ? last : mss;
    v.push_back(tcp_packet(t, payload_bytes(len, t.seq)));
    t.seq += static_cast<uint32_t>(len);
    ++t.id;
  }
  return v;
}

}  // namespace xsktun::io::offload::test_util
