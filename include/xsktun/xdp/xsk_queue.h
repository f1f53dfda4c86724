// One AF_XDP socket bound to one NIC queue, with its own UMEM (libxdp's xsk API). The first
// half of the UMEM's frames feed the fill ring (RX), the second half are TX frames.
#pragma once

#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "xsktun/device/counters.h"
#include "xsktun/io/packet_io.h"
#include "xsktun/xdp/frame.h"

namespace xsktun::xdp {

struct XskOptions {
  std::string ifname;
  uint32_t queue = 0;
  int xsks_map_fd = -1;
  enum class ZeroCopy { kAuto, kOn, kOff } zerocopy = ZeroCopy::kAuto;
  uint32_t frames = 4096;      // total UMEM frames (half RX, half TX)
  uint32_t frame_size = 2048;  // XSK_UMEM__DEFAULT_FRAME_SIZE / 2: fits any 1500-MTU frame
};

class XskQueue {
 public:
  static std::unique_ptr<XskQueue> create(const XskOptions& o, std::string* err);
  ~XskQueue();

  bool zerocopy() const { return zerocopy_; }
  uint32_t queue() const { return queue_; }
  // Where drops and transmissions are counted (XskBind passes the device's counters on).
  void set_counters(device::Counters* c) { counters_ = c; }
  // The longest frame this socket can receive: a UMEM frame less the kernel's XDP headroom
  // (net/xdp/xsk_buff_pool.c); the XDP program passes longer ones to the stack.
  uint32_t max_rx_frame() const;
  // The longest frame send() can build (one UMEM frame).
  uint32_t frame_size() const { return frame_size_; }
  // The kernel's AF_XDP statistics of this socket (XDP_STATISTICS); false if unavailable.
  bool statistics(xdp_statistics* out) const;

  // RX: returns the WireGuard messages of up to bufs.size() frames (data points into the UMEM;
  // endpoint = the sender). Frames of the previous call go back to the fill ring first, and the
  // return paths of those the device marked authenticated are reported to `learn`. Blocks in
  // poll() up to timeout_ms when nothing is ready; with 0 it makes no syscall. Single consumer.
  template <typename Learn>
  int recv(std::span<io::PacketBuf> bufs, int timeout_ms, Learn&& learn);
  // TX: copies each payload into a free TX frame behind headers for (path, endpoint) and
  // submits them. Returns how many were queued; the rest (no free frame or ring slot, or longer
  // than a frame) are counted as drops. xsk_tx_packets counts the frames the kernel completed.
  // Thread-safe (serialized internally).
  int send(std::span<const io::PacketBuf> bufs, std::span<const Path* const> paths);
  void wake();
  // Polls readable while RX frames wait; poll() on it also kicks a driver that needs a wakeup.
  int fd() const { return xsk_socket__fd(xsk_); }

 private:
  XskQueue() = default;
  void recycle_previous(std::vector<std::pair<ParsedFrame, bool>>* learned);
  uint32_t reclaim_completions();
  void kick_tx();
  int peek_rx(std::span<io::PacketBuf> bufs, int timeout_ms);

  uint32_t queue_ = 0;
  bool zerocopy_ = false;
  uint32_t frame_size_ = 0;
  void* area_ = nullptr;
  size_t area_size_ = 0;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fill_{};
  xsk_ring_cons comp_{};
  xsk_ring_cons rx_{};
  xsk_ring_prod tx_{};
  int wake_fd_ = -1;
  device::Counters scratch_;  // until set_counters
  device::Counters* counters_ = &scratch_;

  // RX frames handed out by the last recv (returned to the fill ring on the next one).
  std::vector<uint64_t> held_;
  std::vector<ParsedFrame> held_parsed_;
  io::PacketBuf* last_bufs_ = nullptr;
  size_t last_n_ = 0;

  std::mutex tx_mu_;
  std::vector<uint64_t> tx_free_;  // free TX frame addresses
};

template <typename Learn>
int XskQueue::recv(std::span<io::PacketBuf> bufs, int timeout_ms, Learn&& learn) {
  // Learn return paths from the frames the device authenticated, then recycle them.
  for (size_t i = 0; i < last_n_ && i < held_parsed_.size(); ++i)
    if (last_bufs_[i].authenticated) learn(held_parsed_[i]);
  recycle_previous(nullptr);
  int n = peek_rx(bufs, timeout_ms);
  last_bufs_ = bufs.data();
  last_n_ = n > 0 ? static_cast<size_t>(n) : 0;
  return n;
}

}  // namespace xsktun::xdp
