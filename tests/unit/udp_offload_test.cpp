// UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO) inside io::UdpSocket, on loopback (no root needed).
// Callers must see exactly the datagrams that were sent, in order, whether or not the kernel
// coalesced them; the offload counters show that the offloads really carried the traffic.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "batch_util.h"
#include "xsktun/io/udp_socket.h"

namespace xsktun::io {
namespace {

using Bytes = std::vector<uint8_t>;

using test_util::Batch;
using test_util::recv_n;

// A datagram whose every byte depends on its tag, so reordering or a wrong split shows up.
Bytes payload(size_t tag, size_t len) {
  Bytes b(len);
  for (size_t j = 0; j < len; ++j) b[j] = static_cast<uint8_t>(tag * 31 + j * 7);
  return b;
}

// Ensures an unset XSKTUN_UDP_OFFLOAD around each test, whatever the caller's environment. A lost
// datagram would leave recv_batch blocked forever: a SIGALRM watchdog turns that into a failure.
class UdpOffload : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    alarm(60);
    unsetenv("XSKTUN_UDP_OFFLOAD");
    a = UdpSocket::open(0);
    b = UdpSocket::open(0);
    ASSERT_TRUE(a && b);
    if (std::string(GetParam()) == "[::1]") {
      Batch probe(1);
      probe.set(0, {1}, to(*b));
      if (a->send_batch(probe.bufs) != 1) GTEST_SKIP() << "no usable ::1 on this host";
      ASSERT_EQ(recv_n(*b, 1).size(), 1u);
    }
  }
  void TearDown() override { alarm(0); }
  Endpoint to(const UdpSocket& s) const {
    return *Endpoint::parse(std::string(GetParam()) + ":" + std::to_string(s.port()));
  }
  std::unique_ptr<UdpSocket> a, b;
};

TEST_P(UdpOffload, BothOffloadsAreOnByDefault) {
  // Linux >= 5.0 supports both; this machine's kernel does.
  EXPECT_TRUE(a->gso_enabled());
  EXPECT_TRUE(b->gro_enabled());
}

TEST_P(UdpOffload, TwoHundredEqualDatagramsArriveIntactAndInOrder) {
  constexpr size_t kN = 200;
  Batch out(kN);
  for (size_t i = 0; i < kN; ++i) out.set(i, payload(i, 1200), to(*b));
  ASSERT_EQ(a->send_batch(out.bufs), static_cast<int>(kN));
  if (a->gso_enabled()) {
    EXPECT_GE(a->gso_sends(), 4u);  // at most 63 segments per message
    EXPECT_LE(a->gso_sends(), 8u);
  }
  auto got = recv_n(*b, kN);
  ASSERT_EQ(got.size(), kN);
  for (size_t i = 0; i < kN; ++i) {
    EXPECT_EQ(got[i].first, to(*a)) << i;
    EXPECT_EQ(got[i].second, payload(i, 1200)) << i;
  }
  if (b->gro_enabled() && a->gso_enabled()) {
    EXPECT_GT(b->gro_receives(), 0u);
  }
  EXPECT_EQ(a->send_errors(), 0u);
  EXPECT_EQ(b->truncated(), 0u);
}

TEST_P(UdpOffload, MixedSizesAndEndpointsInOneBatch) {
  auto c = UdpSocket::open(0);
  ASSERT_TRUE(c);
  // (receiver, size) in send order: runs that end with a shorter datagram, a larger one that
  // must start a new run, interleaved endpoints, tiny and empty datagrams, and a datagram with
  // no endpoint in the middle of a run.
  struct Item {
    UdpSocket* dst;
    size_t len;
  };
  std::vector<Item> items;
  for (int i = 0; i < 5; ++i) items.push_back({b.get(), 1000});
  items.push_back({b.get(), 500});
  items.push_back({b.get(), 1000});
  for (int i = 0; i < 3; ++i) items.push_back({c.get(), 1000});
  items.push_back({b.get(), 1000});
  items.push_back({b.get(), 1400});
  for (int i = 0; i < 4; ++i) items.push_back({b.get(), 300});
  items.push_back({nullptr, 300});
  for (int i = 0; i < 2; ++i) items.push_back({b.get(), 300});
  items.push_back({c.get(), 0});
  for (int i = 0; i < 6; ++i) items.push_back({c.get(), 32});
  for (int i = 0; i < 70; ++i) items.push_back({c.get(), 700});  // longer than one GSO message
  Batch out(items.size());
  std::vector<Bytes> want_b, want_c;
  for (size_t i = 0; i < items.size(); ++i) {
    Bytes p = payload(i, items[i].len);
    out.set(i, p, items[i].dst ? to(*items[i].dst) : Endpoint{});
    if (items[i].dst == b.get()) want_b.push_back(p);
    if (items[i].dst == c.get()) want_c.push_back(p);
  }
  EXPECT_EQ(a->send_batch(out.bufs), static_cast<int>(items.size() - 1));
  EXPECT_EQ(a->send_errors(), 1u);
  auto got_b = recv_n(*b, want_b.size());
  auto got_c = recv_n(*c, want_c.size());
  ASSERT_EQ(got_b.size(), want_b.size());
  ASSERT_EQ(got_c.size(), want_c.size());
  for (size_t i = 0; i < want_b.size(); ++i) EXPECT_EQ(got_b[i].second, want_b[i]) << "b " << i;
  for (size_t i = 0; i < want_c.size(); ++i) EXPECT_EQ(got_c[i].second, want_c[i]) << "c " << i;
  for (auto& g : got_c) EXPECT_EQ(g.first, to(*a));
}

TEST_P(UdpOffload, GroRemainderIsDeliveredOnTheNextCalls) {
  constexpr size_t kN = 10;
  Batch out(kN);
  for (size_t i = 0; i < kN; ++i) out.set(i, payload(i, i + 1 == kN ? 400 : 1000), to(*b));
  ASSERT_EQ(a->send_batch(out.bufs), static_cast<int>(kN));
  if (a->gso_enabled()) {
    EXPECT_EQ(a->gso_sends(), 1u);
  }
  Batch in(3);
  std::vector<int> counts;
  std::vector<Bytes> got;
  while (got.size() < kN) {
    in.reset();
    int n = b->recv_batch(in.bufs);
    ASSERT_GT(n, 0);
    counts.push_back(n);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(in.bufs[i].endpoint, to(*a));
      got.push_back(in.get(i));
    }
  }
  ASSERT_EQ(got.size(), kN);
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(got[i], payload(i, i + 1 == kN ? 400 : 1000)) << i;
  EXPECT_EQ(counts, (std::vector<int>{3, 3, 3, 1}));  // loopback queued all ten at once
  if (a->gso_enabled() && b->gro_enabled()) {
    EXPECT_EQ(b->gro_receives(), 1u);
  }
}

TEST_P(UdpOffload, GroSegmentsAreHandedOutInPlaceNotCopied) {
  if (!a->gso_enabled() || !b->gro_enabled()) GTEST_SKIP() << "no UDP GSO/GRO here";
  constexpr size_t kN = 8;
  Batch out(kN);
  for (size_t i = 0; i < kN; ++i) out.set(i, payload(i, 700), to(*b));
  ASSERT_EQ(a->send_batch(out.bufs), static_cast<int>(kN));
  Batch in(kN);
  ASSERT_EQ(b->recv_batch(in.bufs), static_cast<int>(kN));
  ASSERT_EQ(b->gro_receives(), 1u);
  for (size_t i = 0; i < kN; ++i) {
    EXPECT_FALSE(in.owns(in.bufs[i].data)) << i;                 // the socket's receive memory, no copy
    EXPECT_EQ(in.bufs[i].data, in.bufs[0].data + i * 700) << i;  // segments of one datagram
    EXPECT_EQ(in.bufs[i].cap, 700u);
    EXPECT_EQ(in.get(i), payload(i, 700)) << i;
  }
}

TEST_P(UdpOffload, SegmentsLargerThanTheCallerBufferAreReportedEmpty) {
  Batch out(4);
  for (size_t i = 0; i < 4; ++i) out.set(i, payload(i, 1000), to(*b));
  ASSERT_EQ(a->send_batch(out.bufs), 4);
  Batch small(8, 500);
  int n = 0;
  while (n < 4) {
    int r = b->recv_batch(std::span(small.bufs).subspan(n));
    ASSERT_GT(r, 0);
    n += r;
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(small.bufs[i].len, 0u);
  EXPECT_EQ(b->truncated(), 4u);
}

TEST_P(UdpOffload, ARefusedGsoMessageCountsEachOfItsDatagrams) {
  // Broadcast without SO_BROADCAST: udp_sendmsg says EACCES for the whole message.
  Endpoint bcast = *Endpoint::parse("255.255.255.255:" + std::to_string(b->port()));
  Batch out(15);
  for (size_t i = 0; i < 15; ++i) out.set(i, payload(i, 1000), i >= 5 && i < 10 ? bcast : to(*b));
  EXPECT_EQ(a->send_batch(out.bufs), 10);
  EXPECT_EQ(a->send_errors(), 5u);
  EXPECT_TRUE(a->gso_enabled());  // not a GSO refusal: offload stays on
  auto got = recv_n(*b, 10);
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(got[i].second, payload(i < 5 ? i : i + 5, 1000)) << i;
  Batch bad(5);
  for (size_t i = 0; i < 5; ++i) bad.set(i, payload(i, 1000), bcast);
  EXPECT_EQ(a->send_batch(bad.bufs), -EACCES);
}

TEST_P(UdpOffload, RebindKeepsOffloadsWorking) {
  ASSERT_EQ(a->rebind(0), 0);
  ASSERT_EQ(b->rebind(0), 0);
  EXPECT_TRUE(a->gso_enabled());
  EXPECT_TRUE(b->gro_enabled());
  Batch out(20);
  for (size_t i = 0; i < 20; ++i) out.set(i, payload(i, 1100), to(*b));
  ASSERT_EQ(a->send_batch(out.bufs), 20);
  auto got = recv_n(*b, 20);
  ASSERT_EQ(got.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(got[i].second, payload(i, 1100)) << i;
  EXPECT_EQ(got[0].first, to(*a));  // the new source port
  EXPECT_EQ(a->gso_sends(), 1u);
  EXPECT_EQ(b->gro_receives(), 1u);
}

TEST_P(UdpOffload, KernelRefusalOfGsoFallsBackToSingleDatagrams) {
  if (!a->gso_enabled()) GTEST_SKIP() << "no UDP GSO here";
  // Zero UDP checksums make udp_send_skb / udp_v6_send_skb refuse every GSO message with EINVAL
  // (GSO needs checksum offload): a stand-in for a NIC without it (EIO), which no unprivileged
  // test can create. SO_NO_CHECK covers IPv4 (v4-mapped) sends, UDP_NO_CHECK6_TX IPv6 ones.
  int one = 1;
  ASSERT_EQ(setsockopt(a->native_handle(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one), 0);
  ASSERT_EQ(setsockopt(a->native_handle(), SOL_UDP, UDP_NO_CHECK6_TX, &one, sizeof one), 0);
  // IPv6 receivers drop zero-checksum UDP unless told otherwise (RFC 6935 / udp6_csum_init).
  ASSERT_EQ(setsockopt(b->native_handle(), SOL_UDP, UDP_NO_CHECK6_RX, &one, sizeof one), 0);
  Batch out(12);
  for (size_t i = 0; i < 12; ++i) out.set(i, payload(i, 900), to(*b));
  ASSERT_EQ(a->send_batch(out.bufs), 12);
  EXPECT_FALSE(a->gso_enabled());
  EXPECT_EQ(a->gso_sends(), 0u);
  EXPECT_EQ(a->send_errors(), 0u);
  auto got = recv_n(*b, 12);
  ASSERT_EQ(got.size(), 12u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(got[i].second, payload(i, 900)) << i;
  // Later batches go out without GSO straight away.
  ASSERT_EQ(a->send_batch(out.bufs), 12);
  EXPECT_EQ(a->gso_sends(), 0u);
  EXPECT_EQ(recv_n(*b, 12).size(), 12u);
}

TEST_P(UdpOffload, EnvironmentVariableDisablesBoth) {
  setenv("XSKTUN_UDP_OFFLOAD", "0", 1);
  auto x = UdpSocket::open(0);
  auto y = UdpSocket::open(0);
  ASSERT_TRUE(x && y);
  EXPECT_FALSE(x->gso_enabled());
  EXPECT_FALSE(x->gro_enabled());
  EXPECT_FALSE(y->gro_enabled());
  ASSERT_EQ(a->rebind(0), 0);  // a rebind while it is set opens a socket without offloads too
  EXPECT_FALSE(a->gso_enabled());
  unsetenv("XSKTUN_UDP_OFFLOAD");

  constexpr size_t kN = 100;
  Batch out(kN);
  for (size_t i = 0; i < kN; ++i) out.set(i, payload(i, 1200), to(*y));
  ASSERT_EQ(x->send_batch(out.bufs), static_cast<int>(kN));
  auto got = recv_n(*y, kN);
  ASSERT_EQ(got.size(), kN);
  for (size_t i = 0; i < kN; ++i) EXPECT_EQ(got[i].second, payload(i, 1200)) << i;
  EXPECT_EQ(x->gso_sends(), 0u);
  EXPECT_EQ(y->gro_receives(), 0u);

  ASSERT_EQ(y->rebind(0), 0);  // unset again: the next socket has its offloads back
  EXPECT_TRUE(y->gro_enabled());
}

INSTANTIATE_TEST_SUITE_P(Families, UdpOffload, ::testing::Values("127.0.0.1", "[::1]"),
                         [](const auto& info) { return std::string(info.index == 0 ? "Ipv4" : "Ipv6"); });

}  // namespace
}  // namespace xsktun::io
