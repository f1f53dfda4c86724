// The XDP-mode UDP side: AF_XDP sockets (one per NIC queue, then any transmit-only siblings
// for the workers beyond the NIC's queues) for data, plus the kernel UDP socket on the same port
// for handshakes (the XDP program passes them to the stack) and as the slow path for
// destinations whose return path is not known yet. Each worker has a lane(): it receives from
// and transmits on its own socket's rings (a sibling's worker only transmits).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "xsktun/device/counters.h"
#include "xsktun/io/packet_io.h"
#include "xsktun/io/udp_socket.h"
#include "xsktun/xdp/xsk_queue.h"

namespace xsktun::xdp {

class XskBind : public io::UdpIo {
 public:
  XskBind(std::unique_ptr<io::UdpSocket> kernel, std::vector<std::unique_ptr<XskQueue>> queues);
  // The device's counters (the device is built on top of this bind, so they come later): the
  // AF_XDP queues' and the kernel socket's.
  void set_counters(device::Counters* c);
  // The NIC's MTU: a frame whose IP packet is longer goes through the kernel socket, which
  // fragments it (AF_XDP does not). The daemon sets it at attach and whenever it changes.
  void set_nic_mtu(uint32_t mtu) { nic_mtu_.store(mtu, std::memory_order_relaxed); }
  uint32_t nic_mtu() const { return nic_mtu_.load(std::memory_order_relaxed); }

  // The kernel socket's receive side (handshakes, reassembled fragments, data the program
  // passed), counted as slowpath_rx_packets.
  int recv_batch(std::span<io::PacketBuf> bufs) override { return count_slow_rx(kernel_->recv_batch(bufs)); }
  // Data to endpoints with a learned path goes out through AF_XDP; the rest through the kernel.
  int send_batch(std::span<io::PacketBuf> bufs) override;
  uint16_t port() const override { return kernel_->port(); }
  int rebind(uint16_t port) override;
  void set_fwmark(uint32_t mark) override { kernel_->set_fwmark(mark); }
  void wake() override;
  int ready_fd() const override { return kernel_->ready_fd(); }
  int try_recv_batch(std::span<io::PacketBuf> bufs) override {
    return count_slow_rx(kernel_->try_recv_batch(bufs));
  }

  // Receives from AF_XDP queue i (run by that queue's worker thread).
  int recv_xsk(size_t i, std::span<io::PacketBuf> bufs, int timeout_ms);
  // What the device made of queue i's last batch: return paths are learned from the frames
  // that authenticated (and only from those, so a spoofed frame redirects nothing).
  void learn_from(size_t i, std::span<const io::PacketBuf> bufs);
  // Queue i's TX frames lent to its worker (UdpIo::lend): the TUN reads into them.
  size_t lend(size_t i, std::span<io::PacketBuf> bufs, size_t headroom) {
    return queues_[i]->lend(bufs, headroom);
  }
  void reclaim_lent(size_t i) { queues_[i]->reclaim_lent(); }
  // send_batch on queue i's TX ring, counting into `c` (a worker's own counters).
  int send_on(size_t i, std::span<io::PacketBuf> bufs, device::Counters& c);
  // Worker i's UDP side: receives from queue i (its ready_fd is the queue's socket), sends on
  // queue i's ring (or the kernel socket), counts into `c`, which queue i counts into too.
  // Port, rebind and fwmark are the bind's. Lives no longer than this bind.
  std::unique_ptr<io::UdpIo> lane(size_t i, device::Counters& c);
  size_t queue_count() const { return queues_.size(); }
  int queue_fd(size_t i) const { return queues_[i]->fd(); }
  bool zerocopy() const;
  size_t known_paths() const;
  // The kernel socket (handshakes and the slow path), for its statistics in `show`.
  const io::UdpSocket& kernel_socket() const { return *kernel_; }
  // The kernel's AF_XDP statistics (XDP_STATISTICS), summed over the queues.
  xdp_statistics xsk_statistics() const;
  // The longest frame every queue's socket can receive (for the program's config map).
  uint32_t max_rx_frame() const;

 private:
  struct EndpointLess {
    bool operator()(const Endpoint& a, const Endpoint& b) const {
      if (a.addr.family != b.addr.family) return a.addr.family < b.addr.family;
      if (a.port != b.port) return a.port < b.port;
      return a.addr.bytes < b.addr.bytes;
    }
  };
  void learn(const ParsedFrame& pf);
  // Empties this thread's path cache if the shared map changed since (see PathCache): once per
  // batch, before find_path.
  void sync_path_cache();
  // The path to `to`, from this thread's cache of the shared map (synced by sync_path_cache).
  const Path* find_path(const Endpoint& to);
  int count_slow_rx(int n) {
    if (n > 0) counters_->add(device::Counter::slowpath_rx_packets, static_cast<uint64_t>(n));
    return n;
  }
  // Whether the frame for `b` over `path` fits the NIC MTU and a UMEM frame.
  bool fits_xsk(const io::PacketBuf& b, const Path& path) const;

  std::unique_ptr<io::UdpSocket> kernel_;
  std::vector<std::unique_ptr<XskQueue>> queues_;
  device::Counters* counters_ = nullptr;
  device::Counters scratch_;  // until set_counters
  std::atomic<uint32_t> nic_mtu_{1500};
  // Learned return paths. Workers read them from a per-thread cache (xsk_bind.cpp) and take
  // paths_mu_ only on a miss or a change; paths_version_ moves when an entry changes or goes,
  // which empties every thread's cache on its next batch.
  mutable std::mutex paths_mu_;
  std::map<Endpoint, Path, EndpointLess> paths_;
  std::atomic<uint64_t> paths_version_{1};
};

}  // namespace xsktun::xdp
