// Two in-process peers run Noise_IKpsk2 and exchange data (whitepaper 5.4).
#include <gtest/gtest.h>

#include "test_peers.h"

namespace xsktun::testing {
namespace {

constexpr Nanos kT0 = 1000 * kSecond;
const Endpoint kSrcA{*IpAddr::parse("192.0.2.1"), 51820};

struct Handshook {
  std::shared_ptr<Keypair> ini, resp;
};

// Full exchange: A initiates, B responds; both derive keys. Asserts each step.
Handshook handshake(TestPeer& a, TestPeer& b, Nanos now, int64_t wall = 1700000000) {
  Handshook out;
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, wall);
  EXPECT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
  a.maker.add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, now);
  EXPECT_NE(b.checker.validate(reinterpret_cast<uint8_t*>(&init), sizeof init, kSrcA, now),
            MacState::kInvalid);
  Handshake* found = nullptr;
  auto lookup = [&](const Key& k) { return k == b.hs.remote_static ? &b.hs : nullptr; };
  EXPECT_EQ(consume_initiation(init, b.id, lookup, now, &found), HandshakeError::kOk);
  EXPECT_EQ(found, &b.hs);
  MessageResponse resp;
  EXPECT_EQ(create_response(&resp, b.hs, b.id, b.index), HandshakeError::kOk);
  b.maker.add_macs(reinterpret_cast<uint8_t*>(&resp), sizeof resp, now);
  out.resp = b.install(now);
  EXPECT_NE(a.checker.validate(reinterpret_cast<uint8_t*>(&resp), sizeof resp, kSrcA, now),
            MacState::kInvalid);
  EXPECT_EQ(consume_response(resp, a.id, a.hs), HandshakeError::kOk);
  out.ini = a.install(now);
  return out;
}

std::vector<uint8_t> seal_vec(Keypair& kp, const std::string& s, Nanos now) {
  std::vector<uint8_t> out(sealed_len(s.size(), kDefaultMtu));
  size_t n = seal(kp, reinterpret_cast<const uint8_t*>(s.data()), s.size(), kDefaultMtu, out.data(), now);
  out.resize(n);
  return out;
}

std::string open_str(Keypair& kp, std::vector<uint8_t> msg, Nanos now, OpenResult* r = nullptr) {
  size_t len = 0;
  OpenResult res = open(kp, msg.data(), msg.size(), now, &len);
  if (r) *r = res;
  if (res != OpenResult::kOk) return "<" + std::string(to_string(res)) + ">";
  std::string s(reinterpret_cast<char*>(msg.data() + kDataHeaderLen), len);
  return s.substr(0, s.find('\0'));
}

class NoiseTest : public ::testing::TestWithParam<bool> {};

TEST_P(NoiseTest, HandshakeThenDataBothWays) {
  TestPeer a(11), b(22);
  SecretKey psk;
  if (GetParam()) crypto::random_bytes(psk.data(), psk.size());
  a.pair_with(b, &psk);
  b.pair_with(a, &psk);
  auto h = handshake(a, b, kT0);
  ASSERT_TRUE(h.ini && h.resp);
  EXPECT_TRUE(h.ini->i_am_initiator);
  EXPECT_FALSE(h.resp->i_am_initiator);
  EXPECT_EQ(h.ini->remote_index, 22u);
  EXPECT_EQ(h.resp->remote_index, 11u);
  EXPECT_TRUE(h.ini->send_key.equals(h.resp->recv_key));
  EXPECT_TRUE(h.ini->recv_key.equals(h.resp->send_key));
  // The handshake state is wiped once the session is derived.
  EXPECT_EQ(a.hs.state, HandshakeState::kZeroed);
  EXPECT_TRUE(a.hs.ephemeral_private.is_zero());
  EXPECT_TRUE(a.hs.chaining_key.is_zero());

  EXPECT_EQ(open_str(*h.resp, seal_vec(*h.ini, "hello from a", kT0), kT0), "hello from a");
  EXPECT_EQ(open_str(*h.ini, seal_vec(*h.resp, "hello from b", kT0), kT0), "hello from b");
}
INSTANTIATE_TEST_SUITE_P(WithAndWithoutPsk, NoiseTest, ::testing::Bool());

TEST(Noise, PskMismatchNeverCompletes) {
  TestPeer a(1), b(2);
  SecretKey psk_a, psk_b;
  crypto::random_bytes(psk_a.data(), 32);
  crypto::random_bytes(psk_b.data(), 32);
  a.pair_with(b, &psk_a);
  b.pair_with(a, &psk_b);
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 5);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  Handshake* found = nullptr;
  ASSERT_EQ(consume_initiation(
                init, b.id, [&](const Key&) { return &b.hs; }, kT0, &found),
            HandshakeError::kOk);
  MessageResponse resp;
  ASSERT_EQ(create_response(&resp, b.hs, b.id, 2), HandshakeError::kOk);
  EXPECT_EQ(consume_response(resp, a.id, a.hs), HandshakeError::kDecrypt);
  EXPECT_EQ(a.hs.state, HandshakeState::kCreatedInitiation);
}

TEST(Noise, ReplayedInitiationRejected) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 100);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  Handshake* found = nullptr;
  auto lookup = [&](const Key&) { return &b.hs; };
  ASSERT_EQ(consume_initiation(init, b.id, lookup, kT0, &found), HandshakeError::kOk);
  // The same bytes again, long after the flood interval: the timestamp is not newer.
  EXPECT_EQ(consume_initiation(init, b.id, lookup, kT0 + 10 * kSecond, &found),
            HandshakeError::kStaleTimestamp);
  // An older timestamp too.
  timestamp_at(ts, 99);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  EXPECT_EQ(consume_initiation(init, b.id, lookup, kT0 + 20 * kSecond, &found),
            HandshakeError::kStaleTimestamp);
}

TEST(Noise, InitiationFloodLimitedTo50PerSecond) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  Handshake* found = nullptr;
  auto lookup = [&](const Key&) { return &b.hs; };
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 100);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  ASSERT_EQ(consume_initiation(init, b.id, lookup, kT0, &found), HandshakeError::kOk);
  timestamp_at(ts, 101);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  EXPECT_EQ(consume_initiation(init, b.id, lookup, kT0 + 19 * kMillisecond, &found), HandshakeError::kFlood);
  EXPECT_EQ(consume_initiation(init, b.id, lookup, kT0 + 20 * kMillisecond, &found), HandshakeError::kOk);
}

TEST(Noise, UnknownPeerAndNoIdentity) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 1);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  Handshake* found = nullptr;
  EXPECT_EQ(consume_initiation(
                init, b.id, [](const Key&) { return nullptr; }, kT0, &found),
            HandshakeError::kUnknownPeer);
  StaticIdentity empty;
  EXPECT_EQ(consume_initiation(
                init, empty, [&](const Key&) { return &b.hs; }, kT0, &found),
            HandshakeError::kNoIdentity);
}

// Points of small order on Curve25519: DH with them yields zero (whitepaper 5.4.2 requires
// rejecting it, kernel noise.c mix_dh).
const uint8_t kLowOrder[][32] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
     0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
};

TEST(Noise, LowOrderPeerKeyRejected) {
  TestPeer a(1);
  for (const auto& point : kLowOrder) {
    Handshake hs;
    std::memcpy(hs.remote_static.data(), point, 32);
    hs.precompute(a.id);
    EXPECT_TRUE(hs.precomputed_static_static.is_zero());
    MessageInitiation init;
    uint8_t ts[kTimestampLen];
    timestamp_at(ts, 1);
    EXPECT_NE(create_initiation(&init, hs, a.id, 1, ts), HandshakeError::kOk);
  }
}

TEST(Noise, LowOrderEphemeralInInitiationRejected) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 1);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  for (const auto& point : kLowOrder) {
    std::memcpy(init.unencrypted_ephemeral, point, 32);
    Handshake* found = nullptr;
    EXPECT_EQ(consume_initiation(
                  init, b.id, [&](const Key&) { return &b.hs; }, kT0, &found),
              HandshakeError::kBadDh);
  }
}

TEST(Noise, ResponseWithZeroDhRejected) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 1);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, 1, ts), HandshakeError::kOk);
  for (const auto& point : kLowOrder) {
    // A malicious responder answers with a low-order ephemeral: DH(e_i, e_r) is all zero.
    MessageResponse resp{};
    resp.header.type = kMessageHandshakeResponse;
    resp.sender_index = 2;
    resp.receiver_index = 1;
    std::memcpy(resp.unencrypted_ephemeral, point, 32);
    EXPECT_EQ(consume_response(resp, a.id, a.hs), HandshakeError::kBadDh);
    EXPECT_EQ(a.hs.state, HandshakeState::kCreatedInitiation);
  }
}

TEST(Noise, ResponseForWrongIndexOrStateRejected) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  MessageResponse resp{};
  EXPECT_EQ(consume_response(resp, a.id, a.hs), HandshakeError::kWrongState);  // nothing sent yet
  Handshook h = handshake(a, b, kT0);
  ASSERT_TRUE(h.ini);
  // Creating a response without a consumed initiation is refused.
  EXPECT_EQ(create_response(&resp, b.hs, b.id, 9), HandshakeError::kWrongState);
}

TEST(Noise, Tai64nIsBigEndianAndCoarse) {
  uint8_t a[kTimestampLen], b[kTimestampLen];
  tai64n(a, 0, 0);
  EXPECT_EQ(a[0], 0x40);
  EXPECT_EQ(a[7], 0x0a);
  tai64n(a, 1, 1000);
  tai64n(b, 1, 5'000'000);  // both round down to the same 2^24 ns bucket
  EXPECT_EQ(std::memcmp(a, b, kTimestampLen), 0);
  tai64n(b, 1, 20'000'000);
  EXPECT_LT(std::memcmp(a, b, kTimestampLen), 0);
}

}  // namespace
}  // namespace xsktun::testing
