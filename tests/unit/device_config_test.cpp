// Configuration changes against a model: random sequences of wg-set-like changes (new peers,
// removals, replaced and moved prefixes, refused ones) leave the device's table, both of its
// copies and an observer fed only the deltas equal to what a naive model computes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "device_harness.h"

namespace xsktun {
namespace {

using testing::key_of;
using testing::Node;

// Applies the deltas it is told about to a map, as the BPF maps do.
struct RecordingObserver : device::DeviceObserver {
  std::map<std::string, uint32_t> prefixes;  // prefix -> peer id
  size_t writes = 0;
  void session_added(uint32_t, uint32_t) override {}
  void session_removed(uint32_t) override {}
  void peer_updated(uint32_t, const Key&, const Endpoint&) override {}
  void peer_removed(uint32_t) override {}
  std::vector<uint16_t> ports;
  void listen_port_changed(uint16_t port) override { ports.push_back(port); }
  void allowed_ips_changed(std::span<const routing::PrefixChange> delta) override {
    for (const auto& c : delta) {
      ++writes;
      if (c.after)
        prefixes[c.prefix.str()] = *c.after;
      else
        prefixes.erase(c.prefix.str());
    }
  }
};

struct Model {
  std::map<uint32_t, std::map<std::string, bool>> peers;  // peer number -> its prefixes
  void set(uint32_t peer, const std::string& prefix) {
    for (auto& [n, ps] : peers) ps.erase(prefix);
    peers[peer][prefix] = true;
  }
};

class DeviceConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node = std::make_unique<Node>(net, "192.0.2.1", 51820, clock);
    node->dev->set_limits({.peers = 12, .allowed_ips_v4 = 40, .allowed_ips_v6 = 40});
    node->dev->set_observer(&obs);
  }
  void TearDown() override { node->dev->set_observer(nullptr); }

  // What the device holds: public-key number -> prefixes, from a snapshot (wg show).
  std::map<uint32_t, std::map<std::string, bool>> held() {
    std::map<uint32_t, std::map<std::string, bool>> out;
    for (auto& p : node->dev->snapshot().peers) {
      uint32_t n = 0;
      for (int i = 0; i < 4; ++i) n |= uint32_t{p.public_key[static_cast<size_t>(i)]} << (8 * i);
      auto& ps = out[n];
      for (auto& pr : p.allowed_ips) ps[pr.str()] = true;
    }
    return out;
  }

  io::FakeNetwork net;
  testing::FakeClock clock;
  std::unique_ptr<Node> node;
  RecordingObserver obs;
};

TEST_F(DeviceConfigTest, RandomChangesMatchTheModelAndRefusedOnesChangeNothing) {
  std::mt19937 rng(7);
  Model model;
  auto prefix = [&] {
    bool six = rng() % 3 == 0;
    std::string p =
        six ? "fd00:" + std::to_string(rng() % 24) + "::/64" : "10.0." + std::to_string(rng() % 48) + ".0/24";
    return Prefix::parse(p)->str();  // the spelling the snapshot uses
  };
  int refused = 0, applied = 0;
  for (int step = 0; step < 600; ++step) {
    control::ConfigChange c;
    Model want = model;
    size_t n = 1 + rng() % 4;
    for (size_t i = 0; i < n; ++i) {
      control::PeerChange pc;
      uint32_t peer = rng() % 16;
      pc.public_key = key_of(peer);
      switch (rng() % 5) {
        case 0:
          pc.remove = true;
          want.peers.erase(peer);
          break;
        case 1:
          pc.replace_allowed_ips = true;
          want.peers[peer].clear();
          [[fallthrough]];
        default:
          want.peers[peer];
          for (size_t k = rng() % 4; k > 0; --k) {
            std::string p = prefix();
            pc.allowed_ips.push_back(*Prefix::parse(p));
            want.set(peer, p);
          }
      }
      c.peers.push_back(pc);
    }
    std::string err;
    int rc = node->dev->apply(c, &err);
    if (rc == 0) {
      model = want;
      ++applied;
    } else {
      ASSERT_EQ(rc, ENOSPC) << err;
      ++refused;
    }
    ASSERT_EQ(held(), model.peers) << "step " << step << (rc ? " (refused: " + err + ")" : "");
    ASSERT_TRUE(node->dev->table_copies_agree()) << "step " << step;
    std::vector<std::string> want_prefixes, got_prefixes;
    for (auto& [p, ps] : model.peers)
      for (auto& [prefix, yes] : ps) want_prefixes.push_back(prefix);
    for (auto& [prefix, id] : obs.prefixes) got_prefixes.push_back(prefix);
    std::sort(want_prefixes.begin(), want_prefixes.end());
    ASSERT_EQ(got_prefixes, want_prefixes) << "the observer's deltas, step " << step;
  }
  EXPECT_GT(applied, 100);
  EXPECT_GT(refused, 10) << "the limits were never reached: the test lost its point";
}

// A change costs what it changes: adding one peer to a large table writes one prefix to the
// observer, not the table.
// The listen port reaches the observer (and so the XDP config map) like everything else the maps
// mirror: on set_observer, after a rebind that worked, and not after one that failed.
TEST_F(DeviceConfigTest, ListenPortReachesTheObserverOnlyAfterASuccessfulRebind) {
  ASSERT_EQ(obs.ports, std::vector<uint16_t>{51820});
  control::ConfigChange c;
  c.listen_port = 51830;
  std::string err;
  ASSERT_EQ(node->dev->apply(c, &err), 0) << err;
  EXPECT_EQ(obs.ports.back(), 51830);
  auto squatter = net.attach(*IpAddr::parse("192.0.2.1"), 51840);
  ASSERT_TRUE(squatter);
  c.listen_port = 51840;
  EXPECT_NE(node->dev->apply(c, &err), 0);
  EXPECT_EQ(obs.ports, (std::vector<uint16_t>{51820, 51830}));
  c.listen_port = 51830;  // unchanged: no rebind, nothing to tell
  EXPECT_EQ(node->dev->apply(c, &err), 0);
  EXPECT_EQ(obs.ports.size(), 2u);
}

TEST_F(DeviceConfigTest, ObserverGetsOnlyWhatChanged) {
  node->dev->set_limits({});
  control::ConfigChange big;
  control::PeerChange pc;
  pc.public_key = key_of(1);
  for (int i = 0; i < 5000; ++i)
    pc.allowed_ips.push_back(
        *Prefix::parse("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24"));
  big.peers.push_back(pc);
  std::string err;
  ASSERT_EQ(node->dev->apply(big, &err), 0) << err;
  EXPECT_EQ(obs.writes, 5000u);
  control::ConfigChange one;
  control::PeerChange p2;
  p2.public_key = key_of(2);
  p2.allowed_ips.push_back(*Prefix::parse("192.168.0.0/16"));
  one.peers.push_back(p2);
  ASSERT_EQ(node->dev->apply(one, &err), 0) << err;
  EXPECT_EQ(obs.writes, 5001u);
  // wg syncconf resends a peer with the same prefixes (replace_allowed_ips): nothing changes.
  big.peers[0].replace_allowed_ips = true;
  ASSERT_EQ(node->dev->apply(big, &err), 0) << err;
  EXPECT_EQ(obs.writes, 5001u);
  EXPECT_TRUE(node->dev->table_copies_agree());
}

}  // namespace
}  // namespace xsktun
