// The ready descriptor of the real UDP socket, which the single-thread Runner sleeps on
// (packet_io.h, ready_fd): it must wake for new datagrams, follow rebind() to the new socket
// and stay readable after wake(). Loopback only: no root needed.
#include <gtest/gtest.h>
#include <poll.h>

#include "batch_util.h"
#include "xsktun/io/udp_socket.h"

namespace xsktun::io {
namespace {

using test_util::Batch;
using test_util::Bytes;

bool readable_within(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}
Endpoint loopback(uint16_t port) { return Endpoint{*IpAddr::parse("127.0.0.1"), port}; }

// Sends one byte from `a` to `b`'s port; `b`'s ready descriptor must turn readable and
// try_recv_batch must return that byte.
void expect_delivered(UdpSocket& a, UdpSocket& b, uint8_t byte) {
  Batch out(1), in(8);
  out.set(0, {byte}, loopback(b.port()));
  ASSERT_EQ(a.send_batch(out.bufs), 1);
  EXPECT_TRUE(readable_within(b.ready_fd(), 1000));
  ASSERT_EQ(b.try_recv_batch(in.bufs), 1);
  EXPECT_EQ(in.get(0), Bytes({byte}));
}

TEST(UdpSocketReady, WakesForDatagramsFollowsRebindAndWake) {
  auto a = UdpSocket::open(0);
  auto b = UdpSocket::open(0);
  ASSERT_TRUE(a && b);
  int fd = b->ready_fd();
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(readable_within(fd, 0));
  Batch out(1), in(8);
  EXPECT_EQ(b->try_recv_batch(in.bufs), 0);  // nothing queued: returns at once

  expect_delivered(*a, *b, 1);
  in.reset();
  EXPECT_EQ(b->try_recv_batch(in.bufs), 0);
  EXPECT_FALSE(readable_within(fd, 0));

  // After a rebind the same descriptor watches the new socket, not the old one.
  uint16_t old_port = b->port();
  ASSERT_EQ(b->rebind(0), 0);
  EXPECT_EQ(b->ready_fd(), fd);
  EXPECT_FALSE(readable_within(fd, 0));  // the old socket's shutdown does not leave it readable
  expect_delivered(*a, *b, 2);
  out.set(0, {3}, loopback(old_port));  // nobody listens there now
  a->send_batch(out.bufs);
  EXPECT_FALSE(readable_within(fd, 50));

  b->wake();
  EXPECT_TRUE(readable_within(fd, 0));
  in.reset();
  EXPECT_EQ(b->try_recv_batch(in.bufs), 0);
  EXPECT_TRUE(readable_within(fd, 0));  // sticky, so a stopping Runner never sleeps again
}

}  // namespace
}  // namespace xsktun::io
