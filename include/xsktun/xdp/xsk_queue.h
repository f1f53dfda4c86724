// One AF_XDP socket bound to one NIC queue, with its own UMEM (libxdp's xsk API). The first
// rx_frames of the UMEM feed the fill ring (RX), the tx_frames behind them are TX frames. A NIC
// queue can also carry transmit-only sibling sockets (more workers than NIC queues): they share
// the first socket's UMEM and, as the kernel requires on one queue, its fill and completion
// rings; each has its own TX ring and its own tx_frames.
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
  // Powers of two; each ring is as long as its frames, so no frame waits for a ring slot.
  // RX frames are the receive buffer: every one the worker has not yet taken back is one the
  // NIC cannot fill, and an empty fill ring drops the frame (xsk_fill_ring_empty). 4096 frames
  // (8 MiB) ride out a worker descheduled for ~10 ms at 400k frames/s; 2048 lost TCP segments
  // under load (README, "Benchmark"). TX frames complete inside the kick in copy mode.
  uint32_t rx_frames = 4096;
  uint32_t tx_frames = 2048;
  uint32_t frame_size = 2048;  // XSK_UMEM__DEFAULT_FRAME_SIZE / 2: fits any 1500-MTU frame
  uint32_t siblings = 0;       // transmit-only sockets create_sibling will add on this queue
  uint32_t frames() const { return rx_frames + tx_frames * (1 + siblings); }
};

class XskQueue {
 public:
  static std::unique_ptr<XskQueue> create(const XskOptions& o, std::string* err);
  // A transmit-only socket on `first`'s NIC queue, sharing its UMEM: the next of the
  // o.siblings that `first` was created for. It receives nothing (recv returns 0).
  static std::unique_ptr<XskQueue> create_sibling(XskQueue& first, std::string* err);
  ~XskQueue();

  bool receives() const { return has_rx_; }

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
  // endpoint = the sender). Frames of the previous call go back to the fill ring first. Blocks
  // in poll() up to timeout_ms when nothing is ready; with 0 it makes no syscall. Single consumer.
  int recv(std::span<io::PacketBuf> bufs, int timeout_ms);
  // After the device processed what the last recv returned (the same buffers, in order): the
  // return path of each one it marked authenticated goes to `learn`.
  template <typename Learn>
  void delivered(std::span<const io::PacketBuf> bufs, Learn&& learn) const {
    for (size_t i = 0; i < bufs.size() && i < held_parsed_.size(); ++i)
      if (bufs[i].authenticated) learn(held_parsed_[i]);
  }
  // Lends up to bufs.size() free TX frames: data = frame + kTxHeadroom + headroom (room for any
  // headers build_headers writes, then the caller's). Single borrower at a time (its worker).
  size_t lend(std::span<io::PacketBuf> bufs, size_t headroom);
  // Takes back the lent frames send() did not submit.
  void reclaim_lent();
  // Bytes before a lent buffer's headroom: at least Ethernet + one VLAN tag + IPv6 + UDP (66),
  // so that with the data header's 16 the inner packet (what the TUN read writes and the AEAD
  // reads) starts 64-byte aligned.
  static constexpr size_t kTxHeadroom = 112;
  // TX: writes headers for (path, endpoint) in front of each payload that lies in a lent frame
  // and submits the frame as it is; copies any other payload into a free TX frame behind the
  // headers. Returns how many were queued; the rest (no free frame or ring slot, or longer
  // than a frame) are counted as drops. xsk_tx_packets counts the frames the kernel completed.
  // Thread-safe (serialized internally).
  int send(std::span<const io::PacketBuf> bufs, std::span<const Path* const> paths);
  void wake();
  // Polls readable while RX frames wait; poll() on it also kicks a driver that needs a wakeup.
  int fd() const { return xsk_socket__fd(xsk_); }

 private:
  XskQueue() = default;
  void recycle_previous();
  uint32_t reclaim_completions();
  void kick_tx();
  int peek_rx(std::span<io::PacketBuf> bufs, int timeout_ms);
  void init_tx_frames(uint32_t pool);
  // The TX pool a frame address belongs to: frames are [rx_frames | pool 0 | pool 1 | ...].
  uint32_t pool_of(uint64_t frame) const {
    return static_cast<uint32_t>((frame / frame_size_ - rx_frames_) / tx_frames_);
  }

  // What the sockets of one NIC queue share; freed (UMEM unregistered, area unmapped) after
  // the last of them closed its socket.
  struct Umem {
    void* area = nullptr;
    size_t size = 0;
    xsk_umem* umem = nullptr;
    xsk_ring_prod fill{};
    xsk_ring_cons comp{};
    uint32_t comp_size = 0;
    uint32_t pools = 1;      // TX frame pools: the first socket's and one per sibling
    uint32_t next_pool = 1;  // the pool the next sibling gets
    std::string ifname;
    // With siblings, the one completion ring is reaped by whichever socket needs frames, under
    // this lock (per batch, shared only by the workers of this NIC queue); a frame of another
    // pool waits in `returned` for its owner.
    std::mutex comp_mu;
    std::vector<std::vector<uint64_t>> returned;
    ~Umem();
  };

  uint32_t queue_ = 0;
  bool zerocopy_ = false;
  bool has_rx_ = true;
  uint32_t frame_size_ = 0;
  uint32_t rx_frames_ = 0;
  uint32_t tx_frames_ = 0;  // per pool
  uint32_t tx_ring_ = 0;    // this socket's TX ring length
  uint32_t pool_ = 0;       // which TX frames are this socket's
  std::shared_ptr<Umem> um_;
  void* area_ = nullptr;  // um_->area
  size_t area_size_ = 0;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_cons rx_{};
  xsk_ring_prod tx_{};
  int wake_fd_ = -1;
  device::Counters scratch_;  // until set_counters
  device::Counters* counters_ = &scratch_;

  // RX frames handed out by the last recv (returned to the fill ring on the next one).
  std::vector<uint64_t> held_;
  std::vector<ParsedFrame> held_parsed_;

  // Whether p points into a TX frame lent by lend(); then *frame is that frame's address.
  bool lent_frame(const uint8_t* p, uint64_t* frame) const;

  std::mutex tx_mu_;
  std::vector<uint64_t> tx_free_;  // free TX frame addresses
  // Frames lent out, and per frame index: 0 free or in flight, 1 lent, 2 lent and submitted.
  std::vector<uint64_t> lent_;
  std::vector<uint8_t> lent_state_;
};

}  // namespace xsktun::xdp
