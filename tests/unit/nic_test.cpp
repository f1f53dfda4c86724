// NIC facts (xdp/nic.h) read from a veth in a fresh network namespace: ethtool channels and
// features over generic netlink, the MTU, and what a missing NIC or a driver without channels
// answers. Needs root (skips otherwise) and the `ip` and `ethtool` commands.
#include "xsktun/xdp/nic.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "netns_util.h"

namespace xsktun::xdp {
namespace {

using io::test_util::in_netns;

bool run(const char* cmd) { return std::system(cmd) == 0; }

TEST(Nic, FactsOfAVethAndOfNoNic) {
  in_netns([] {
    ASSERT_TRUE(run("ip link add nv0 numrxqueues 3 numtxqueues 3 type veth peer name nv1"));
    EXPECT_EQ(nic_rx_queues("nv0"), 3) << "ethtool channels of a 3-queue veth";
    EXPECT_EQ(nic_rx_queues("lo"), 1) << "a driver without channels counts as one queue";
    EXPECT_EQ(nic_rx_queues("nonexistent0"), 1);

    ASSERT_TRUE(run("ip link set nv0 mtu 1400"));
    EXPECT_EQ(nic_mtu("nv0"), 1400u);
    EXPECT_EQ(nic_mtu("nonexistent0"), 0u);

    // The feature as `ethtool -K` sets it, both ways (veth offers tx-udp-segmentation).
    ASSERT_TRUE(run("ethtool -K nv0 tx-udp-segmentation off >/dev/null 2>&1"));
    EXPECT_EQ(nic_udp_segmentation("nv0"), std::optional<bool>(false));
    ASSERT_TRUE(run("ethtool -K nv0 tx-udp-segmentation on >/dev/null 2>&1"));
    EXPECT_EQ(nic_udp_segmentation("nv0"), std::optional<bool>(true));
    EXPECT_EQ(nic_udp_segmentation("nonexistent0"), std::nullopt);
  });
}

}  // namespace
}  // namespace xsktun::xdp
