#include "xsktun/io/udp_socket.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

// TODO(gso-gro, later issue): UDP GSO/GRO hook. On send, coalesce consecutive same-endpoint,
// same-size datagrams into one sendmsg with a UDP_SEGMENT cmsg; on receive, enable UDP_GRO and
// split each super-datagram by the UDP_GRO cmsg's segment size into PacketBufs. Both live in
// send_chunk()/recv_ready() below and need bigger-than-MTU buffers from the caller.

namespace xsktun::io {
namespace {

// mmsghdr arrays live on the stack; larger batches go in several syscalls.
constexpr size_t kChunk = 64;

void set_buffer(int fd, int force_opt, int opt) {
  int size = kUdpSocketBuffer;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof size) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size);  // capped at net.core.*mem_max
}

// The destination as this socket's family wants it: a dual-stack AF_INET6 socket needs IPv4
// peers as v4-mapped IPv6 (RFC 4291 2.5.5.2). Returns 0 if the endpoint cannot be reached.
socklen_t dest_sockaddr(const Endpoint& ep, int family, sockaddr_storage* ss) {
  if (!ep.valid()) return 0;
  if (family == AF_INET) return ep.addr.family == AF_INET ? ep.to_sockaddr(ss) : 0;
  if (ep.addr.family == AF_INET6) return ep.to_sockaddr(ss);
  Endpoint mapped;
  mapped.addr.family = AF_INET6;
  mapped.addr.bytes[10] = mapped.addr.bytes[11] = 0xff;
  std::memcpy(mapped.addr.bytes.data() + 12, ep.addr.bytes.data(), 4);
  mapped.port = ep.port;
  return mapped.to_sockaddr(ss);
}

}  // namespace

UdpSocket::Sock::~Sock() {
  if (fd >= 0) close(fd);
}

std::shared_ptr<UdpSocket::Sock> UdpSocket::open_sock(uint16_t port, uint32_t mark, int* err) {
  auto s = std::make_shared<Sock>();
  s->family = AF_INET6;
  s->fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s->fd < 0 && errno == EAFNOSUPPORT) {  // kernel built or booted without IPv6
    s->family = AF_INET;
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  if (s->fd < 0) {
    *err = errno;
    return nullptr;
  }
  int zero = 0;
  if (s->family == AF_INET6 && setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) {
    *err = errno;
    return nullptr;
  }
  set_buffer(s->fd, SO_RCVBUFFORCE, SO_RCVBUF);
  set_buffer(s->fd, SO_SNDBUFFORCE, SO_SNDBUF);
  if (mark != 0 && setsockopt(s->fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    *err = errno;
    return nullptr;
  }
  Endpoint any;
  any.addr.family = static_cast<uint8_t>(s->family);  // all-zero bytes: INADDR_ANY / in6addr_any
  any.port = port;
  sockaddr_storage ss;
  socklen_t len = any.to_sockaddr(&ss);
  if (bind(s->fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    *err = errno;
    return nullptr;
  }
  len = sizeof ss;  // port 0: learn what the kernel picked
  if (getsockname(s->fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) {
    *err = errno;
    return nullptr;
  }
  s->port = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)).port;
  return s;
}

std::unique_ptr<UdpSocket> UdpSocket::open(uint16_t port, std::string* err) {
  int e = 0;
  auto s = open_sock(port, 0, &e);
  if (!s) {
    if (err) *err = "UDP socket on port " + std::to_string(port) + ": " + std::strerror(e);
    return nullptr;
  }
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    if (err) *err = std::string("eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<UdpSocket>(new UdpSocket(std::move(s), wake_fd));
}

UdpSocket::UdpSocket(std::shared_ptr<Sock> sock, int wake_fd) : sock_(std::move(sock)), wake_fd_(wake_fd) {}

UdpSocket::~UdpSocket() { close(wake_fd_); }

std::shared_ptr<UdpSocket::Sock> UdpSocket::current() const {
  std::lock_guard lk(mu_);
  return sock_;
}

uint16_t UdpSocket::port() const { return current()->port; }

int UdpSocket::recv_ready(const Sock& s, std::span<PacketBuf> bufs) {
  size_t total = 0;
  while (total < bufs.size()) {
    size_t want = std::min(kChunk, bufs.size() - total);
    mmsghdr msgs[kChunk];
    iovec iov[kChunk];
    sockaddr_storage from[kChunk];
    std::memset(msgs, 0, sizeof(mmsghdr) * want);
    for (size_t i = 0; i < want; ++i) {
      iov[i] = {bufs[total + i].data, bufs[total + i].cap};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = recvmmsg(s.fd, msgs, static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || total > 0) break;
      return -errno;
    }
    for (int i = 0; i < r; ++i) {
      PacketBuf& b = bufs[total + i];
      bool trunc = msgs[i].msg_hdr.msg_flags & MSG_TRUNC;
      if (trunc) truncated_.fetch_add(1, std::memory_order_relaxed);
      b.len = trunc ? 0 : msgs[i].msg_len;
      b.endpoint = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&from[i]));
    }
    total += static_cast<size_t>(r);
    if (static_cast<size_t>(r) < want) break;  // queue drained
  }
  return static_cast<int>(total);
}

int UdpSocket::recv_batch(std::span<PacketBuf> bufs) {
  if (bufs.empty()) return 0;
  for (;;) {
    // Re-read the socket each round: rebind() may have replaced it while we slept.
    std::shared_ptr<Sock> s = current();
    int n = recv_ready(*s, bufs);
    if (n != 0) return n;
    pollfd pfd[2] = {{s->fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (pfd[1].revents & POLLIN) return 0;
  }
}

int UdpSocket::send_chunk(const Sock& s, std::span<PacketBuf> bufs, int* first_err) {
  mmsghdr msgs[kChunk];
  iovec iov[kChunk];
  sockaddr_storage to[kChunk];
  size_t m = 0;
  std::memset(msgs, 0, sizeof(mmsghdr) * bufs.size());
  for (PacketBuf& b : bufs) {
    socklen_t len = dest_sockaddr(b.endpoint, s.family, &to[m]);
    if (len == 0) {  // no endpoint yet, or IPv6 peer on an IPv4-only host
      if (*first_err == 0) *first_err = b.endpoint.valid() ? EAFNOSUPPORT : EDESTADDRREQ;
      send_errors_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    iov[m] = {b.data, b.len};
    msgs[m].msg_hdr.msg_name = &to[m];
    msgs[m].msg_hdr.msg_namelen = len;
    msgs[m].msg_hdr.msg_iov = &iov[m];
    msgs[m].msg_hdr.msg_iovlen = 1;
    ++m;
  }
  int sent = 0;
  size_t done = 0;
  while (done < m) {
    int r = sendmmsg(s.fd, msgs + done, static_cast<unsigned>(m - done), 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      sent += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // sendmmsg stops at the first failing datagram (and reports its errno only if it was the
    // first of the call): skip exactly that one and go on with the rest.
    if (*first_err == 0) *first_err = r < 0 ? errno : EIO;
    send_errors_.fetch_add(1, std::memory_order_relaxed);
    ++done;
  }
  return sent;
}

int UdpSocket::send_batch(std::span<PacketBuf> bufs) {
  std::shared_ptr<Sock> s = current();
  int sent = 0;
  int first_err = 0;
  for (size_t off = 0; off < bufs.size(); off += kChunk) {
    sent += send_chunk(*s, bufs.subspan(off, std::min(kChunk, bufs.size() - off)), &first_err);
  }
  return sent > 0 || first_err == 0 ? sent : -first_err;
}

int UdpSocket::rebind(uint16_t port) {
  std::lock_guard lk(mu_);
  if (port != 0 && port == sock_->port) return 0;
  int err = 0;
  std::shared_ptr<Sock> fresh = open_sock(port, fwmark_.load(std::memory_order_relaxed), &err);
  if (!fresh) return -err;
  std::shared_ptr<Sock> old = std::exchange(sock_, std::move(fresh));
  // Wake receivers blocked in poll() on the old socket: close() would not, but shutdown() does,
  // even on an unconnected UDP socket (net/ipv4/af_inet.c inet_shutdown: it returns ENOTCONN
  // yet still sets sk_shutdown and calls sk_state_change). The fd itself closes when the last
  // thread using it drops its reference.
  shutdown(old->fd, SHUT_RDWR);
  return 0;
}

int UdpSocket::try_set_fwmark(uint32_t mark) {
  std::lock_guard lk(mu_);
  // SO_MARK needs CAP_NET_ADMIN even to write 0, so skip the call when nothing changes.
  if (mark == fwmark_.load(std::memory_order_relaxed)) return 0;
  if (setsockopt(sock_->fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) return -errno;
  fwmark_.store(mark, std::memory_order_relaxed);
  return 0;
}

void UdpSocket::wake() {
  uint64_t one = 1;
  // Never drained, so the eventfd stays readable: wake() is sticky and reaches every receiver.
  [[maybe_unused]] ssize_t r = write(wake_fd_, &one, sizeof one);
}

}  // namespace xsktun::io
