// The real outer side: one dual-stack UDP socket ([::]:port with IPV6_V6ONLY=0) using
// recvmmsg/sendmmsg. One socket serves IPv4 and IPv6 peers (the kernel's wg_socket_init opens
// one of each instead); IPv4 peers appear on it as ::ffff:a.b.c.d.
//
// UDP offloads, invisible to callers (who always see single datagrams): on send, runs of
// same-endpoint, same-size datagrams go out as one UDP_SEGMENT (GSO) message; on receive, UDP_GRO
// lets the kernel hand over coalesced super-datagrams, which are split back by their gso_size
// (udp(7); kernel >= 4.18 for GSO, >= 5.0 for GRO). XSKTUN_UDP_OFFLOAD=0 in the environment turns
// both off for sockets opened (or rebound) afterwards.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "xsktun/common/counters.h"
#include "xsktun/io/packet_io.h"
#include "xsktun/io/ready_set.h"

namespace xsktun::io {

// Socket buffer size requested for both directions; SO_*BUFFORCE (CAP_NET_ADMIN) bypasses
// net.core.{r,w}mem_max, otherwise the kernel caps the request silently.
inline constexpr int kUdpSocketBuffer = 8 << 20;
// How long rebind() waits for a retired socket of this object to close before reporting its
// port as in use: a receiver woken by shutdown() drops it within microseconds.
inline constexpr int kRebindWaitMs = 1000;

class UdpSocket final : public UdpIo {
 public:
  // Binds [::]:port (port 0: the kernel picks one; see port()). Falls back to an IPv4-only
  // socket when the host has no IPv6. Returns nullptr and fills *err (if not null) on failure.
  // `reuseport`: SO_REUSEPORT, to join a group of sockets on one port (UdpGroup), on this
  // socket and every one rebind() opens.
  static std::unique_ptr<UdpSocket> open(uint16_t port, std::string* err = nullptr, bool reuseport = false);
  ~UdpSocket() override;
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Receives up to bufs.size() queued datagrams (recvmmsg); when none is queued, blocks until
  // one is or until wake(). Sources are reported as IPv4 endpoints for v4-mapped addresses. A
  // datagram longer than its buffer gets len 0 (it was truncated; callers drop short packets)
  // and is counted in truncated(). Segments of a GRO super-datagram that do not fit in `bufs`
  // stay pending inside the socket and come first in the next call. Returns the count, 0 after
  // wake(), or -errno.
  int recv_batch(std::span<PacketBuf> bufs) override;
  // Sends each buffer to its endpoint (sendmmsg; IPv4 as ::ffff:a.b.c.d). A datagram the kernel
  // refuses (no route, invalid endpoint, EPERM from a firewall, ...) is skipped and counted in
  // send_errors(). Returns the number of datagrams sent (a GSO message counts as its segments);
  // -errno of the first failure if none was sent. If the kernel refuses UDP_SEGMENT (EIO: no
  // checksum offload on the route's device; EINVAL), GSO is turned off for this socket and the
  // datagrams are resent one by one.
  int send_batch(std::span<PacketBuf> bufs) override;
  uint16_t port() const override;
  // Opens and binds a new socket on `port` first, then swaps it in, so on failure (e.g.
  // -EADDRINUSE) the old socket stays. Switching back to a port this object used before waits
  // (up to kRebindWaitMs) for threads still holding that retired socket to let go of it.
  // Rebinding to the current non-zero port is a no-op (as in the kernel's set_port). Safe while other threads
  // are in recv_batch/send_batch: a blocked receiver is woken and moves to the new socket. Datagrams queued
  // on the old one are lost (segments already read from it and pending are still delivered). Offloads are
  // probed and enabled again on the new socket.
  int rebind(uint16_t port) override;
  // SO_MARK on the current socket and on every future one (0 clears it). Needs CAP_NET_ADMIN.
  void set_fwmark(uint32_t mark) override { try_set_fwmark(mark); }
  int try_set_fwmark(uint32_t mark);  // 0 or -errno (-EPERM without CAP_NET_ADMIN)
  uint32_t fwmark() const { return fwmark_.load(std::memory_order_relaxed); }
  // Sticky: once called, every recv_batch that finds no datagram queued returns 0 at once.
  void wake() override;
  // The current socket and the wake eventfd; rebind() moves the set to the new socket.
  int ready_fd() const override { return ready_ok_ ? ready_.fd() : -1; }
  int try_recv_batch(std::span<PacketBuf> bufs) override;

  // Where it counts (udp_*): its own set until the daemon points it at its worker's. Set it
  // before traffic starts.
  void set_counters(Counters* c) { counters_ = c; }
  // What it counted (the whole set's, once shared).
  uint64_t send_errors() const { return counters_->get(Counter::udp_send_errors); }
  // Datagrams the kernel dropped on the current socket (full receive buffer, SO_MEMINFO's
  // SK_MEMINFO_DROPS): the one place received datagrams vanish before we read them. Counts from
  // the last (re)bind.
  uint64_t receive_drops() const;
  uint64_t truncated() const { return counters_->get(Counter::udp_truncated); }
  // Offload state of the current socket, and how often each offload actually carried traffic.
  bool gso_enabled() const { return current()->gso.load(std::memory_order_relaxed); }
  bool gro_enabled() const { return current()->gro; }
  uint64_t gso_sends() const { return counters_->get(Counter::udp_gso_sends); }        // messages
  uint64_t gro_receives() const { return counters_->get(Counter::udp_gro_receives); }  // >1 seg
  // The current socket's fd, for tests and diagnostics only: rebind() replaces (and closes) it.
  int native_handle() const { return current()->fd; }

 private:
  // One bound socket. Threads hold a shared_ptr while using its fd, so rebind() can replace
  // it without closing an fd another thread is about to use (or that the kernel reuses).
  struct Sock {
    int fd = -1;
    int family = 0;  // AF_INET6 (dual-stack) or AF_INET (host without IPv6)
    uint16_t port = 0;
    std::atomic<bool> gso{false};  // cleared once the kernel refuses UDP_SEGMENT on this socket
    bool gro = false;
    ~Sock();
  };
  struct RxState;  // GRO receive slots and the not yet delivered segments (udp_socket.cpp)
  UdpSocket(std::shared_ptr<Sock> sock, int wake_fd);
  static std::shared_ptr<Sock> open_sock(uint16_t port, uint32_t mark, bool reuseport, int* err);
  std::shared_ptr<Sock> current() const;
  int recv_ready(const Sock& s, std::span<PacketBuf> bufs);
  int recv_direct(const Sock& s, std::span<PacketBuf> bufs);
  int fill_slots(const Sock& s, size_t first, size_t want);
  size_t drain_pending(std::span<PacketBuf> bufs);
  int send_chunk(Sock& s, std::span<PacketBuf> bufs, int* first_err);

  mutable std::mutex mu_;  // guards sock_; held across rebind/set_fwmark so they serialize
  std::shared_ptr<Sock> sock_;
  // Replaced sockets (by port) that a thread may still hold; see rebind().
  std::vector<std::pair<uint16_t, std::weak_ptr<Sock>>> retired_;
  int wake_fd_;     // eventfd; readable once wake() was called
  ReadySet ready_;  // sock_->fd + wake_fd_ (changed under mu_)
  bool ready_ok_ = false;
  std::atomic<uint32_t> fwmark_{0};
  bool reuseport_ = false;
  Counters own_counters_;
  Counters* counters_ = &own_counters_;
  std::mutex rx_mu_;  // guards rx_: concurrent receivers must not split the same super-datagram
  std::unique_ptr<RxState> rx_;
};

}  // namespace xsktun::io
