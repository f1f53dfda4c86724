// The in-memory FakeTun / FakeNetwork / FakeUdp that device tests run on: delivery, source
// endpoints, loss, capture and replay, rebinding, blocking mode and wake().
#include <gtest/gtest.h>
#include <poll.h>

#include <thread>
#include <vector>

#include "xsktun/io/fakes.h"

namespace xsktun::io {
namespace {

// A batch of PacketBufs over one contiguous arena.
struct Batch {
  explicit Batch(size_t n, size_t cap = 2048) : arena(n * cap), bufs(n) {
    for (size_t i = 0; i < n; ++i) bufs[i] = PacketBuf{&arena[i * cap], 0, cap, {}};
  }
  void set(size_t i, const Bytes& b, const Endpoint& to = {}) {
    std::copy(b.begin(), b.end(), bufs[i].data);
    bufs[i].len = b.size();
    bufs[i].endpoint = to;
  }
  Bytes get(size_t i) const { return Bytes(bufs[i].data, bufs[i].data + bufs[i].len); }
  std::span<PacketBuf> first(size_t n) { return std::span(bufs).first(n); }
  std::vector<uint8_t> arena;
  std::vector<PacketBuf> bufs;
};

IpAddr ip(const char* s) { return *IpAddr::parse(s); }
Endpoint ep(const char* s) { return *Endpoint::parse(s); }
Bytes ipv4_packet(uint8_t tag) { return {0x45, 0, 0, 20, tag, tag, tag, tag}; }

// ---- FakeTun ----

TEST(FakeTun, ReadsInjectedPacketsInOrderAndNeverBlocksByDefault) {
  FakeTun tun(1280);
  EXPECT_EQ(tun.mtu(), 1280u);
  Batch b(3);
  EXPECT_EQ(tun.read_batch(b.bufs), 0);  // nothing pending: returns at once
  for (uint8_t i = 0; i < 5; ++i) tun.inject(ipv4_packet(i));
  EXPECT_EQ(tun.pending(), 5u);
  ASSERT_EQ(tun.read_batch(b.bufs), 3);
  for (uint8_t i = 0; i < 3; ++i) EXPECT_EQ(b.get(i), ipv4_packet(i));
  ASSERT_EQ(tun.read_batch(b.bufs), 2);
  EXPECT_EQ(b.get(0), ipv4_packet(3));
  EXPECT_EQ(b.get(1), ipv4_packet(4));
  EXPECT_EQ(tun.read_batch(b.bufs), 0);
}

TEST(FakeTun, TruncatesOversizePacketsLikeTheKernel) {
  FakeTun tun;
  Batch b(1, 4);
  tun.inject(ipv4_packet(7));
  ASSERT_EQ(tun.read_batch(b.bufs), 1);
  EXPECT_EQ(b.get(0), Bytes({0x45, 0, 0, 20}));
  EXPECT_EQ(tun.truncated(), 1u);
}

TEST(FakeTun, WrittenPacketsAreTakenOnceAndNonIpIsRejected) {
  FakeTun tun;
  Batch b(4);
  b.set(0, ipv4_packet(1));
  b.set(1, {0x12, 0x34});  // version nibble 1: tun_get_user says EINVAL
  b.set(2, {});            // empty
  b.set(3, {0x60, 0, 0, 0});
  EXPECT_EQ(tun.write_batch(b.bufs), 2);
  EXPECT_EQ(tun.write_errors(), 2u);
  auto w = tun.take_written();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], ipv4_packet(1));
  EXPECT_EQ(w[1], Bytes({0x60, 0, 0, 0}));
  EXPECT_TRUE(tun.take_written().empty());
}

TEST(FakeTun, BlockingModeWaitsForInjectAndWakeIsSticky) {
  FakeTun tun;
  tun.set_blocking(true);
  int got = -1;
  Bytes first;
  std::thread reader([&] {
    Batch b(8);
    got = tun.read_batch(b.bufs);
    if (got > 0) first = b.get(0);
  });
  tun.inject(ipv4_packet(9));
  reader.join();
  EXPECT_EQ(got, 1);
  EXPECT_EQ(first, ipv4_packet(9));

  std::thread sleeper([&] {
    Batch b(8);
    got = tun.read_batch(b.bufs);
  });
  tun.wake();
  sleeper.join();
  EXPECT_EQ(got, 0);
  EXPECT_TRUE(tun.woken());
  Batch b(1);
  EXPECT_EQ(tun.read_batch(b.bufs), 0);  // still woken: does not block
  tun.inject(ipv4_packet(1));
  EXPECT_EQ(tun.read_batch(b.bufs), 1);  // but pending packets are still delivered
}

bool polls_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

// The single-thread Runner sleeps on ready_fd() and reads with try_read_batch: the descriptor
// must follow "a packet is pending, or woken" exactly, or that thread sleeps through traffic.
TEST(FakeTun, ReadyFdFollowsPendingPacketsAndWake) {
  FakeTun tun;
  tun.set_blocking(true);  // try_read_batch must not wait even then
  ASSERT_GE(tun.ready_fd(), 0);
  Batch b(2);
  EXPECT_FALSE(polls_readable(tun.ready_fd()));
  EXPECT_EQ(tun.try_read_batch(b.bufs), 0);
  for (uint8_t i = 0; i < 3; ++i) tun.inject(ipv4_packet(i));
  EXPECT_TRUE(polls_readable(tun.ready_fd()));
  EXPECT_EQ(tun.try_read_batch(b.bufs), 2);
  EXPECT_TRUE(polls_readable(tun.ready_fd()));  // one left
  EXPECT_EQ(tun.try_read_batch(b.bufs), 1);
  EXPECT_EQ(b.get(0), ipv4_packet(2));
  EXPECT_FALSE(polls_readable(tun.ready_fd()));
  tun.wake();
  EXPECT_TRUE(polls_readable(tun.ready_fd()));
  EXPECT_EQ(tun.try_read_batch(b.bufs), 0);
  EXPECT_TRUE(polls_readable(tun.ready_fd()));  // sticky
}

// ---- FakeNetwork / FakeUdp ----

TEST(FakeUdp, ReadyFdFollowsQueuedDatagramsRebindAndWake) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"), 51820);
  auto b = net.attach(ip("192.0.2.2"), 51821);
  ASSERT_TRUE(a && b);
  b->set_blocking(true);
  ASSERT_GE(b->ready_fd(), 0);
  EXPECT_FALSE(polls_readable(b->ready_fd()));
  Batch out(2), in(8);
  out.set(0, {1}, b->local());
  out.set(1, {2}, b->local());
  EXPECT_EQ(a->send_batch(out.bufs), 2);
  EXPECT_TRUE(polls_readable(b->ready_fd()));
  EXPECT_EQ(b->try_recv_batch(in.bufs), 2);
  EXPECT_FALSE(polls_readable(b->ready_fd()));
  EXPECT_EQ(b->try_recv_batch(in.bufs), 0);
  EXPECT_EQ(a->send_batch(out.bufs), 2);
  ASSERT_EQ(b->rebind(0), 0);  // the queued datagrams die with the old socket
  EXPECT_FALSE(polls_readable(b->ready_fd()));
  b->wake();
  EXPECT_TRUE(polls_readable(b->ready_fd()));
}

TEST(FakeUdp, DeliversWithTheSendersEndpointAsSource) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"), 51820);
  auto b = net.attach(ip("192.0.2.2"), 51821);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->local(), ep("192.0.2.1:51820"));
  EXPECT_EQ(b->port(), 51821);

  Batch out(32);
  for (uint8_t i = 0; i < 32; ++i) out.set(i, {i, static_cast<uint8_t>(i * 2)}, b->local());
  EXPECT_EQ(a->send_batch(out.bufs), 32);
  EXPECT_EQ(b->pending(), 32u);
  EXPECT_EQ(a->pending(), 0u);
  Batch in(64);
  ASSERT_EQ(b->recv_batch(in.bufs), 32);
  for (uint8_t i = 0; i < 32; ++i) {
    EXPECT_EQ(in.get(i), Bytes({i, static_cast<uint8_t>(i * 2)}));
    EXPECT_EQ(in.bufs[i].endpoint, ep("192.0.2.1:51820"));
  }
  EXPECT_EQ(b->recv_batch(in.bufs), 0);
  EXPECT_EQ(net.delivered(), 32u);
}

TEST(FakeUdp, DualStackHostPicksTheSourceOfTheDestinationsFamily) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"), 1000);
  ASSERT_EQ(a->add_address(ip("2001:db8::1")), 0);
  auto b = net.attach(ip("2001:db8::2"), 2000);
  auto c = net.attach(ip("192.0.2.3"), 3000);
  Batch out(2);
  out.set(0, {1}, b->local());
  out.set(1, {2}, c->local());
  EXPECT_EQ(a->send_batch(out.bufs), 2);
  Batch in(4);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.bufs[0].endpoint, ep("[2001:db8::1]:1000"));
  ASSERT_EQ(c->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.bufs[0].endpoint, ep("192.0.2.1:1000"));
  // a is also reachable at its IPv6 address
  out.set(0, {3}, ep("[2001:db8::1]:1000"));
  EXPECT_EQ(b->send_batch(out.first(1)), 1);
  EXPECT_EQ(a->pending(), 1u);
}

TEST(FakeUdp, UnreachableAndInvalidDestinations) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"));
  Batch out(3);
  out.set(0, {1}, Endpoint{});             // no endpoint yet
  out.set(1, {2}, ep("[2001:db8::9]:1"));  // a has no IPv6 address
  EXPECT_EQ(a->send_batch(out.first(1)), -EDESTADDRREQ);
  EXPECT_EQ(a->send_batch(out.first(2)), -EDESTADDRREQ);  // first failure is reported
  EXPECT_EQ(a->send_batch(std::span(out.bufs).subspan(1, 1)), -ENETUNREACH);
  out.set(2, {3}, ep("192.0.2.99:9"));  // nobody there: sent, then lost like UDP
  EXPECT_EQ(a->send_batch(out.bufs), 1);
  EXPECT_EQ(net.delivered(), 0u);
  ASSERT_EQ(net.capture().size(), 1u);
  EXPECT_EQ(net.capture()[0].to, ep("192.0.2.99:9"));
}

TEST(FakeUdp, DropLosesEverythingButStillCaptures) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"));
  auto b = net.attach(ip("192.0.2.2"));
  Batch out(1);
  out.set(0, {42}, b->local());
  net.set_drop(true);
  EXPECT_EQ(a->send_batch(out.bufs), 1);  // the sender cannot tell
  EXPECT_EQ(b->pending(), 0u);
  EXPECT_EQ(net.dropped(), 1u);
  net.set_drop(false);
  EXPECT_EQ(a->send_batch(out.bufs), 1);
  EXPECT_EQ(b->pending(), 1u);
  auto cap = net.capture();
  ASSERT_EQ(cap.size(), 2u);
  EXPECT_EQ(cap[0], (Datagram{a->local(), b->local(), {42}}));
  EXPECT_EQ(cap[1], cap[0]);
}

TEST(FakeUdp, FilterDropsSelectedDatagrams) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"));
  auto b = net.attach(ip("192.0.2.2"));
  net.set_filter([](const Datagram& d) { return !d.bytes.empty() && d.bytes[0] == 1; });
  Batch out(3);
  out.set(0, {1}, b->local());
  out.set(1, {2}, b->local());
  out.set(2, {1, 1}, b->local());
  EXPECT_EQ(a->send_batch(out.bufs), 3);
  Batch in(4);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.get(0), Bytes({2}));
  EXPECT_EQ(net.dropped(), 2u);
  net.set_filter(nullptr);
  EXPECT_EQ(a->send_batch(out.first(1)), 1);
  EXPECT_EQ(b->pending(), 1u);
}

TEST(FakeUdp, CapturedDatagramsReplayThroughInject) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"));
  auto b = net.attach(ip("192.0.2.2"));
  Batch out(2);
  out.set(0, {9, 8, 7}, b->local());
  out.set(1, {6}, b->local());
  ASSERT_EQ(a->send_batch(out.bufs), 2);
  Batch in(4);
  ASSERT_EQ(b->recv_batch(in.bufs), 2);
  net.clear_capture();
  ASSERT_EQ(a->send_batch(out.first(1)), 1);
  auto cap = net.capture();
  ASSERT_EQ(cap.size(), 1u);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  // An attacker replays it, and forges one from elsewhere; inject bypasses capture and loss.
  net.set_drop(true);
  b->inject(cap[0].from, cap[0].bytes);
  b->inject(ep("[2001:db8::66]:666"), {0xde, 0xad});
  ASSERT_EQ(b->recv_batch(in.bufs), 2);
  EXPECT_EQ(in.get(0), Bytes({9, 8, 7}));
  EXPECT_EQ(in.bufs[0].endpoint, a->local());
  EXPECT_EQ(in.get(1), Bytes({0xde, 0xad}));
  EXPECT_EQ(in.bufs[1].endpoint, ep("[2001:db8::66]:666"));
  EXPECT_EQ(net.capture().size(), 1u);
  net.set_capture(false);
  net.set_drop(false);
  ASSERT_EQ(a->send_batch(out.first(1)), 1);
  EXPECT_EQ(net.capture().size(), 1u);
  EXPECT_EQ(b->pending(), 1u);
}

TEST(FakeUdp, OversizeDatagramReadsAsEmptyAndIsCounted) {
  FakeNetwork net;
  auto b = net.attach(ip("192.0.2.2"));
  b->inject(ep("192.0.2.1:1"), Bytes(100, 0xaa));
  Batch in(1, 64);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.bufs[0].len, 0u);
  EXPECT_EQ(b->truncated(), 1u);
}

TEST(FakeUdp, QueueLimitDropsLikeAFullSocketBuffer) {
  FakeNetwork net;
  auto b = net.attach(ip("192.0.2.2"));
  for (size_t i = 0; i < FakeNetwork::kQueueLimit + 3; ++i) b->inject(ep("192.0.2.1:1"), {1});
  EXPECT_EQ(b->pending(), FakeNetwork::kQueueLimit);
  EXPECT_EQ(net.dropped(), 3u);
}

TEST(FakeUdp, AttachRefusesATakenEndpointAndPicksFreePorts) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"), 5000);
  EXPECT_EQ(net.attach(ip("192.0.2.1"), 5000), nullptr);
  auto same_port_other_ip = net.attach(ip("192.0.2.2"), 5000);
  EXPECT_NE(same_port_other_ip, nullptr);
  auto x = net.attach(ip("192.0.2.1"));
  auto y = net.attach(ip("192.0.2.1"));
  EXPECT_NE(x->port(), 0);
  EXPECT_NE(x->port(), y->port());
  EXPECT_NE(x->port(), 5000);
  a.reset();  // detaching frees the endpoint
  EXPECT_NE(net.attach(ip("192.0.2.1"), 5000), nullptr);
}

TEST(FakeUdp, RebindMovesThePortAndKeepsItOnConflict) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"), 1000);
  auto b = net.attach(ip("192.0.2.2"), 2000);
  auto other = net.attach(ip("192.0.2.2"), 3000);
  b->inject(ep("192.0.2.1:1000"), {1});  // queued before the rebind: lost with the old socket

  EXPECT_EQ(b->rebind(3000), -EADDRINUSE);
  EXPECT_EQ(b->port(), 2000);
  EXPECT_EQ(b->pending(), 1u);
  EXPECT_EQ(b->rebind(2000), 0);  // same port: no-op, queue kept
  EXPECT_EQ(b->pending(), 1u);
  EXPECT_EQ(b->rebind(2500), 0);
  EXPECT_EQ(b->port(), 2500);
  EXPECT_EQ(b->pending(), 0u);

  Batch out(2);
  out.set(0, {1}, ep("192.0.2.2:2000"));  // old port: nobody there any more
  out.set(1, {2}, ep("192.0.2.2:2500"));
  EXPECT_EQ(a->send_batch(out.bufs), 2);
  Batch in(4);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.get(0), Bytes({2}));
  // and b's replies now come from the new port
  out.set(0, {3}, a->local());
  ASSERT_EQ(b->send_batch(out.first(1)), 1);
  ASSERT_EQ(a->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.bufs[0].endpoint, ep("192.0.2.2:2500"));

  ASSERT_EQ(b->rebind(0), 0);
  EXPECT_NE(b->port(), 2500);
  EXPECT_NE(b->port(), 0);
}

TEST(FakeUdp, RoamingChangesTheSourceAddress) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"), 1000);
  auto b = net.attach(ip("192.0.2.2"), 2000);
  auto squatter = net.attach(ip("192.0.2.5"), 1000);
  EXPECT_EQ(a->set_address(ip("192.0.2.5")), -EADDRINUSE);
  EXPECT_EQ(a->local(), ep("192.0.2.1:1000"));
  ASSERT_EQ(a->set_address(ip("198.51.100.7")), 0);
  EXPECT_EQ(a->local(), ep("198.51.100.7:1000"));

  Batch out(1);
  out.set(0, {1}, b->local());
  ASSERT_EQ(a->send_batch(out.bufs), 1);
  Batch in(2);
  ASSERT_EQ(b->recv_batch(in.bufs), 1);
  EXPECT_EQ(in.bufs[0].endpoint, ep("198.51.100.7:1000"));
  out.set(0, {2}, ep("192.0.2.1:1000"));  // the old address is gone
  ASSERT_EQ(b->send_batch(out.bufs), 1);
  EXPECT_EQ(a->pending(), 0u);
  EXPECT_EQ(net.delivered(), 1u);
}

TEST(FakeUdp, FwmarkIsRecorded) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"));
  EXPECT_EQ(a->fwmark(), 0u);
  a->set_fwmark(0x51820);
  EXPECT_EQ(a->fwmark(), 0x51820u);
}

TEST(FakeUdp, BlockingRecvWakesOnDeliveryAndOnWake) {
  FakeNetwork net;
  auto a = net.attach(ip("192.0.2.1"));
  auto b = net.attach(ip("192.0.2.2"));
  b->set_blocking(true);
  int got = -1;
  std::thread reader([&] {
    Batch in(4);
    got = b->recv_batch(in.bufs);
  });
  Batch out(1);
  out.set(0, {5}, b->local());
  ASSERT_EQ(a->send_batch(out.bufs), 1);
  reader.join();
  EXPECT_EQ(got, 1);

  std::thread sleeper([&] {
    Batch in(4);
    got = b->recv_batch(in.bufs);
  });
  b->wake();
  sleeper.join();
  EXPECT_EQ(got, 0);
  EXPECT_TRUE(b->woken());
}

TEST(FakeUdp, ConcurrentSendersLoseNothing) {
  FakeNetwork net;
  net.set_capture(false);
  auto a = net.attach(ip("192.0.2.1"));
  auto c = net.attach(ip("192.0.2.3"));
  auto b = net.attach(ip("192.0.2.2"));
  constexpr int kPerSender = 1000;
  auto send_all = [&](FakeUdp* from) {
    Batch out(1);
    for (int i = 0; i < kPerSender; ++i) {
      out.set(0, {static_cast<uint8_t>(i)}, b->local());
      EXPECT_EQ(from->send_batch(out.bufs), 1);
    }
  };
  int from_a = 0, from_c = 0;
  b->set_blocking(true);
  std::thread receiver([&] {
    Batch in(16);
    // Blocks between deliveries; after wake() it drains the queue, then returns 0.
    while (int n = b->recv_batch(in.bufs)) {
      for (int i = 0; i < n; ++i) (in.bufs[i].endpoint == a->local() ? from_a : from_c)++;
    }
  });
  std::thread ta(send_all, a.get()), tc(send_all, c.get());
  ta.join();
  tc.join();
  b->wake();
  receiver.join();
  EXPECT_EQ(from_a, kPerSender);
  EXPECT_EQ(from_c, kPerSender);
}

}  // namespace
}  // namespace xsktun::io
