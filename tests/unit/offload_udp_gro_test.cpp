// UDP GRO on the TUN write side (include/xsktun/io/offload.h): equal-size datagrams of one flow
// merge into one GSO_UDP_L4 super-packet that splits back (as __udp_gso_segment would) into the
// original datagrams, byte for byte; anything that could change what a socket receives stays
// separate.
#include <gtest/gtest.h>

#include "offload_test_util.h"
#include "xsktun/io/offload.h"

namespace xsktun::io::offload {
namespace {
using namespace test_util;

constexpr uint8_t kUdp = 17;

// `n` datagrams of one flow, `size` payload bytes each (the last `last` if non-zero).
std::vector<Bytes> datagrams(bool v6, size_t n, size_t size, size_t last = 0) {
  std::vector<Bytes> v;
  for (size_t i = 0; i < n; ++i) {
    size_t len = (i + 1 == n && last) ? last : size;
    v.push_back(
        udp_packet(v6, payload_bytes(len, static_cast<uint32_t>(i)), static_cast<uint16_t>(0x100 + i)));
  }
  return v;
}

void expect_merges_back(bool v6) {
  size_t ip = v6 ? 40 : 20;
  auto dgrams = datagrams(v6, 20, 64, 30);
  Batch b;
  for (auto& d : dgrams) b.add(d);
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  ASSERT_EQ(counts(gro), std::vector<uint32_t>{20});
  const GroGroup& g = gro.groups[0];
  EXPECT_EQ(g.vnet.flags, kFlagNeedsCsum);
  EXPECT_EQ(g.vnet.gso_type, kGsoUdpL4);
  EXPECT_EQ(g.vnet.gso_size, 64);
  EXPECT_EQ(g.vnet.hdr_len, ip + 8);
  EXPECT_EQ(g.vnet.csum_start, ip);
  EXPECT_EQ(g.vnet.csum_offset, 6);  // virtio_net_hdr_to_skb insists on udphdr.check for UDP_L4
  Bytes flat = gro_flatten(gro, g, b.span());
  ASSERT_EQ(flat.size(), ip + 8 + 19 * 64 + 30);
  if (!v6) {
    EXPECT_TRUE(ref_ipv4_ok(flat));
  }
  EXPECT_EQ(be16(&flat[ip + 4]), flat.size() - ip);            // merged UDP length
  EXPECT_EQ(be16(&flat[ip + 6]), ref_pseudo(flat, ip, kUdp));  // CHECKSUM_PARTIAL convention
  auto segs = split_all(g.vnet, flat);
  ASSERT_EQ(segs.size(), dgrams.size());
  for (size_t i = 0; i < segs.size(); ++i) {
    // The IPv4 ID is the head's plus i (the kernel's choice); everything else is the original.
    Bytes want = dgrams[i];
    EXPECT_TRUE(std::equal(segs[i].begin() + ip, segs[i].end(), want.begin() + ip, want.end())) << i;
    EXPECT_EQ(segs[i].size(), want.size());
  }
}

TEST(OffloadUdpGro, Ipv4DatagramsMergeAndSplitBack) { expect_merges_back(false); }
TEST(OffloadUdpGro, Ipv6DatagramsMergeAndSplitBack) { expect_merges_back(true); }

TEST(OffloadUdpGro, OnlyWhenTheTunTakesUso) {
  Batch b;
  for (auto& d : datagrams(false, 5, 100)) b.add(d);
  GroBatch gro;
  gro_coalesce(b.span(), gro, false);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{1, 1, 1, 1, 1}));
}

TEST(OffloadUdpGro, ShorterDatagramEndsTheRunAndLargerDoesNotJoin) {
  Batch b;
  for (auto& d : datagrams(false, 3, 100)) b.add(d);
  b.add(udp_packet(false, payload_bytes(50, 9)));   // shorter: joins as the last
  b.add(udp_packet(false, payload_bytes(100, 9)));  // after a short one: new group
  b.add(udp_packet(false, payload_bytes(120, 9)));  // larger than gso_size: new group
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{4, 1, 1}));
}

TEST(OffloadUdpGro, FlowsPortsAndHeadersMustMatch) {
  Batch b;
  Bytes a = udp_packet(false, payload_bytes(80, 1));
  Bytes other_port = a;
  other_port[20 + 2] ^= 1;  // destination port (checksum then wrong too: recompute)
  other_port[26] = other_port[27] = 0;
  put16(&other_port[26],
        ~ref_sum(&other_port[20], other_port.size() - 20, ref_pseudo(other_port, 20, kUdp)) & 0xffff);
  Bytes other_ttl = a;
  other_ttl[8] = 3;
  other_ttl[10] = other_ttl[11] = 0;
  put16(&other_ttl[10], ~ref_sum(other_ttl.data(), 20) & 0xffff);
  b.add(a);
  b.add(other_port);  // another flow: own group; a's flow may still grow
  b.add(a);
  b.add(other_ttl);  // same flow, different TTL: cannot join
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{2, 1, 1}));
  EXPECT_EQ(gro.groups[0].first, 0u);
  EXPECT_EQ(gro.groups[0].last, 2u);
}

TEST(OffloadUdpGro, MissingChecksumsAndLyingLengthsStayAloneBadOnesAreTrusted) {
  Bytes good = udp_packet(false, payload_bytes(64, 1));
  Bytes bad = good;
  bad[28] ^= 0xff;  // payload changed, checksum not
  Bytes none = good;
  none[26] = none[27] = 0;  // IPv4 "no checksum": the sender chose it, keep it
  Bytes lying = good;
  put16(&lying[24], 8 + 60);  // UDP length disagrees with the IP length
  for (const Bytes* odd : {&none, &lying}) {
    Batch b;
    b.add(good);
    b.add(*odd);
    b.add(good);
    GroBatch gro;
    gro_coalesce(b.span(), gro, true);
    // The odd one is never a member, and the datagram after it may not overtake it by
    // joining the first group.
    EXPECT_EQ(counts(gro), (std::vector<uint32_t>{1, 1, 1}));
  }
  // A wrong checksum is trusted like a right one (authenticated packets, see offload.h) and
  // its bytes go out unchanged.
  Batch b;
  b.add(good);
  b.add(bad);
  b.add(good);
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{3}));
  Bytes flat = gro_flatten(gro, gro.groups[0], b.span());
  EXPECT_TRUE(std::equal(bad.begin() + 28, bad.end(), flat.begin() + 28 + 64));
}

TEST(OffloadUdpGro, FragmentsAndEmptyDatagramsAreNotCandidates) {
  Bytes frag = udp_packet(false, payload_bytes(64, 1));
  frag[6] = 0x20;  // MF
  frag[10] = frag[11] = 0;
  put16(&frag[10], ~ref_sum(frag.data(), 20) & 0xffff);
  Bytes empty = udp_packet(false, {});
  Batch b;
  b.add(frag);
  b.add(frag);
  b.add(empty);
  b.add(empty);
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{1, 1, 1, 1}));
}

TEST(OffloadUdpGro, APureAckEndsItsTcpFlowsRunButNotOthers) {
  Tcp t, other;
  other.dport = 22;
  auto segs = run(t, 4, 1000);
  Tcp ack = t;
  ack.seq = 5000;  // a pure ACK of the same flow (no payload: not a candidate)
  auto o = run(other, 2, 500);
  Batch b;
  b.add(segs[0]);
  b.add(o[0]);
  b.add(segs[1]);
  b.add(tcp_packet(ack, {}));
  b.add(o[1]);
  b.add(segs[2]);
  b.add(segs[3]);
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  // segs[2] may not join segs[0..1] ahead of the ACK; the other flow is unaffected.
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{2, 2, 1, 2}));
}

TEST(OffloadUdpGro, TcpAndUdpOfTheSameAddressesDoNotMix) {
  Tcp t;
  Batch b;
  b.add(udp_packet(false, payload_bytes(64, 1)));
  b.add(tcp_packet(t, payload_bytes(64, 1)));
  b.add(udp_packet(false, payload_bytes(64, 2)));
  GroBatch gro;
  gro_coalesce(b.span(), gro, true);
  EXPECT_EQ(counts(gro), (std::vector<uint32_t>{2, 1}));
  EXPECT_EQ(gro.groups[0].vnet.gso_type, kGsoUdpL4);
}

TEST(OffloadUdpGro, StaysWithinTheSegmentLimitAnd64KiB) {
  Batch small, big;
  for (auto& d : datagrams(false, 150, 16)) small.add(d);
  for (auto& d : datagrams(false, 60, 1400)) big.add(d);
  GroBatch gro;
  gro_coalesce(small.span(), gro, true);
  for (auto& g : gro.groups) EXPECT_LE(g.count, kMaxGroSegments);
  EXPECT_EQ(gro.groups.size(), 3u);  // 64 + 64 + 22
  gro_coalesce(big.span(), gro, true);
  for (auto& g : gro.groups) EXPECT_LE(g.total_len, kMaxPacket);
  EXPECT_EQ(gro.groups[0].count, (kMaxPacket - 28) / 1400);
}

}  // namespace
}  // namespace xsktun::io::offload
