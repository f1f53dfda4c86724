// Two complete devices in one process: handshake on demand, data both ways, allowed-IPs
// filtering, replay, roaming, timers, live peer changes, cookies under load.
#include <gtest/gtest.h>

#include <random>

#include "device_harness.h"

namespace xsktun::testing {
namespace {

using device::Counter;
using proto::kSecond;

struct DeviceTest : ::testing::Test {
  FakeClock clock;
  io::FakeNetwork net;
  Node a{net, "192.0.2.1", 51820, clock};
  Node b{net, "192.0.2.2", 51821, clock};

  void SetUp() override {
    ASSERT_EQ(add_peer(a, b, {"10.0.0.2/32", "fd00::2/128"}), 0);
    ASSERT_EQ(add_peer(b, a, {"10.0.0.1/32", "fd00::1/128"}), 0);
  }
  void run() { pump({&a, &b}); }
  std::vector<std::string> received(Node& n) {
    std::vector<std::string> out;
    for (auto& p : n.tun.take_written()) out.push_back(payload_of(p));
    return out;
  }
  // Completes a handshake with one delivered packet, then has `a` seal one data message per
  // payload while the network drops them: the messages to b, captured, for a test to replay.
  std::vector<io::Datagram> held_data_messages(std::initializer_list<const char*> payloads) {
    a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "warmup"));
    run();
    EXPECT_EQ(received(b).size(), 1u);
    net.clear_capture();
    net.set_drop(true);
    for (const char* s : payloads) a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", s));
    run();
    net.set_drop(false);
    std::vector<io::Datagram> d;
    for (auto& x : net.capture())
      if (x.to == b.udp->local() && x.bytes[0] == proto::kMessageData) d.push_back(x);
    return d;
  }
};

TEST_F(DeviceTest, HandshakeOnDemandThenDataBothWays) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "ping"));
  run();
  EXPECT_EQ(received(b), std::vector<std::string>{"ping"});
  EXPECT_EQ(a.counter(Counter::handshake_initiations_tx), 1u);
  EXPECT_EQ(b.counter(Counter::handshake_responses_tx), 1u);
  EXPECT_EQ(a.counter(Counter::handshakes_completed), 1u);
  EXPECT_EQ(b.counter(Counter::handshakes_completed), 1u);  // confirmed by the first data
  b.tun.inject(ipv4_packet("10.0.0.2", "10.0.0.1", "pong"));
  b.tun.inject(ipv6_packet("fd00::2", "fd00::1", "pong6"));
  run();
  EXPECT_EQ(received(a), (std::vector<std::string>{"pong", "pong6"}));
  EXPECT_EQ(a.counter(Counter::handshake_initiations_tx), 1u);  // no second handshake
  auto snap = a.dev->snapshot();
  ASSERT_EQ(snap.peers.size(), 1u);
  EXPECT_GT(snap.peers[0].rx_bytes, 0u);
  EXPECT_GT(snap.peers[0].tx_bytes, 0u);
  EXPECT_NE(snap.peers[0].last_handshake_sec, 0);
}

TEST_F(DeviceTest, ResponderInitiatesToo) {
  b.tun.inject(ipv6_packet("fd00::2", "fd00::1", "from b"));
  run();
  EXPECT_EQ(received(a), std::vector<std::string>{"from b"});
  EXPECT_EQ(b.counter(Counter::handshake_initiations_tx), 1u);
}

TEST_F(DeviceTest, SimultaneousInitiationResolvesOnRetry) {
  // Both sides initiate at once: each consumes the other's initiation, which supersedes its own,
  // so both responses are dropped (kernel behaviour). The jittered 5 s retries break the tie.
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "from a"));
  b.tun.inject(ipv4_packet("10.0.0.2", "10.0.0.1", "from b"));
  run();
  for (int i = 0; i < 3000; ++i) {  // 30 s in 10 ms steps
    clock.advance(10 * proto::kMillisecond);
    a.dev->tick();
    b.dev->tick();
    run();
    if (a.counter(Counter::handshakes_completed) && b.counter(Counter::handshakes_completed)) break;
  }
  EXPECT_GE(a.counter(Counter::handshakes_completed) + b.counter(Counter::handshakes_completed), 2u);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "after"));
  b.tun.inject(ipv4_packet("10.0.0.2", "10.0.0.1", "after"));
  run();
  auto ga = received(a), gb = received(b);
  EXPECT_NE(std::find(ga.begin(), ga.end(), "after"), ga.end());
  EXPECT_NE(std::find(gb.begin(), gb.end(), "after"), gb.end());
}

TEST_F(DeviceTest, WithPresharedKeyAndMismatch) {
  SecretKey psk, other;
  proto::crypto::random_bytes(psk.data(), 32);
  proto::crypto::random_bytes(other.data(), 32);
  ASSERT_EQ(add_peer(a, b, {}, true, &psk), 0);
  ASSERT_EQ(add_peer(b, a, {}, true, &psk), 0);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "psk"));
  run();
  EXPECT_EQ(received(b), std::vector<std::string>{"psk"});

  ASSERT_EQ(add_peer(b, a, {}, true, &other), 0);
  clock.advance(200 * kSecond);  // old sessions expire
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "never"));
  run();
  EXPECT_TRUE(received(b).empty());
  EXPECT_GE(a.counter(Counter::drop_handshake_failed), 1u);
}

TEST_F(DeviceTest, NoRouteAndDisallowedSourceAreCounted) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.9.9.9", "nowhere"));
  run();
  EXPECT_EQ(a.counter(Counter::drop_no_route), 1u);
  // A sends with a source B does not allow for it: B drops it after decrypting.
  ASSERT_EQ(add_peer(a, b, {"10.0.0.0/24"}), 0);
  a.tun.inject(ipv4_packet("10.0.0.77", "10.0.0.2", "spoofed"));
  run();
  EXPECT_TRUE(received(b).empty());
  EXPECT_EQ(b.counter(Counter::drop_disallowed_source), 1u);
}

TEST_F(DeviceTest, InnerPacketWhoseLengthLiesIsDropped) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "ok"));
  run();
  ASSERT_EQ(received(b).size(), 1u);
  auto bad = ipv4_packet("10.0.0.1", "10.0.0.2", "lying length");
  bad[2] = 0x0f;  // total length 4000 > packet
  a.tun.inject(bad);
  auto notip = ipv4_packet("10.0.0.1", "10.0.0.2", "x");
  notip[0] = 0x15;  // version 1
  run();
  EXPECT_TRUE(received(b).empty());
  EXPECT_EQ(b.counter(Counter::drop_inner_malformed), 1u);
}

TEST_F(DeviceTest, ReplayedDataDeliversNothing) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "once"));
  run();
  ASSERT_EQ(received(b).size(), 1u);
  for (const auto& d : net.capture())
    if (d.to == b.udp->local() && d.bytes[0] == proto::kMessageData) b.udp->inject(d.from, d.bytes);
  run();
  EXPECT_TRUE(received(b).empty());
  EXPECT_GE(b.counter(Counter::drop_replay), 1u);
}

// One receive batch mixing a run of good messages with a forgery, an unknown index and a replay:
// each is judged on its own (the run shares only the index lookup and the peer bookkeeping), and
// the good ones reach the TUN in order.
TEST_F(DeviceTest, MixedReceiveBatchJudgesEachMessage) {
  std::vector<io::Datagram> d = held_data_messages({"p0", "p1", "p2", "p3"});
  ASSERT_EQ(d.size(), 4u);
  auto forged = d[2].bytes;
  forged.back() ^= 1;
  auto unknown = d[1].bytes;
  unknown[4] ^= 0x5a;  // receiver index
  uint64_t rx_before = b.counter(Counter::rx_packets);
  for (const auto& bytes : {d[0].bytes, d[1].bytes, forged, unknown, d[2].bytes, d[1].bytes, d[3].bytes})
    b.udp->inject(d[0].from, bytes);
  receive_only(b);
  EXPECT_EQ(received(b), (std::vector<std::string>{"p0", "p1", "p2", "p3"}));
  EXPECT_EQ(b.counter(Counter::rx_packets) - rx_before, 4u);
  EXPECT_EQ(b.counter(Counter::drop_decrypt), 1u);
  EXPECT_EQ(b.counter(Counter::drop_unknown_index), 1u);
  EXPECT_EQ(b.counter(Counter::drop_replay), 1u);
}

// The replay window moves once per run of messages to one index (one lock), so a duplicate
// inside the run must still be caught, and a forgery carrying a genuine message's counter must
// not use that counter up before the genuine one, later in the same run, is judged.
TEST_F(DeviceTest, ReplayWindowJudgesDuplicatesWithinOneRun) {
  std::vector<io::Datagram> d = held_data_messages({"q0", "q1", "q2"});
  ASSERT_EQ(d.size(), 3u);
  auto forged = d[1].bytes;  // same index and counter as d[1], wrong tag
  forged.back() ^= 1;
  uint64_t rx_before = b.counter(Counter::rx_packets);
  for (const auto& bytes : {d[0].bytes, d[0].bytes, forged, d[1].bytes, d[2].bytes, d[1].bytes})
    b.udp->inject(d[0].from, bytes);
  receive_only(b);
  EXPECT_EQ(received(b), (std::vector<std::string>{"q0", "q1", "q2"}));
  EXPECT_EQ(b.counter(Counter::rx_packets) - rx_before, 3u);
  EXPECT_EQ(b.counter(Counter::drop_decrypt), 1u);
  EXPECT_EQ(b.counter(Counter::drop_replay), 2u);
}

TEST_F(DeviceTest, GarbageIsCountedAndTunnelContinues) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "before"));
  run();
  ASSERT_EQ(received(b).size(), 1u);
  std::mt19937 rng(7);
  Endpoint evil{*IpAddr::parse("203.0.113.9"), 666};
  for (int len = 0; len < 300; ++len) {
    std::vector<uint8_t> junk(len);
    for (auto& x : junk) x = static_cast<uint8_t>(rng());
    if (len > 0) junk[0] = static_cast<uint8_t>(1 + len % 4);
    if (len >= 4) junk[1] = junk[2] = junk[3] = 0;
    b.udp->inject(evil, junk);
  }
  run();
  uint64_t dropped = b.counter(Counter::drop_malformed) + b.counter(Counter::drop_bad_mac) +
                     b.counter(Counter::drop_unknown_index) + b.counter(Counter::drop_cookie_invalid);
  EXPECT_EQ(dropped, 300u);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "after"));
  run();
  EXPECT_EQ(received(b), std::vector<std::string>{"after"});
}

TEST_F(DeviceTest, EndpointRoamsToLastAuthenticatedSource) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "one"));
  run();
  ASSERT_EQ(received(b).size(), 1u);
  ASSERT_EQ(a.udp->set_address(*IpAddr::parse("198.51.100.50")), 0);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "from new address"));
  run();
  EXPECT_EQ(received(b), std::vector<std::string>{"from new address"});
  auto snap = b.dev->snapshot();
  ASSERT_TRUE(snap.peers[0].endpoint);
  EXPECT_EQ(snap.peers[0].endpoint->addr.str(), "198.51.100.50");
  b.tun.inject(ipv4_packet("10.0.0.2", "10.0.0.1", "reply follows"));
  run();
  EXPECT_EQ(received(a), std::vector<std::string>{"reply follows"});
}

TEST_F(DeviceTest, KeepaliveAfterTenSecondsOfOneWayData) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "x"));
  run();
  uint64_t before = b.counter(Counter::keepalives_tx);
  clock.advance(9 * kSecond);
  b.dev->tick();
  EXPECT_EQ(b.counter(Counter::keepalives_tx), before);
  clock.advance(1 * kSecond + 1);
  b.dev->tick();
  EXPECT_EQ(b.counter(Counter::keepalives_tx), before + 1);
  run();
  EXPECT_GE(a.counter(Counter::keepalives_rx), 1u);
}

TEST_F(DeviceTest, RekeyAfter120SecondsAndRetryWhenUnanswered) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "x"));
  run();
  clock.advance(121 * kSecond);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "y"));
  run();
  EXPECT_EQ(received(b), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(a.counter(Counter::handshake_initiations_tx), 2u);
  EXPECT_EQ(a.counter(Counter::handshakes_completed), 2u);
  // Now B is gone: A retries every 5 s.
  net.set_drop(true);
  clock.advance(121 * kSecond);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "z"));
  run();
  uint64_t sent = a.counter(Counter::handshake_initiations_tx);
  for (int i = 0; i < 3; ++i) {
    clock.advance(5 * kSecond + kSecond / 2);
    a.dev->tick();
  }
  EXPECT_EQ(a.counter(Counter::handshake_initiations_tx), sent + 3);
}

TEST_F(DeviceTest, RemovePeerStopsTrafficReAddResumes) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "1"));
  run();
  ASSERT_EQ(received(b).size(), 1u);
  ASSERT_EQ(remove_peer(b, a), 0);
  EXPECT_EQ(b.dev->peer_count(), 0u);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "2"));
  run();
  EXPECT_TRUE(received(b).empty());
  EXPECT_GE(b.counter(Counter::drop_unknown_index), 1u);
  ASSERT_EQ(add_peer(b, a, {"10.0.0.1/32"}), 0);
  // A still holds its old session, which B forgot: data sent without any authenticated reply
  // makes A start a new handshake after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (whitepaper 6.5).
  clock.advance(16 * kSecond);
  a.dev->tick();
  run();
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "3"));
  run();
  EXPECT_EQ(received(b), std::vector<std::string>{"3"});
}

TEST_F(DeviceTest, StagedQueueIsBounded) {
  net.set_drop(true);
  for (int i = 0; i < proto::kMaxStagedPackets + 10; ++i)
    a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "s"));
  run();
  EXPECT_EQ(a.counter(Counter::drop_staged_full), 10u);
  net.set_drop(false);
  clock.advance(6 * kSecond);
  a.dev->tick();
  run();
  EXPECT_EQ(received(b).size(), static_cast<size_t>(proto::kMaxStagedPackets));
}

TEST_F(DeviceTest, UnderLoadRealPeerCompletesThroughCookie) {
  // Flood B with (invalid-mac) initiations so its queue is deep: B is under load.
  std::vector<uint8_t> junk(sizeof(proto::MessageInitiation), 0);
  junk[0] = 1;
  Endpoint evil{*IpAddr::parse("203.0.113.9"), 666};
  for (int i = 0; i < proto::kMaxQueuedIncomingHandshakes / 4; ++i) b.udp->inject(evil, junk);
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "via cookie"));
  pump({&a}, 1);    // A sends its initiation behind the junk
  receive_only(b);  // B's receive thread outpaces its handshake worker: the queue is deep
  run();
  EXPECT_GE(b.counter(Counter::cookie_replies_tx), 1u);
  EXPECT_GE(a.counter(Counter::cookie_replies_rx), 1u);
  // A retries with a mac2 after REKEY_TIMEOUT; B (still under load for 1 s) accepts it.
  clock.advance(5 * kSecond + kSecond / 2);
  for (int i = 0; i < proto::kMaxQueuedIncomingHandshakes / 4; ++i) b.udp->inject(evil, junk);
  a.dev->tick();
  receive_only(b);
  run();
  EXPECT_EQ(received(b), std::vector<std::string>{"via cookie"});
  EXPECT_GE(b.counter(Counter::drop_bad_mac), static_cast<uint64_t>(proto::kMaxQueuedIncomingHandshakes / 2));
}

// Under load the receive path answers missing cookies itself, at most 20/s (burst 5) per source:
// a flood replaying a real initiation from its own address gets 5 replies, the real peer still
// gets its own, and none of it waits in the handshake queue.
TEST_F(DeviceTest, UnderLoadCookieRepliesAreLimitedPerSource) {
  std::vector<uint8_t> junk(sizeof(proto::MessageInitiation), 0);
  junk[0] = 1;
  Endpoint evil{*IpAddr::parse("203.0.113.9"), 666};
  for (int i = 0; i < proto::kMaxQueuedIncomingHandshakes / 4; ++i) b.udp->inject(evil, junk);
  receive_only(b);  // the queue is deep now: B is under load
  net.clear_capture();
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "x"));
  pump({&a}, 1);  // A's initiation (valid mac1, no cookie yet) is on its way to B
  std::vector<uint8_t> init;
  for (auto& d : net.capture())
    if (d.to == b.udp->local() && d.bytes[0] == proto::kMessageHandshakeInitiation) init = d.bytes;
  ASSERT_EQ(init.size(), sizeof(proto::MessageInitiation));
  Endpoint replayer{*IpAddr::parse("198.51.100.7"), 4444};
  for (int i = 0; i < 20; ++i) b.udp->inject(replayer, init);  // valid mac1, wrong source for mac2
  uint64_t limited = b.counter(Counter::drop_handshake_ratelimited);
  receive_only(b);
  EXPECT_EQ(b.counter(Counter::cookie_replies_tx), 1u + proto::kHandshakeBurst);
  EXPECT_EQ(b.counter(Counter::drop_handshake_ratelimited) - limited, 20u - proto::kHandshakeBurst);
  pump({&a}, 1);
  EXPECT_EQ(a.counter(Counter::cookie_replies_rx), 1u);  // A got the one addressed to it

  // The replayer's budget is spent: its next message is dropped before any MAC is computed
  // (so it counts as rate-limited even though its MAC1 is bad); a fresh source's bad MAC1 is
  // still checked and counted as a bad MAC.
  uint64_t bad = b.counter(Counter::drop_bad_mac);
  limited = b.counter(Counter::drop_handshake_ratelimited);
  b.udp->inject(replayer, junk);
  b.udp->inject(Endpoint{*IpAddr::parse("198.51.100.8"), 4444}, junk);
  receive_only(b);
  EXPECT_EQ(b.counter(Counter::drop_handshake_ratelimited) - limited, 1u);
  EXPECT_EQ(b.counter(Counter::drop_bad_mac) - bad, 1u);
}

TEST_F(DeviceTest, LowOrderPeerIsNeverSentAnything) {
  Node c{net, "192.0.2.3", 51822, clock};
  Key low{};  // the all-zero point
  control::ConfigChange ch;
  control::PeerChange p;
  p.public_key = low;
  p.endpoint = c.udp->local();
  p.allowed_ips.push_back(*Prefix::parse("10.7.0.0/16"));
  ch.peers.push_back(p);
  std::string err;
  ASSERT_EQ(a.dev->apply(ch, &err), 0);
  net.clear_capture();
  a.tun.inject(ipv4_packet("10.0.0.1", "10.7.0.1", "x"));
  run();
  clock.advance(6 * kSecond);
  a.dev->tick();
  run();
  for (const auto& d : net.capture()) EXPECT_FALSE(d.to == c.udp->local());
}

TEST_F(DeviceTest, PrivateKeyChangeDropsSessions) {
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "1"));
  run();
  ASSERT_EQ(received(b).size(), 1u);
  SecretKey np;
  proto::crypto::generate_private(np);
  control::ConfigChange c;
  c.private_key = np;
  std::string err;
  ASSERT_EQ(a.dev->apply(c, &err), 0);
  clock.advance(6 * kSecond);  // past the 5 s initiation guard
  a.tun.inject(ipv4_packet("10.0.0.1", "10.0.0.2", "2"));
  run();
  EXPECT_TRUE(received(b).empty());  // B does not know A's new key
  EXPECT_GE(b.counter(Counter::drop_handshake_failed), 1u);
}

}  // namespace
}  // namespace xsktun::testing
