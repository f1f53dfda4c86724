// The real TunDevice and UdpSocket against the kernel. UDP runs on loopback in the current
// namespace (no root needed). TUN needs CAP_NET_ADMIN: each TUN test forks a child that moves
// into a fresh network namespace (so nothing leaks into the host's), runs its checks there and
// reports through its exit status; a SIGALRM watchdog turns a hang into a failure.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "batch_util.h"
#include "netns_util.h"
#include "xsktun/io/tun.h"
#include "xsktun/io/udp_socket.h"

namespace xsktun::io {
namespace {

using Bytes = std::vector<uint8_t>;

using test_util::Batch;
using test_util::forked;
using test_util::in_netns;
using test_util::recv_n;
using test_util::set_ipv4;

Endpoint ep(const std::string& s) { return *Endpoint::parse(s); }
Endpoint v4_loopback(uint16_t port) { return Endpoint{*IpAddr::parse("127.0.0.1"), port}; }

// Waits (boundedly) until thread `tid` sleeps inside poll(), so a test really exercises the
// "woken while blocked" path rather than racing ahead of the thread. Proceeding after the bound
// keeps the test correct, just weaker; nothing here asserts on time.
void wait_blocked_in_poll(const std::atomic<pid_t>& tid) {
  for (int i = 0; i < 5000; ++i) {
    pid_t t = tid.load();
    if (t != 0) {
      std::ifstream f("/proc/self/task/" + std::to_string(t) + "/syscall");
      long nr = -1;
      if (f >> nr) {
#ifdef SYS_poll
        if (nr == SYS_poll) return;
#endif
        if (nr == SYS_ppoll) return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// ---- UdpSocket ----

TEST(UdpSocket, KernelPicksAPortForZero) {
  std::string err;
  auto s = UdpSocket::open(0, &err);
  ASSERT_TRUE(s) << err;
  EXPECT_NE(s->port(), 0);
}

void exchange_32(const char* host) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  ASSERT_TRUE(a && b);
  Endpoint to = ep(std::string(host) + ":" + std::to_string(b->port()));
  Batch out(32);
  for (uint8_t i = 0; i < 32; ++i) out.set(i, Bytes(100 + i, i), to);
  ASSERT_EQ(a->send_batch(out.bufs), 32);
  auto got = recv_n(*b, 32);
  ASSERT_EQ(got.size(), 32u);
  Endpoint from = ep(std::string(host) + ":" + std::to_string(a->port()));
  for (uint8_t i = 0; i < 32; ++i) {
    EXPECT_EQ(got[i].first, from);  // IPv4 arrives v4-mapped and is reported as plain IPv4
    EXPECT_EQ(got[i].second, Bytes(100 + i, i));
  }
  // and back, to the reported source endpoint
  Batch reply(1);
  reply.set(0, {7, 7}, got[0].first);
  ASSERT_EQ(b->send_batch(reply.bufs), 1);
  auto back = recv_n(*a, 1);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].first, to);
  EXPECT_EQ(back[0].second, Bytes({7, 7}));
}

TEST(UdpSocket, BatchOf32OverIpv4WithSourceEndpoints) { exchange_32("127.0.0.1"); }
TEST(UdpSocket, BatchOf32OverIpv6WithSourceEndpoints) {
  auto probe = UdpSocket::open(0);
  ASSERT_TRUE(probe);
  Batch one(1);
  one.set(0, {1}, ep("[::1]:" + std::to_string(probe->port())));
  if (probe->send_batch(one.bufs) != 1) GTEST_SKIP() << "no usable ::1 on this host";
  exchange_32("[::1]");
}

TEST(UdpSocket, LargeBatchesSpanSeveralSyscalls) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  ASSERT_TRUE(a && b);
  constexpr size_t kN = 200;  // > the 64-message chunk of sendmmsg/recvmmsg
  Batch out(kN, 64);
  Endpoint to = v4_loopback(b->port());
  for (size_t i = 0; i < kN; ++i) out.set(i, {static_cast<uint8_t>(i), 1, 2, 3}, to);
  ASSERT_EQ(a->send_batch(out.bufs), static_cast<int>(kN));
  auto got = recv_n(*b, kN);
  ASSERT_EQ(got.size(), kN);
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(got[i].second[0], static_cast<uint8_t>(i));
}

TEST(UdpSocket, BadDestinationsAreSkippedAndCounted) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  ASSERT_TRUE(a && b);
  Endpoint to = v4_loopback(b->port());
  Batch out(3);
  out.set(0, {1}, to);
  out.set(1, {2}, Endpoint{});  // no endpoint
  out.set(2, {3}, to);
  EXPECT_EQ(a->send_batch(out.bufs), 2);
  EXPECT_EQ(a->send_errors(), 1u);
  auto got = recv_n(*b, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].second, Bytes({1}));
  EXPECT_EQ(got[1].second, Bytes({3}));
  EXPECT_EQ(a->send_batch(std::span(out.bufs).subspan(1, 1)), -EDESTADDRREQ);
}

// The daemon points every socket of a worker at that worker's counters (one counter set, which
// `show` sums): what each counts lands there, not in a set of its own.
TEST(UdpSocket, CountsIntoTheCountersItIsGiven) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  ASSERT_TRUE(a && b);
  Counters worker;
  a->set_counters(&worker);
  b->set_counters(&worker);
  Batch out(2);
  out.set(0, {1}, Endpoint{});  // no endpoint: a send error
  out.set(1, Bytes(500, 0xab), v4_loopback(b->port()));
  EXPECT_EQ(a->send_batch(out.bufs), 1);
  Batch in(4, 100);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);  // longer than the buffer: truncated
  EXPECT_EQ(worker.get(Counter::udp_send_errors), 1u);
  EXPECT_EQ(worker.get(Counter::udp_truncated), 1u);
  EXPECT_EQ(a->send_errors(), 1u) << "the accessors read the set it counts into";
}

TEST(UdpSocket, OversizeDatagramIsReportedEmpty) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  ASSERT_TRUE(a && b);
  Batch out(1);
  out.set(0, Bytes(500, 0xab), v4_loopback(b->port()));
  ASSERT_EQ(a->send_batch(out.bufs), 1);
  Batch in(4, 100);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.bufs[0].len, 0u);
  EXPECT_EQ(b->truncated(), 1u);
}

TEST(UdpSocket, RebindMovesToANewPortAndKeepsTheOldOneOnConflict) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  auto squatter = UdpSocket::open(0);
  ASSERT_TRUE(a && b && squatter);
  uint16_t old_port = b->port();
  EXPECT_EQ(b->rebind(squatter->port()), -EADDRINUSE);
  EXPECT_EQ(b->port(), old_port);
  EXPECT_EQ(b->rebind(old_port), 0);  // same port: no-op
  Batch out(1);
  out.set(0, {1}, v4_loopback(old_port));
  ASSERT_EQ(a->send_batch(out.bufs), 1);
  ASSERT_EQ(recv_n(*b, 1).size(), 1u);  // still served on the old port

  ASSERT_EQ(b->rebind(0), 0);
  ASSERT_NE(b->port(), old_port);  // the old socket held old_port while the new one bound
  out.set(0, {2}, v4_loopback(b->port()));
  ASSERT_EQ(a->send_batch(out.bufs), 1);
  auto got = recv_n(*b, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, Bytes({2}));
  // The old port is free again once the old socket is gone: someone else can take it.
  auto reuse = UdpSocket::open(old_port);
  EXPECT_TRUE(reuse);
}

TEST(UdpSocket, RebindMovesABlockedReceiverToTheNewSocket) {
  forked(false, [] {
    auto a = UdpSocket::open(0);
    auto b = UdpSocket::open(0);
    ASSERT_TRUE(a && b);
    std::vector<std::pair<Endpoint, Bytes>> got;
    std::atomic<pid_t> tid{0};
    std::thread reader([&] {
      tid = gettid();
      got = recv_n(*b, 1);
    });
    wait_blocked_in_poll(tid);
    ASSERT_EQ(b->rebind(0), 0);
    Batch out(1);
    out.set(0, {9}, v4_loopback(b->port()));
    ASSERT_EQ(a->send_batch(out.bufs), 1);
    reader.join();  // would hang if the reader stayed asleep on the old socket
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].second, Bytes({9}));
  });
}

// A -> B -> A in quick succession while a receiver is blocked on A: the retired A socket may
// still be referenced by the receiver for a moment; switching back must wait for it, not fail
// with EADDRINUSE.
TEST(UdpSocket, RebindBackToThePreviousPortWhileAReceiverRuns) {
  forked(false, [] {
    auto a = UdpSocket::open(0);
    auto b = UdpSocket::open(0);
    ASSERT_TRUE(a && b);
    const uint16_t first = b->port();
    std::atomic<bool> stop{false};
    std::thread reader([&] {
      Batch in(8);
      while (!stop) {
        in.reset();
        b->recv_batch(in.bufs);
      }
    });
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(b->rebind(0), 0) << "round " << i;
      ASSERT_EQ(b->rebind(first), 0) << "round " << i;
      ASSERT_EQ(b->port(), first);
    }
    stop = true;
    b->wake();
    reader.join();
    Batch out(1);
    out.set(0, {5}, v4_loopback(first));
    ASSERT_EQ(a->send_batch(out.bufs), 1);
    auto got = recv_n(*b, 1);  // wake() is sticky: recv_n must still see the datagram
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].second, Bytes({5}));
  });
}

TEST(UdpSocket, WakeUnblocksRecvAndStaysSet) {
  forked(false, [] {
    auto s = UdpSocket::open(0);
    ASSERT_TRUE(s);
    int r = -1;
    std::atomic<pid_t> tid{0};
    std::thread reader([&] {
      tid = gettid();
      Batch in(8);
      r = s->recv_batch(in.bufs);
    });
    wait_blocked_in_poll(tid);
    s->wake();
    reader.join();
    EXPECT_EQ(r, 0);
    Batch in(8);
    EXPECT_EQ(s->recv_batch(in.bufs), 0);  // sticky: does not block now
  });
}

TEST(UdpSocket, FwmarkNeedsNetAdmin) {
  auto s = UdpSocket::open(0);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->try_set_fwmark(0), 0);  // unchanged: no syscall, no privilege needed
  int r = s->try_set_fwmark(0x5182);
  if (geteuid() == 0) {
    EXPECT_EQ(r, 0);
    EXPECT_EQ(s->fwmark(), 0x5182u);
    EXPECT_EQ(s->rebind(0), 0);  // the new socket gets the mark too (open_sock fails otherwise)
  } else {
    EXPECT_EQ(r, -EPERM);
    EXPECT_EQ(s->fwmark(), 0u);
  }
}

// ---- TunDevice ----

TEST(TunDevice, RejectsBadArgumentsBeforeTouchingTheKernel) {
  std::string err;
  EXPECT_EQ(TunDevice::create("this-name-is-too-long", 1420, &err), nullptr);
  EXPECT_NE(err.find("name"), std::string::npos) << err;
  EXPECT_EQ(TunDevice::create("", 1420, &err), nullptr);
  EXPECT_EQ(TunDevice::create("xsk%d", 20, &err), nullptr);
  EXPECT_NE(err.find("MTU"), std::string::npos) << err;
}

ifreq if_query(const std::string& name, unsigned long req) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(ioctl(s, req, &ifr), 0) << name << ": " << std::strerror(errno);
  close(s);
  return ifr;
}

void set_flags(const std::string& name, bool up) {
  ifreq ifr = if_query(name, SIOCGIFFLAGS);
  ifr.ifr_flags = static_cast<short>(up ? (ifr.ifr_flags | IFF_UP) : (ifr.ifr_flags & ~IFF_UP));
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(ioctl(s, SIOCSIFFLAGS, &ifr), 0) << std::strerror(errno);
  close(s);
}

// `ip link del` by hand: one RTM_DELLINK request over rtnetlink. Returns 0 or -errno.
int delete_link(const std::string& name) {
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
  } req{};
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_DELLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = static_cast<int>(if_nametoindex(name.c_str()));
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return -errno;
  int result = -EIO;
  alignas(nlmsghdr) char ack[512];
  if (send(s, &req, sizeof req, 0) == sizeof req) {
    ssize_t n = recv(s, ack, sizeof ack, 0);
    auto* nh = reinterpret_cast<nlmsghdr*>(ack);
    if (n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) && nh->nlmsg_type == NLMSG_ERROR) {
      result = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
    }
  }
  close(s);
  return result;
}

uint16_t inet_checksum(const uint8_t* p, size_t n) {  // RFC 1071
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n & 1) sum += p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

constexpr uint8_t kPeer[4] = {192, 0, 2, 2};  // TEST-NET-1 (RFC 5737), only inside the namespace
constexpr uint8_t kSelf[4] = {192, 0, 2, 1};
constexpr uint16_t kEchoId = 0x5a5a;

// An ICMP echo request from kPeer to kSelf, as if it arrived through the tunnel.
Bytes echo_request(uint16_t seq) {
  Bytes p(20 + 8 + 16);
  p[0] = 0x45;
  p[2] = static_cast<uint8_t>(p.size() >> 8);
  p[3] = static_cast<uint8_t>(p.size());
  p[8] = 64;  // TTL
  p[9] = 1;   // ICMP
  std::memcpy(&p[12], kPeer, 4);
  std::memcpy(&p[16], kSelf, 4);
  uint16_t c = inet_checksum(p.data(), 20);
  p[10] = static_cast<uint8_t>(c >> 8);
  p[11] = static_cast<uint8_t>(c);
  uint8_t* icmp = &p[20];
  icmp[0] = 8;  // echo request
  icmp[4] = kEchoId >> 8;
  icmp[5] = kEchoId & 0xff;
  icmp[6] = static_cast<uint8_t>(seq >> 8);
  icmp[7] = static_cast<uint8_t>(seq);
  for (int i = 0; i < 16; ++i) icmp[8 + i] = static_cast<uint8_t>(seq + i);
  c = inet_checksum(icmp, p.size() - 20);
  icmp[2] = static_cast<uint8_t>(c >> 8);
  icmp[3] = static_cast<uint8_t>(c);
  return p;
}

// The sequence number if `p` is our kernel's echo reply to kPeer, else -1 (the kernel also
// sends its own IPv6 router solicitations and the like through a fresh interface).
int echo_reply_seq(const Bytes& p) {
  if (p.size() < 28 || p[0] != 0x45 || p[9] != 1 || std::memcmp(&p[16], kPeer, 4) != 0) return -1;
  const uint8_t* icmp = &p[20];
  if (icmp[0] != 0 || ((icmp[4] << 8) | icmp[5]) != kEchoId) return -1;
  return (icmp[6] << 8) | icmp[7];
}

TEST(TunDevice, CreatesAnUpInterfaceWithTheMtu) {
  in_netns([] {
    std::string err;
    auto tun = TunDevice::create("xsktst%d", 1380, &err);
    ASSERT_TRUE(tun) << err;
    EXPECT_EQ(tun->name(), "xsktst0");  // pattern resolved by the kernel in a fresh namespace
    EXPECT_EQ(tun->mtu(), 1380u);
    EXPECT_EQ(if_query(tun->name(), SIOCGIFMTU).ifr_mtu, 1380);
    EXPECT_TRUE(if_query(tun->name(), SIOCGIFFLAGS).ifr_flags & IFF_UP);
    EXPECT_FALSE(tun->gone());
    auto second = TunDevice::create("xsktst%d", kDefaultTunMtu, &err);
    ASSERT_TRUE(second) << err;
    EXPECT_EQ(second->name(), "xsktst1");
    EXPECT_EQ(second->mtu(), 1420u);
    std::string name = tun->name();
    tun.reset();  // non-persistent: closing the fd deletes the interface
    EXPECT_EQ(if_nametoindex(name.c_str()), 0u);
  });
}

// With and without the virtio header (offloads), the same packets go through.
void echo_batch(TunOffload mode) {
  in_netns([mode] {
    std::string err;
    auto tun = TunDevice::create("xsktst%d", kDefaultTunMtu, &err, mode);
    ASSERT_TRUE(tun) << err;
    EXPECT_EQ(tun->features().vnet_hdr, mode == TunOffload::kOn);
    set_ipv4(tun->name(), "192.0.2.1");
    constexpr int kN = 8;
    Batch out(kN + 1);
    out.set(0, {0x00, 0x01, 0x02, 0x03});  // not IP: the kernel says EINVAL, the batch goes on
    for (int i = 0; i < kN; ++i) out.set(i + 1, echo_request(static_cast<uint16_t>(i)));
    EXPECT_EQ(tun->write_batch(out.bufs), kN);
    EXPECT_EQ(tun->write_errors(), 1u);
    std::vector<bool> seen(kN);
    int replies = 0;
    Batch in(16);
    while (replies < kN) {
      int n = tun->read_batch(in.bufs);
      ASSERT_GT(n, 0);
      for (int i = 0; i < n; ++i) {
        int seq = echo_reply_seq(in.get(i));
        if (seq < 0) continue;
        ASSERT_LT(seq, kN);
        EXPECT_FALSE(seen[seq]) << "duplicate reply " << seq;
        seen[seq] = true;
        ++replies;
      }
    }
    // A link that is down refuses writes (EIO); they are counted, not fatal.
    set_flags(tun->name(), false);
    EXPECT_EQ(tun->write_batch(std::span(out.bufs).subspan(1, 2)), 0);
    EXPECT_EQ(tun->write_errors(), 3u);
    EXPECT_FALSE(tun->gone());
  });
}

TEST(TunDevice, KernelAnswersEchoRequestsWrittenInABatch) { echo_batch(TunOffload::kOn); }
TEST(TunDevice, KernelAnswersEchoRequestsWrittenInABatchWithoutOffloads) { echo_batch(TunOffload::kOff); }

TEST(TunDevice, WakeUnblocksRead) {
  in_netns([] {
    std::string err;
    auto tun = TunDevice::create("xsktst%d", kDefaultTunMtu, &err);
    ASSERT_TRUE(tun) << err;
    int r = -1;
    std::atomic<pid_t> tid{0};
    std::thread reader([&] {
      tid = gettid();
      Batch in(8);
      while ((r = tun->read_batch(in.bufs)) > 0) {
      }  // skip whatever the kernel sends itself
    });
    wait_blocked_in_poll(tid);
    tun->wake();
    reader.join();
    EXPECT_EQ(r, 0);
    EXPECT_FALSE(tun->gone());
  });
}

TEST(TunDevice, ReportsTheInterfaceGoneWhenDeleted) {
  in_netns([] {
    std::string err;
    auto tun = TunDevice::create("xsktst%d", kDefaultTunMtu, &err);
    ASSERT_TRUE(tun) << err;
    int r = 0;
    std::atomic<pid_t> tid{0};
    std::thread reader([&] {
      tid = gettid();
      Batch in(8);
      while ((r = tun->read_batch(in.bufs)) > 0) {
      }
    });
    wait_blocked_in_poll(tid);
    ASSERT_EQ(delete_link(tun->name()), 0);
    reader.join();          // must wake up by itself: nobody calls wake()
    EXPECT_EQ(r, -EBADFD);  // tun_chr_read_iter on a detached file
    EXPECT_TRUE(tun->gone());
    Batch out(1);
    out.set(0, echo_request(0));
    EXPECT_LT(tun->write_batch(out.bufs), 0);
  });
}

// ---- TunDevice offloads: a tiny TCP peer on the far side of the TUN ----

TEST(TunDevice, OffloadsAreNegotiatedAndCanBeTurnedOff) {
  in_netns([] {
    auto on = TunDevice::create("xsktst%d", kDefaultTunMtu, nullptr, TunOffload::kOn);
    ASSERT_TRUE(on);
    EXPECT_TRUE(on->features().vnet_hdr);
    EXPECT_TRUE(on->features().tso);  // TUN_F_TSO4/6 predate every kernel we run on
    auto off = TunDevice::create("xsktst%d", kDefaultTunMtu, nullptr, TunOffload::kOff);
    ASSERT_TRUE(off);
    EXPECT_FALSE(off->features().vnet_hdr);
    EXPECT_FALSE(off->features().tso);
    setenv("XSKTUN_TUN_OFFLOAD", "0", 1);  // only in this forked child
    auto env_off = TunDevice::create("xsktst%d", kDefaultTunMtu, nullptr);
    ASSERT_TRUE(env_off);
    EXPECT_FALSE(env_off->features().vnet_hdr);
  });
}

constexpr uint8_t kSyn = 0x02, kPsh = 0x08, kAck = 0x10;
constexpr uint16_t kPeerPort = 7777;

uint32_t get32(const uint8_t* p) { return uint32_t{p[0]} << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

// RFC 9293 checksum over the IPv4 pseudo-header and the segment, byte by byte.
uint16_t tcp4_checksum(const Bytes& pkt) {
  size_t tl = pkt.size() - 20;
  Bytes ph(pkt.begin() + 12, pkt.begin() + 20);
  ph.insert(ph.end(), {0, 6, static_cast<uint8_t>(tl >> 8), static_cast<uint8_t>(tl)});
  ph.insert(ph.end(), pkt.begin() + 20, pkt.end());
  return inet_checksum(ph.data(), ph.size());
}

// A TCP segment from kPeer:kPeerPort to `dst`:`port`, window scale 7 on SYNs.
Bytes tcp4(uint16_t port, uint32_t seq, uint32_t ack, uint8_t flags, const Bytes& payload = {},
           const uint8_t* dst = kSelf) {
  Bytes opts;
  if (flags & kSyn) opts = {2, 4, 0x05, 0x64, 1, 3, 3, 7};  // MSS 1380, NOP, WS 7
  Bytes p(20 + 20 + opts.size() + payload.size());
  p[0] = 0x45;
  p[2] = static_cast<uint8_t>(p.size() >> 8);
  p[3] = static_cast<uint8_t>(p.size());
  p[8] = 64;
  p[9] = 6;
  std::memcpy(&p[12], kPeer, 4);
  std::memcpy(&p[16], dst, 4);
  uint16_t c = inet_checksum(p.data(), 20);
  p[10] = static_cast<uint8_t>(c >> 8);
  p[11] = static_cast<uint8_t>(c);
  uint8_t* t = &p[20];
  t[0] = kPeerPort >> 8;
  t[1] = kPeerPort & 0xff;
  t[2] = static_cast<uint8_t>(port >> 8);
  t[3] = static_cast<uint8_t>(port);
  put32(t + 4, seq);
  put32(t + 8, ack);
  t[12] = static_cast<uint8_t>((20 + opts.size()) / 4 << 4);
  t[13] = flags;
  t[14] = t[15] = 0xff;  // window 65535 (<< 7 once established)
  std::copy(opts.begin(), opts.end(), t + 20);
  std::copy(payload.begin(), payload.end(), t + 20 + opts.size());
  c = tcp4_checksum(p);
  t[16] = static_cast<uint8_t>(c >> 8);
  t[17] = static_cast<uint8_t>(c);
  return p;
}

struct Seg {
  uint16_t port = 0;  // the source port
  uint32_t seq = 0, ack = 0;
  uint16_t window = 0;
  uint8_t flags = 0;
  Bytes payload;
};

// A TCP packet to `dst`:`dport`, else nullopt; fails the test unless both checksums verify.
std::optional<Seg> parse_tcp4(const Bytes& p, const uint8_t* dst, uint16_t dport) {
  if (p.size() < 40 || p[0] != 0x45 || p[9] != 6 || std::memcmp(&p[16], dst, 4) != 0) return std::nullopt;
  const uint8_t* t = &p[20];
  if (((t[2] << 8) | t[3]) != dport) return std::nullopt;
  EXPECT_EQ(inet_checksum(p.data(), 20), 0) << "IPv4 header checksum";
  EXPECT_EQ(tcp4_checksum(p), 0) << "TCP checksum";
  EXPECT_EQ(static_cast<size_t>((p[2] << 8) | p[3]), p.size());
  Seg s;
  s.port = static_cast<uint16_t>((t[0] << 8) | t[1]);
  s.seq = get32(t + 4);
  s.ack = get32(t + 8);
  s.flags = t[13];
  s.window = static_cast<uint16_t>((t[14] << 8) | t[15]);
  s.payload.assign(p.begin() + 20 + (t[12] >> 4) * 4, p.end());
  return s;
}
std::optional<Seg> parse_to_peer(const Bytes& p) { return parse_tcp4(p, kPeer, kPeerPort); }

// Reads until a segment to `dst`:`dport` satisfies `want`. One packet per call, so nothing
// read is lost between calls.
Seg await_to(
    TunDevice& tun, const uint8_t* dst, uint16_t dport,
    const std::function<bool(const Seg&)>& want = [](const Seg&) { return true; }) {
  Batch in(1);
  for (;;) {
    int n = tun.read_batch(in.bufs);
    if (n <= 0) {
      ADD_FAILURE() << "read_batch returned " << n;
      return {};
    }
    auto s = parse_tcp4(in.get(0), dst, dport);
    if (s && want(*s)) return *s;
  }
}
Seg await_segment(TunDevice& tun, const std::function<bool(const Seg&)>& want) {
  return await_to(tun, kPeer, kPeerPort, want);
}

sockaddr_in sin4(const uint8_t* addr, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  std::memcpy(&a.sin_addr, addr, 4);
  return a;
}

Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + (i >> 10));
  return b;
}

// The kernel sends a bulk TCP transfer as TSO super-packets; read_batch must hand out
// MTU-sized segments with valid checksums and contiguous sequence numbers.
TEST(TunDevice, TsoSuperPacketsAreReadAsValidMtuSizedSegments) {
  in_netns([] {
    std::string err;
    auto tun = TunDevice::create("xsktst%d", kDefaultTunMtu, &err, TunOffload::kOn);
    ASSERT_TRUE(tun) << err;
    set_ipv4(tun->name(), "192.0.2.1");
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in to = sin4(kPeer, kPeerPort);
    ASSERT_NE(connect(s, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    ASSERT_EQ(errno, EINPROGRESS);
    Seg syn = await_segment(*tun, [](const Seg& g) { return g.flags & kSyn; });
    constexpr uint32_t kIsn = 5000;
    Batch out(1);
    out.set(0, tcp4(syn.port, kIsn, syn.seq + 1, kSyn | kAck));
    ASSERT_EQ(tun->write_batch(out.bufs), 1);

    const Bytes data = pattern(400000);
    size_t sent = 0, got = 0, largest = 0;
    uint32_t base = syn.seq + 1;
    Batch in(64);
    while (got < data.size()) {
      ssize_t w = send(s, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (w > 0) sent += static_cast<size_t>(w);
      int n = tun->read_batch(in.bufs);
      ASSERT_GT(n, 0);
      for (int i = 0; i < n; ++i) {
        auto g = parse_to_peer(in.get(i));
        if (!g || g->payload.empty()) continue;
        ASSERT_LE(in.bufs[i].len, kDefaultTunMtu);
        largest = std::max(largest, g->payload.size());
        size_t off = g->seq - base;
        if (off < got) continue;  // a retransmission
        ASSERT_EQ(off, got) << "gap in the sequence space";
        ASSERT_LE(off + g->payload.size(), data.size());
        ASSERT_TRUE(std::equal(g->payload.begin(), g->payload.end(), data.begin() + off));
        got += g->payload.size();
      }
      out.set(0, tcp4(syn.port, kIsn + 1, base + static_cast<uint32_t>(got), kAck));
      ASSERT_EQ(tun->write_batch(out.bufs), 1);
    }
    EXPECT_GT(tun->split_packets(), 0u) << "the kernel never sent a super-packet";
    // The kernel's MSS is 1380 (MTU 1420 - 40); the split cuts 1408-byte packets instead, a
    // whole number of kSegmentAlign blocks (tun.h).
    EXPECT_EQ(largest, 1408u - 40);
    EXPECT_EQ(tun->read_drops(), 0u);
    close(s);
  });
}

// A run of segments written in one batch reaches a local socket as one super-packet, intact.
TEST(TunDevice, CoalescedSegmentsReachALocalSocketIntact) {
  in_netns([] {
    std::string err;
    auto tun = TunDevice::create("xsktst%d", kDefaultTunMtu, &err, TunOffload::kOn);
    ASSERT_TRUE(tun) << err;
    set_ipv4(tun->name(), "192.0.2.1");
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in me = sin4(kSelf, 7778);
    ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&me), sizeof me), 0) << std::strerror(errno);
    ASSERT_EQ(listen(ls, 1), 0);
    constexpr uint32_t kIsn = 0xfffffc00;  // the sequence space wraps inside the run
    Batch out(32, 2048);
    out.set(0, tcp4(7778, kIsn, 0, kSyn));
    ASSERT_EQ(tun->write_batch(std::span(out.bufs).first(1)), 1);
    Seg synack = await_segment(*tun, [](const Seg& g) { return (g.flags & (kSyn | kAck)) == (kSyn | kAck); });
    out.set(0, tcp4(7778, kIsn + 1, synack.seq + 1, kAck));
    ASSERT_EQ(tun->write_batch(std::span(out.bufs).first(1)), 1);
    int cs = accept(ls, nullptr, nullptr);
    ASSERT_GE(cs, 0) << std::strerror(errno);

    // Stay inside the initial receive window (about 10 segments, tcp_select_initial_window).
    size_t seg = 1000, n = std::min<size_t>(12, synack.window / seg);
    ASSERT_GE(n, 4u);
    const Bytes data = pattern(seg * n - 300);  // the last one shorter
    for (size_t i = 0; i < n; ++i) {
      Bytes chunk(data.begin() + i * seg, data.begin() + std::min(data.size(), (i + 1) * seg));
      uint8_t flags = i + 1 == n ? kAck | kPsh : kAck;
      out.set(i, tcp4(7778, kIsn + 1 + static_cast<uint32_t>(i * seg), synack.seq + 1, flags, chunk));
    }
    ASSERT_EQ(tun->write_batch(std::span(out.bufs).first(n)), static_cast<int>(n));
    EXPECT_EQ(tun->coalesced_packets(), n);
    EXPECT_EQ(tun->write_errors(), 0u);
    Bytes got;
    uint8_t buf[4096];
    while (got.size() < data.size()) {
      ssize_t r = recv(cs, buf, sizeof buf, 0);
      ASSERT_GT(r, 0) << std::strerror(errno);
      got.insert(got.end(), buf, buf + r);
    }
    EXPECT_EQ(got, data);
    close(cs);
    close(ls);
  });
}

void write_sysctl(const std::string& path, const char* value) {
  std::ofstream f("/proc/sys/net/" + path);
  f << value;
  EXPECT_TRUE(f.good()) << path;
}

// A super-packet forwarded to a device without TSO is segmented by the kernel (tcp_gso_segment
// from our pseudo-header checksum, then skb_checksum_help): every segment must verify. This is
// what proves the checksum convention of the GSO write, which local delivery never checks.
TEST(TunDevice, ForwardedSuperPacketIsResegmentedWithValidChecksums) {
  in_netns([] {
    std::string err;
    auto in = TunDevice::create("xsktst%d", kDefaultTunMtu, &err, TunOffload::kOn);
    auto out = TunDevice::create("xsktst%d", kDefaultTunMtu, &err, TunOffload::kOff);
    ASSERT_TRUE(in && out) << err;
    set_ipv4(in->name(), "192.0.2.1");
    set_ipv4(out->name(), "198.51.100.1");
    write_sysctl("ipv4/ip_forward", "1");
    constexpr uint8_t kFar[4] = {198, 51, 100, 2};  // TEST-NET-2, behind `out`
    constexpr size_t kN = 10, kSeg = 1200;
    const Bytes data = pattern(kN * kSeg);
    Batch w(kN, 2048);
    for (size_t i = 0; i < kN; ++i) {
      Bytes chunk(data.begin() + i * kSeg, data.begin() + (i + 1) * kSeg);
      w.set(i, tcp4(80, 1 + static_cast<uint32_t>(i * kSeg), 1, kAck, chunk, kFar));
    }
    ASSERT_EQ(in->write_batch(w.bufs), static_cast<int>(kN));
    EXPECT_EQ(in->coalesced_packets(), kN);
    size_t got = 0;
    while (got < data.size()) {
      Seg s = await_to(*out, kFar, 80);
      ASSERT_EQ(s.seq, 1 + got);
      ASSERT_EQ(s.payload.size(), kSeg);
      ASSERT_TRUE(std::equal(s.payload.begin(), s.payload.end(), data.begin() + got));
      got += s.payload.size();
    }
  });
}

}  // namespace
}  // namespace xsktun::io
