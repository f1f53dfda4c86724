// TUN offload helpers (include/xsktun/io/offload.h): checksums, splitting TSO/USO super-packets
// as the kernel hands them over, and coalescing TCP segments into super-packets for writing.
// Every checksum is checked against the byte-wise RFC 1071 reference in offload_test_util.h.
#include "xsktun/io/offload.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "offload_test_util.h"  // NOLINT: test helpers

namespace xsktun::io::offload {
namespace {
using namespace test_util;

// ---- checksums ----

TEST(OffloadChecksum, MatchesByteWiseReferenceForAllLengthsAndSplits) {
  std::mt19937 rng(7);
  Bytes storage(1600);
  for (auto& b : storage) b = static_cast<uint8_t>(rng());
  // Past 128 bytes the sum takes a vector path (on CPUs with AVX2): whole 64-byte steps, then
  // the scalar tail; odd start addresses make its loads unaligned.
  for (size_t n = 0; n <= 1540; ++n) {
    const uint8_t* data = storage.data() + n % 3;
    uint16_t got = csum_fold(csum_add(data, n));
    uint16_t ref = static_cast<uint16_t>(ref_sum(data, n));
    uint8_t stored[2];
    std::memcpy(stored, &got, 2);  // host-order store puts the sum in network order
    ASSERT_EQ(be16(stored), ref) << "length " << n;
    // Pieces that start at even offsets add up to the whole.
    size_t cut = (n / 3) & ~size_t{1};
    uint16_t pieces = csum_fold(csum_add(data + cut, n - cut, csum_add(data, cut)));
    ASSERT_EQ(pieces, got) << "length " << n;
  }
}

TEST(OffloadChecksum, AllOnesDataFoldsWithoutLosingCarries) {
  Bytes ff(65535, 0xff);
  uint16_t v = csum_fold(csum_add(ff.data(), ff.size()));
  uint8_t s[2];
  std::memcpy(s, &v, 2);
  EXPECT_EQ(be16(s), ref_sum(ff.data(), ff.size()));
}

TEST(OffloadChecksum, VerifiesAndSetsHeaders) {
  for (bool v6 : {false, true}) {
    Tcp t;
    t.v6 = v6;
    Bytes p = tcp_packet(t, payload_bytes(333, 1));
    size_t ip = v6 ? 40 : 20;
    EXPECT_TRUE(l4_checksum_ok(p, ip, kProtoTcp));
    p[ip + 30] ^= 0x01;
    EXPECT_FALSE(l4_checksum_ok(p, ip, kProtoTcp));
  }
  Bytes p = tcp_packet({}, {});
  p[10] = p[11] = 0x55;
  set_ipv4_checksum(p.data());
  EXPECT_TRUE(ref_ipv4_ok(p));
}

TEST(OffloadChecksum, CompletesPartialChecksumsLikeTheKernel) {
  for (bool v6 : {false, true}) {
    size_t ip = v6 ? 40 : 20;
    Tcp t;
    t.v6 = v6;
    Bytes tcp = tcp_packet(t, payload_bytes(101, 3));
    Bytes partial = to_partial(tcp, ip, 6);
    ASSERT_NE(partial, tcp);
    ASSERT_TRUE(complete_checksum(partial, static_cast<uint16_t>(ip), 16));
    EXPECT_EQ(partial, tcp);
    Bytes udp = udp_packet(v6, payload_bytes(77, 4));
    partial = to_partial(udp, ip, 17);
    ASSERT_TRUE(complete_checksum(partial, static_cast<uint16_t>(ip), 6));
    EXPECT_EQ(partial, udp);
  }
  Bytes p = tcp_packet({}, {});
  EXPECT_FALSE(complete_checksum(p, 20, 40));  // field beyond the end
  EXPECT_FALSE(complete_checksum(p, 200, 0));
}

// ---- splitting ----

void expect_tcp_segments(const std::vector<Bytes>& segs, const Tcp& t, const Bytes& data, size_t mss) {
  size_t ip = t.v6 ? 40 : 20, th = 20 + t.options.size();
  ASSERT_EQ(segs.size(), (data.size() + mss - 1) / mss);
  for (size_t i = 0; i < segs.size(); ++i) {
    const Bytes& s = segs[i];
    SCOPED_TRACE("segment " + std::to_string(i));
    size_t plen = std::min(mss, data.size() - i * mss);
    ASSERT_EQ(s.size(), ip + th + plen);
    if (t.v6) {
      EXPECT_EQ(be16(&s[4]), s.size() - 40);
    } else {
      EXPECT_EQ(be16(&s[2]), s.size());
      EXPECT_EQ(be16(&s[4]), static_cast<uint16_t>(t.id + i));
      EXPECT_TRUE(ref_ipv4_ok(s));
    }
    const uint8_t* h = &s[ip];
    EXPECT_EQ(be16(h), t.sport);
    EXPECT_EQ(be16(h + 2), t.dport);
    EXPECT_EQ(be32(h + 4), static_cast<uint32_t>(t.seq + i * mss));  // modulo 2^32
    EXPECT_EQ(be32(h + 8), t.ack);
    uint8_t want = t.flags;
    if (i + 1 < segs.size()) want &= ~(kFin | kPsh);
    if (i > 0) want &= ~kCwr;
    EXPECT_EQ(h[13], want);
    EXPECT_TRUE(std::equal(t.options.begin(), t.options.end(), h + 20));
    EXPECT_TRUE(std::equal(h + th, h + th + plen, data.begin() + i * mss));
    EXPECT_TRUE(ref_l4_ok(s, ip, 6));
  }
}

Tcp tso_tcp(bool v6) {
  Tcp t;
  t.v6 = v6;
  t.seq = 0xfffff000;  // wraps inside the super-packet
  t.flags = kAck | kPsh | kFin | kCwr;
  t.options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamps
  t.id = 0xfffe;                                      // the IPv4 ID wraps too
  return t;
}

TEST(OffloadSplit, Ipv4TsoWithOptionsFinAndPsh) {
  Tcp t = tso_tcp(false);
  Bytes data = payload_bytes(5000, 9);
  Bytes super = to_partial(tcp_packet(t, data), 20, 6);
  auto segs = split_all(gso_hdr(kGsoTcpV4, 20, 1388, 6), super);
  expect_tcp_segments(segs, t, data, 1388);
}

TEST(OffloadSplit, Ipv6TsoWithOptionsFinAndPsh) {
  Tcp t = tso_tcp(true);
  Bytes data = payload_bytes(65535 - 40 - 32, 5);  // the largest super-packet
  Bytes super = to_partial(tcp_packet(t, data), 40, 6);
  auto segs = split_all(gso_hdr(kGsoTcpV6 | kGsoEcn, 40, 1348, 6), super);
  expect_tcp_segments(segs, t, data, 1348);
}

TEST(OffloadSplit, AccEcnKeepsCwrOnEverySegment) {
  Tcp t = tso_tcp(false);
  Bytes super = to_partial(tcp_packet(t, payload_bytes(3000, 1)), 20, 6);
  auto segs = split_all(gso_hdr(kGsoTcpV4 | kGsoAccEcn, 20, 1000, 6), super);
  ASSERT_EQ(segs.size(), 3u);
  for (auto& s : segs) EXPECT_TRUE(s[20 + 13] & kCwr);
}

TEST(OffloadSplit, UdpUsoForBothFamilies) {
  for (bool v6 : {false, true}) {
    size_t ip = v6 ? 40 : 20;
    Bytes data = payload_bytes(4000, 2);
    Bytes super = to_partial(udp_packet(v6, data, 0x0100), ip, 17);
    auto segs = split_all(gso_hdr(kGsoUdpL4, ip, 1200, 17), super);
    ASSERT_EQ(segs.size(), 4u);
    for (size_t i = 0; i < segs.size(); ++i) {
      const Bytes& s = segs[i];
      size_t plen = std::min<size_t>(1200, data.size() - i * 1200);
      ASSERT_EQ(s.size(), ip + 8 + plen);
      EXPECT_EQ(be16(&s[ip + 4]), 8 + plen);
      if (v6) {
        EXPECT_EQ(be16(&s[4]), s.size() - 40);
      } else {
        EXPECT_EQ(be16(&s[2]), s.size());
        EXPECT_EQ(be16(&s[4]), 0x0100 + i);
        EXPECT_TRUE(ref_ipv4_ok(s));
      }
      EXPECT_TRUE(std::equal(s.begin() + ip + 8, s.end(), data.begin() + i * 1200));
      EXPECT_TRUE(ref_l4_ok(s, ip, 17));
      EXPECT_NE(be16(&s[ip + 6]), 0);  // 0 would mean "no checksum"
    }
  }
}

TEST(OffloadSplit, WorksWithoutNeedsCsumFromTheIpHeader) {
  Tcp t;
  Bytes data = payload_bytes(2500, 4);
  VirtioNetHdr h{0, kGsoTcpV4, 0, 1000, 0, 0};
  auto segs = split_all(h, tcp_packet(t, data));
  expect_tcp_segments(segs, t, data, 1000);
}

// The TUN reader's split (tun.h, kSegmentAlign): the default MTU's 1420-byte segments become
// 1408 bytes, for both families, and the byte stream comes out whole and in order.
TEST(OffloadSplit, TcpSegmentsAlignedToTheCipherBlock) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    Tcp t = tso_tcp(v6);
    size_t ip = v6 ? 40 : 20, mss = 1420 - ip - 32;  // 1368 / 1348
    Bytes data = payload_bytes(3 * mss, 3);          // 3 segments as the kernel cuts it
    Bytes super = to_partial(tcp_packet(t, data), ip, 6);
    auto segs = split_all(gso_hdr(v6 ? kGsoTcpV6 : kGsoTcpV4, ip, mss, 6), super, 64);
    expect_tcp_segments(segs, t, data, mss - 12);  // 4 segments, the last one 36 bytes
    ASSERT_EQ(segs.size(), 4u);
    for (size_t i = 0; i + 1 < segs.size(); ++i) EXPECT_EQ(segs[i].size(), 1408u);
  }
}

TEST(OffloadSplit, AlignmentLeavesUdpAlignedAndCostlySplitsAlone) {
  Tcp t = tso_tcp(false);
  Bytes data = payload_bytes(5000, 9);
  Bytes super = to_partial(tcp_packet(t, data), 20, 6);
  auto g = parse_gso(gso_hdr(kGsoTcpV4, 20, 1388, 6), super);  // 1440 B: would lose 32 > 2%
  ASSERT_TRUE(g);
  align_tcp_segments(*g, super.size(), 64);
  EXPECT_EQ(g->gso_size, 1388u);
  g = parse_gso(gso_hdr(kGsoTcpV4, 20, 1356, 6), super);  // 1408 B already
  align_tcp_segments(*g, super.size(), 64);
  EXPECT_EQ(g->gso_size, 1356u);
  g = parse_gso(gso_hdr(kGsoTcpV4, 20, 1368, 6), super);
  align_tcp_segments(*g, super.size(), 0);  // 0: off
  EXPECT_EQ(g->gso_size, 1368u);
  Bytes udp = to_partial(udp_packet(false, payload_bytes(4000, 2), 1), 20, 17);
  g = parse_gso(gso_hdr(kGsoUdpL4, 20, 1392, 17), udp);  // 1420 B datagrams keep their size
  ASSERT_TRUE(g);
  align_tcp_segments(*g, udp.size(), 64);
  EXPECT_EQ(g->gso_size, 1392u);
  EXPECT_EQ(g->segments, 3u);
}

TEST(OffloadSplit, RejectsMalformedHeaders) {
  Bytes v4 = tcp_packet({}, payload_bytes(3000, 1));
  Tcp t6;
  t6.v6 = true;
  Bytes v6 = tcp_packet(t6, payload_bytes(3000, 1));
  EXPECT_TRUE(parse_gso(gso_hdr(kGsoTcpV4, 20, 1000, 6), v4));
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV4, 20, 0, 6), v4));     // gso_size 0
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV6, 20, 1000, 6), v4));  // family mismatch
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV4, 40, 1000, 6), v6));
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV4, 24, 1000, 6), v4));   // csum_start != IHL
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoUdpL4, 20, 1000, 17), v4));  // not UDP
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoUdp, 20, 1000, 17), v4));    // UFO: never negotiated
  VirtioNetHdr bad_off = gso_hdr(kGsoTcpV4, 20, 1000, 6);
  bad_off.csum_offset = 6;
  EXPECT_FALSE(parse_gso(bad_off, v4));
  Bytes hdr_only(v4.begin(), v4.begin() + 40);  // no payload
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV4, 20, 1000, 6), hdr_only));
  Bytes bad_doff = v4;
  bad_doff[20 + 12] = 0x30;  // data offset 12 bytes
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV4, 20, 1000, 6), bad_doff));
  EXPECT_FALSE(parse_gso(gso_hdr(kGsoTcpV4, 20, 1000, 6), Bytes(10, 0x45)));
}

TEST(OffloadSplit, RefusesASegmentLargerThanTheBuffer) {
  Bytes super = tcp_packet({}, payload_bytes(3000, 1));
  auto g = parse_gso(gso_hdr(kGsoTcpV4, 20, 1400, 6), super);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->segments, 3u);
  Bytes out(2000);
  EXPECT_EQ(write_segment(*g, super, 0, out.data(), 1439), 0u);
  EXPECT_EQ(write_segment(*g, super, 0, out.data(), 1440), 1440u);
  EXPECT_EQ(write_segment(*g, super, 3, out.data(), out.size()), 0u);  // past the end
}

// ---- coalescing ----

void expect_merges_back(bool v6) {
  Tcp t;
  t.v6 = v6;
  t.options = {1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6};
  auto segs = run(t, 10, 1368, 700);
  // The final segment carries PSH, as a sender's last write would.
  Bytes& last = segs.back();
  size_t ip = v6 ? 40 : 20;
  last[ip + 13] |= kPsh;
  last[ip + 16] = last[ip + 17] = 0;
  put16(&last[ip + 16], ~ref_sum(&last[ip], last.size() - ip, ref_pseudo(last, ip, 6)) & 0xffff);
  Batch b;
  for (auto& s : segs) b.add(s);
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  ASSERT_EQ(counts(gro), std::vector<uint32_t>{10});
  const GroGroup& g = gro.groups[0];
  EXPECT_EQ(g.vnet.flags, kFlagNeedsCsum);
  EXPECT_EQ(g.vnet.gso_type, v6 ? kGsoTcpV6 : kGsoTcpV4);
  EXPECT_EQ(g.vnet.gso_size, 1368);
  EXPECT_EQ(g.vnet.hdr_len, ip + 32);
  EXPECT_EQ(g.vnet.csum_start, ip);
  EXPECT_EQ(g.vnet.csum_offset, 16);
  Bytes flat = gro_flatten(gro, g, b.span());
  ASSERT_EQ(flat.size(), ip + 32 + 9 * 1368 + 700);
  if (v6) {
    EXPECT_EQ(be16(&flat[4]), flat.size() - 40);
  } else {
    EXPECT_EQ(be16(&flat[2]), flat.size());
    EXPECT_TRUE(ref_ipv4_ok(flat));  // ip_rcv checks it
  }
  EXPECT_EQ(flat[ip + 13], kAck | kPsh);
  EXPECT_EQ(be16(&flat[ip + 16]), ref_pseudo(flat, ip, 6));  // CHECKSUM_PARTIAL convention
  // Splitting the super-packet as the kernel would gives back the original segments.
  auto back = split_all(g.vnet, flat);
  ASSERT_EQ(back.size(), segs.size());
  for (size_t i = 0; i < segs.size(); ++i) EXPECT_EQ(back[i], segs[i]) << "segment " << i;
}

TEST(OffloadGro, Ipv4RunMergesAndSplitsBackToTheOriginals) { expect_merges_back(false); }
TEST(OffloadGro, Ipv6RunMergesAndSplitsBackToTheOriginals) { expect_merges_back(true); }

TEST(OffloadGro, NonCoalescableSegmentsStaySeparate) {
  Tcp t;
  auto base = run(t, 2, 1000);
  Tcp gap = t;
  gap.seq += 2001;  // one byte missing
  Tcp other_port = t;
  other_port.sport = 40001;
  other_port.seq += 2000;
  Tcp other_ack = t;
  other_ack.seq += 2000;
  other_ack.ack += 1;
  Tcp fin = t;
  fin.seq += 2000;
  fin.flags = kAck | kFin;
  Tcp syn = t;
  syn.seq += 2000;
  syn.flags = kSyn;
  Tcp options = t;
  options.seq += 2000;
  options.options = {1, 1, 1, 1};
  Tcp ttl = t;
  ttl.seq += 2000;
  ttl.ttl = 63;
  for (const Tcp& odd : {gap, other_port, other_ack, fin, syn, options, ttl}) {
    Batch b;
    b.add(base[0]);
    b.add(base[1]);
    b.add(tcp_packet(odd, payload_bytes(1000, 0)));
    GroBatch gro;
    gro_coalesce(b.span(), gro);
    EXPECT_EQ(counts(gro), (std::vector<uint32_t>{2, 1}));
    EXPECT_EQ(gro.groups[1].first, 2u);
  }
}

TEST(OffloadGro, ShortSegmentEndsARunAndLargerOnesDoNotJoin) {
  Tcp t;
  auto a = run(t, 3, 1000, 500);  // 1000, 1000, 500
  Tcp next = t;
  next.seq += 2500;
  Batch b;
  for (auto& p : a) b.add(p);
  b.add(tcp_packet(next, payload_bytes(1000, 0)));  // nothing may follow a short one
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{3, 1}));

  Batch c;
  auto small_first = run(t, 1, 800);
  Tcp big = t;
  big.seq += 800;
  c.add(small_first[0]);
  c.add(tcp_packet(big, payload_bytes(1000, 0)));  // larger than the head's gso_size
  gro_coalesce(c.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{1, 1}));
}

TEST(OffloadGro, PshEndsARun) {
  Tcp t;
  auto segs = run(t, 5, 1000);
  segs[2][20 + 13] |= kPsh;
  segs[2][20 + 16] = segs[2][20 + 17] = 0;
  put16(&segs[2][36], ~ref_sum(&segs[2][20], segs[2].size() - 20, ref_pseudo(segs[2], 20, 6)) & 0xffff);
  Batch b;
  for (auto& s : segs) b.add(s);
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{3, 2}));
  EXPECT_EQ(gro.groups[0].vnet.gso_type, kGsoTcpV4);
  EXPECT_EQ(gro_flatten(gro, gro.groups[0], b.span())[20 + 13], kAck | kPsh);
}

// A corrupted payload or head merges like any other segment and goes out byte for byte: the
// checksums of authenticated packets are trusted (offload.h). Before, it went out alone.
TEST(OffloadGro, BadChecksumsAreTrustedAndMergedUnchanged) {
  Tcp t;
  auto segs = run(t, 4, 1000);
  segs[2][100] ^= 0xff;  // corrupt the payload of the third
  size_t hl = segs[0].size() - 1000;
  auto payloads = [hl](const std::vector<Bytes>& v) {
    Bytes out;
    for (auto& s : v) out.insert(out.end(), s.begin() + static_cast<long>(hl), s.end());
    return out;
  };
  Batch b;
  for (auto& s : segs) b.add(s);
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{4}));
  // The payload goes out as it came; the merged header is still rewritten for the kernel.
  auto flat = gro_flatten(gro, gro.groups[0], b.span());
  EXPECT_EQ(Bytes(flat.begin() + static_cast<long>(hl), flat.end()), payloads(segs));

  segs = run(t, 3, 1000);
  segs[0][100] ^= 0xff;  // a bad head
  Batch c;
  for (auto& s : segs) c.add(s);
  gro_coalesce(c.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{3}));
  flat = gro_flatten(gro, gro.groups[0], c.span());
  EXPECT_EQ(Bytes(flat.begin() + static_cast<long>(hl), flat.end()), payloads(segs));
}

TEST(OffloadGro, InterleavedFlowsAndOtherPacketsKeepTheirOrder) {
  Tcp a, b2;
  b2.dport = 22;
  auto fa = run(a, 3, 1000);
  auto fb = run(b2, 3, 900);
  Batch b;
  b.add(fa[0]);
  b.add(fb[0]);
  b.add(udp_packet(false, payload_bytes(50, 0)));
  b.add(fa[1]);
  b.add(fb[1]);
  b.add(fa[2]);
  b.add(fb[2]);
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  ASSERT_EQ(counts(gro), (std::vector<uint32_t>{3, 3, 1}));
  EXPECT_EQ(gro.groups[0].first, 0u);
  EXPECT_EQ(gro.groups[1].first, 1u);
  EXPECT_EQ(gro.groups[2].first, 2u);
  auto back = split_all(gro.groups[1].vnet, gro_flatten(gro, gro.groups[1], b.span()));
  EXPECT_EQ(back, fb);
}

TEST(OffloadGro, SuperPacketsStayWithin64KiB) {
  Tcp t;
  auto segs = run(t, 60, 1400);
  Batch b;
  for (auto& s : segs) b.add(s);
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  ASSERT_EQ(gro.groups.size(), 2u);
  EXPECT_EQ(gro.groups[0].count, (65535 - 40) / 1400);
  EXPECT_EQ(gro.groups[0].count + gro.groups[1].count, 60u);
  for (auto& g : gro.groups) EXPECT_LE(gro_flatten(gro, g, b.span()).size(), kMaxPacket);
}

TEST(OffloadGro, TinySegmentsStopAtTheSegmentLimit) {
  Tcp t;
  auto segs = run(t, kMaxGroSegments + 5, 10);
  Batch b;
  for (auto& s : segs) b.add(s);
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{kMaxGroSegments, 5}));
}

TEST(OffloadGro, FragmentsOptionsAndPureAcksAreNotCandidates) {
  Tcp t;
  auto segs = run(t, 2, 1000);
  Bytes frag = segs[1];
  frag[6] |= 0x20;  // MF
  Bytes pure_ack = tcp_packet(t, {});
  Batch b;
  b.add(segs[0]);
  b.add(frag);
  b.add(pure_ack);
  b.add(Bytes{0, 1, 2, 3});  // not IP at all
  GroBatch gro;
  gro_coalesce(b.span(), gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{1, 1, 1, 1}));
  for (auto& g : gro.groups) EXPECT_EQ(gro_flatten(gro, g, b.span()), b.pkts[g.first]);
}

TEST(OffloadGro, SingletonsWriteEveryPacketAlone) {
  GroBatch gro;
  gro_singletons(3, gro);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{1, 1, 1}));
  EXPECT_EQ(gro.next, (std::vector<int32_t>{-1, -1, -1}));
}

}  // namespace
}  // namespace xsktun::io::offload
