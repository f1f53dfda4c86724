// UdpSocket::receive_drops: datagrams the kernel dropped on a full receive buffer are counted
// (`show`: udp_socket_drops), the one place a datagram can vanish before xsktun reads it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "xsktun/io/udp_socket.h"

namespace xsktun::io {
namespace {

TEST(UdpSocket, DatagramsDroppedOnAFullReceiveBufferAreCounted) {
  std::string err;
  auto rx = UdpSocket::open(0, &err);
  ASSERT_TRUE(rx) << err;
  EXPECT_EQ(rx->receive_drops(), 0u);
  int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(tx, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(rx->port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<uint8_t> payload(1400, 0x5a);
  // Far more than the 8 MiB buffer (or a smaller rmem_max) holds, nothing read meanwhile.
  for (int i = 0; i < 20000; ++i)
    ASSERT_EQ(sendto(tx, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(payload.size()));
  close(tx);
  EXPECT_GT(rx->receive_drops(), 0u);
}

}  // namespace
}  // namespace xsktun::io
