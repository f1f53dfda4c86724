// XDP-mode userspace pieces: frame parse/build (no root), and the BPF allowed-IPs maps staying
// in step with the userspace table (root: creates real LPM maps).
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <random>

#include "xsktun/xdp/frame.h"
#include "xsktun/xdp/map_sync.h"
#include "xsktun_shared.h"

namespace xsktun::xdp {
namespace {

Path sample_path(const char* src_ip, uint16_t vlan = 0) {
  Path p;
  p.src_mac = {0x02, 0, 0, 0, 0, 1};
  p.dst_mac = {0x02, 0, 0, 0, 0, 2};
  p.vlan_tci = vlan;
  p.src_ip = *IpAddr::parse(src_ip);
  p.src_port = 51820;
  return p;
}

class FrameRoundTrip : public ::testing::TestWithParam<std::tuple<const char*, const char*, uint16_t>> {};

TEST_P(FrameRoundTrip, BuildThenParseGivesTheReversePath) {
  auto [src, dst, vlan] = GetParam();
  Path path = sample_path(src, vlan);
  Endpoint to{*IpAddr::parse(dst), 40000};
  uint8_t frame[256] = {};
  const char msg[] = "wireguard message bytes";
  size_t hl = header_len(path, to.addr.family);
  std::memcpy(frame + hl, msg, sizeof msg);
  size_t len = build_headers(frame, path, to, sizeof msg);
  EXPECT_EQ(len, hl + sizeof msg);
  // Seen from the receiver: source = us, and its reply path points back at us.
  ParsedFrame pf;
  ASSERT_TRUE(parse_frame(frame, len, &pf));
  EXPECT_EQ(pf.payload_len, sizeof msg);
  EXPECT_EQ(std::memcmp(pf.payload, msg, sizeof msg), 0);
  EXPECT_EQ(pf.source.addr, path.src_ip);
  EXPECT_EQ(pf.source.port, 51820);
  EXPECT_EQ(pf.reply.src_ip, to.addr);
  EXPECT_EQ(pf.reply.src_port, 40000);
  EXPECT_EQ(pf.reply.dst_mac, path.src_mac);
  EXPECT_EQ(pf.reply.src_mac, path.dst_mac);
  EXPECT_EQ(pf.reply.vlan_tci, vlan);
  if (to.addr.family == AF_INET) {
    size_t ip = 14 + (vlan ? 4 : 0);
    EXPECT_EQ(ipv4_checksum(frame + ip, 20), 0);  // a valid header sums to zero
  } else {
    EXPECT_NE(frame[hl - 2] | frame[hl - 1], 0);  // IPv6 UDP checksum is mandatory
  }
  // Every truncation is rejected, never over-read.
  for (size_t cut = 0; cut < len; ++cut) EXPECT_FALSE(parse_frame(frame, cut, &pf)) << cut;
}

INSTANTIATE_TEST_SUITE_P(Families, FrameRoundTrip,
                         ::testing::Values(std::make_tuple("192.0.2.1", "192.0.2.2", uint16_t{0}),
                                           std::make_tuple("192.0.2.1", "192.0.2.2", uint16_t{100}),
                                           std::make_tuple("2001:db8::1", "2001:db8::2", uint16_t{0}),
                                           std::make_tuple("2001:db8::1", "2001:db8::2", uint16_t{7})));

TEST(Frame, Ipv6UdpChecksumVerifies) {
  Path path = sample_path("2001:db8::1");
  Endpoint to{*IpAddr::parse("2001:db8::2"), 9};
  uint8_t frame[256] = {};
  size_t hl = header_len(path, AF_INET6);
  for (int i = 0; i < 33; ++i) frame[hl + i] = static_cast<uint8_t>(i * 7);  // odd length
  size_t len = build_headers(frame, path, to, 33);
  // Recompute over pseudo-header + UDP including the checksum: must fold to 0xffff (sum 0).
  uint32_t acc = 0;
  const uint8_t* ip = frame + 14;
  for (int i = 8; i < 40; i += 2) acc += static_cast<uint32_t>(ip[i] << 8 | ip[i + 1]);
  size_t ulen = len - 14 - 40;
  acc += static_cast<uint32_t>(ulen) + 17;
  const uint8_t* u = ip + 40;
  for (size_t i = 0; i + 1 < ulen; i += 2) acc += static_cast<uint32_t>(u[i] << 8 | u[i + 1]);
  if (ulen & 1) acc += static_cast<uint32_t>(u[ulen - 1]) << 8;
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  EXPECT_EQ(acc, 0xffffu);
}

TEST(Frame, RejectsNonUdpFragmentsAndLyingLengths) {
  Path path = sample_path("192.0.2.1");
  Endpoint to{*IpAddr::parse("192.0.2.2"), 1};
  uint8_t frame[128] = {};
  size_t len = build_headers(frame, path, to, 40);
  ParsedFrame pf;
  ASSERT_TRUE(parse_frame(frame, len, &pf));
  uint8_t f2[128];
  std::memcpy(f2, frame, len);
  f2[14 + 9] = 6;  // TCP
  EXPECT_FALSE(parse_frame(f2, len, &pf));
  std::memcpy(f2, frame, len);
  f2[14 + 6] |= 0x20;  // MF
  EXPECT_FALSE(parse_frame(f2, len, &pf));
  std::memcpy(f2, frame, len);
  f2[14 + 20 + 4] = 0x7f;  // UDP length beyond the frame
  EXPECT_FALSE(parse_frame(f2, len, &pf));
  std::memcpy(f2, frame, len);
  f2[12] = 0x08;
  f2[13] = 0x06;  // ARP
  EXPECT_FALSE(parse_frame(f2, len, &pf));
}

// An allowed-IPs-shaped LPM trie map (key size, entries), as the XDP object creates them.
int lpm_map(uint32_t key_size, uint32_t entries) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  return bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "t_lpm", key_size, 4, entries, &opts);
}

// What changed between two states of a table, as the device reports it to its observer.
std::vector<routing::PrefixChange> delta(routing::AllowedIps& was, const routing::AllowedIps& now) {
  std::map<std::string, std::pair<Prefix, uint32_t>> a, b;
  for (auto& [p, id] : was.entries()) a[p.str()] = {p, id};
  for (auto& [p, id] : now.entries()) b[p.str()] = {p, id};
  std::vector<routing::PrefixChange> out;
  for (auto& [k, v] : a)
    if (!b.count(k)) out.push_back({v.first, v.second, std::nullopt});
  for (auto& [k, v] : b)
    if (!a.count(k) || a[k].second != v.second)
      out.push_back({v.first, a.count(k) ? std::optional<uint32_t>(a[k].second) : std::nullopt, v.second});
  was = now;
  return out;
}

// The userspace table (read by the hot path without syscalls) and the pinned BPF maps (read by
// bpftool and XDP) must never disagree.
TEST(MapSync, BpfMapsAgreeWithTableAfterRandomChanges) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create BPF maps";
  int v4 = lpm_map(sizeof(xsktun_lpm_v4), 4096), v6 = lpm_map(sizeof(xsktun_lpm_v6), 4096);
  ASSERT_GE(v4, 0);
  ASSERT_GE(v6, 0);
  device::Counters counters;
  MapSync sync(MapFds{-1, -1, v4, v6}, &counters);
  routing::AllowedIps table, written;
  std::mt19937 rng(42);
  auto random_prefix = [&]() {
    Prefix p;
    bool six = rng() % 2;
    p.addr.family = six ? AF_INET6 : AF_INET;
    for (size_t i = 0; i < p.addr.len(); ++i)
      p.addr.bytes[i] = static_cast<uint8_t>(rng() % 4);  // collisions
    p.cidr = static_cast<uint8_t>(rng() % (p.addr.len() * 8 + 1));
    return p;
  };
  for (int step = 0; step < 400; ++step) {
    uint32_t peer = rng() % 6;
    switch (rng() % 4) {
      case 0:
      case 1: table.insert(random_prefix(), peer); break;
      case 2: table.remove_by_peer(peer); break;
      case 3: table.replace_peer(peer, {random_prefix(), random_prefix()}); break;
    }
    sync.allowed_ips_changed(delta(written, table));
    if (step % 20 != 19) continue;
    std::set<std::pair<std::string, uint32_t>> want4, want6;
    for (auto& [p, id] : table.entries()) (p.addr.family == AF_INET ? want4 : want6).emplace(p.str(), id);
    ASSERT_EQ(dump_allowed_map(v4, AF_INET), want4) << "step " << step;
    ASSERT_EQ(dump_allowed_map(v6, AF_INET6), want6) << "step " << step;
  }
  EXPECT_EQ(counters.get(device::Counter::map_update_errors), 0u);
  close(v4);
  close(v6);
}

// A write the kernel refuses (here: a map smaller than the table) is counted where `show`
// prints it, not lost.
TEST(MapSync, FailedMapWritesAreCounted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create BPF maps";
  int v4 = lpm_map(sizeof(xsktun_lpm_v4), 2), v6 = lpm_map(sizeof(xsktun_lpm_v6), 2);
  ASSERT_GE(v4, 0);
  ASSERT_GE(v6, 0);
  device::Counters counters;
  MapSync sync(MapFds{-1, -1, v4, v6}, &counters);
  routing::AllowedIps table;
  for (const char* p : {"10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"}) table.insert(*Prefix::parse(p), 1);
  routing::AllowedIps empty;
  sync.allowed_ips_changed(delta(empty, table));
  EXPECT_EQ(counters.get(device::Counter::map_update_errors), 1u);
  EXPECT_EQ(dump_allowed_map(v4, AF_INET).size(), 2u);
  close(v4);
  close(v6);
}

}  // namespace
}  // namespace xsktun::xdp
