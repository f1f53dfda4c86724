// BPF_PROG_TEST_RUN of the TUN programs (bpf/xsktun.bpf.c): xsktun_tun_filter drops what no
// allowed IP covers (counting tun_drop_no_route) and keeps the rest whole; xsktun_tun_steer
// gives every packet of a flow the same queue and spreads a peer's flows. Needs root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "xsktun/xdp/xdp_object.h"
#include "xsktun_shared.h"

namespace {

using xsktun::xdp::XdpObject;
using Bytes = std::vector<uint8_t>;

// test_run builds the skb from an Ethernet frame and pulls the header (net/bpf/test_run.c), so
// socket filters see it start at the IP header, as on the TUN.
Bytes frame(uint16_t ethertype, const Bytes& ip) {
  Bytes f(14 + ip.size(), 0);
  f[12] = static_cast<uint8_t>(ethertype >> 8);
  f[13] = static_cast<uint8_t>(ethertype);
  std::copy(ip.begin(), ip.end(), f.begin() + 14);
  return f;
}

struct Flow {
  const char* src;
  const char* dst;
  uint8_t proto = IPPROTO_UDP;
  uint16_t sport = 1000, dport = 2000;
  uint16_t frag = 0;  // IPv4 flags+offset field
};

Bytes v4(const Flow& f, size_t payload = 32) {
  Bytes p(20 + 8 + payload, 0);
  p[0] = 0x45;
  p[2] = static_cast<uint8_t>(p.size() >> 8);
  p[3] = static_cast<uint8_t>(p.size());
  p[6] = static_cast<uint8_t>(f.frag >> 8);
  p[7] = static_cast<uint8_t>(f.frag);
  p[8] = 64;
  p[9] = f.proto;
  inet_pton(AF_INET, f.src, p.data() + 12);
  inet_pton(AF_INET, f.dst, p.data() + 16);
  p[20] = static_cast<uint8_t>(f.sport >> 8);
  p[21] = static_cast<uint8_t>(f.sport);
  p[22] = static_cast<uint8_t>(f.dport >> 8);
  p[23] = static_cast<uint8_t>(f.dport);
  return frame(ETH_P_IP, p);
}

Bytes v6(const Flow& f, size_t payload = 32) {
  Bytes p(40 + 8 + payload, 0);
  p[0] = 0x60;
  p[4] = static_cast<uint8_t>((p.size() - 40) >> 8);
  p[5] = static_cast<uint8_t>(p.size() - 40);
  p[6] = f.proto;
  p[7] = 64;
  inet_pton(AF_INET6, f.src, p.data() + 8);
  inet_pton(AF_INET6, f.dst, p.data() + 24);
  p[40] = static_cast<uint8_t>(f.sport >> 8);
  p[41] = static_cast<uint8_t>(f.sport);
  p[42] = static_cast<uint8_t>(f.dport >> 8);
  p[43] = static_cast<uint8_t>(f.dport);
  return frame(ETH_P_IPV6, p);
}

int quiet(enum libbpf_print_level level, const char* fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

class TunProgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "BPF program tests need root";
    libbpf_set_print(quiet);
    std::string err;
    obj_ = XdpObject::open_and_load(&err);
    ASSERT_NE(obj_, nullptr) << err;
    add4("10.0.1.0", 24, 1);
    add4("10.0.2.0", 24, 2);
    add6("fd00:1::", 64, 1);
  }
  // prefix -> peer in allowed_ips_v4 / v6 (what MapSync writes).
  void add4(const char* addr, uint32_t len, uint32_t peer) { add(AF_INET, addr, len, peer); }
  void add6(const char* addr, uint32_t len, uint32_t peer) { add(AF_INET6, addr, len, peer); }
  void add(int family, const char* addr, uint32_t len, uint32_t peer) {
    static_assert(offsetof(xsktun_lpm_v4, addr) == offsetof(xsktun_lpm_v6, addr));
    xsktun_lpm_v6 k{};  // a v4 key is its first 8 bytes (prefixlen + 4 address bytes)
    k.prefixlen = len;
    inet_pton(family, addr, k.addr);
    int fd = family == AF_INET ? obj_->allowed_ips_v4_fd() : obj_->allowed_ips_v6_fd();
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &peer, BPF_ANY), 0);
  }
  // The program's return value for one packet.
  uint32_t run(int prog_fd, const Bytes& in) {
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = in.data();
    opts.data_size_in = static_cast<uint32_t>(in.size());
    opts.repeat = 1;
    EXPECT_EQ(bpf_prog_test_run_opts(prog_fd, &opts), 0) << std::strerror(errno);
    return opts.retval;
  }
  uint64_t no_route() const { return obj_->stats()[XSKTUN_STAT_TUN_DROP_NO_ROUTE]; }
  uint32_t queue(const Bytes& pkt, uint32_t queues = 4) { return run(obj_->tun_steer_fd(), pkt) % queues; }

  std::unique_ptr<XdpObject> obj_;
};

TEST_F(TunProgTest, FilterKeepsRoutedPacketsWholeAndDropsTheRest) {
  Bytes routed4 = v4({"10.9.0.1", "10.0.1.7"}), routed6 = v6({"fd00:9::1", "fd00:1::7"});
  EXPECT_EQ(run(obj_->tun_filter_fd(), routed4), routed4.size() - 14);
  EXPECT_EQ(run(obj_->tun_filter_fd(), routed6), routed6.size() - 14);
  EXPECT_EQ(no_route(), 0u);
  EXPECT_EQ(run(obj_->tun_filter_fd(), v4({"10.9.0.1", "10.0.3.7"})), 0u);
  EXPECT_EQ(run(obj_->tun_filter_fd(), v6({"fd00:9::1", "fd00:2::7"})), 0u);
  EXPECT_EQ(no_route(), 2u);
}

TEST_F(TunProgTest, FilterDropsWhatIsNotIp) {
  Bytes junk = frame(ETH_P_IP, Bytes(40, 0x11));  // version nibble 1
  EXPECT_EQ(run(obj_->tun_filter_fd(), junk), 0u);
  Bytes v5 = v6({"fd00:9::1", "fd00:1::7"});
  v5[14] = 0x50;  // version 5 in an otherwise routable packet
  EXPECT_EQ(run(obj_->tun_filter_fd(), v5), 0u);
  EXPECT_EQ(no_route(), 2u);
}

TEST_F(TunProgTest, FilterFollowsTheMap) {
  Bytes pkt = v4({"10.9.0.1", "10.0.5.1"});
  EXPECT_EQ(run(obj_->tun_filter_fd(), pkt), 0u);
  add4("10.0.5.0", 24, 3);
  EXPECT_EQ(run(obj_->tun_filter_fd(), pkt), pkt.size() - 14);
}

TEST_F(TunProgTest, SteeringKeepsAFlowOnOneQueueWhateverItsLength) {
  for (auto make : {v4, v6}) {
    Flow f = make == v4 ? Flow{"10.9.0.1", "10.0.1.7"} : Flow{"fd00:9::1", "fd00:1::7"};
    uint32_t q = run(obj_->tun_steer_fd(), make(f, 10));
    for (size_t len : {0, 100, 1300}) EXPECT_EQ(run(obj_->tun_steer_fd(), make(f, len)), q);
  }
}

TEST_F(TunProgTest, SteeringSpreadsOnePeersFlowsOverTheQueues) {
  // 16 flows (source ports) of one peer over 4 queues: a flow hash that ignored the ports, or
  // used too few bits, would put them all on one or two.
  std::set<uint32_t> v4q, v6q;
  for (uint16_t port = 40000; port < 40016; ++port) {
    v4q.insert(queue(v4({"10.9.0.1", "10.0.1.7", IPPROTO_TCP, port, 5201})));
    v6q.insert(queue(v6({"fd00:9::1", "fd00:1::7", IPPROTO_TCP, port, 5201})));
  }
  EXPECT_GE(v4q.size(), 3u);
  EXPECT_GE(v6q.size(), 3u);
}

TEST_F(TunProgTest, FragmentsOfAPacketShareAQueue) {
  // First fragment (MF set, offset 0) and a later one (offset 185*8, no ports in it) must not
  // be reordered against each other: neither hashes ports.
  Flow first{"10.9.0.1", "10.0.1.7", IPPROTO_UDP, 1000, 2000, 0x2000};
  Flow later{"10.9.0.1", "10.0.1.7", IPPROTO_UDP, 7777, 8888, 185};
  for (uint32_t queues : {2u, 3u, 4u, 16u})
    EXPECT_EQ(run(obj_->tun_steer_fd(), v4(first)) % queues, run(obj_->tun_steer_fd(), v4(later)) % queues);
}

TEST_F(TunProgTest, ProgramsHaveTheirContractNames) {
  for (int fd : {obj_->tun_steer_fd(), obj_->tun_filter_fd()}) {
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    EXPECT_EQ(info.type, BPF_PROG_TYPE_SOCKET_FILTER);
    // The kernel keeps 15 characters of a name (BPF_OBJ_NAME_LEN); bpftool prints the whole
    // name from BTF.
    std::string name(info.name);
    EXPECT_TRUE(name == std::string("xsktun_tun_steer").substr(0, 15) ||
                name == std::string("xsktun_tun_filter").substr(0, 15))
        << name;
  }
}

}  // namespace
