// One worker per queue: the socket-mode SO_REUSEPORT group (UdpGroup) on loopback, and the
// multi-queue TUN with the BPF filter on it in a fresh network namespace (root).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "batch_util.h"
#include "netns_util.h"
#include "xsktun/io/tun.h"
#include "xsktun/io/udp_group.h"
#include "xsktun/xdp/xdp_object.h"

namespace xsktun::io {
namespace {

using test_util::Batch;

// A free port: bound and closed again (nobody else binds ports on this test host meanwhile).
uint16_t free_port() {
  auto s = UdpSocket::open(0);
  return s->port();
}

TEST(UdpGroup, MembersShareOnePort) {
  std::string err;
  auto g = UdpGroup::open(0, 3, &err);
  ASSERT_TRUE(g) << err;
  ASSERT_EQ(g->size(), 3u);
  EXPECT_NE(g->port(), 0);
  std::set<int> fds;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(g->member(i).port(), g->port());
    fds.insert(g->member(i).native_handle());
  }
  EXPECT_EQ(fds.size(), 3u);
}

TEST(UdpGroup, RefusesAPortAnotherReuseportSocketHolds) {
  // Another daemon's group on the port (same user): joining it would silently split its
  // datagrams; the group must fail like a plain socket does.
  auto other = UdpSocket::open(0, nullptr, true);
  ASSERT_TRUE(other);
  std::string err;
  EXPECT_FALSE(UdpGroup::open(other->port(), 2, &err));
  EXPECT_NE(err.find(std::strerror(EADDRINUSE)), std::string::npos) << err;
  auto g = UdpGroup::open(0, 2, &err);
  ASSERT_TRUE(g) << err;
  uint16_t before = g->port();
  EXPECT_EQ(g->rebind(other->port()), -EADDRINUSE);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(g->member(i).port(), before);
}

TEST(UdpGroup, OneMemberIsAPlainSocket) {
  std::string err;
  auto g = UdpGroup::open(0, 1, &err);
  ASSERT_TRUE(g) << err;
  EXPECT_FALSE(UdpSocket::open(g->port(), nullptr, true)) << "a group of one must not set SO_REUSEPORT";
}

TEST(UdpGroup, RebindMovesEveryMember) {
  std::string err;
  auto g = UdpGroup::open(0, 3, &err);
  ASSERT_TRUE(g) << err;
  uint16_t to = free_port();
  ASSERT_EQ(g->rebind(to), 0);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(g->member(i).port(), to);
  EXPECT_EQ(g->rebind(to), 0);  // the current port: nothing to do
  ASSERT_EQ(g->rebind(0), 0);   // any port: the members follow the first
  EXPECT_NE(g->port(), to);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(g->member(i).port(), g->port());
}

TEST(UdpGroup, SendersSpreadOverTheMembersAndEachSticksToOne) {
  std::string err;
  auto g = UdpGroup::open(0, 2, &err);
  ASSERT_TRUE(g) << err;
  // 32 senders (source ports), two datagrams each: the kernel hashes the 4-tuple, so each
  // sender's datagrams reach one member, and 32 senders reach both.
  std::vector<std::unique_ptr<UdpSocket>> senders;
  Batch out(1);
  for (int i = 0; i < 32; ++i) {
    senders.push_back(UdpSocket::open(0));
    out.set(0, {1, 2, 3}, Endpoint{*IpAddr::parse("127.0.0.1"), g->port()});
    for (int k = 0; k < 2; ++k) ASSERT_EQ(senders.back()->send_batch(out.bufs), 1);
  }
  std::map<uint16_t, std::set<size_t>> member_of;  // sender port -> members it reached
  std::set<size_t> used;
  Batch in(64);
  for (size_t m = 0; m < 2; ++m) {
    for (;;) {
      in.reset();
      int n = g->member(m).try_recv_batch(in.bufs);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) member_of[in.bufs[i].endpoint.port].insert(m);
      used.insert(m);
    }
  }
  EXPECT_EQ(member_of.size(), 32u);
  for (auto& [port, members] : member_of) EXPECT_EQ(members.size(), 1u) << "sender " << port;
  EXPECT_EQ(used.size(), 2u);
}

TEST(TunQueues, OpenQueueNeedsAMultiQueueDevice) {
  test_util::in_netns([] {
    std::string err;
    auto single = TunDevice::create("xsq%d", kDefaultTunMtu, &err);
    ASSERT_TRUE(single) << err;
    EXPECT_FALSE(single->open_queue(&err));
    EXPECT_NE(err.find("one queue"), std::string::npos) << err;
    auto mq = TunDevice::create("xsq%d", kDefaultTunMtu, &err, TunOffload::kAuto, true);
    ASSERT_TRUE(mq) << err;
    std::vector<std::unique_ptr<TunDevice>> more;
    for (int i = 0; i < 3; ++i) {
      more.push_back(mq->open_queue(&err));
      ASSERT_TRUE(more.back()) << err;
      EXPECT_EQ(more.back()->name(), mq->name());
      EXPECT_EQ(more.back()->features().tso, mq->features().tso);
    }
  });
}

int quiet(enum libbpf_print_level level, const char* fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

TEST(TunQueues, FilterDropsUnroutedPacketsInTheKernelAndSteeringSpreadsFlows) {
  test_util::in_netns([] {
    libbpf_set_print(quiet);
    std::string err;
    auto obj = xdp::XdpObject::open_and_load(&err);
    ASSERT_TRUE(obj) << err;
    auto tun = TunDevice::create("xsq%d", kDefaultTunMtu, &err, TunOffload::kOff, true);
    ASSERT_TRUE(tun) << err;
    std::vector<std::unique_ptr<TunDevice>> queues;
    queues.push_back(std::move(tun));
    for (int i = 0; i < 3; ++i) queues.push_back(queues[0]->open_queue(&err));
    test_util::set_ipv4(queues[0]->name(), "10.7.0.1");
    ASSERT_EQ(queues[0]->set_filter_bpf(obj->tun_filter_fd()), 0);
    ASSERT_EQ(queues[0]->set_steering_bpf(obj->tun_steer_fd()), 0);
    // Only 10.7.0.2 is someone's allowed IP.
    xsktun_lpm_v4 key{32, {10, 7, 0, 2}};
    uint32_t peer = 1;
    ASSERT_EQ(bpf_map_update_elem(obj->allowed_ips_v4_fd(), &key, &peer, BPF_ANY), 0);
    auto send_to = [&](const char* dst, uint16_t sport) {
      int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in from{AF_INET, htons(sport), {}, {}};
      bind(u, reinterpret_cast<sockaddr*>(&from), sizeof from);
      sockaddr_in to{AF_INET, htons(9), {}, {}};
      inet_pton(AF_INET, dst, &to.sin_addr);
      for (int k = 0; k < 3; ++k) sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
      close(u);
    };
    for (uint16_t p = 40000; p < 40016; ++p) send_to("10.7.0.2", p);
    for (uint16_t p = 40000; p < 40004; ++p) send_to("10.7.0.3", p);
    // Each queue's packets: 16 flows x 3 datagrams to the routed address, each flow on one queue.
    std::map<uint16_t, std::set<size_t>> queue_of;
    size_t total = 0;
    Batch in(64);
    for (size_t q = 0; q < queues.size(); ++q) {
      for (;;) {
        in.reset();
        int n = queues[q]->try_read_batch(in.bufs);
        if (n <= 0) break;
        for (int i = 0; i < n; ++i) {
          const uint8_t* p = in.bufs[i].data;
          if ((p[0] >> 4) != 4 || p[9] != IPPROTO_UDP) continue;  // e.g. IGMP/ND noise
          EXPECT_EQ(p[19], 2) << "an unrouted packet reached userspace";
          queue_of[static_cast<uint16_t>(p[20] << 8 | p[21])].insert(q);
          ++total;
        }
      }
    }
    EXPECT_EQ(total, 48u);
    std::set<size_t> used;
    for (auto& [port, qs] : queue_of) {
      EXPECT_EQ(qs.size(), 1u) << "flow from port " << port << " on several queues";
      used.insert(qs.begin(), qs.end());
    }
    EXPECT_GE(used.size(), 3u) << "16 flows should reach at least 3 of 4 queues";
    EXPECT_EQ(obj->stats()[XSKTUN_STAT_TUN_DROP_NO_ROUTE], 12u);
  });
}

}  // namespace
}  // namespace xsktun::io
