// Flipping any byte of any message makes its receive pipeline fail; hostile bytes never crash.
#include <gtest/gtest.h>

#include <random>

#include "test_peers.h"

namespace xsktun::testing {
namespace {

constexpr Nanos kNow = 500 * kSecond;
const Endpoint kSrc{*IpAddr::parse("198.51.100.7"), 4000};

// The responder's pipeline for an initiation while under load: the exact classification, mac1,
// mac2 (a cookie is required), then Noise.
bool accept_initiation(TestPeer& b, const std::vector<uint8_t>& bytes, Nanos now) {
  if (classify(bytes.data(), bytes.size()) != kMessageHandshakeInitiation) return false;
  if (b.checker.validate(bytes.data(), bytes.size(), kSrc, now) != MacState::kValidWithCookie) return false;
  auto msg = msg_from<MessageInitiation>(bytes);
  Handshake* found = nullptr;
  auto lookup = [&](const Key& k) { return k == b.hs.remote_static ? &b.hs : nullptr; };
  return consume_initiation(msg, b.id, lookup, now, &found) == HandshakeError::kOk;
}

// A cookie for `a` from `b`, obtained the way a real exchange does it.
void give_cookie(TestPeer& a, TestPeer& b, Nanos now) {
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 1);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
  a.maker.add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, now);
  MessageCookieReply reply;
  b.checker.create_reply(&reply, reinterpret_cast<uint8_t*>(&init), sizeof init, a.index, kSrc, now);
  ASSERT_TRUE(a.maker.consume_reply(reply, now));
}

TEST(Tamper, EveryByteOfInitiation) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  give_cookie(a, b, kNow);
  for (size_t i = 0; i < sizeof(MessageInitiation); ++i) {
    MessageInitiation init;
    uint8_t ts[kTimestampLen];
    timestamp_at(ts, static_cast<int64_t>(1000 + i));
    ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
    a.maker.add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, kNow);
    auto bytes = bytes_of(init);
    bytes[i] ^= 0x01;
    EXPECT_FALSE(accept_initiation(b, bytes, kNow + static_cast<Nanos>(i) * 25 * kMillisecond))
        << "byte " << i;
  }
  // Control: the untampered message is accepted.
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 5000);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
  a.maker.add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, kNow);
  EXPECT_TRUE(accept_initiation(b, bytes_of(init), kNow + 5 * kSecond));
}

TEST(Tamper, EveryByteOfResponse) {
  for (size_t i = 0; i <= sizeof(MessageResponse); ++i) {
    TestPeer a(1), b(2);
    a.pair_with(b);
    b.pair_with(a);
    give_cookie(b, a, kNow);  // a demands a cookie from b
    MessageInitiation init;
    uint8_t ts[kTimestampLen];
    timestamp_at(ts, 10);
    ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
    Handshake* found = nullptr;
    ASSERT_EQ(consume_initiation(
                  init, b.id, [&](const Key&) { return &b.hs; }, kNow, &found),
              HandshakeError::kOk);
    MessageResponse resp;
    ASSERT_EQ(create_response(&resp, b.hs, b.id, b.index), HandshakeError::kOk);
    b.maker.add_macs(reinterpret_cast<uint8_t*>(&resp), sizeof resp, kNow);
    auto bytes = bytes_of(resp);
    bool control = i == sizeof(MessageResponse);
    if (!control) bytes[i] ^= 0x80;
    bool ok = classify(bytes.data(), bytes.size()) == kMessageHandshakeResponse &&
              a.checker.validate(bytes.data(), bytes.size(), kSrc, kNow) == MacState::kValidWithCookie &&
              consume_response(msg_from<MessageResponse>(bytes), a.id, a.hs) == HandshakeError::kOk;
    EXPECT_EQ(ok, control) << "byte " << i;
  }
}

TEST(Tamper, EveryByteOfCookieReply) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  for (size_t i = 0; i <= sizeof(MessageCookieReply); ++i) {
    MessageInitiation init;
    uint8_t ts[kTimestampLen];
    timestamp_at(ts, 1);
    ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
    a.maker.add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, kNow);
    MessageCookieReply reply;
    b.checker.create_reply(&reply, reinterpret_cast<uint8_t*>(&init), sizeof init, a.index, kSrc, kNow);
    auto bytes = bytes_of(reply);
    bool control = i == sizeof(MessageCookieReply);
    if (!control) bytes[i] ^= 0x04;
    // The header and receiver index are checked by whoever routes the reply to the peer.
    bool routed = classify(bytes.data(), bytes.size()) == kMessageHandshakeCookie &&
                  msg_from<MessageCookieReply>(bytes).receiver_index == a.index;
    bool ok = routed && a.maker.consume_reply(msg_from<MessageCookieReply>(bytes), kNow);
    EXPECT_EQ(ok, control) << "byte " << i;
  }
}

TEST(Tamper, EveryByteOfDataMessage) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  MessageInitiation init;
  uint8_t ts[kTimestampLen];
  timestamp_at(ts, 1);
  ASSERT_EQ(create_initiation(&init, a.hs, a.id, a.index, ts), HandshakeError::kOk);
  Handshake* found = nullptr;
  ASSERT_EQ(consume_initiation(
                init, b.id, [&](const Key&) { return &b.hs; }, kNow, &found),
            HandshakeError::kOk);
  MessageResponse resp;
  ASSERT_EQ(create_response(&resp, b.hs, b.id, b.index), HandshakeError::kOk);
  auto kb = b.install(kNow);
  ASSERT_EQ(consume_response(resp, a.id, a.hs), HandshakeError::kOk);
  auto ka = a.install(kNow);
  const char payload[] = "0123456789abcdef0123456789abcdef!";
  std::vector<uint8_t> clean(sealed_len(sizeof payload, kDefaultMtu));
  ASSERT_GT(
      seal(*ka, reinterpret_cast<const uint8_t*>(payload), sizeof payload, kDefaultMtu, clean.data(), kNow),
      0u);
  for (size_t i = 0; i < clean.size(); ++i) {
    auto bytes = clean;
    bytes[i] ^= 0x10;
    size_t len = 0;
    bool ok = classify(bytes.data(), bytes.size()) == kMessageData &&
              reinterpret_cast<MessageData*>(bytes.data())->receiver_index == kb->local_index &&
              open(*kb, bytes.data(), bytes.size(), kNow, &len) == OpenResult::kOk;
    EXPECT_FALSE(ok) << "byte " << i;
  }
  size_t len = 0;
  EXPECT_EQ(open(*kb, clean.data(), clean.size(), kNow, &len), OpenResult::kOk);
  EXPECT_EQ(len, 48u);  // 34 bytes padded to 48
  EXPECT_EQ(std::memcmp(clean.data() + kDataHeaderLen, payload, sizeof payload), 0);
}

TEST(BadInput, ClassifyLengthsAndReservedBytes) {
  std::vector<uint8_t> buf(2048, 0);
  for (uint8_t type = 0; type < 8; ++type) {
    buf[0] = type;
    for (size_t len = 0; len < buf.size(); ++len) {
      MessageType t = classify(buf.data(), len);
      MessageType want = kMessageInvalid;
      if (type == 1 && len == 148) want = kMessageHandshakeInitiation;
      if (type == 2 && len == 92) want = kMessageHandshakeResponse;
      if (type == 3 && len == 64) want = kMessageHandshakeCookie;
      if (type == 4 && len >= 32) want = kMessageData;
      ASSERT_EQ(t, want) << "type " << int(type) << " len " << len;
    }
  }
  for (int r = 1; r < 4; ++r) {
    buf.assign(148, 0);
    buf[0] = 1;
    buf[r] = 1;
    EXPECT_EQ(classify(buf.data(), 148), kMessageInvalid);
  }
}

TEST(BadInput, RandomBytesNeverAccepted) {
  TestPeer a(1), b(2);
  a.pair_with(b);
  b.pair_with(a);
  std::mt19937 rng(1234);
  auto fill = [&](uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(rng());
  };
  for (int iter = 0; iter < 2000; ++iter) {
    MessageInitiation init;
    fill(reinterpret_cast<uint8_t*>(&init), sizeof init);
    Handshake* found = nullptr;
    EXPECT_NE(consume_initiation(
                  init, b.id, [&](const Key&) { return &b.hs; }, kNow, &found),
              HandshakeError::kOk);
    EXPECT_EQ(b.checker.validate(reinterpret_cast<uint8_t*>(&init), sizeof init, kSrc, kNow),
              MacState::kInvalid);
    MessageResponse resp;
    fill(reinterpret_cast<uint8_t*>(&resp), sizeof resp);
    EXPECT_NE(consume_response(resp, a.id, a.hs), HandshakeError::kOk);
    MessageCookieReply reply;
    fill(reinterpret_cast<uint8_t*>(&reply), sizeof reply);
    EXPECT_FALSE(a.maker.consume_reply(reply, kNow));
    // MAC validation on wrong sizes is refused outright.
    std::vector<uint8_t> junk(rng() % 300);
    fill(junk.data(), junk.size());
    if (junk.size() != 148 && junk.size() != 92) {
      EXPECT_EQ(b.checker.validate(junk.data(), junk.size(), kSrc, kNow), MacState::kInvalid);
    }
  }
}

TEST(BadInput, RandomDataMessagesNeverOpen) {
  TestPeer a(1), b(2);
  SessionKeys keys;
  crypto::random_bytes(keys.send.data(), 32);
  crypto::random_bytes(keys.recv.data(), 32);
  Keypair kp(keys, kNow);
  std::mt19937 rng(99);
  for (size_t len = 0; len < 300; ++len) {
    std::vector<uint8_t> m(len);
    for (auto& x : m) x = static_cast<uint8_t>(rng());
    size_t out = 0;
    OpenResult r = open(kp, m.data(), m.size(), kNow, &out);
    EXPECT_NE(r, OpenResult::kOk);
    if (len < kDataOverhead) {
      EXPECT_EQ(r, OpenResult::kMalformed);
    }
  }
}

}  // namespace
}  // namespace xsktun::testing
