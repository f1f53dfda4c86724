// HandshakeRateLimiter with a fake clock: every `now` is chosen by the test, nothing sleeps.
#include "xsktun/protocol/ratelimiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace xsktun::proto {
namespace {

using RL = HandshakeRateLimiter;

IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t bytes[4] = {a, b, c, d};
  return IpAddr::v4(bytes);
}

IpAddr v4_from_index(uint32_t i) {
  const uint8_t bytes[4] = {uint8_t(i >> 24), uint8_t(i >> 16), uint8_t(i >> 8), uint8_t(i)};
  return IpAddr::v4(bytes);
}

// 2001:db8:<prefix_word>::<host>
IpAddr v6(uint16_t prefix_word, uint16_t host) {
  uint8_t bytes[16] = {0x20, 0x01, 0x0d, 0xb8, uint8_t(prefix_word >> 8), uint8_t(prefix_word)};
  bytes[14] = uint8_t(host >> 8);
  bytes[15] = uint8_t(host);
  return IpAddr::v6(bytes);
}

// Calls allow() until the first denial (at most `limit` times) and returns how many were allowed.
int allowed_in_a_row(RL& rl, const IpAddr& src, Nanos now, int limit = 100) {
  int n = 0;
  while (n < limit && rl.allow(src, now)) ++n;
  return n;
}

constexpr Nanos kT0 = 1000 * kSecond;  // arbitrary monotonic start

TEST(HandshakeRateLimiter, ConstantsMatchKernel) {
  EXPECT_EQ(RL::kPacketCost, 50 * kMillisecond);
  EXPECT_EQ(RL::kTokenMax, 250 * kMillisecond);
}

TEST(HandshakeRateLimiter, BurstOfFiveThenDenied) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(rl.allow(a, kT0)) << i;
  EXPECT_FALSE(rl.allow(a, kT0));
  EXPECT_FALSE(rl.allow(a, kT0));
  EXPECT_EQ(rl.size(), 1u);
}

TEST(HandshakeRateLimiter, RefillsAtTwentyPerSecond) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  // Just under one packet's worth of credit: still denied (denials do not consume credit).
  EXPECT_FALSE(rl.allow(a, kT0 + 49 * kMillisecond));
  // 50 ms after the burst: exactly one more.
  EXPECT_TRUE(rl.allow(a, kT0 + 50 * kMillisecond));
  EXPECT_FALSE(rl.allow(a, kT0 + 50 * kMillisecond));
  // A further 100 ms: two more.
  EXPECT_EQ(allowed_in_a_row(rl, a, kT0 + 150 * kMillisecond), 2);
}

TEST(HandshakeRateLimiter, SteadyRateIsTwentyPerSecond) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  // Offer 1000 handshakes per second for 10 s: burst 5 + 20/s * 10 s get through.
  int ok = 0;
  for (int ms = 0; ms <= 10000; ++ms) {
    if (rl.allow(a, kT0 + ms * kMillisecond)) ++ok;
  }
  EXPECT_EQ(ok, 5 + 200);
}

TEST(HandshakeRateLimiter, RefillCapsAtBurst) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  // A long pause (without gc) refills only up to the burst, not 20 per elapsed second.
  EXPECT_EQ(allowed_in_a_row(rl, a, kT0 + 60 * kSecond), 5);
}

TEST(HandshakeRateLimiter, ClockGoingBackwardsGrantsNothing) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  EXPECT_FALSE(rl.allow(a, kT0 - 10 * kSecond));
  EXPECT_FALSE(rl.allow(a, kT0));
}

TEST(HandshakeRateLimiter, Ipv4AddressesAreIndependent) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  const IpAddr b = v4(192, 0, 2, 2);
  const IpAddr c = v4(198, 51, 100, 1);
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  EXPECT_FALSE(rl.allow(a, kT0));
  EXPECT_EQ(allowed_in_a_row(rl, b, kT0), 5);
  EXPECT_EQ(allowed_in_a_row(rl, c, kT0), 5);
  EXPECT_EQ(rl.size(), 3u);
}

TEST(HandshakeRateLimiter, Ipv6SameSlash64SharesBucket) {
  RL rl;
  const IpAddr a = v6(1, 1);
  const IpAddr b = v6(1, 0xbeef);  // same 2001:db8:1::/64, different interface id
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(rl.allow(a, kT0));
  EXPECT_EQ(allowed_in_a_row(rl, b, kT0), 2);
  EXPECT_FALSE(rl.allow(a, kT0));
  EXPECT_EQ(rl.size(), 1u);
}

TEST(HandshakeRateLimiter, Ipv6DifferentSlash64AreIndependent) {
  RL rl;
  const IpAddr a = v6(1, 1);
  const IpAddr b = v6(2, 1);  // 2001:db8:2::/64
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  EXPECT_EQ(allowed_in_a_row(rl, b, kT0), 5);
  EXPECT_EQ(rl.size(), 2u);
}

TEST(HandshakeRateLimiter, Ipv4AndIpv6WithSameLeadingBytesAreIndependent) {
  RL rl;
  // An IPv4 key is 4 bytes, an IPv6 key 8; the family keeps a v6 prefix whose first bytes
  // happen to spell an IPv4 address from sharing its bucket.
  const IpAddr a = v4(32, 1, 13, 184);
  uint8_t bytes[16] = {32, 1, 13, 184};
  const IpAddr b = IpAddr::v6(bytes);
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  EXPECT_EQ(allowed_in_a_row(rl, b, kT0), 5);
}

TEST(HandshakeRateLimiter, UnsetFamilyIsDenied) {
  RL rl;
  EXPECT_FALSE(rl.allow(IpAddr{}, kT0));
  EXPECT_EQ(rl.size(), 0u);
}

TEST(HandshakeRateLimiter, GcRemovesIdleEntriesOnly) {
  RL rl;
  const IpAddr idle = v4(192, 0, 2, 1);
  const IpAddr busy = v4(192, 0, 2, 2);
  ASSERT_TRUE(rl.allow(idle, kT0));
  ASSERT_TRUE(rl.allow(busy, kT0));
  ASSERT_TRUE(rl.allow(busy, kT0 + 500 * kMillisecond));
  rl.gc(kT0 + 999 * kMillisecond);
  EXPECT_EQ(rl.size(), 2u);  // nobody idle for a full second yet
  rl.gc(kT0 + kSecond);
  EXPECT_EQ(rl.size(), 1u);  // `idle` went; `busy` was seen 500 ms ago
  rl.gc(kT0 + 1500 * kMillisecond);
  EXPECT_EQ(rl.size(), 0u);
}

TEST(HandshakeRateLimiter, GcDoesNotResetAnActiveBucket) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  ASSERT_EQ(allowed_in_a_row(rl, a, kT0), 5);
  rl.gc(kT0 + 10 * kMillisecond);
  EXPECT_EQ(rl.size(), 1u);
  EXPECT_FALSE(rl.allow(a, kT0 + 10 * kMillisecond));
}

TEST(HandshakeRateLimiter, FullTableDeniesNewSourcesButServesKnownOnes) {
  RL rl(4);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(rl.allow(v4_from_index(i), kT0));
  EXPECT_FALSE(rl.allow(v4_from_index(100), kT0));
  EXPECT_FALSE(rl.allow(v4_from_index(101), kT0 + 500 * kMillisecond));
  EXPECT_EQ(rl.size(), 4u);
  EXPECT_TRUE(rl.allow(v4_from_index(0), kT0 + 500 * kMillisecond));  // known source still served
}

TEST(HandshakeRateLimiter, FullTableMakesRoomByCollectingIdleEntries) {
  RL rl(4);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(rl.allow(v4_from_index(i), kT0));
  ASSERT_TRUE(rl.allow(v4_from_index(3), kT0 + 600 * kMillisecond));  // keeps entry 3 fresh
  // At T0+1s entries 0..2 have been idle a full second: the inline sweep frees them.
  EXPECT_TRUE(rl.allow(v4_from_index(100), kT0 + kSecond));
  EXPECT_EQ(rl.size(), 2u);  // entry 3 and the newcomer
}

// Source number i as a distinct key: odd i an IPv4 address, even i its own IPv6 /64.
IpAddr distinct_source(uint32_t i) {
  if (i % 2) return v4_from_index(0x0a000000 + i);
  IpAddr a = v6(uint16_t(i >> 16), 1);
  a.bytes[6] = uint8_t(i >> 8);
  a.bytes[7] = uint8_t(i);
  return a;
}

TEST(HandshakeRateLimiter, BoundedUnderHundredThousandSources) {
  constexpr size_t kMax = 1024;
  constexpr Nanos kGap = 20'000;  // 100k sources over 2 s of fake time
  RL rl(kMax);
  size_t allowed = 0;
  for (uint32_t i = 0; i < 100000; ++i) {
    if (rl.allow(distinct_source(i), kT0 + Nanos{i} * kGap)) ++allowed;
    ASSERT_LE(rl.size(), kMax) << "after source " << i;
  }
  EXPECT_EQ(rl.size(), kMax);
  // The first kMax sources (admitted within ~20 ms) age out one second later, and the inline
  // sweep lets exactly kMax newcomers replace them; those are still fresh when the run ends.
  EXPECT_EQ(allowed, 2 * kMax);
  rl.gc(kT0 + 10 * kSecond);
  EXPECT_EQ(rl.size(), 0u);
}

TEST(HandshakeRateLimiter, ConcurrentCallersRespectTheBucket) {
  RL rl;
  const IpAddr a = v4(192, 0, 2, 1);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (rl.allow(a, kT0)) ok.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 5);  // same instant for everyone: exactly the burst, however interleaved
}

// would_allow() answers like allow() but spends nothing: the screening path peeks with it before
// paying for MACs, and only allow() charges.
TEST(HandshakeRateLimiter, WouldAllowPeeksWithoutCharging) {
  HandshakeRateLimiter rl;
  const IpAddr a = v4(192, 0, 2, 1);
  EXPECT_TRUE(rl.would_allow(a, 0));
  EXPECT_EQ(rl.size(), 0u);  // peeking creates no entry
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(rl.would_allow(a, 0));
  for (int i = 0; i < static_cast<int>(kHandshakeBurst); ++i) {
    EXPECT_TRUE(rl.would_allow(a, 0));
    EXPECT_TRUE(rl.allow(a, 0)) << i;
  }
  EXPECT_FALSE(rl.would_allow(a, 0));
  EXPECT_FALSE(rl.allow(a, 0));
  EXPECT_FALSE(rl.would_allow(a, HandshakeRateLimiter::kPacketCost - 1));
  EXPECT_TRUE(rl.would_allow(a, HandshakeRateLimiter::kPacketCost));
  EXPECT_TRUE(rl.would_allow(a, HandshakeRateLimiter::kPacketCost));  // still not spent
  EXPECT_TRUE(rl.allow(a, HandshakeRateLimiter::kPacketCost));
  EXPECT_FALSE(rl.would_allow(a, HandshakeRateLimiter::kPacketCost));
  EXPECT_TRUE(rl.would_allow(v4(192, 0, 2, 2), 0));  // other sources are unaffected
}

}  // namespace
}  // namespace xsktun::proto
