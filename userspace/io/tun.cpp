#include "xsktun/io/tun.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace xsktun::io {
namespace {

// The tun driver's own MTU bounds (drivers/net/tun.c: MIN_MTU 68, MAX_MTU 65535).
constexpr size_t kMinMtu = 68;
constexpr size_t kMaxMtu = 65535;

bool fail(std::string* err, const std::string& what, int e) {
  if (err) *err = what + ": " + std::strerror(e);
  return false;
}

// MTU and flags are per-interface settings reached through any AF_INET socket (netdevice(7)).
bool configure_link(const std::string& name, size_t mtu, std::string* err) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail(err, "socket(AF_INET)", errno);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
  bool ok = true;
  ifr.ifr_mtu = static_cast<int>(mtu);
  if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
    ok = fail(err, "SIOCSIFMTU " + name, errno);
  } else if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
    ok = fail(err, "SIOCGIFFLAGS " + name, errno);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) ok = fail(err, "SIOCSIFFLAGS " + name, errno);
  }
  close(s);
  return ok;
}

// Errors after which the fd no longer reaches an interface: tun_chr_read_iter / write_iter
// return -EBADFD once the device is detached (unregistered); ENODEV is taken to mean the same.
// A read's EIO counts too (drain); a write's EIO only means the link is down (tun_get_user).
bool is_gone_errno(int e) { return e == EBADFD || e == ENODEV; }

// USO flags are newer (Linux 6.2) than the system headers may be.
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

bool offload_wanted(TunOffload o) {
  if (o != TunOffload::kAuto) return o == TunOffload::kOn;
  const char* v = std::getenv("XSKTUN_TUN_OFFLOAD");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

int set_iff(int fd, const std::string& name, short flags, std::string* actual) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
  ifr.ifr_flags = flags;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return errno;
  *actual = std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));  // pattern resolved
  return 0;
}

// Enables what the kernel accepts. TUNSETOFFLOAD refuses unknown bits with EINVAL
// (drivers/net/tun.c set_offload), and USO needs USO4 and USO6 together.
TunFeatures negotiate_offloads(int fd) {
  TunFeatures f;
  f.vnet_hdr = true;
  // The default header size is already sizeof(struct virtio_net_hdr); say so explicitly in
  // case the device was left with another size. A failure leaves that default.
  int hdr_size = static_cast<int>(offload::kVirtioNetHdrLen);
  (void)ioctl(fd, TUNSETVNETHDRSZ, &hdr_size);
  unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(fd, TUNSETOFFLOAD, tso | TUN_F_USO4 | TUN_F_USO6) == 0) {
    f.tso = f.uso = true;
  } else if (ioctl(fd, TUNSETOFFLOAD, tso) == 0) {
    f.tso = true;
  }
  return f;
}

// Read buffer: the header plus the largest packet the kernel builds (GSO_MAX_SIZE 64 KiB).
constexpr size_t kRxBufSize = offload::kVirtioNetHdrLen + 65536;

}  // namespace

std::unique_ptr<TunDevice> TunDevice::create(const std::string& name, size_t mtu, std::string* err,
                                             TunOffload offload, bool multi_queue) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    if (err) *err = "bad interface name '" + name + "' (1.." + std::to_string(IFNAMSIZ - 1) + " chars)";
    return nullptr;
  }
  if (mtu < kMinMtu || mtu > kMaxMtu) {
    if (err) *err = "MTU " + std::to_string(mtu) + " outside [68, 65535]";
    return nullptr;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    fail(err, "open /dev/net/tun", errno);
    return nullptr;
  }
  // IFF_NO_PI: no 4-byte packet-info prefix, so reads and writes are bare IP packets (behind the
  // virtio header with IFF_VNET_HDR). A kernel refusing the header gets the plain device.
  std::string actual;
  TunFeatures features;
  int e = EINVAL;
  short mq = multi_queue ? IFF_MULTI_QUEUE : 0;
  if (offload_wanted(offload)) {
    e = set_iff(fd, name, static_cast<short>(IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | mq), &actual);
    if (e == 0) features = negotiate_offloads(fd);
  }
  if (e != 0) e = set_iff(fd, name, static_cast<short>(IFF_TUN | IFF_NO_PI | mq), &actual);
  if (e != 0) {
    fail(err, "TUNSETIFF " + name, e);
    close(fd);
    return nullptr;
  }
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    fail(err, "eventfd", errno);
    close(fd);
    return nullptr;
  }
  if (!configure_link(actual, mtu, err)) {
    close(wake_fd);
    close(fd);
    return nullptr;
  }
  auto dev = std::unique_ptr<TunDevice>(new TunDevice(fd, wake_fd, std::move(actual), mtu, features));
  dev->multi_queue_ = multi_queue;
  return dev;
}

std::unique_ptr<TunDevice> TunDevice::open_queue(std::string* err) const {
  if (!multi_queue_) {
    if (err) *err = "TUN " + name_ + " was created with one queue";
    return nullptr;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    fail(err, "open /dev/net/tun", errno);
    return nullptr;
  }
  // A queue attaches with the flags the interface was created with (drivers/net/tun.c
  // tun_set_iff refuses others); the offloads are the device's, negotiated again all the same.
  short flags =
      static_cast<short>(IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (features_.vnet_hdr ? IFF_VNET_HDR : 0));
  std::string actual;
  TunFeatures features;
  int e = set_iff(fd, name_, flags, &actual);
  if (e == 0 && features_.vnet_hdr) features = negotiate_offloads(fd);
  if (e == 0 && !(features.tso == features_.tso && features.uso == features_.uso)) e = EINVAL;
  int wake_fd = e == 0 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (e == 0 && wake_fd < 0) e = errno;
  if (e != 0) {
    fail(err, "TUNSETIFF queue of " + name_, e);
    close(fd);
    return nullptr;
  }
  auto q = std::unique_ptr<TunDevice>(new TunDevice(fd, wake_fd, name_, mtu_, features_));
  q->multi_queue_ = true;
  return q;
}

int TunDevice::attach_bpf(bool steering, int prog_fd) {
  // TUNSETSTEERINGEBPF / TUNSETFILTEREBPF take the program for the whole device through any
  // of its queues; -1 detaches (drivers/net/tun.c tun_set_ebpf).
  if (ioctl(fd_, steering ? TUNSETSTEERINGEBPF : TUNSETFILTEREBPF, &prog_fd) < 0) return -errno;
  return 0;
}

TunDevice::TunDevice(int fd, int wake_fd, std::string name, size_t mtu, TunFeatures features)
    : fd_(fd), wake_fd_(wake_fd), name_(std::move(name)), mtu_(mtu), features_(features) {
  if (features_.vnet_hdr) rx_.resize(kRxBufSize);
  ready_ok_ = ready_.add(fd_) == 0 && ready_.add(wake_fd_) == 0;
}

TunDevice::~TunDevice() {
  close(fd_);
  close(wake_fd_);
}

int TunDevice::fail_gone(int err) {
  gone_.store(true, std::memory_order_relaxed);
  return -err;
}

int TunDevice::drain(std::span<PacketBuf> bufs) {
  size_t n = 0;
  while (n < bufs.size()) {
    ssize_t r = read(fd_, bufs[n].data, bufs[n].cap);
    if (r >= 0) {
      bufs[n++].len = static_cast<size_t>(r);
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) break;
    if (n > 0) break;  // report what we have; the error repeats on the next call
    if (is_gone_errno(e) || e == EIO) return fail_gone(e);
    return -e;
  }
  return static_cast<int>(n);
}

int TunDevice::drain_vnet(std::span<PacketBuf> bufs) {
  size_t n = emit_pending(bufs, 0);
  while (n < bufs.size()) {
    ssize_t r = read(fd_, rx_.data(), rx_.size());
    if (r >= 0) {
      n = accept_read(bufs, n, static_cast<size_t>(r));
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) break;
    if (n > 0) break;
    if (is_gone_errno(e) || e == EIO) return fail_gone(e);
    return -e;
  }
  return static_cast<int>(n);
}

size_t TunDevice::accept_read(std::span<PacketBuf> bufs, size_t n, size_t len) {
  if (len < offload::kVirtioNetHdrLen) {
    counters_->add(Counter::tun_read_drops);
    return n;
  }
  offload::VirtioNetHdr h;
  std::memcpy(&h, rx_.data(), sizeof h);
  std::span<uint8_t> pkt(rx_.data() + offload::kVirtioNetHdrLen, len - offload::kVirtioNetHdrLen);
  if (h.gso_type == offload::kGsoNone) {
    // TUN_F_CSUM lets the kernel leave the L4 checksum to us (CHECKSUM_PARTIAL).
    bool partial = h.flags & offload::kFlagNeedsCsum;
    if (partial && !offload::complete_checksum(pkt, h.csum_start, h.csum_offset)) {
      counters_->add(Counter::tun_read_drops);
      return n;
    }
    size_t c = std::min(pkt.size(), bufs[n].cap);
    std::memcpy(bufs[n].data, pkt.data(), c);
    bufs[n].len = c;
    return n + 1;
  }
  auto g = offload::parse_gso(h, pkt);
  if (!g) {
    counters_->add(Counter::tun_read_drops);
    return n;
  }
  offload::align_tcp_segments(*g, pkt.size(), kSegmentAlign);
  counters_->add(Counter::tun_split_packets);
  rx_gso_ = *g;
  rx_len_ = pkt.size();
  rx_next_ = 0;
  return emit_pending(bufs, n);
}

size_t TunDevice::emit_pending(std::span<PacketBuf> bufs, size_t n) {
  std::span<const uint8_t> pkt(rx_.data() + offload::kVirtioNetHdrLen, rx_len_);
  while (rx_next_ < rx_gso_.segments && n < bufs.size()) {
    size_t len = offload::write_segment(rx_gso_, pkt, rx_next_, bufs[n].data, bufs[n].cap);
    if (len == 0) {  // a segment larger than the buffers: the MTU was raised under us
      counters_->add(Counter::tun_read_drops);
      rx_next_ = rx_gso_.segments;
      break;
    }
    bufs[n++].len = len;
    ++rx_next_;
  }
  return n;
}

int TunDevice::try_read_batch(std::span<PacketBuf> bufs) { return read_some(bufs, false); }

int TunDevice::read_batch(std::span<PacketBuf> bufs) { return read_some(bufs, true); }

int TunDevice::read_some(std::span<PacketBuf> bufs, bool wait) {
  if (bufs.empty()) return 0;
  std::unique_lock<std::mutex> lock(rx_mu_, std::defer_lock);
  if (features_.vnet_hdr) lock.lock();
  for (;;) {
    // Read first: under load a packet is usually ready and this saves the poll() syscall.
    // Pending segments of a super-packet come out here without any syscall.
    int n = features_.vnet_hdr ? drain_vnet(bufs) : drain(bufs);
    if (n != 0 || !wait) return n;
    pollfd pfd[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (pfd[1].revents & POLLIN) return 0;
    // POLLERR on the TUN fd (tun_chr_poll when detached) falls through to read(), which then
    // reports the precise errno.
  }
}

int TunDevice::write_iov(const iovec* iov, int cnt) {
  ssize_t r;
  do {
    r = writev(fd_, iov, cnt);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? errno : 0;
}

int TunDevice::write_plain(std::span<PacketBuf> bufs) {
  int written = 0;
  for (const PacketBuf& b : bufs) {
    ssize_t r;
    do {
      r = write(fd_, b.data, b.len);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      ++written;
      continue;
    }
    int e = errno;
    if (is_gone_errno(e)) return fail_gone(e);
    // EINVAL (not a valid IP packet), EIO (link down), EAGAIN, ...: drop just this packet.
    counters_->add(Counter::tun_write_errors);
  }
  return written;
}

int TunDevice::write_batch(std::span<PacketBuf> bufs) {
  if (!features_.vnet_hdr) return write_plain(bufs);
  // Per-thread scratch: several receive threads may write at once, without allocating per call.
  thread_local offload::GroBatch gro;
  thread_local std::vector<iovec> iov;
  static const offload::VirtioNetHdr kPlain{};  // gso NONE, checksum complete
  auto single = [&](const PacketBuf& b) {
    iovec v[2] = {{const_cast<offload::VirtioNetHdr*>(&kPlain), sizeof kPlain}, {b.data, b.len}};
    return write_iov(v, 2);
  };
  if (features_.tso) {
    // Inner checksums are trusted, not verified: everything written here passed the AEAD
    // (Device::receive_run; see offload.h).
    offload::gro_coalesce(bufs, gro, features_.uso);
  } else {
    offload::gro_singletons(bufs.size(), gro);
  }
  int written = 0;
  for (offload::GroGroup& g : gro.groups) {
    int e;
    if (g.count == 1) {
      e = single(bufs[g.first]);
    } else {
      // Header and rewritten IP/TCP header, then each member's payload in place: no copy.
      iov.clear();
      iov.push_back({&g.vnet, sizeof g.vnet});
      iov.push_back({g.head.data(), g.head_len});
      for (int32_t i = static_cast<int32_t>(g.first); i >= 0; i = gro.next[i])
        iov.push_back({bufs[i].data + g.head_len, bufs[i].len - g.head_len});
      e = write_iov(iov.data(), static_cast<int>(iov.size()));
    }
    if (e == 0) {
      written += static_cast<int>(g.count);
      if (g.count > 1) counters_->add(Counter::tun_coalesced_packets, g.count);
      continue;
    }
    if (is_gone_errno(e)) return fail_gone(e);
    if (g.count > 1 && e == EINVAL) {
      // The kernel refused the super-packet (virtio_net_hdr_to_skb): its members still may go
      // out one by one, rather than losing a whole run to a header the kernel disagrees with.
      for (int32_t i = static_cast<int32_t>(g.first); i >= 0; i = gro.next[i]) {
        int e1 = single(bufs[i]);
        if (e1 == 0) {
          ++written;
        } else if (is_gone_errno(e1)) {
          return fail_gone(e1);
        } else {
          counters_->add(Counter::tun_write_errors);
        }
      }
      continue;
    }
    counters_->add(Counter::tun_write_errors, g.count);
  }
  return written;
}

void TunDevice::wake() {
  uint64_t one = 1;
  // Never drained, so the eventfd stays readable: wake() is sticky and reaches every reader.
  // EAGAIN (counter saturated) is impossible in practice and harmless: it is already readable.
  [[maybe_unused]] ssize_t r = write(wake_fd_, &one, sizeof one);
}

}  // namespace xsktun::io
