#include "xsktun/io/tun.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

std::unique_ptr<TunDevice> TunDevice::create(const std::string& name, size_t mtu, std::string* err) {
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
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
  // IFF_NO_PI: no 4-byte packet-info prefix, so reads and writes are bare IP packets.
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    fail(err, "TUNSETIFF " + name, errno);
    close(fd);
    return nullptr;
  }
  std::string actual(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));  // pattern resolved
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
  // TODO(offload): IFF_VNET_HDR + TUNSETOFFLOAD (TSO/USO) pairs with UDP GSO/GRO, later issue.
  return std::unique_ptr<TunDevice>(new TunDevice(fd, wake_fd, std::move(actual), mtu));
}

TunDevice::TunDevice(int fd, int wake_fd, std::string name, size_t mtu)
    : fd_(fd), wake_fd_(wake_fd), name_(std::move(name)), mtu_(mtu) {}

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

int TunDevice::read_batch(std::span<PacketBuf> bufs) {
  if (bufs.empty()) return 0;
  for (;;) {
    // Read first: under load a packet is usually ready and this saves the poll() syscall.
    int n = drain(bufs);
    if (n != 0) return n;
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

int TunDevice::write_batch(std::span<PacketBuf> bufs) {
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
    write_errors_.fetch_add(1, std::memory_order_relaxed);
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
