// The real inner side: a Linux TUN device (IFF_TUN | IFF_NO_PI, one queue), with the kernel's
// segmentation offloads when available (IFF_VNET_HDR + TUNSETOFFLOAD, as wireguard-go does): the
// kernel hands over TCP/UDP super-packets of up to 64 KiB, which read_batch splits, and
// write_batch coalesces TCP segments of a flow into super-packets. Callers still see single
// MTU-sized IP packets either way; only the number of syscalls changes.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "xsktun/common/counters.h"
#include "xsktun/io/offload.h"
#include "xsktun/io/packet_io.h"
#include "xsktun/io/ready_set.h"

namespace xsktun::io {

// 1420 = 1500 minus the worst-case WireGuard overhead over IPv6 (40 IPv6 + 8 UDP + 32 data header
// and tag), the default of wg-quick.
inline constexpr size_t kDefaultTunMtu = 1420;

// TCP super-packets read from the TUN are split into segments whose IP packets are whole
// 64-byte blocks where that costs at most 2% more segments (offload::align_tcp_segments): with
// the default MTU, 1408-byte packets instead of 1420. The WireGuard plaintext is then a whole
// number of ChaCha20 blocks and Poly1305 needs no padding; OpenSSL's AEAD otherwise computes a
// separate keystream block for the 12-byte tail and pads the MAC input in separate calls. Seal
// 1408 B 850-1086 ns vs 1420 B 1199-1411 ns (interleaved microbench runs); TCP through the
// tunnel +16% (README, "Segments sized for the cipher"). 0.9% more packets on the wire.
inline constexpr size_t kSegmentAlign = 64;

// kAuto: offloads on unless the environment has XSKTUN_TUN_OFFLOAD=0 (for benchmarking both).
// kOff: the plain device, no virtio-net header at all.
enum class TunOffload { kAuto, kOn, kOff };

// What the kernel accepted; each falls back on its own (older kernels lack USO, Linux < 6.2).
struct TunFeatures {
  bool vnet_hdr = false;  // IFF_VNET_HDR: every read and write starts with a virtio_net_hdr
  bool tso = false;       // TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6: TCP super-packets both ways
  bool uso = false;       // TUN_F_USO4 | TUN_F_USO6: UDP super-packets on read
};

class TunDevice final : public TunIo {
 public:
  // Creates (or attaches to) TUN interface `name` in the caller's network namespace, sets its
  // MTU and brings it up. `name` may be a kernel pattern such as "xsk%d"; name() then holds the
  // interface the kernel picked. Needs CAP_NET_ADMIN. Returns nullptr and fills *err (if not
  // null) on failure. Offloads the kernel refuses are silently left off (see features()).
  // `multi_queue`: IFF_MULTI_QUEUE, so that open_queue() can add queues (one per worker).
  static std::unique_ptr<TunDevice> create(const std::string& name, size_t mtu = kDefaultTunMtu,
                                           std::string* err = nullptr, TunOffload offload = TunOffload::kAuto,
                                           bool multi_queue = false);
  // Another queue of this (multi-queue) interface: its own fd, read and written by one worker.
  // The kernel picks the queue of each outbound packet (a flow hash, or the steering program).
  std::unique_ptr<TunDevice> open_queue(std::string* err) const;
  // Steering program (which queue reads a packet) and filter program (0 drops it before any
  // copy to userspace), BPF_PROG_TYPE_SOCKET_FILTER, for the whole device; -1 detaches.
  int set_steering_bpf(int prog_fd) { return attach_bpf(true, prog_fd); }
  int set_filter_bpf(int prog_fd) { return attach_bpf(false, prog_fd); }
  // Closing the last fd of a non-persistent TUN makes the kernel delete the interface.
  ~TunDevice() override;
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  // Drains up to bufs.size() ready packets; when none is ready, blocks in poll() until one is or
  // until wake(). A packet longer than its buffer is truncated (bufs[i].len == cap), so size
  // buffers for the MTU. Super-packets are split into one packet per buffer (written at
  // bufs[i].data, nothing before it touched); segments that do not fit in this call stay
  // pending for the next. Returns the count, 0 after wake(), or -errno: -EBADFD / -ENODEV /
  // -EIO mean the interface was deleted under us (gone() turns true).
  int read_batch(std::span<PacketBuf> bufs) override;
  // Writes each packet, TCP runs of one flow coalesced into one write when TSO is on. Packets
  // the kernel rejects (EINVAL: not IP / malformed; EIO: link down; anything else per-packet)
  // are skipped and counted in write_errors(). Returns the number of input packets written, or
  // -errno if the interface is gone. Safe to call from several threads at once.
  int write_batch(std::span<PacketBuf> bufs) override;
  size_t mtu() const override { return mtu_; }
  // Sticky: once called, every read_batch that finds no packet ready returns 0 at once.
  void wake() override;
  int ready_fd() const override { return ready_ok_ ? ready_.fd() : -1; }
  int try_read_batch(std::span<PacketBuf> bufs) override;

  const std::string& name() const { return name_; }
  // True once a read or write saw the interface disappear (e.g. `ip link del`).
  bool gone() const { return gone_.load(std::memory_order_relaxed); }
  const TunFeatures& features() const { return features_; }
  // Where it counts (tun_*): its own set until the daemon points it at its worker's. Not
  // thread-safe against the I/O: set it before traffic starts.
  void set_counters(Counters* c) { counters_ = c; }
  // What it counted (the whole set's, once shared): packets the TUN refused, super-packets
  // read and split, packets that went out merged into a super-packet, and read packets dropped
  // as malformed (bad virtio header or checksum offsets).
  uint64_t write_errors() const { return counters_->get(Counter::tun_write_errors); }
  uint64_t split_packets() const { return counters_->get(Counter::tun_split_packets); }
  uint64_t coalesced_packets() const { return counters_->get(Counter::tun_coalesced_packets); }
  uint64_t read_drops() const { return counters_->get(Counter::tun_read_drops); }

 private:
  TunDevice(int fd, int wake_fd, std::string name, size_t mtu, TunFeatures features);
  // read_batch, or try_read_batch without `wait`.
  int read_some(std::span<PacketBuf> bufs, bool wait);
  // Non-blocking reads until EAGAIN or `bufs` is full: count, or -errno on a fatal error.
  int drain(std::span<PacketBuf> bufs);
  int drain_vnet(std::span<PacketBuf> bufs);
  // Hands out pending segments of the last super-packet into bufs[n..]; returns the new n.
  size_t emit_pending(std::span<PacketBuf> bufs, size_t n);
  // Takes the `len` bytes one read left in rx_ (virtio header first): returns the new n.
  size_t accept_read(std::span<PacketBuf> bufs, size_t n, size_t len);
  int write_plain(std::span<PacketBuf> bufs);
  // One write(v); 0, or the errno.
  int write_iov(const iovec* iov, int cnt);
  int fail_gone(int err);
  int attach_bpf(bool steering, int prog_fd);

  int fd_;
  int wake_fd_;     // eventfd; readable once wake() was called
  ReadySet ready_;  // fd_ + wake_fd_
  bool ready_ok_ = false;
  std::string name_;
  size_t mtu_;
  TunFeatures features_;
  bool multi_queue_ = false;
  std::atomic<bool> gone_{false};
  Counters own_counters_;
  Counters* counters_ = &own_counters_;

  // Read side (vnet mode): one read lands here, header first; a super-packet stays here while
  // its segments are handed out. Serialised by rx_mu_ (one reader at a time).
  std::mutex rx_mu_;
  std::vector<uint8_t> rx_;
  size_t rx_len_ = 0;  // packet bytes after the header
  offload::GsoPacket rx_gso_;
  size_t rx_next_ = 0;  // next segment to hand out; rx_gso_.segments when none pending
};

}  // namespace xsktun::io
