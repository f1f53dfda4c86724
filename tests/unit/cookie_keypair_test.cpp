// Cookie replies and MAC2 (whitepaper 5.4.7); keypair slots, padding, counter and age limits (5.4.6, 6).
#include <gtest/gtest.h>

#include "test_peers.h"

namespace xsktun::testing {
namespace {

constexpr Nanos kNow = 10'000 * kSecond;
const Endpoint kA{*IpAddr::parse("192.0.2.1"), 1000};
const Endpoint kA2{*IpAddr::parse("192.0.2.1"), 1001};
const Endpoint kB{*IpAddr::parse("192.0.2.2"), 1000};
const Endpoint kV6{*IpAddr::parse("2001:db8::1"), 1000};

struct CookieFixture : ::testing::Test {
  TestPeer a{1}, b{2};
  MessageInitiation init;
  void SetUp() override {
    a.pair_with(b);
    b.pair_with(a);
    fresh_initiation(kNow);
  }
  void fresh_initiation(Nanos now) {
    uint8_t ts[kTimestampLen];
    timestamp_at(ts, 1);
    ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
    a.maker.add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, now);
  }
  MacState check(const Endpoint& src, Nanos now) {
    return b.checker.validate(reinterpret_cast<uint8_t*>(&init), sizeof init, src, now);
  }
  bool get_cookie_for(const Endpoint& src, Nanos now) {
    MessageCookieReply reply;
    b.checker.create_reply(&reply, reinterpret_cast<uint8_t*>(&init), sizeof init, a.index, src, now);
    return a.maker.consume_reply(reply, now);
  }
};

TEST_F(CookieFixture, Mac2OnlyValidForTheAddressAndPortItWasMadeFor) {
  EXPECT_EQ(check(kA, kNow), MacState::kValidNoCookie);
  ASSERT_TRUE(get_cookie_for(kA, kNow));
  fresh_initiation(kNow);
  EXPECT_EQ(check(kA, kNow), MacState::kValidWithCookie);
  EXPECT_EQ(check(kA2, kNow), MacState::kValidNoCookie);
  EXPECT_EQ(check(kB, kNow), MacState::kValidNoCookie);
  EXPECT_EQ(check(kV6, kNow), MacState::kValidNoCookie);
}

TEST_F(CookieFixture, Mac2AnyBitFlipBreaksIt) {
  ASSERT_TRUE(get_cookie_for(kA, kNow));
  fresh_initiation(kNow);
  auto* raw = reinterpret_cast<uint8_t*>(&init);
  for (size_t bit = 0; bit < kMacLen * 8; ++bit) {
    raw[mac2_offset<MessageInitiation>() + bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(check(kA, kNow), MacState::kValidNoCookie) << bit;
    raw[mac2_offset<MessageInitiation>() + bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
  EXPECT_EQ(check(kA, kNow), MacState::kValidWithCookie);
}

TEST_F(CookieFixture, ReplyOnlyAcceptedForTheMac1WeSent) {
  MessageCookieReply reply;
  b.checker.create_reply(&reply, reinterpret_cast<uint8_t*>(&init), sizeof init, a.index, kA, kNow);
  fresh_initiation(kNow);  // a new mac1 has been sent since: the reply is bound to the old one
  EXPECT_FALSE(a.maker.consume_reply(reply, kNow));
  CookieMaker fresh;
  fresh.set_remote_public_key(b.id.public_key);
  EXPECT_FALSE(fresh.consume_reply(reply, kNow));  // never sent anything
  ASSERT_TRUE(get_cookie_for(kA, kNow));
  EXPECT_FALSE(get_cookie_for(kA, kNow));  // one reply per mac1
}

TEST_F(CookieFixture, SecretRotatesAndCookieExpires) {
  ASSERT_TRUE(get_cookie_for(kA, kNow));
  EXPECT_TRUE(a.maker.has_cookie(kNow + 114 * kSecond));
  EXPECT_FALSE(a.maker.has_cookie(kNow + 115 * kSecond));  // 120 s minus 5 s latency
  fresh_initiation(kNow + 114 * kSecond);
  EXPECT_EQ(check(kA, kNow + 119 * kSecond), MacState::kValidWithCookie);
  // Once the responder's secret is older than 120 s it is replaced: old cookies stop working.
  EXPECT_EQ(check(kA, kNow + 121 * kSecond), MacState::kValidNoCookie);
}

TEST_F(CookieFixture, Mac1WrongKeyOrAnyFlipInvalid) {
  TestPeer c(3);
  EXPECT_EQ(c.checker.validate(reinterpret_cast<uint8_t*>(&init), sizeof init, kA, kNow), MacState::kInvalid);
  auto* raw = reinterpret_cast<uint8_t*>(&init);
  for (size_t i = 0; i < mac2_offset<MessageInitiation>(); ++i) {
    raw[i] ^= 0x20;
    EXPECT_EQ(check(kA, kNow), MacState::kInvalid) << i;
    raw[i] ^= 0x20;
  }
}

SessionKeys random_keys(bool initiator, uint32_t local, uint32_t remote) {
  SessionKeys k;
  crypto::random_bytes(k.send.data(), 32);
  crypto::random_bytes(k.recv.data(), 32);
  k.i_am_initiator = initiator;
  k.local_index = local;
  k.remote_index = remote;
  return k;
}

TEST(Keypair, PaddingToSixteenNeverPastMtu) {
  EXPECT_EQ(padded_len(0, 1420), 0u);  // keepalive
  EXPECT_EQ(padded_len(1, 1420), 16u);
  EXPECT_EQ(padded_len(16, 1420), 16u);
  EXPECT_EQ(padded_len(17, 1420), 32u);
  EXPECT_EQ(padded_len(1400, 1420), 1408u);
  EXPECT_EQ(padded_len(1410, 1420), 1420u);  // 1424 would pass the MTU
  EXPECT_EQ(padded_len(1417, 1420), 1420u);  // 1424 would pass the MTU
  EXPECT_EQ(padded_len(1420, 1420), 1420u);
  EXPECT_EQ(sealed_len(0, 1420), 32u);
}

TEST(Keypair, CounterExhaustionStopsSending) {
  Keypair kp(random_keys(true, 1, 2), kNow);
  uint8_t out[64];
  kp.send_counter = kRejectAfterMessages - 1;
  uint64_t used = 0;
  EXPECT_EQ(seal(kp, nullptr, 0, 1420, out, kNow, &used), 32u);
  EXPECT_EQ(used, kRejectAfterMessages - 1);
  EXPECT_EQ(seal(kp, nullptr, 0, 1420, out, kNow), 0u);
  EXPECT_EQ(seal(kp, nullptr, 0, 1420, out, kNow), 0u);
  EXPECT_FALSE(kp.can_send(kNow));
}

// A run's counters come from one reservation: consecutive, never shared with another run, and
// clipped at REJECT_AFTER_MESSAGES (the device counts the clipped packets as drop_keypair_expired).
TEST(Keypair, SendCounterReservationsAreDisjointAndClippedAtTheLimit) {
  Keypair kp(random_keys(true, 1, 2), kNow);
  uint64_t a = 0, b = 0;
  EXPECT_EQ(reserve_send_counters(kp, 64, kNow, &a), 64u);
  EXPECT_EQ(reserve_send_counters(kp, 10, kNow, &b), 10u);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 64u);
  kp.send_counter = kRejectAfterMessages - 3;
  EXPECT_EQ(reserve_send_counters(kp, 10, kNow, &a), 3u);
  EXPECT_EQ(a, kRejectAfterMessages - 3);
  EXPECT_EQ(reserve_send_counters(kp, 1, kNow, &a), 0u);
  EXPECT_EQ(reserve_send_counters(kp, 5, kNow + kRejectAfterTime, &a), 0u);
  // seal_at with a reserved counter writes it into the header.
  uint8_t out[64];
  kp.send_counter = 0;
  ASSERT_EQ(reserve_send_counters(kp, 1, kNow, &a), 1u);
  EXPECT_EQ(seal_at(kp, a, nullptr, 0, 1420, out), 32u);
  uint64_t wire = 0;
  std::memcpy(&wire, out + 8, 8);
  EXPECT_EQ(le64(wire), a);
}

TEST(Keypair, RejectAfterTime) {
  SessionKeys k = random_keys(true, 1, 2);
  Keypair tx(k, kNow);
  std::swap(k.send, k.recv);
  Keypair rx(k, kNow);
  uint8_t msg[64];
  ASSERT_EQ(seal(tx, nullptr, 0, 1420, msg, kNow + 179 * kSecond), 32u);
  size_t len = 0;
  EXPECT_EQ(open(rx, msg, 32, kNow + 180 * kSecond, &len), OpenResult::kExpired);
  EXPECT_EQ(open(rx, msg, 32, kNow + 179 * kSecond, &len), OpenResult::kOk);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(seal(tx, nullptr, 0, 1420, msg, kNow + 180 * kSecond), 0u);
}

TEST(Keypair, ReplayWindowUpdatedOnlyAfterAuthentication) {
  SessionKeys k = random_keys(true, 1, 2);
  Keypair tx(k, kNow);
  std::swap(k.send, k.recv);
  Keypair rx(k, kNow);
  uint8_t good[64], forged[64];
  ASSERT_EQ(seal(tx, nullptr, 0, 1420, good, kNow), 32u);
  std::memcpy(forged, good, 32);
  forged[20] ^= 1;  // same counter, bad tag
  size_t len = 0;
  EXPECT_EQ(open(rx, forged, 32, kNow, &len), OpenResult::kAuthFailed);
  uint8_t copy[64];
  std::memcpy(copy, good, 32);
  EXPECT_EQ(open(rx, good, 32, kNow, &len), OpenResult::kOk);  // the forgery did not burn counter 0
  EXPECT_EQ(open(rx, copy, 32, kNow, &len), OpenResult::kReplay);
}

TEST(Keypairs, ResponderKeypairConfirmedByFirstData) {
  Keypairs slots;
  auto first = std::make_shared<Keypair>(random_keys(true, 1, 2), kNow);
  slots.add(first);
  EXPECT_EQ(slots.current(), first);
  auto resp = std::make_shared<Keypair>(random_keys(false, 3, 4), kNow);
  auto dropped = slots.add(resp);
  EXPECT_EQ(slots.next(), resp);
  EXPECT_EQ(slots.current(), first);  // still sending with the old one
  EXPECT_EQ(slots.previous(), nullptr);
  std::shared_ptr<Keypair> gone;
  EXPECT_FALSE(slots.received_with(first.get(), &gone));
  EXPECT_TRUE(slots.received_with(resp.get(), &gone));
  EXPECT_EQ(slots.current(), resp);
  EXPECT_EQ(slots.previous(), first);
  EXPECT_EQ(slots.next(), nullptr);
  EXPECT_FALSE(slots.received_with(resp.get(), &gone));  // only once
}

TEST(Keypairs, InitiatorRotationAndClear) {
  Keypairs slots;
  auto k1 = std::make_shared<Keypair>(random_keys(true, 1, 2), kNow);
  auto k2 = std::make_shared<Keypair>(random_keys(true, 3, 4), kNow);
  auto k3 = std::make_shared<Keypair>(random_keys(true, 5, 6), kNow);
  slots.add(k1);
  slots.add(k2);
  EXPECT_EQ(slots.previous(), k1);
  EXPECT_EQ(slots.current(), k2);
  auto d = slots.add(k3);
  EXPECT_EQ(d.a, k1);  // fell out of previous: its index must be freed
  EXPECT_EQ(slots.previous(), k2);
  EXPECT_EQ(slots.current(), k3);
  auto all = slots.clear();
  EXPECT_EQ(all[0], k2);
  EXPECT_EQ(all[1], k3);
  EXPECT_EQ(slots.current(), nullptr);
}

}  // namespace
}  // namespace xsktun::testing
