// The real inner side: a Linux TUN device (IFF_TUN | IFF_NO_PI, one queue).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "xsktun/io/packet_io.h"

namespace xsktun::io {

// 1420 = 1500 minus the worst-case WireGuard overhead over IPv6 (40 IPv6 + 8 UDP + 32 data header
// and tag), the default of wg-quick.
inline constexpr size_t kDefaultTunMtu = 1420;

class TunDevice final : public TunIo {
 public:
  // Creates (or attaches to) TUN interface `name` in the caller's network namespace, sets its
  // MTU and brings it up. `name` may be a kernel pattern such as "xsk%d"; name() then holds the
  // interface the kernel picked. Needs CAP_NET_ADMIN. Returns nullptr and fills *err (if not
  // null) on failure.
  static std::unique_ptr<TunDevice> create(const std::string& name, size_t mtu = kDefaultTunMtu,
                                           std::string* err = nullptr);
  // Closing the last fd of a non-persistent TUN makes the kernel delete the interface.
  ~TunDevice() override;
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  // Drains up to bufs.size() ready packets; when none is ready, blocks in poll() until one is or
  // until wake(). A packet longer than its buffer is truncated by the kernel (bufs[i].len ==
  // cap), so size buffers for the MTU. Returns the count, 0 after wake(), or -errno: -EBADFD /
  // -ENODEV / -EIO mean the interface was deleted under us (gone() turns true).
  int read_batch(std::span<PacketBuf> bufs) override;
  // write(2)s each packet. Packets the kernel rejects (EINVAL: not IP / malformed; EIO: link
  // down; anything else per-packet) are skipped and counted in write_errors(). Returns the
  // number written, or -errno if the interface is gone.
  int write_batch(std::span<PacketBuf> bufs) override;
  size_t mtu() const override { return mtu_; }
  // Sticky: once called, every read_batch that finds no packet ready returns 0 at once.
  void wake() override;

  const std::string& name() const { return name_; }
  // True once a read or write saw the interface disappear (e.g. `ip link del`).
  bool gone() const { return gone_.load(std::memory_order_relaxed); }
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

 private:
  TunDevice(int fd, int wake_fd, std::string name, size_t mtu);
  // Non-blocking reads until EAGAIN or `bufs` is full: count, or -errno on a fatal error.
  int drain(std::span<PacketBuf> bufs);
  int fail_gone(int err);

  int fd_;
  int wake_fd_;  // eventfd; readable once wake() was called
  std::string name_;
  size_t mtu_;
  std::atomic<bool> gone_{false};
  std::atomic<uint64_t> write_errors_{0};
};

}  // namespace xsktun::io
