// Configuration limits (bpf/xsktun_shared.h by default): a change past one is refused as a
// whole, nothing applied, so XDP mode's BPF maps never hold less than the configuration.
#include <gtest/gtest.h>

#include "device_harness.h"

namespace xsktun {
namespace {

using testing::key_of;
using testing::Node;

control::PeerChange peer(uint32_t n, std::vector<const char*> allowed = {}) {
  control::PeerChange p;
  p.public_key = key_of(n);
  for (auto a : allowed) p.allowed_ips.push_back(*Prefix::parse(a));
  return p;
}

class DeviceLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node = std::make_unique<Node>(net, "192.0.2.1", 51820, clock);
    node->dev->set_limits({.peers = 3, .allowed_ips_v4 = 4, .allowed_ips_v6 = 2});
  }
  int apply(const control::ConfigChange& c) { return node->dev->apply(c, &err); }
  size_t prefixes() const {
    size_t n = 0;
    for (auto& p : node->dev->snapshot().peers) n += p.allowed_ips.size();
    return n;
  }

  io::FakeNetwork net;
  testing::FakeClock clock;
  std::unique_ptr<Node> node;
  std::string err;
};

TEST_F(DeviceLimitsTest, PeersUpToTheLimitThenTheWholeChangeIsRefused) {
  control::ConfigChange c;
  c.peers = {peer(1, {"10.0.1.0/24"}), peer(2), peer(3)};
  ASSERT_EQ(apply(c), 0) << err;
  control::ConfigChange more;
  more.listen_port = 40001;  // would change too if the change were applied in part
  more.peers = {peer(1, {"10.0.9.0/24"}), peer(4, {"10.0.4.0/24"})};
  EXPECT_EQ(apply(more), ENOSPC);
  EXPECT_NE(err.find("4 peers"), std::string::npos) << err;
  EXPECT_NE(err.find("limit is 3"), std::string::npos) << err;
  auto s = node->dev->snapshot();
  EXPECT_EQ(s.peers.size(), 3u);
  EXPECT_EQ(s.listen_port, 51820);
  EXPECT_EQ(prefixes(), 1u) << "peer 1's new prefix must not have been applied";
}

TEST_F(DeviceLimitsTest, RemovalsInTheSameChangeMakeRoom) {
  control::ConfigChange c;
  c.peers = {peer(1), peer(2), peer(3)};
  ASSERT_EQ(apply(c), 0) << err;
  control::ConfigChange swap;
  auto gone = peer(2);
  gone.remove = true;
  swap.peers = {gone, peer(4)};
  EXPECT_EQ(apply(swap), 0) << err;
  EXPECT_EQ(node->dev->peer_count(), 3u);
  // Replacing the whole set counts only what the new set holds.
  control::ConfigChange replace;
  replace.replace_peers = true;
  replace.peers = {peer(7), peer(8), peer(9)};
  EXPECT_EQ(apply(replace), 0) << err;
  replace.peers.push_back(peer(10));
  EXPECT_EQ(apply(replace), ENOSPC);
  EXPECT_EQ(node->dev->peer_count(), 3u);
}

TEST_F(DeviceLimitsTest, PrefixesPerFamilyCountWhatTheTableWouldHold) {
  control::ConfigChange c;
  c.peers = {peer(1, {"10.0.1.0/24", "10.0.2.0/24", "fd00::/64"}), peer(2, {"10.0.3.0/24"})};
  ASSERT_EQ(apply(c), 0) << err;
  // A prefix moved to another peer, or given twice, is still one entry.
  control::ConfigChange move;
  move.peers = {peer(2, {"10.0.1.0/24", "10.0.3.0/24", "10.0.4.0/24"})};
  ASSERT_EQ(apply(move), 0) << err;
  EXPECT_EQ(prefixes(), 5u);
  control::ConfigChange fifth;
  fifth.peers = {peer(3, {"10.0.5.0/24"})};
  EXPECT_EQ(apply(fifth), ENOSPC);
  EXPECT_NE(err.find("IPv4 allowed IPs"), std::string::npos) << err;
  EXPECT_EQ(node->dev->peer_count(), 2u) << "peer 3 must not have been created";
  // Replacing a peer's prefixes frees its old ones first.
  control::ConfigChange replace;
  auto p1 = peer(1, {"10.0.5.0/24", "fd00:1::/64"});
  p1.replace_allowed_ips = true;
  replace.peers = {p1};
  EXPECT_EQ(apply(replace), 0) << err;
  control::ConfigChange v6;
  v6.peers = {peer(2, {"fd00:2::/64", "fd00:3::/64"})};
  EXPECT_EQ(apply(v6), ENOSPC);
  EXPECT_NE(err.find("IPv6 allowed IPs"), std::string::npos) << err;
}

// The default limits are the BPF maps' sizes, the same in both modes.
TEST(DeviceLimitsDefault, AreTheMapSizes) {
  device::Limits l;
  EXPECT_EQ(l.peers, size_t{XSKTUN_MAX_PEERS});
  EXPECT_EQ(l.allowed_ips_v4, size_t{XSKTUN_MAX_ALLOWED_IPS});
  EXPECT_EQ(l.allowed_ips_v6, size_t{XSKTUN_MAX_ALLOWED_IPS});
  static_assert(XSKTUN_MAX_SESSIONS >= 3 * XSKTUN_MAX_PEERS, "three keypairs per peer");
}

}  // namespace
}  // namespace xsktun
