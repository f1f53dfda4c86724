// Socket mode's outer side for N workers: N UdpSockets bound to one port as an SO_REUSEPORT
// group. The kernel picks the socket of each received datagram by a hash of its addresses and
// ports (net/core/sock_reuseport.c), so one peer's datagrams reach one worker, in order; each
// worker sends on its own member. The group is what the device configures (port, fwmark).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "xsktun/io/udp_socket.h"

namespace xsktun::io {

class UdpGroup final : public UdpIo {
 public:
  // n sockets on `port` (0: the kernel picks one for the first, the rest join it). With n == 1
  // a plain socket (no SO_REUSEPORT). A port another socket holds is refused (EADDRINUSE) even
  // if that socket set SO_REUSEPORT: a probe without the option binds it first.
  static std::unique_ptr<UdpGroup> open(uint16_t port, size_t n, std::string* err);

  size_t size() const { return members_.size(); }
  UdpSocket& member(size_t i) { return *members_.at(i); }
  const UdpSocket& member(size_t i) const { return *members_.at(i); }

  // The device's own receive and send go through member 0.
  int recv_batch(std::span<PacketBuf> bufs) override { return members_[0]->recv_batch(bufs); }
  int try_recv_batch(std::span<PacketBuf> bufs) override { return members_[0]->try_recv_batch(bufs); }
  int send_batch(std::span<PacketBuf> bufs) override { return members_[0]->send_batch(bufs); }
  int ready_fd() const override { return members_[0]->ready_fd(); }
  uint16_t port() const override { return members_[0]->port(); }
  // Moves every member to `port`; on a failure the members already moved go back, and the
  // error is returned (-errno).
  int rebind(uint16_t port) override;
  void set_fwmark(uint32_t mark) override;
  void wake() override;
  // Sums over the members.
  uint64_t receive_drops() const;

 private:
  std::vector<std::unique_ptr<UdpSocket>> members_;
};

}  // namespace xsktun::io
