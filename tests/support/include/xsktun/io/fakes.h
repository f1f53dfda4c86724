// In-memory TunIo / UdpIo for tests: no sockets, no root, deterministic. Several FakeUdp hosts
// share one FakeNetwork, so two complete devices can talk inside one test process, and a test
// can lose, record, replay or forge datagrams. Everything is thread-safe: a FakeTun has its own
// mutex, and one mutex per FakeNetwork covers the network and all its hosts.
//
// Fidelity notes (where a fake mirrors a kernel rule, so the code under test meets it early):
//  - FakeTun::write_batch rejects a packet whose first nibble is not 4 or 6, as tun_get_user
//    does for IFF_NO_PI devices (EINVAL), and an empty one; reads truncate to the buffer.
//  - FakeUdp delivers datagrams that do not fit the receive buffer with len 0, like UdpSocket.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "xsktun/io/packet_io.h"

namespace xsktun::io {

using Bytes = std::vector<uint8_t>;

// A pollable level flag for the fakes' ready_fd(): an eventfd that polls readable while set.
// The owner calls set() under its own lock whenever readiness may have changed.
class ReadyFlag {
 public:
  ReadyFlag();
  ~ReadyFlag();
  ReadyFlag(const ReadyFlag&) = delete;
  ReadyFlag& operator=(const ReadyFlag&) = delete;
  void set(bool on);
  int fd() const { return fd_; }

 private:
  int fd_;
  bool on_ = false;
};

class FakeTun final : public TunIo {
 public:
  explicit FakeTun(size_t mtu = 1420) : mtu_(mtu) {}  // 1420 = kDefaultTunMtu (tun.h)

  // Queues a packet "from the host's stack": a later read_batch returns it.
  void inject(Bytes packet);
  // Every packet the device wrote "to the host's stack" since the last call, in order.
  std::vector<Bytes> take_written();
  size_t pending() const;  // injected, not yet read
  // Non-blocking by default: read_batch returns 0 when nothing is pending. Blocking mode makes
  // it wait for inject() or wake(), for tests that run the device on its own threads.
  void set_blocking(bool blocking);
  uint64_t write_errors() const;
  uint64_t truncated() const;

  int read_batch(std::span<PacketBuf> bufs) override;
  int write_batch(std::span<PacketBuf> bufs) override;
  size_t mtu() const override { return mtu_; }
  void wake() override;  // sticky, like TunDevice::wake
  bool woken() const;
  int ready_fd() const override { return ready_.fd(); }
  int try_read_batch(std::span<PacketBuf> bufs) override;

 private:
  int take_locked(std::span<PacketBuf> bufs);  // under mu_
  void sync_ready_locked() { ready_.set(woken_ || !rx_.empty()); }

  const size_t mtu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  ReadyFlag ready_;  // set while a packet is pending or after wake()
  std::deque<Bytes> rx_;
  std::vector<Bytes> written_;
  bool blocking_ = false;
  bool woken_ = false;
  uint64_t write_errors_ = 0;
  uint64_t truncated_ = 0;
};

// One datagram as it crossed the fake network.
struct Datagram {
  Endpoint from;
  Endpoint to;
  Bytes bytes;
  bool operator==(const Datagram&) const = default;
};

class FakeUdp;

// A lossless (unless told otherwise), zero-latency network joining FakeUdp hosts. It must
// outlive every FakeUdp attached to it.
class FakeNetwork {
 public:
  // Datagrams queued for one FakeUdp beyond this are dropped, like a full socket buffer.
  static constexpr size_t kQueueLimit = 4096;
  using Filter = std::function<bool(const Datagram&)>;

  FakeNetwork() = default;
  ~FakeNetwork();
  FakeNetwork(const FakeNetwork&) = delete;
  FakeNetwork& operator=(const FakeNetwork&) = delete;

  // A new host at addr:port (port 0: a free port from 49152 up). nullptr if addr:port is taken.
  std::unique_ptr<FakeUdp> attach(const IpAddr& addr, uint16_t port = 0);

  // Loses every datagram sent from now on (they are still captured).
  void set_drop(bool drop);
  // Loses the datagrams for which `drop_if` returns true (empty function: none). Runs under the
  // network's lock: it must not call back into the network.
  void set_filter(Filter drop_if);
  // Every datagram sent through the network (dropped or not, delivered or not), in send order.
  std::vector<Datagram> capture() const;
  void clear_capture();
  void set_capture(bool enabled);  // on by default; turn off for bulk-traffic tests
  uint64_t delivered() const;
  uint64_t dropped() const;  // by set_drop, the filter, or a full queue

 private:
  friend class FakeUdp;
  FakeUdp* find_locked(const Endpoint& to) const;
  bool port_free_locked(const std::vector<IpAddr>& addrs, uint16_t port, const FakeUdp* self) const;
  uint16_t pick_port_locked(const std::vector<IpAddr>& addrs);
  void send_locked(const Datagram& d);
  void enqueue_locked(FakeUdp* dst, const Endpoint& from, Bytes bytes);

  mutable std::mutex mu_;  // guards everything here and in every attached FakeUdp
  std::vector<FakeUdp*> hosts_;
  std::vector<Datagram> captured_;
  Filter filter_;
  bool drop_ = false;
  bool capture_ = true;
  uint16_t next_port_ = 49152;
  uint64_t delivered_ = 0;
  uint64_t dropped_ = 0;
};

class FakeUdp final : public UdpIo {
 public:
  ~FakeUdp() override;  // detaches from the network
  FakeUdp(const FakeUdp&) = delete;
  FakeUdp& operator=(const FakeUdp&) = delete;

  // Queues a datagram "from" anyone, bypassing the network (forged or replayed input).
  void inject(const Endpoint& from, Bytes bytes);
  // The endpoint peers reach this host at (first address + port).
  Endpoint local() const;
  // Adds an address (a dual-stack host has one per family; a send uses the first address of the
  // destination's family as its source). -EADDRINUSE if taken at this port.
  int add_address(const IpAddr& addr);
  // Replaces all addresses by `addr` (the host roamed). -EADDRINUSE if taken at this port.
  int set_address(const IpAddr& addr);
  size_t pending() const;
  void set_blocking(bool blocking);  // as FakeTun::set_blocking
  uint32_t fwmark() const;
  uint64_t truncated() const;
  bool woken() const;

  int recv_batch(std::span<PacketBuf> bufs) override;
  // Sends each datagram from this host's address of the destination's family. Returns the number
  // sent (loss does not count as failure: UDP cannot tell); -errno if none could be sent.
  int send_batch(std::span<PacketBuf> bufs) override;
  uint16_t port() const override;
  // Like a real rebind: new port (0 = any free one), queued datagrams are lost, -EADDRINUSE
  // keeps the old port.
  int rebind(uint16_t port) override;
  void set_fwmark(uint32_t mark) override;
  void wake() override;
  int ready_fd() const override { return ready_.fd(); }
  int try_recv_batch(std::span<PacketBuf> bufs) override;

 private:
  friend class FakeNetwork;
  int take_locked(std::span<PacketBuf> bufs);  // under net_.mu_
  void sync_ready_locked() { ready_.set(woken_ || !rx_.empty()); }
  struct Rx {
    Endpoint from;
    Bytes bytes;
  };
  FakeUdp(FakeNetwork& net, const IpAddr& addr, uint16_t port);

  FakeNetwork& net_;
  std::condition_variable cv_;  // waits on net_.mu_
  ReadyFlag ready_;
  std::vector<IpAddr> addrs_;
  uint16_t port_;
  std::deque<Rx> rx_;
  bool blocking_ = false;
  bool woken_ = false;
  uint32_t fwmark_ = 0;
  uint64_t truncated_ = 0;
};

}  // namespace xsktun::io
