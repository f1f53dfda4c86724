// PeerTimers against a fake clock: every time is exact, or bounded by the REKEY_TIMEOUT jitter.
#include "xsktun/protocol/timers.h"

#include <gtest/gtest.h>

#include <vector>

namespace xsktun::proto {
namespace {

constexpr Nanos kS = kSecond;
constexpr Nanos kJ = kRekeyTimeoutJitterMax;

// A minimal owner: polls at every deadline and performs the actions the way the data plane would
// (kernel send.c: an initiation or keepalive is an authenticated packet traversal + sent).
struct FakeOwner {
  explicit FakeOwner(uint64_t seed = 0) : t(seed) {}

  void send_initiation() {
    ASSERT_TRUE(t.may_send_initiation(now));
    t.any_authenticated_packet_traversal(now);
    t.any_authenticated_packet_sent(now);
    t.handshake_initiated(now);
    initiations.push_back(now);
  }
  void send_keepalive() {
    t.any_authenticated_packet_traversal(now);
    t.any_authenticated_packet_sent(now);
    keepalives.push_back(now);
  }
  void handle(TimerActions a) {
    if (a.has(TimerAction::kSendInitiation)) send_initiation();
    if (a.has(TimerAction::kSendKeepalive)) send_keepalive();
    if (a.has(TimerAction::kZeroKeys)) zeroed.push_back(now);
    if (a.has(TimerAction::kDropStaged)) dropped.push_back(now);
  }
  // Advances the clock to `until`, polling exactly at each deadline on the way.
  void run_until(Nanos until) {
    while (auto d = t.next_deadline()) {
      if (*d > until) break;
      now = std::max(now, *d);
      handle(t.poll(now));
    }
    now = until;
  }

  PeerTimers t;
  Nanos now = 0;
  std::vector<Nanos> initiations, keepalives, zeroed, dropped;
};

TEST(TimerActions, FlagHelpers) {
  TimerActions a = TimerAction::kSendInitiation | TimerAction::kZeroKeys;
  EXPECT_TRUE(a.has(TimerAction::kSendInitiation));
  EXPECT_TRUE(a.has(TimerAction::kZeroKeys));
  EXPECT_FALSE(a.has(TimerAction::kSendKeepalive));
  EXPECT_FALSE(a.has(TimerAction::kNone));
  EXPECT_EQ(a.bits, 5u);
  EXPECT_TRUE(static_cast<bool>(a & TimerAction::kZeroKeys));
  EXPECT_FALSE(static_cast<bool>(a & TimerAction::kDropStaged));
  a |= TimerAction::kDropStaged;
  EXPECT_EQ(a.bits, 13u);
  EXPECT_TRUE(TimerActions{}.empty());
  EXPECT_EQ((a & (TimerAction::kDropStaged | TimerAction::kSendKeepalive)).bits, 8u);
}

TEST(PeerTimers, FreshPeerHasNothingArmed) {
  PeerTimers t;
  EXPECT_FALSE(t.next_deadline().has_value());
  EXPECT_TRUE(t.poll(1000 * kS).empty());
  EXPECT_TRUE(t.may_send_initiation(0));
  EXPECT_EQ(t.handshake_attempts(), 0);
}

TEST(PeerTimers, RetransmitsInitiationEveryRekeyTimeoutPlusJitter) {
  FakeOwner o(7);
  o.now = 3 * kS;
  o.send_initiation();
  o.run_until(3 * kS + 29 * kS);
  // The first, then retries k = 1..5 at [5k, 5k + k/3) s after it; the 6th would be at >= 30 s.
  ASSERT_EQ(o.initiations.size(), 6u);
  for (size_t i = 1; i < o.initiations.size(); ++i) {
    const Nanos gap = o.initiations[i] - o.initiations[i - 1];
    EXPECT_GE(gap, kRekeyTimeout);
    EXPECT_LT(gap, kRekeyTimeout + kJ);
  }
  EXPECT_EQ(o.t.handshake_attempts(), 5);
  EXPECT_TRUE(o.dropped.empty());
}

TEST(PeerTimers, GivesUpAfterMaxHandshakesThenZeroesKeys) {
  FakeOwner o(11);
  o.send_initiation();
  o.run_until(700 * kS);
  // Kernel timers.c: attempts > MAX_TIMER_HANDSHAKES gives up, so the first initiation is
  // followed by MAX_TIMER_HANDSHAKES + 1 retries (MAX + 2 sent in all) before giving up.
  ASSERT_EQ(o.initiations.size(), static_cast<size_t>(kMaxTimerHandshakes + 2));
  ASSERT_EQ(o.dropped.size(), 1u);
  const Nanos give_up = o.dropped[0];
  EXPECT_GE(give_up - o.initiations.back(), kRekeyTimeout);
  EXPECT_LT(give_up - o.initiations.back(), kRekeyTimeout + kJ);
  const Nanos fires = kMaxTimerHandshakes + 2;  // retransmit expiries, the last one gives up
  EXPECT_GE(give_up, fires * kRekeyTimeout);
  EXPECT_LT(give_up, fires * (kRekeyTimeout + kJ));
  // Nothing was armed for zeroing, so giving up schedules it 3 x REJECT_AFTER_TIME later.
  ASSERT_EQ(o.zeroed.size(), 1u);
  EXPECT_EQ(o.zeroed[0], give_up + 540 * kS);
  EXPECT_FALSE(o.t.next_deadline().has_value());
}

TEST(PeerTimers, GiveUpKeepsAnAlreadyArmedZeroKeyDeadline) {
  FakeOwner o;
  o.t.session_derived(0);
  o.now = kS;
  o.send_initiation();
  o.run_until(600 * kS);
  ASSERT_EQ(o.dropped.size(), 1u);
  ASSERT_EQ(o.zeroed.size(), 1u);
  EXPECT_EQ(o.zeroed[0], 540 * kS);  // the session_derived deadline, not give-up + 540 s
}

TEST(PeerTimers, GiveUpCancelsPendingKeepalive) {
  PeerTimers t;
  t.handshake_initiated(0);
  for (int i = 0; i < kMaxTimerHandshakes + 1; ++i) {
    const Nanos d = *t.next_deadline();
    ASSERT_TRUE(t.poll(d).has(TimerAction::kSendInitiation));
    t.handshake_initiated(d);
  }
  const Nanos last = *t.next_deadline();
  t.data_received(last - kS);  // keepalive due at last + 9 s
  const TimerActions a = t.poll(last);
  EXPECT_TRUE(a.has(TimerAction::kDropStaged));
  EXPECT_FALSE(a.has(TimerAction::kSendInitiation));
  EXPECT_EQ(t.next_deadline(), last + 540 * kS);  // only zero-keys is left
}

TEST(PeerTimers, HandshakeCompleteStopsRetries) {
  FakeOwner o;
  o.send_initiation();
  o.run_until(12 * kS);  // two retries so far
  ASSERT_EQ(o.initiations.size(), 3u);
  EXPECT_EQ(o.t.handshake_attempts(), 2);
  o.t.handshake_complete(o.now);
  EXPECT_EQ(o.t.handshake_attempts(), 0);
  EXPECT_FALSE(o.t.next_deadline().has_value());
  o.run_until(300 * kS);
  EXPECT_EQ(o.initiations.size(), 3u);
  EXPECT_TRUE(o.dropped.empty());
}

TEST(PeerTimers, KeepaliveTenSecondsAfterDataReceivedWithNothingSentBack) {
  FakeOwner o;
  o.t.data_received(2 * kS);
  EXPECT_EQ(o.t.next_deadline(), 12 * kS);
  o.run_until(100 * kS);
  EXPECT_EQ(o.keepalives, std::vector<Nanos>{12 * kS});
}

TEST(PeerTimers, NoKeepaliveWhenDataWasSentInBetween) {
  FakeOwner o;
  o.t.data_received(2 * kS);
  o.t.any_authenticated_packet_sent(5 * kS);
  o.t.data_sent(5 * kS);
  o.t.any_authenticated_packet_received(6 * kS);  // and the peer answered: no new handshake either
  o.run_until(100 * kS);
  EXPECT_TRUE(o.keepalives.empty());
  EXPECT_TRUE(o.initiations.empty());
}

TEST(PeerTimers, DataReceivedWhileKeepalivePendingRearmsOnce) {
  PeerTimers t;
  t.data_received(0);
  t.data_received(3 * kS);  // already armed: not moved, but another keepalive is owed
  EXPECT_EQ(t.next_deadline(), 10 * kS);
  EXPECT_TRUE(t.poll(10 * kS).has(TimerAction::kSendKeepalive));
  EXPECT_EQ(t.next_deadline(), 20 * kS);
  EXPECT_TRUE(t.poll(20 * kS).has(TimerAction::kSendKeepalive));
  EXPECT_FALSE(t.next_deadline().has_value());  // the debt was paid once
}

TEST(PeerTimers, SendingTheKeepaliveCancelsTheRearm) {
  // As in the kernel, the keepalive itself is an authenticated packet sent, which cancels the
  // re-armed timer; a later data_received arms it afresh.
  FakeOwner o;
  o.t.data_received(0);
  o.t.data_received(3 * kS);
  o.run_until(60 * kS);
  EXPECT_EQ(o.keepalives, std::vector<Nanos>{10 * kS});
}

TEST(PeerTimers, NewHandshakeFifteenSecondsAfterUnansweredDataSent) {
  FakeOwner o(3);
  o.t.data_sent(kS);
  const Nanos deadline = *o.t.next_deadline();
  o.t.data_sent(4 * kS);  // already armed: the deadline stays with the first unanswered packet
  EXPECT_EQ(o.t.next_deadline(), deadline);
  o.run_until(deadline);
  ASSERT_EQ(o.initiations.size(), 1u);
  EXPECT_GE(o.initiations[0], kS + 15 * kS);
  EXPECT_LT(o.initiations[0], kS + 15 * kS + kJ);
  EXPECT_EQ(o.t.handshake_attempts(), 0);
}

TEST(PeerTimers, AuthenticatedReplyCancelsNewHandshake) {
  FakeOwner o;
  o.t.data_sent(0);
  o.t.any_authenticated_packet_received(14 * kS);
  o.run_until(100 * kS);
  EXPECT_TRUE(o.initiations.empty());
}

TEST(PeerTimers, NewHandshakeRespectsRateLimit) {
  PeerTimers t;
  t.data_sent(0);
  const Nanos nh = *t.next_deadline();
  t.handshake_initiated(nh - kS);  // an initiation went out just before
  const TimerActions a = t.poll(nh);
  EXPECT_FALSE(a.has(TimerAction::kSendInitiation));
  EXPECT_GT(*t.next_deadline(), nh);  // the retransmit timer of that initiation covers it
}

TEST(PeerTimers, ZeroKeysThreeRejectAfterTimesAfterSessionDerived) {
  FakeOwner o;
  o.t.session_derived(10 * kS);
  EXPECT_EQ(o.t.next_deadline(), 550 * kS);
  o.t.session_derived(100 * kS);  // a newer keypair postpones the wipe
  o.run_until(1000 * kS);
  EXPECT_EQ(o.zeroed, std::vector<Nanos>{640 * kS});
}

TEST(PeerTimers, WantRekeyOnSend) {
  const PeerTimers t;
  const Nanos birth = 7 * kS;
  EXPECT_FALSE(t.want_rekey_on_send(10, birth, true, birth + kRekeyAfterTime - 1));
  EXPECT_TRUE(t.want_rekey_on_send(10, birth, true, birth + 120 * kS));
  EXPECT_FALSE(t.want_rekey_on_send(10, birth, false, birth + 1000 * kS));  // only the initiator
  EXPECT_FALSE(t.want_rekey_on_send(kRekeyAfterMessages, birth, false, birth));
  EXPECT_TRUE(t.want_rekey_on_send(kRekeyAfterMessages + 1, birth, false, birth));
}

TEST(PeerTimers, WantRekeyOnReceiveOnceAtLastMinute) {
  PeerTimers t;
  const Nanos birth = 2 * kS;
  EXPECT_FALSE(t.want_rekey_on_receive(birth, true, birth + 165 * kS - 1));
  EXPECT_FALSE(t.want_rekey_on_receive(birth, false, birth + 170 * kS));  // responder never
  EXPECT_TRUE(t.want_rekey_on_receive(birth, true, birth + 165 * kS));
  EXPECT_TRUE(t.sent_lastminute_handshake());
  EXPECT_FALSE(t.want_rekey_on_receive(birth, true, birth + 166 * kS));  // only once
  t.handshake_complete(birth + 167 * kS);
  EXPECT_FALSE(t.sent_lastminute_handshake());
  EXPECT_TRUE(t.want_rekey_on_receive(birth, true, birth + 168 * kS));
}

TEST(PeerTimers, PersistentKeepaliveEveryInterval) {
  FakeOwner o;
  o.t.set_persistent_keepalive(25 * kS);
  o.t.any_authenticated_packet_traversal(kS);
  o.run_until(80 * kS);
  EXPECT_EQ(o.keepalives, (std::vector<Nanos>{26 * kS, 51 * kS, 76 * kS}));
  o.t.set_persistent_keepalive(0);  // off: disarmed and not re-armed by traffic
  o.t.any_authenticated_packet_traversal(o.now);
  EXPECT_FALSE(o.t.next_deadline().has_value());
  o.run_until(200 * kS);
  EXPECT_EQ(o.keepalives.size(), 3u);
}

TEST(PeerTimers, PersistentKeepaliveOffByDefault) {
  PeerTimers t;
  t.any_authenticated_packet_traversal(0);
  EXPECT_FALSE(t.next_deadline().has_value());
}

TEST(PeerTimers, MaySendInitiationRateLimit) {
  PeerTimers t;
  t.handshake_initiated(10 * kS);
  EXPECT_FALSE(t.may_send_initiation(10 * kS));
  EXPECT_FALSE(t.may_send_initiation(15 * kS - 1));
  EXPECT_TRUE(t.may_send_initiation(15 * kS));
  t.handshake_response_sent(20 * kS);  // a response counts too (kernel send.c)
  EXPECT_FALSE(t.may_send_initiation(24 * kS));
  EXPECT_TRUE(t.may_send_initiation(25 * kS));
}

TEST(PeerTimers, RequestHandshakeResetsAttemptsAndHonoursRateLimit) {
  FakeOwner o;
  o.send_initiation();
  o.run_until(16 * kS);
  ASSERT_EQ(o.t.handshake_attempts(), 3);
  EXPECT_FALSE(o.t.request_handshake(o.initiations.back() + kS));  // one is still in flight
  EXPECT_EQ(o.t.handshake_attempts(), 0);
  EXPECT_TRUE(o.t.request_handshake(o.initiations.back() + kRekeyTimeout));
}

TEST(PeerTimers, NextDeadlineIsTheEarliestArmed) {
  PeerTimers t;
  t.set_persistent_keepalive(30 * kS);
  t.session_derived(0);                     // 540 s
  t.any_authenticated_packet_traversal(0);  // 30 s
  EXPECT_EQ(t.next_deadline(), 30 * kS);
  t.data_received(kS);  // 11 s
  EXPECT_EQ(t.next_deadline(), 11 * kS);
  t.handshake_initiated(4 * kS);  // 9 s + jitter
  const Nanos d = *t.next_deadline();
  EXPECT_GE(d, 9 * kS);
  EXPECT_LT(d, 9 * kS + kJ);
  t.handshake_complete(5 * kS);
  EXPECT_EQ(t.next_deadline(), 11 * kS);
  t.any_authenticated_packet_sent(6 * kS);
  EXPECT_EQ(t.next_deadline(), 30 * kS);
}

TEST(PeerTimers, PollFiresEverythingDueAndReturnsTheUnion) {
  PeerTimers t;
  t.set_persistent_keepalive(20 * kS);
  t.any_authenticated_packet_traversal(0);
  t.data_received(0);
  t.session_derived(0);
  EXPECT_TRUE(t.poll(9 * kS).empty());  // nothing due yet
  const TimerActions a = t.poll(600 * kS);
  EXPECT_TRUE(a.has(TimerAction::kSendKeepalive));
  EXPECT_TRUE(a.has(TimerAction::kZeroKeys));
  EXPECT_FALSE(a.has(TimerAction::kSendInitiation));
  EXPECT_FALSE(t.next_deadline().has_value());
  EXPECT_TRUE(t.poll(600 * kS).empty());  // each deadline fires once
}

TEST(PeerTimers, StopClearsEverything) {
  PeerTimers t;
  t.set_persistent_keepalive(25 * kS);
  t.any_authenticated_packet_traversal(0);
  t.data_sent(0);
  t.data_received(0);
  t.session_derived(0);
  t.handshake_initiated(0);
  ASSERT_TRUE(t.next_deadline().has_value());
  t.stop();
  EXPECT_FALSE(t.next_deadline().has_value());
  EXPECT_TRUE(t.poll(10'000 * kS).empty());
  EXPECT_TRUE(t.may_send_initiation(kS));  // like wg_stop's reset of last_sent_handshake
  EXPECT_EQ(t.handshake_attempts(), 0);
  t.data_received(20 * kS);  // events after stop arm again
  EXPECT_EQ(t.next_deadline(), 30 * kS);
}

TEST(PeerTimers, JitterStaysWithinBound) {
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    PeerTimers t(seed);
    t.handshake_initiated(0);
    const Nanos d = *t.next_deadline();
    ASSERT_GE(d, kRekeyTimeout) << seed;
    ASSERT_LT(d, kRekeyTimeout + kJ) << seed;
  }
}

TEST(PeerTimers, SameSeedSameTimes) {
  FakeOwner a(42), b(42), c(43);
  for (FakeOwner* o : {&a, &b, &c}) {
    o->send_initiation();
    o->run_until(60 * kS);
  }
  ASSERT_EQ(a.initiations.size(), 12u);  // retry k lands in [5k, 5k + k/3) s: k = 11 is the last
  EXPECT_EQ(a.initiations, b.initiations);
  EXPECT_NE(a.initiations, c.initiations);
}

}  // namespace
}  // namespace xsktun::proto
