// Timers without periodic polling: PeerTimers asks for a wakeup only when a deadline is armed
// earlier than the outstanding one, and the device's heap holds at most about one wakeup per
// armed peer, so idle peers cost nothing.
#include <gtest/gtest.h>

#include <vector>

#include "device_harness.h"
#include "xsktun/protocol/timers.h"

namespace xsktun {
namespace {

using proto::kSecond;
using proto::Nanos;

TEST(PeerTimersWakeup, OnlyEarlierDeadlinesAskAndWokeAsksForTheNext) {
  proto::PeerTimers t(7);
  std::vector<Nanos> asked;
  t.set_wakeup([&](Nanos w) { asked.push_back(w); });
  Nanos now = 100 * kSecond;
  t.set_persistent_keepalive(25 * kSecond);
  t.any_authenticated_packet_traversal(now);  // persistent keepalive at now + 25 s
  ASSERT_EQ(asked, std::vector<Nanos>{now + 25 * kSecond});
  t.any_authenticated_packet_traversal(now + kSecond);  // moved later: no new wakeup
  EXPECT_EQ(asked.size(), 1u);
  t.data_sent(now + kSecond);  // new-handshake timer at +1 s + 15 s + jitter: earlier
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_LT(asked[1], asked[0]);
  // The superseded wakeup is ignored; the outstanding one, served, asks for the next deadline.
  t.woke(asked[0]);
  EXPECT_EQ(asked.size(), 2u);
  t.poll(asked[1]);
  t.woke(asked[1]);
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_EQ(asked[2], *t.next_deadline());
  // After stop nothing is armed; the next event asks again even for a later deadline.
  t.stop();
  t.woke(asked[2]);
  EXPECT_EQ(asked.size(), 3u);
  t.any_authenticated_packet_traversal(now + 200 * kSecond);
  ASSERT_EQ(asked.size(), 4u);
  EXPECT_EQ(asked[3], now + 225 * kSecond);
}

// Every deadline the timers hold is covered by a wakeup: a random walk of events, serving
// wakeups in time order like the device does, never leaves a deadline passed and unserved.
TEST(PeerTimersWakeup, NoDeadlineIsMissedUnderRandomEvents) {
  proto::PeerTimers t(11);
  std::vector<Nanos> heap;
  t.set_wakeup([&](Nanos w) { heap.push_back(w); });
  t.set_persistent_keepalive(10 * kSecond);
  uint64_t rng = 12345;
  Nanos now = kSecond;
  for (int step = 0; step < 5000; ++step) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    now += static_cast<Nanos>((rng >> 33) % (3 * kSecond));
    // Serve every wakeup that is due, earliest first.
    for (;;) {
      auto it = std::min_element(heap.begin(), heap.end());
      if (it == heap.end() || *it > now) break;
      Nanos w = *it;
      heap.erase(it);
      t.poll(now);
      t.woke(w);
    }
    if (auto d = t.next_deadline(); d && *d <= now)
      FAIL() << "deadline " << *d << " passed unserved at " << now;
    switch ((rng >> 20) % 6) {
      case 0: t.data_sent(now); break;
      case 1: t.data_received(now); break;
      case 2: t.any_authenticated_packet_traversal(now); break;
      case 3: t.handshake_initiated(now); break;
      case 4: t.handshake_complete(now); break;
      case 5: t.session_derived(now); break;
    }
    ASSERT_LE(heap.size(), 64u) << "wakeups pile up";
  }
}

TEST(DeviceTimers, IdlePeersScheduleNothingAndATunnelStillKeepsItsTimers) {
  io::FakeNetwork net;
  testing::FakeClock clock;
  testing::Node a(net, "192.0.2.1", 51820, clock), b(net, "192.0.2.2", 51820, clock);
  control::ConfigChange many;
  for (uint32_t i = 0; i < 10000; ++i) {
    control::PeerChange p;
    p.public_key = testing::key_of(i);
    many.peers.push_back(p);
  }
  std::string err;
  ASSERT_EQ(a.dev->apply(many, &err), 0) << err;
  EXPECT_EQ(a.dev->pending_timers(), 0u) << "idle peers must not be polled";
  Nanos now = clock.now();
  EXPECT_EQ(a.dev->tick(), now + kSecond);
  // A real peer: a handshake and data arm its timers, and only its.
  ASSERT_EQ(testing::add_peer(a, b, {"10.0.0.2/32"}), 0);
  ASSERT_EQ(testing::add_peer(b, a, {"10.0.0.1/32"}), 0);
  a.tun.inject(testing::ipv4_packet("10.0.0.1", "10.0.0.2", "hello"));
  testing::pump({&a, &b});
  ASSERT_EQ(b.counter(device::Counter::rx_packets), 1u);
  EXPECT_GE(a.dev->pending_timers(), 1u);
  EXPECT_LE(a.dev->pending_timers(), 4u);
  // Its keepalive fires through the heap: b got data and has nothing to send back, so after
  // KEEPALIVE_TIMEOUT (10 s) b sends a keepalive.
  uint64_t before = b.counter(device::Counter::keepalives_tx);
  for (int i = 0; i < 12; ++i) {
    clock.advance(kSecond);
    a.dev->tick();
    b.dev->tick();
    testing::pump({&a, &b});
  }
  EXPECT_EQ(b.counter(device::Counter::keepalives_tx), before + 1);
}

}  // namespace
}  // namespace xsktun

namespace xsktun {
namespace {

// The staged-packet queue: FIFO order through many pushes and pops (the head moves, storage is
// compacted), and an emptied queue holds no storage.
TEST(StagedQueue, KeepsFifoOrderAcrossCompactionsAndFreesWhenEmpty) {
  device::StagedQueue q;
  EXPECT_TRUE(q.empty());
  uint32_t next_in = 0, next_out = 0;
  for (int round = 0; round < 1000; ++round) {
    for (int i = 0; i < 3; ++i) q.push_back(std::vector<uint8_t>(4, static_cast<uint8_t>(next_in++)));
    for (int i = 0; i < 2; ++i) {
      ASSERT_FALSE(q.empty());
      ASSERT_EQ(q.front()[0], static_cast<uint8_t>(next_out++));
      q.pop_front();
    }
    ASSERT_EQ(q.size(), next_in - next_out);
  }
  while (!q.empty()) {
    ASSERT_EQ(q.front()[0], static_cast<uint8_t>(next_out++));
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace xsktun
