// Two devices on the daemon's real threads (Runner) over blocking in-memory fakes: concurrent
// TUN/UDP/handshake/timer loops on both sides, with a thread for each of TUN and UDP and with
// one thread serving both. Run under TSan by scripts/test.sh.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "device_harness.h"
#include "xsktun/device/runner.h"

namespace xsktun::testing {
namespace {

// Two peered nodes; the parameter: one I/O thread.
class DeviceThreads : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    net.set_capture(false);
    ASSERT_EQ(add_peer(a, b, {"10.0.0.2/32"}), 0);
    ASSERT_EQ(add_peer(b, a, {"10.0.0.1/32"}), 0);
  }
  // Both nodes on blocking fakes, each device on its own Runner (one I/O thread or one per side,
  // as the parameter says), started.
  std::pair<std::unique_ptr<device::Runner>, std::unique_ptr<device::Runner>> start_runners() {
    for (Node* n : {&a, &b}) {
      n->tun.set_blocking(true);
      n->udp->set_blocking(true);
    }
    auto ra = std::make_unique<device::Runner>(*a.dev, a.tun, *a.udp);
    auto rb = std::make_unique<device::Runner>(*b.dev, b.tun, *b.udp);
    for (auto* r : {ra.get(), rb.get()}) {
      r->set_single_io_thread(GetParam());
      r->start();
    }
    return {std::move(ra), std::move(rb)};
  }
  device::SystemClock clock;
  io::FakeNetwork net;
  Node a{net, "192.0.2.1", 51820, clock};
  Node b{net, "192.0.2.2", 51821, clock};
};

TEST_P(DeviceThreads, BidirectionalTrafficWithLiveConfigChanges) {
  auto [ra, rb] = start_runners();
  EXPECT_EQ(ra->single_io_thread(), GetParam());
  EXPECT_EQ(rb->single_io_thread(), GetParam());
  // One side initiates first (simultaneous initiation resolves only on the 5 s retry; that case
  // has its own test in device_test.cpp).
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "hello"));
  for (int i = 0; i < 200 && b.counter(device::Counter::handshakes_completed) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(b.counter(device::Counter::handshakes_completed), 1u);
  b.tun.take_written();
  constexpr int kPackets = 2000;
  std::thread config_churn([&] {
    // Live UAPI-style changes while traffic flows: allowed IPs that change every time (so each
    // apply publishes the writer's copy and replays onto the one the data path just left) and
    // keepalive switched on and off.
    for (int i = 0; i < 50; ++i) {
      control::ConfigChange c;
      control::PeerChange p;
      p.public_key = b.pub;
      p.replace_allowed_ips = true;
      p.allowed_ips.push_back(*Prefix::parse("10.0.0.2/32"));
      if (i % 2) p.allowed_ips.push_back(*Prefix::parse("10.9." + std::to_string(i) + ".0/24"));
      p.persistent_keepalive = static_cast<uint16_t>(i % 2 ? 25 : 0);
      c.peers.push_back(p);
      std::string err;
      a.dev->apply(c, &err);
      (void)a.dev->snapshot();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (int i = 0; i < kPackets; ++i) {
    a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "a" + std::to_string(i)));
    b.tun.inject(ipv4_packet("10.0.0.2", "10.0.0.1", "b" + std::to_string(i)));
    if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  config_churn.join();
  EXPECT_TRUE(a.dev->table_copies_agree());
  std::set<std::string> got_a, got_b;
  for (int waited = 0; waited < 100 && (got_a.size() < kPackets / 2 || got_b.size() < kPackets / 2);
       ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (auto& p : a.tun.take_written()) got_a.insert(payload_of(p));
    for (auto& p : b.tun.take_written()) got_b.insert(payload_of(p));
  }
  ra->stop();
  rb->stop();
  // Packets staged before the handshake beyond the staged-queue bound are dropped by design;
  // everything else arrives exactly once (a set would hide duplicates, so count them too).
  EXPECT_GE(got_b.size(), static_cast<size_t>(kPackets / 2));
  EXPECT_GE(got_a.size(), static_cast<size_t>(kPackets / 2));
  EXPECT_EQ(a.counter(device::Counter::drop_replay), 0u);
  EXPECT_EQ(b.counter(device::Counter::drop_replay), 0u);
  EXPECT_FALSE(ra->failed());
  EXPECT_FALSE(rb->failed());
}

// An extra receiver (the kernel socket or an AF_XDP queue in XDP mode): b's datagrams arrive only
// through it (b's worker is given a UDP side nobody sends to). One I/O thread serves it in its
// loop without ever waiting inside it; otherwise it has a thread of its own that waits in it. Each
// batch comes back to it through delivered(), with the device's verdicts.
class RecordingRx final : public io::UdpIo {
 public:
  explicit RecordingRx(io::UdpIo& inner) : in_(inner) {}
  int recv_batch(std::span<io::PacketBuf> bufs) override { return note(false, in_.recv_batch(bufs)); }
  int try_recv_batch(std::span<io::PacketBuf> bufs) override {
    return note(true, hold ? 0 : in_.try_recv_batch(bufs));
  }
  void delivered(std::span<const io::PacketBuf> bufs) override {
    std::lock_guard lock(mu);
    for (const auto& b : bufs) authenticated += b.authenticated;
  }
  int send_batch(std::span<io::PacketBuf> bufs) override { return in_.send_batch(bufs); }
  uint16_t port() const override { return in_.port(); }
  int rebind(uint16_t port) override { return in_.rebind(port); }
  void set_fwmark(uint32_t mark) override { in_.set_fwmark(mark); }
  void wake() override { in_.wake(); }
  int ready_fd() const override { return in_.ready_fd(); }

  std::mutex mu;
  std::set<std::thread::id> threads;
  std::set<bool> non_blocking;  // which of the two calls the Runner used
  size_t authenticated = 0;
  size_t asks = 0;                // receive calls
  std::atomic<bool> hold{false};  // try_recv_batch finds nothing (what arrives stays queued)

 private:
  int note(bool try_only, int n) {
    std::lock_guard lock(mu);
    ++asks;
    threads.insert(std::this_thread::get_id());
    non_blocking.insert(try_only);
    return n;
  }
  io::UdpIo& in_;
};

TEST_P(DeviceThreads, ExtraReceiverServedByTheLoopOrItsOwnThread) {
  auto idle = net.attach(*IpAddr::parse("192.0.2.9"), 9);
  a.tun.set_blocking(true);
  a.udp->set_blocking(true);
  b.tun.set_blocking(true);
  b.udp->set_blocking(true);
  RecordingRx rx(*b.udp);
  device::Runner ra(*a.dev, a.tun, *a.udp), rb(*b.dev, b.tun, *idle);
  rb.add_receiver(0, rx);
  ra.set_single_io_thread(GetParam());
  rb.set_single_io_thread(GetParam());
  ra.start();
  rb.start();
  EXPECT_EQ(rb.single_io_thread(), GetParam());
  constexpr int kPackets = 200;
  std::set<std::string> got;
  for (int i = 0; i < kPackets; ++i)
    a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "p" + std::to_string(i)));
  for (int waited = 0; waited < 100 && got.size() < kPackets / 2; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (auto& p : b.tun.take_written()) got.insert(payload_of(p));
  }
  ra.stop();
  rb.stop();
  // Packets beyond the staged-queue bound before the handshake are dropped by design.
  EXPECT_GE(got.size(), static_cast<size_t>(kPackets / 2));
  EXPECT_EQ(b.counter(device::Counter::handshakes_completed), 1u);
  std::lock_guard lock(rx.mu);
  EXPECT_EQ(rx.threads.size(), 1u);
  EXPECT_EQ(rx.non_blocking, std::set<bool>{GetParam()});
  // Every data message that reached b's TUN came back to the receiver marked authenticated.
  EXPECT_GE(rx.authenticated, got.size());
  EXPECT_FALSE(rb.failed());
}

// One I/O thread draining a backlog on its UDP side: the sources that come back empty (its TUN
// queue, an extra receiver: each ask a syscall answering EAGAIN for a real TUN or socket) are
// asked again only every Runner::kSweepEvery turns while the backlog lasts, not every turn; and
// none is starved: a packet waiting on the TUN side still goes out.
TEST(DeviceLoop, IdleSourcesAreAskedLessWhileAnotherIsBusy) {
  device::SystemClock clock;
  io::FakeNetwork net;
  net.set_capture(false);
  Node a{net, "192.0.2.1", 51820, clock};
  Node b{net, "192.0.2.2", 51821, clock};
  ASSERT_EQ(add_peer(a, b, {"10.0.0.2/32"}), 0);
  ASSERT_EQ(add_peer(b, a, {"10.0.0.1/32"}), 0);
  auto idle_udp = net.attach(*IpAddr::parse("192.0.2.9"), 9);
  for (io::FakeUdp* u : {a.udp.get(), b.udp.get(), idle_udp.get()}) u->set_blocking(true);
  a.tun.set_blocking(true);
  b.tun.set_blocking(true);
  RecordingRx busy(*b.udp), idle(*idle_udp);
  device::Runner ra(*a.dev, a.tun, *a.udp), rb(*b.dev, b.tun, busy);
  rb.add_receiver(0, idle);
  ra.set_single_io_thread(true);
  rb.set_single_io_thread(true);
  ra.start();
  rb.start();
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "hello"));
  for (int i = 0; i < 200 && b.counter(device::Counter::rx_packets) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(b.counter(device::Counter::rx_packets), 1u);
  b.tun.take_written();

  // A backlog builds up in b's socket queue while b's worker finds nothing there.
  busy.hold = true;
  constexpr uint64_t kBacklog = 3000;  // under FakeNetwork::kQueueLimit
  for (uint64_t i = 0; i < kBacklog; ++i)
    a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", std::to_string(i)));
  for (int i = 0; i < 500 && a.counter(device::Counter::tx_packets) < kBacklog + 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(a.counter(device::Counter::tx_packets), kBacklog + 1);
  {
    std::lock_guard l1(busy.mu), l2(idle.mu);
    busy.asks = idle.asks = 0;
    b.tun.inject(ipv4_packet("10.0.0.2", "10.0.0.1", "reply"));
    busy.hold = false;
  }
  size_t got = 0;
  for (int i = 0; i < 500 && got < kBacklog; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    got += b.tun.take_written().size();
  }
  bool replied = false;
  for (int i = 0; i < 200 && !replied; ++i) {
    for (auto& p : a.tun.take_written()) replied = replied || payload_of(p) == "reply";
    if (!replied) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  rb.stop();
  ra.stop();
  EXPECT_EQ(got, kBacklog);
  EXPECT_TRUE(replied) << "the TUN side was starved by the busy UDP side";
  std::lock_guard l1(busy.mu), l2(idle.mu);
  // kBacklog / 64 = 47 busy turns at least; the idle receiver: one ask in 16 of them, plus the
  // asks around each sleep. Asked every turn, it would match the busy side.
  EXPECT_GE(busy.asks, kBacklog / device::Runner::kBatch);
  EXPECT_LE(idle.asks * 4, busy.asks) << "idle " << idle.asks << ", busy " << busy.asks;
}

// Four workers of a (each its own TUN queue and counters) seal for the same peer at once: the
// keypair's counters are reserved per run outside the peer's lock, so b sees them interleaved
// but each exactly once and inside its replay window. Every packet arrives once, none is
// counted as a replay, and each worker's counters hold what it carried.
TEST_P(DeviceThreads, FourWorkersSealForOnePeer) {
  constexpr size_t kWorkers = 4;
  std::array<io::FakeTun, kWorkers> tuns;
  for (auto& t : tuns) t.set_blocking(true);
  a.udp->set_blocking(true);
  b.tun.set_blocking(true);
  b.udp->set_blocking(true);
  device::Runner ra(*a.dev), rb(*b.dev, b.tun, *b.udp);
  for (auto& t : tuns) ra.add_worker(t, *a.udp);
  ASSERT_EQ(ra.worker_count(), kWorkers);
  ASSERT_EQ(a.dev->lane_count(), kWorkers);
  ra.set_single_io_thread(GetParam());
  rb.set_single_io_thread(GetParam());
  ra.start();
  rb.start();
  tuns[0].inject(ipv4_packet("10.0.0.1", "10.0.0.2", "hello"));
  for (int i = 0; i < 200 && b.counter(device::Counter::handshakes_completed) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(b.counter(device::Counter::handshakes_completed), 1u);
  b.tun.take_written();
  constexpr int kPerWorker = 1000;
  std::vector<std::thread> senders;
  for (size_t w = 0; w < kWorkers; ++w)
    senders.emplace_back([&, w] {
      for (int i = 0; i < kPerWorker; ++i) {
        tuns[w].inject(ipv4_packet("10.0.0.1", "10.0.0.2", std::to_string(w) + "-" + std::to_string(i)));
        if (i % 32 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  for (auto& t : senders) t.join();
  std::multiset<std::string> got;
  for (int waited = 0; waited < 200 && got.size() < kWorkers * kPerWorker; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (auto& p : b.tun.take_written()) got.insert(payload_of(p));
  }
  ra.stop();
  rb.stop();
  EXPECT_EQ(got.size(), kWorkers * kPerWorker);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size()) << "a packet arrived twice";
  EXPECT_EQ(b.counter(device::Counter::drop_replay), 0u);
  uint64_t sum = 0;
  for (size_t w = 0; w < kWorkers; ++w) {
    uint64_t tx = a.dev->lane_counters(w).get(device::Counter::tx_packets);
    EXPECT_GE(tx, static_cast<uint64_t>(kPerWorker)) << "worker " << w;
    sum += tx;
  }
  EXPECT_EQ(a.dev->totals().get(device::Counter::tx_packets), sum + a.counter(device::Counter::tx_packets));
}

// A peer removed and added back over and over while packets to it flow: some are in flight
// in a batch whose table snapshot still routes to the removed peer, some are staged waiting for
// the new peer's handshake when it is removed again. None may vanish uncounted: every packet
// read from the TUN is sent or counted as a drop.
TEST_P(DeviceThreads, PacketsToAPeerRemovedMeanwhileAreSentOrCounted) {
  auto [ra, rb] = start_runners();
  std::atomic<bool> churning{true};
  std::thread churn([&] {
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ASSERT_EQ(add_peer(a, b, {"10.0.0.2/32"}), 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ASSERT_EQ(remove_peer(a, b), 0);
    }
    churning = false;
  });
  uint64_t injected = 0;
  while (churning.load()) {
    for (int k = 0; k < 16; ++k, ++injected)
      a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "p" + std::to_string(injected)));
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  churn.join();
  using C = device::Counter;
  auto accounted = [&] {
    return a.counter(C::tx_packets) + a.counter(C::drop_no_route) + a.counter(C::drop_staged_full) +
           a.counter(C::drop_staged_expired) + a.counter(C::drop_no_endpoint) + a.counter(C::drop_too_big) +
           a.counter(C::drop_keypair_expired) + a.counter(C::drop_udp_send);
  };
  // The churn ends with b removed, so nothing stays staged: once the TUN is read, every packet
  // has been sent or dropped (a handshake the churn interrupted would be retried only after
  // REKEY_TIMEOUT, with its packets staged meanwhile).
  for (int i = 0; i < 300 && (a.tun.pending() > 0 || accounted() < injected); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ra->stop();
  rb->stop();
  EXPECT_EQ(accounted(), injected) << "sent " << a.counter(C::tx_packets) << ", no route "
                                   << a.counter(C::drop_no_route) << ", staged full "
                                   << a.counter(C::drop_staged_full);
  EXPECT_FALSE(ra->failed());
}

INSTANTIATE_TEST_SUITE_P(IoThreads, DeviceThreads, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "OneIoThread" : "IoThreadEach"; });

}  // namespace
}  // namespace xsktun::testing
