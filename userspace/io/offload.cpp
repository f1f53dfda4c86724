#include "xsktun/io/offload.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace xsktun::io::offload {
namespace {

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr size_t kTcpFlagsOff = 13;
constexpr uint16_t kTcpCsumOff = 16;  // offsetof(struct tcphdr, check)
constexpr uint16_t kUdpCsumOff = 6;   // offsetof(struct udphdr, check)

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void put_be16(uint8_t* p, size_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put_be32(uint8_t* p, uint32_t v) {
  put_be16(p, v >> 16);
  put_be16(p + 2, v & 0xffff);
}
// A folded sum computed from host-order loads goes back with a host-order store (see header).
void put_csum(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Ones'-complement 64-bit addition: the carry out wraps around (RFC 1071 2.(C) "deferred carries").
inline uint64_t add_oc(uint64_t a, uint64_t b) {
  a += b;
  return a + (a < b);
}

}  // namespace

namespace {

uint64_t csum_add_scalar(const uint8_t* p, size_t len, uint64_t acc) {
  // Two 128-bit accumulators: each 64-bit add keeps its carry in the high half (add + adc),
  // and the two chains run in parallel. Wide enough for any length that fits in memory.
  unsigned __int128 a = acc, b = 0;
  while (len >= 16) {
    uint64_t w[2];
    std::memcpy(w, p, 16);
    a += w[0];
    b += w[1];
    p += 16;
    len -= 16;
  }
  if (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    a += w;
    p += 8;
    len -= 8;
  }
  if (len > 0) {  // the tail keeps its byte positions, zero-padded like RFC 1071's odd byte
    uint64_t w = 0;
    std::memcpy(&w, p, len);
    b += w;
  }
  a += b;
  // 2^64 = 1 in ones'-complement arithmetic mod 0xffff: the high half folds in like a carry.
  return add_oc(static_cast<uint64_t>(a), static_cast<uint64_t>(a >> 64));
}

// 64 bytes per step: each 64-bit lane adds the low and the high 32-bit word of its input
// separately (zero-extended, so no carry is lost; 2^32 = 1 mod 0xffff, so 32-bit words sum like
// 16-bit ones). Lanes and their sum stay below 2^63 for any len < 2^35. A 1408-byte TCP segment's checksum
// was the larger part of splitting a TSO super-packet (build/xsktun-microbench, BM_TsoSplit).
__attribute__((target("avx2"))) uint64_t csum_add_avx2(const uint8_t* p, size_t len, uint64_t acc) {
  const __m256i low = _mm256_set1_epi64x(0xffffffff);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (; len >= 64; p += 64, len -= 64) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    s0 = _mm256_add_epi64(s0, _mm256_and_si256(a, low));
    s1 = _mm256_add_epi64(s1, _mm256_srli_epi64(a, 32));
    s2 = _mm256_add_epi64(s2, _mm256_and_si256(b, low));
    s3 = _mm256_add_epi64(s3, _mm256_srli_epi64(b, 32));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  for (uint64_t l : lanes) acc = add_oc(acc, l);
  return csum_add_scalar(p, len, acc);
}

const bool g_has_avx2 = [] {
  __builtin_cpu_init();  // a static initializer may run before the runtime's own
  return __builtin_cpu_supports("avx2") != 0;
}();

}  // namespace

uint64_t csum_add(const uint8_t* p, size_t len, uint64_t acc) {
  return len >= 128 && g_has_avx2 ? csum_add_avx2(p, len, acc) : csum_add_scalar(p, len, acc);
}

uint16_t csum_fold(uint64_t acc) {
  uint64_t s = (acc & 0xffffffff) + (acc >> 32);
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

uint64_t pseudo_header_sum(const uint8_t* ip, bool v6, uint8_t proto, size_t l4_len) {
  // IPv4: src, dst, zero, protocol, 16-bit length. IPv6: src, dst, 32-bit length, three zero
  // bytes, next header. For lengths < 64 KiB both sum like {0, proto, len_hi, len_lo}.
  uint64_t acc = v6 ? csum_add(ip + 8, 32) : csum_add(ip + 12, 8);
  const uint8_t tail[4] = {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
  return csum_add(tail, sizeof tail, acc);
}

bool l4_checksum_ok(std::span<const uint8_t> pkt, size_t l4_off, uint8_t proto) {
  if (pkt.size() < 20 || l4_off > pkt.size()) return false;
  bool v6 = (pkt[0] >> 4) == 6;
  size_t l4_len = pkt.size() - l4_off;
  uint64_t acc = csum_add(pkt.data() + l4_off, l4_len, pseudo_header_sum(pkt.data(), v6, proto, l4_len));
  return csum_fold(acc) == 0xffff;
}

void set_ipv4_checksum(uint8_t* ip) {
  size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  ip[10] = ip[11] = 0;
  put_csum(ip + 10, static_cast<uint16_t>(~csum_fold(csum_add(ip, ihl))));
}

bool complete_checksum(std::span<uint8_t> pkt, uint16_t csum_start, uint16_t csum_offset) {
  size_t at = size_t{csum_start} + csum_offset;
  if (csum_start >= pkt.size() || at + 2 > pkt.size()) return false;
  uint16_t c = static_cast<uint16_t>(~csum_fold(csum_add(pkt.data() + csum_start, pkt.size() - csum_start)));
  // skb_checksum_help: a computed 0 goes out as 0xffff (CSUM_MANGLED_0): for UDP 0 would mean
  // "no checksum"; for TCP both encode the same sum.
  put_csum(pkt.data() + at, c == 0 ? 0xffff : c);
  return true;
}

// ---- Segmentation.

namespace {

// The 16-bit word at `p` as csum_add loads it (host order; see the header comment).
uint64_t loaded_word(const uint8_t* p) {
  uint16_t w;
  std::memcpy(&w, p, 2);
  return w;
}
// A big-endian field value as csum_add would have loaded it from memory.
uint64_t as_loaded(uint16_t v) {
  uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  return loaded_word(b);
}
// Takes the word at `p` back out of a sum: -w is ~w (0xffff - w) in ones' complement.
uint64_t minus_word(const uint8_t* p) { return 0xffff - loaded_word(p); }

void sum_templates(GsoPacket& g, const uint8_t* pkt) {
  // The excluded words add up to less than 2^18, so one carry-wrapping add takes them in.
  if (!g.v6)
    g.ip_sum =
        add_oc(csum_add(pkt, g.l4_off), minus_word(pkt + 2) + minus_word(pkt + 4) + minus_word(pkt + 10));
  const uint8_t* l4 = pkt + g.l4_off;
  // The pseudo-header with length 0: write_segment adds each segment's length.
  uint64_t acc = add_oc(pseudo_header_sum(pkt, g.v6, g.proto, 0), csum_add(l4, g.hdr_len - g.l4_off));
  if (g.proto == kProtoTcp) {
    g.l4_sum = add_oc(
        acc, minus_word(l4 + 4) + minus_word(l4 + 6) + minus_word(l4 + 12) + minus_word(l4 + kTcpCsumOff));
  } else {
    g.l4_sum = add_oc(acc, minus_word(l4 + 4) + minus_word(l4 + kUdpCsumOff));
  }
}

}  // namespace

std::optional<GsoPacket> parse_gso(const VirtioNetHdr& hdr, std::span<const uint8_t> pkt) {
  if (pkt.size() < 20 || pkt.size() > kMaxPacket || hdr.gso_size == 0) return std::nullopt;
  GsoPacket g;
  uint8_t type = hdr.gso_type & static_cast<uint8_t>(~(kGsoEcn | kGsoAccEcn));
  g.keep_cwr = (hdr.gso_type & kGsoAccEcn) != 0;
  bool csum = hdr.flags & kFlagNeedsCsum;
  uint8_t version = pkt[0] >> 4;
  if (version == 4) {
    g.l4_off = size_t{pkt[0] & 0x0fu} * 4;
    if (g.l4_off < 20 || (csum && hdr.csum_start != g.l4_off)) return std::nullopt;
    g.proto = pkt[9];
  } else if (version == 6 && pkt.size() >= 40) {
    g.v6 = true;
    // csum_start already skips any extension headers; without it only a bare header is known.
    g.l4_off = csum ? hdr.csum_start : 40;
    if (g.l4_off < 40) return std::nullopt;
    g.proto = g.l4_off == 40 ? pkt[6] : (type == kGsoUdpL4 ? kProtoUdp : kProtoTcp);
  } else {
    return std::nullopt;
  }
  if (type == kGsoTcpV4 && !g.v6 && g.proto == kProtoTcp) {
  } else if (type == kGsoTcpV6 && g.v6 && g.proto == kProtoTcp) {
  } else if (type == kGsoUdpL4 && g.proto == kProtoUdp) {
  } else {
    return std::nullopt;
  }
  if (csum && hdr.csum_offset != (g.proto == kProtoTcp ? kTcpCsumOff : kUdpCsumOff)) return std::nullopt;
  if (g.proto == kProtoTcp) {
    // hdr_len is not trusted (see header): the TCP data offset gives the real header length.
    if (g.l4_off + 20 > pkt.size()) return std::nullopt;
    size_t thl = static_cast<size_t>(pkt[g.l4_off + 12] >> 4) * 4;
    if (thl < 20) return std::nullopt;
    g.hdr_len = g.l4_off + thl;
  } else {
    g.hdr_len = g.l4_off + 8;
  }
  if (g.hdr_len >= pkt.size()) return std::nullopt;  // no payload: not a super-packet
  g.gso_size = hdr.gso_size;
  g.segments = (pkt.size() - g.hdr_len + g.gso_size - 1) / g.gso_size;
  sum_templates(g, pkt.data());
  return g;
}

void align_tcp_segments(GsoPacket& g, size_t pkt_len, size_t align) {
  if (g.proto != kProtoTcp || align == 0 || g.gso_size == 0 || pkt_len <= g.hdr_len) return;
  size_t over = (g.hdr_len + g.gso_size) % align;
  if (over == 0 || over * 50 > g.gso_size) return;
  g.gso_size -= over;
  g.segments = (pkt_len - g.hdr_len + g.gso_size - 1) / g.gso_size;
}

size_t write_segment(const GsoPacket& g, std::span<const uint8_t> pkt, size_t i, uint8_t* out, size_t cap) {
  if (i >= g.segments) return 0;
  size_t off = g.hdr_len + i * g.gso_size;
  size_t plen = std::min(g.gso_size, pkt.size() - off);
  size_t len = g.hdr_len + plen;
  if (len > cap) return 0;
  std::memcpy(out, pkt.data(), g.hdr_len);
  std::memcpy(out + g.hdr_len, pkt.data() + off, plen);
  // Checksums from the super-packet's bytes and the field values, never re-reading what was just
  // stored here: loads that straddle fresh narrow stores stall (store forwarding), which made
  // the 20-byte IPv4 header checksum cost about as much as the whole payload's.
  if (g.v6) {
    put_be16(out + 4, len - 40);
  } else {
    uint16_t id = static_cast<uint16_t>(be16(pkt.data() + 4) + i);  // the ID increments per segment
    put_be16(out + 2, len);
    put_be16(out + 4, id);
    uint64_t ip = add_oc(g.ip_sum, as_loaded(static_cast<uint16_t>(len)) + as_loaded(id));
    put_csum(out + 10, static_cast<uint16_t>(~csum_fold(ip)));
  }
  uint8_t* l4 = out + g.l4_off;
  const uint8_t* src_l4 = pkt.data() + g.l4_off;
  auto l4_len = static_cast<uint16_t>(len - g.l4_off);
  uint64_t acc = add_oc(g.l4_sum, csum_add(pkt.data() + off, plen));
  uint64_t fields = as_loaded(l4_len);  // the pseudo-header's length; each field < 2^16
  if (g.proto == kProtoTcp) {
    uint32_t seq = be32(src_l4 + 4) + static_cast<uint32_t>(i * g.gso_size);
    uint8_t flags = src_l4[kTcpFlagsOff];
    // tcp_gso_segment: FIN and PSH belong to the last segment, CWR to the first.
    if (i + 1 < g.segments) flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i > 0 && !g.keep_cwr) flags &= static_cast<uint8_t>(~kTcpCwr);
    put_be32(l4 + 4, seq);
    l4[kTcpFlagsOff] = flags;
    fields += as_loaded(static_cast<uint16_t>(seq >> 16)) + as_loaded(static_cast<uint16_t>(seq));
    fields += as_loaded(static_cast<uint16_t>(src_l4[kTcpFlagsOff - 1] << 8 | flags));
    put_csum(l4 + kTcpCsumOff, static_cast<uint16_t>(~csum_fold(add_oc(acc, fields))));
  } else {
    put_be16(l4 + 4, l4_len);
    fields += as_loaded(l4_len);  // the UDP length field
    auto c = static_cast<uint16_t>(~csum_fold(add_oc(acc, fields)));
    put_csum(l4 + kUdpCsumOff, c == 0 ? 0xffff : c);  // 0 would mean "no checksum"
  }
  return len;
}

// ---- Coalescing.
namespace {

struct Segment {
  bool v6;
  uint8_t proto;  // kProtoTcp or kProtoUdp
  uint8_t ip_len;
  uint8_t tcp_len;  // L4 header length (8 for UDP)
  uint32_t payload;
  uint32_t seq;
  bool psh;
};

// A TCP segment or UDP datagram that may take part in GRO: IPv4 without options or
// fragmentation, or IPv6 without extension headers; length fields matching the packet; some
// payload. TCP: flags ACK or ACK|PSH (no SYN/FIN/RST/URG/ECE/CWR). UDP (only when `udp`, i.e. the
// TUN takes USO): a UDP length that matches and, over IPv4, a checksum (0 = none: left alone).
std::optional<Segment> gro_candidate(const uint8_t* p, size_t len, bool udp) {
  if (len < 28 || len > kMaxPacket) return std::nullopt;
  Segment s{};
  auto wanted = [udp](uint8_t proto) { return proto == kProtoTcp || (udp && proto == kProtoUdp); };
  if (p[0] == 0x45) {
    if (!wanted(p[9]) || be16(p + 2) != len || (be16(p + 6) & 0x3fff) != 0) return std::nullopt;
    s.proto = p[9];
    s.ip_len = 20;
  } else if ((p[0] >> 4) == 6) {
    if (len < 48 || !wanted(p[6]) || size_t{be16(p + 4)} + 40 != len) return std::nullopt;
    s.proto = p[6];
    s.v6 = true;
    s.ip_len = 40;
  } else {
    return std::nullopt;
  }
  const uint8_t* l4 = p + s.ip_len;
  if (s.proto == kProtoUdp) {
    if (be16(l4 + 4) != len - s.ip_len || len == s.ip_len + 8u || (!s.v6 && be16(l4 + 6) == 0))
      return std::nullopt;
    s.tcp_len = 8;
    s.payload = static_cast<uint32_t>(len - s.ip_len - 8);
    return s;
  }
  if (len < s.ip_len + 20u) return std::nullopt;
  s.tcp_len = static_cast<uint8_t>((l4[12] >> 4) * 4);
  if (s.tcp_len < 20 || size_t{s.ip_len} + s.tcp_len >= len) return std::nullopt;
  uint8_t flags = l4[kTcpFlagsOff];
  if (flags != kTcpAck && flags != (kTcpAck | kTcpPsh)) return std::nullopt;
  s.psh = flags & kTcpPsh;
  s.payload = static_cast<uint32_t>(len - s.ip_len - s.tcp_len);
  s.seq = be32(l4 + 4);
  return s;
}

// Addresses, ports and (TCP) ACK number: a cheap filter before same_flow.
uint32_t flow_hash(const uint8_t* p, const Segment& s) {
  const uint8_t* l4 = p + s.ip_len;
  uint32_t h = be32(l4) * 0x9e3779b1u ^ (s.proto == kProtoTcp ? be32(l4 + 8) : kProtoUdp);
  size_t a = s.v6 ? 8 : 12, n = s.v6 ? 32 : 8;
  for (size_t i = 0; i < n; i += 4) h = (h ^ be32(p + a + i)) * 0x9e3779b1u;
  return h ^ (s.v6 ? 1u : 0u);
}

bool same_flow(const uint8_t* p, const Segment& s, const uint8_t* head, const GroGroup& g) {
  if (s.v6 != g.v6 || s.proto != g.proto) return false;
  size_t a = s.v6 ? 8 : 12, n = s.v6 ? 32 : 8;
  return std::memcmp(p + a, head + a, n) == 0 &&                                                // addresses
         std::memcmp(p + s.ip_len, head + g.ip_len, 4) == 0 &&                                  // ports
         (s.proto == kProtoUdp || std::memcmp(p + s.ip_len + 8, head + g.ip_len + 8, 4) == 0);  // ACK
}

// The IP header fields GRO requires to be equal, and the TCP options (UDP has none).
bool headers_match(const uint8_t* p, const Segment& s, const uint8_t* head, const GroGroup& g) {
  if (s.tcp_len != g.tcp_len) return false;
  if (s.v6) {
    // version, traffic class, flow label; hop limit
    if (std::memcmp(p, head, 4) != 0 || p[7] != head[7]) return false;
  } else {
    // TOS; reserved and DF bits; TTL
    if (p[1] != head[1] || (p[6] >> 5) != (head[6] >> 5) || p[8] != head[8]) return false;
  }
  return s.proto == kProtoUdp || std::memcmp(p + s.ip_len + 20, head + g.ip_len + 20, s.tcp_len - 20u) == 0;
}

bool can_append(const PacketBuf& b, const Segment& s, const GroGroup& g, const PacketBuf& head) {
  // UDP (udp_gro_receive): datagrams of one size, the last may be shorter; no sequence to follow.
  return g.open && !g.psh && (s.proto == kProtoUdp || s.seq == g.next_seq) && g.last_payload == g.gso_size &&
         s.payload <= g.gso_size && g.count < kMaxGroSegments && g.total_len + s.payload <= kMaxPacket &&
         headers_match(b.data, s, head.data, g);
}

GroGroup& new_group(GroBatch& out, uint32_t i) {
  GroGroup& g = out.groups.emplace_back();
  g.first = g.last = i;
  return g;
}

void open_group(GroGroup& g, const uint8_t* p, const Segment& s) {
  g.open = true;
  g.v6 = s.v6;
  g.proto = s.proto;
  g.psh = s.psh;
  g.ip_len = s.ip_len;
  g.tcp_len = s.tcp_len;
  g.flow_hash = flow_hash(p, s);
  g.next_seq = s.seq + s.payload;
  g.gso_size = g.last_payload = s.payload;
  g.total_len = s.ip_len + s.tcp_len + s.payload;
}

// Rewrites the head of a merged group and its virtio header (see header: what the kernel needs).
void finish_group(GroGroup& g, const PacketBuf& head) {
  size_t hl = size_t{g.ip_len} + g.tcp_len;
  g.head_len = static_cast<uint8_t>(hl);
  std::memcpy(g.head.data(), head.data, hl);
  uint8_t* h = g.head.data();
  if (g.v6) {
    put_be16(h + 4, g.total_len - 40);
  } else {
    put_be16(h + 2, g.total_len);
    set_ipv4_checksum(h);
  }
  uint8_t* l4 = h + g.ip_len;
  size_t l4_len = g.total_len - g.ip_len;
  uint16_t csum_off = kTcpCsumOff;
  uint8_t gso = g.v6 ? kGsoTcpV6 : kGsoTcpV4;
  if (g.proto == kProtoUdp) {
    // __udp_gso_segment rewrites the length per segment and adjusts the checksum by the
    // difference, so both start from the merged length.
    put_be16(l4 + 4, l4_len);
    csum_off = kUdpCsumOff;
    gso = kGsoUdpL4;
  } else if (g.psh) {
    l4[kTcpFlagsOff] |= kTcpPsh;
  }
  put_csum(l4 + csum_off, csum_fold(pseudo_header_sum(h, g.v6, g.proto, l4_len)));
  g.vnet = VirtioNetHdr{kFlagNeedsCsum, gso,     static_cast<uint16_t>(hl), static_cast<uint16_t>(g.gso_size),
                        g.ip_len,       csum_off};
}

// A packet that cannot join its flow's group (not a candidate) closes it, so
// nothing of that flow written later can overtake it (the kernel's GRO flushes a flow the same
// way). Packets without ports (other protocols, later fragments) belong to no group.
void close_flow(GroBatch& out, std::span<const PacketBuf> pkts, const uint8_t* p, size_t len) {
  bool v6 = false;
  size_t ip_len = 40;
  uint8_t proto;
  if (len >= 20 && (p[0] >> 4) == 4) {
    if (be16(p + 6) & 0x1fff) return;
    ip_len = (p[0] & 0xfu) * 4;
    proto = p[9];
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    v6 = true;
    proto = p[6];
  } else {
    return;
  }
  if ((proto != kProtoTcp && proto != kProtoUdp) || len < ip_len + 4) return;
  size_t a = v6 ? 8 : 12, n = v6 ? 32 : 8;
  for (GroGroup& g : out.groups) {
    if (!g.open || g.v6 != v6 || g.proto != proto) continue;
    const uint8_t* h = pkts[g.first].data;
    if (std::memcmp(p + a, h + a, n) == 0 && std::memcmp(p + ip_len, h + g.ip_len, 4) == 0) g.open = false;
  }
}

}  // namespace

void gro_singletons(size_t n, GroBatch& out) {
  out.clear();
  out.next.assign(n, -1);
  for (size_t i = 0; i < n; ++i) new_group(out, static_cast<uint32_t>(i));
}

void gro_coalesce(std::span<const PacketBuf> pkts, GroBatch& out, bool udp) {
  out.clear();
  out.next.assign(pkts.size(), -1);
  for (uint32_t i = 0; i < pkts.size(); ++i) {
    const PacketBuf& b = pkts[i];
    auto s = gro_candidate(b.data, b.len, udp);
    if (!s) {
      close_flow(out, pkts, b.data, b.len);
      new_group(out, i);
      continue;
    }
    // Only the flow's most recent group may grow, so a flow's packets keep their order.
    uint32_t h = flow_hash(b.data, *s);
    GroGroup* flow = nullptr;
    for (auto it = out.groups.rbegin(); it != out.groups.rend(); ++it) {
      if (it->flow_hash == h && it->tcp_len != 0 && same_flow(b.data, *s, pkts[it->first].data, *it)) {
        flow = &*it;
        break;
      }
    }
    // Checksums are not checked here: every packet written passed the AEAD (see header).
    if (flow && can_append(b, *s, *flow, pkts[flow->first])) {
      out.next[flow->last] = static_cast<int32_t>(i);
      flow->last = i;
      ++flow->count;
      flow->psh = s->psh;
      flow->next_seq += s->payload;
      flow->last_payload = s->payload;
      flow->total_len += s->payload;
      continue;
    }
    open_group(new_group(out, i), b.data, *s);
  }
  for (GroGroup& g : out.groups)
    if (g.count > 1) finish_group(g, pkts[g.first]);
}

std::vector<uint8_t> gro_flatten(const GroBatch& b, const GroGroup& g, std::span<const PacketBuf> pkts) {
  if (g.count == 1) return {pkts[g.first].data, pkts[g.first].data + pkts[g.first].len};
  std::vector<uint8_t> v(g.head.begin(), g.head.begin() + g.head_len);
  for (int32_t i = static_cast<int32_t>(g.first); i >= 0; i = b.next[i]) {
    const PacketBuf& p = pkts[i];
    v.insert(v.end(), p.data + g.head_len, p.data + p.len);
  }
  return v;
}

}  // namespace xsktun::io::offload
