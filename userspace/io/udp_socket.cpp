#include "xsktun/io/udp_socket.h"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

namespace xsktun::io {
namespace {

// mmsghdr arrays live on the stack; larger batches go in several syscalls.
constexpr size_t kChunk = 64;
// Send chunks are larger so that one sendmmsg can carry several GSO messages.
constexpr size_t kSendChunk = 128;

// GSO limits (net/ipv4/udp.c udp_send_skb): the kernel refuses a message whose skb->len, headers
// included, exceeds gso_size * UDP_MAX_SEGMENTS (64 before Linux 6.11), so 63 segments plus up to
// 48 header bytes (IPv6 + UDP) always fit when gso_size >= 48. The IPv4 total length is 16 bits:
// 65535 - 20 - 8 payload bytes at most (__ip_append_data says EMSGSIZE beyond).
constexpr size_t kMaxGsoSegments = 63;
constexpr size_t kMinGsoSize = 48;
constexpr size_t kMaxGsoBytes = 65507;

// GRO receive slots: a coalesced super-datagram is at most 64 KiB (udp_gro_receive_segment).
// Segments are handed out in place, so one call never refills a slot it handed out: with one
// slot per caller buffer (kChunk, the runner's batch) a call can still fill every buffer with
// small datagrams. 4 MiB of address space; pages are committed as datagrams land in them.
constexpr size_t kRxSlotSize = 65536;
constexpr size_t kRxSlots = kChunk;

bool offload_allowed() {
  const char* v = std::getenv("XSKTUN_UDP_OFFLOAD");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

struct GsoCmsg {
  alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t))];
};
struct GroCmsg {
  alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
};

// The gso_size the kernel reported for a received datagram (udp_cmsg_recv puts an int), or 0.
size_t gro_segment_size(msghdr& h) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int size = 0;
      std::memcpy(&size, CMSG_DATA(c), sizeof size);
      return size > 0 ? static_cast<size_t>(size) : 0;
    }
  }
  return 0;
}

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

// One plan for a chunk of buffers to send: each message is a run of consecutive buffers to one
// endpoint (one buffer, or several as a GSO message). Arrays indexed by buffer: iov, to, tolen.
struct SendPlan {
  mmsghdr msgs[kSendChunk];
  GsoCmsg ctrl[kSendChunk];
  uint16_t first[kSendChunk];  // per message: index of its first buffer
  uint16_t segs[kSendChunk];   // per message: number of datagrams it carries
  iovec iov[kSendChunk];
  sockaddr_storage to[kSendChunk];
  socklen_t tolen[kSendChunk];  // 0: unreachable endpoint, skipped
};

// Groups bufs[from..] into messages. With `gso`, a run grows while the endpoint matches, every
// datagram has the run's size (the last may be shorter, and closes the run) and the limits hold;
// udp(7): all segments but the last must be exactly gso_size bytes.
size_t plan_messages(std::span<PacketBuf> bufs, size_t from, bool gso, SendPlan& p) {
  size_t m = 0;
  size_t seg = 0;
  size_t bytes = 0;
  bool open = false;
  for (size_t i = from; i < bufs.size(); ++i) {
    const PacketBuf& b = bufs[i];
    p.iov[i] = {b.data, b.len};
    if (p.tolen[i] == 0) {
      open = false;
      continue;
    }
    if (open && b.len <= seg && p.segs[m - 1] < kMaxGsoSegments && bytes + b.len <= kMaxGsoBytes &&
        b.endpoint == bufs[p.first[m - 1]].endpoint) {
      ++p.segs[m - 1];
      ++p.msgs[m - 1].msg_hdr.msg_iovlen;
      bytes += b.len;
      open = b.len == seg;
      continue;
    }
    p.msgs[m] = {};
    msghdr& h = p.msgs[m].msg_hdr;
    h.msg_name = &p.to[i];
    h.msg_namelen = p.tolen[i];
    h.msg_iov = &p.iov[i];  // the run's buffers are gathered by the kernel: no copy here
    h.msg_iovlen = 1;
    p.first[m] = static_cast<uint16_t>(i);
    p.segs[m] = 1;
    ++m;
    seg = bytes = b.len;
    open = gso && seg >= kMinGsoSize;
  }
  for (size_t k = 0; k < m; ++k) {
    if (p.segs[k] < 2) continue;
    msghdr& h = p.msgs[k].msg_hdr;
    h.msg_control = p.ctrl[k].buf;
    h.msg_controllen = sizeof p.ctrl[k].buf;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    auto size = static_cast<uint16_t>(p.iov[p.first[k]].iov_len);
    std::memcpy(CMSG_DATA(c), &size, sizeof size);
  }
  return m;
}

// Errors with which udp_send_skb refuses a GSO message that would have gone out as single
// datagrams: EIO (no checksum offload on the device, or xfrm), EINVAL (segment larger than the
// path MTU, SO_NO_CHECK, too many segments), EMSGSIZE (newer kernels, for the MTU case).
bool gso_refused(int err) { return err == EIO || err == EINVAL || err == EMSGSIZE; }

}  // namespace

struct UdpSocket::RxState {
  struct Slot {
    size_t len = 0;
    size_t seg = 0;  // gso_size from the UDP_GRO cmsg; 0: a single datagram
    bool trunc = false;
    Endpoint from;
  };
  std::unique_ptr<uint8_t[]> arena;  // kRxSlots * kRxSlotSize, allocated on first GRO receive
  Slot slots[kRxSlots];
  size_t count = 0;  // end of the slots filled by the last recvmmsg
  size_t next = 0;   // first slot not fully delivered
  size_t off = 0;    // bytes of slots[next] already delivered
};

UdpSocket::Sock::~Sock() {
  if (fd >= 0) close(fd);
}

std::shared_ptr<UdpSocket::Sock> UdpSocket::open_sock(uint16_t port, uint32_t mark, bool reuseport,
                                                      int* err) {
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
  int one = 1;
  if (reuseport && setsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    *err = errno;
    return nullptr;
  }
  set_buffer(s->fd, SO_RCVBUFFORCE, SO_RCVBUF);
  set_buffer(s->fd, SO_SNDBUFFORCE, SO_SNDBUF);
  if (mark != 0 && setsockopt(s->fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    *err = errno;
    return nullptr;
  }
  if (offload_allowed()) {
    // Probe GSO with a read: kernels before 4.18 fail with ENOPROTOOPT, and would otherwise
    // ignore the SOL_UDP cmsg and send one oversized datagram.
    int seg = 0;
    socklen_t seg_len = sizeof seg;
    s->gso = getsockopt(s->fd, SOL_UDP, UDP_SEGMENT, &seg, &seg_len) == 0;
    s->gro = setsockopt(s->fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
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

std::unique_ptr<UdpSocket> UdpSocket::open(uint16_t port, std::string* err, bool reuseport) {
  int e = 0;
  auto s = open_sock(port, 0, reuseport, &e);
  if (!s) {
    if (err) *err = "UDP socket on port " + std::to_string(port) + ": " + std::strerror(e);
    return nullptr;
  }
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    if (err) *err = std::string("eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  auto u = std::unique_ptr<UdpSocket>(new UdpSocket(std::move(s), wake_fd));
  u->reuseport_ = reuseport;
  return u;
}

UdpSocket::UdpSocket(std::shared_ptr<Sock> sock, int wake_fd)
    : sock_(std::move(sock)), wake_fd_(wake_fd), rx_(std::make_unique<RxState>()) {
  ready_ok_ = ready_.add(sock_->fd) == 0 && ready_.add(wake_fd_) == 0;
}

UdpSocket::~UdpSocket() { close(wake_fd_); }

std::shared_ptr<UdpSocket::Sock> UdpSocket::current() const {
  std::lock_guard lk(mu_);
  return sock_;
}

uint16_t UdpSocket::port() const { return current()->port; }

// Without GRO every datagram fits a caller buffer or is truncated anyway: receive in place.
int UdpSocket::recv_direct(const Sock& s, std::span<PacketBuf> bufs) {
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
      if (trunc) counters_->add(Counter::udp_truncated);
      b.len = trunc ? 0 : msgs[i].msg_len;
      b.endpoint = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&from[i]));
    }
    total += static_cast<size_t>(r);
    if (static_cast<size_t>(r) < want) break;  // queue drained
  }
  return static_cast<int>(total);
}

// Reads up to `want` (super-)datagrams into the GRO slots from `first` on. Returns how many, 0
// if none is queued, or -errno. Only called when every earlier slot was delivered.
int UdpSocket::fill_slots(const Sock& s, size_t first, size_t want) {
  RxState& rx = *rx_;
  // Uninitialised on purpose: zeroing would commit all 4 MiB up front.
  if (!rx.arena) rx.arena.reset(new uint8_t[kRxSlots * kRxSlotSize]);
  mmsghdr msgs[kRxSlots];
  iovec iov[kRxSlots];
  sockaddr_storage from[kRxSlots];
  GroCmsg ctrl[kRxSlots];
  std::memset(msgs, 0, sizeof(mmsghdr) * want);
  for (size_t i = 0; i < want; ++i) {
    iov[i] = {rx.arena.get() + (first + i) * kRxSlotSize, kRxSlotSize};
    msghdr& h = msgs[i].msg_hdr;
    h.msg_name = &from[i];
    h.msg_namelen = sizeof from[i];
    h.msg_iov = &iov[i];
    h.msg_iovlen = 1;
    h.msg_control = ctrl[i].buf;
    h.msg_controllen = sizeof ctrl[i].buf;
  }
  int r;
  do {
    r = recvmmsg(s.fd, msgs, static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EAGAIN ? 0 : -errno;
  for (int i = 0; i < r; ++i) {
    RxState::Slot& slot = rx.slots[first + static_cast<size_t>(i)];
    slot.len = msgs[i].msg_len;
    slot.trunc = msgs[i].msg_hdr.msg_flags & MSG_TRUNC;
    slot.seg = gro_segment_size(msgs[i].msg_hdr);
    slot.from = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&from[i]));
    if (slot.seg != 0 && slot.len > slot.seg) counters_->add(Counter::udp_gro_receives);
  }
  rx.count = first + static_cast<size_t>(r);
  rx.next = first;
  rx.off = 0;
  return r;
}

// Hands out pending segments in order, one per caller buffer, pointing into the arena rather
// than copying (UdpIo::recv_batch allows it; the arena is refilled only in a later call, once
// every segment was handed out). A segment (or plain datagram) longer than the caller's buffer
// is delivered with len 0 and counted, like a truncated recvmmsg, so the limit stays the caller's.
size_t UdpSocket::drain_pending(std::span<PacketBuf> bufs) {
  RxState& rx = *rx_;
  size_t n = 0;
  while (n < bufs.size() && rx.next < rx.count) {
    const RxState::Slot& slot = rx.slots[rx.next];
    uint8_t* data = rx.arena.get() + rx.next * kRxSlotSize + rx.off;
    size_t take = slot.trunc ? 0 : std::min(slot.seg != 0 ? slot.seg : slot.len, slot.len - rx.off);
    PacketBuf& b = bufs[n++];
    b.endpoint = slot.from;
    if (slot.trunc || take > b.cap) {
      counters_->add(Counter::udp_truncated);
      b.len = 0;
    } else {
      b.data = data;
      b.len = b.cap = take;
    }
    rx.off += take;
    if (slot.trunc || rx.off >= slot.len) {
      ++rx.next;
      rx.off = 0;
    }
  }
  return n;
}

int UdpSocket::recv_ready(const Sock& s, std::span<PacketBuf> bufs) {
  std::lock_guard lk(rx_mu_);
  size_t total = drain_pending(bufs);  // leftovers first, even from a socket since replaced
  if (total == bufs.size()) return static_cast<int>(total);
  if (!s.gro) {
    int r = recv_direct(s, bufs.subspan(total));
    if (r < 0) return total > 0 ? static_cast<int>(total) : r;
    return static_cast<int>(total) + r;
  }
  // Slots handed out in this call (the leftovers' included) stay untouched until the next one.
  size_t first = total > 0 ? rx_->count : 0;
  while (total < bufs.size() && first < kRxSlots) {
    size_t want = std::min(kRxSlots - first, bufs.size() - total);
    int r = fill_slots(s, first, want);
    if (r < 0) {
      if (total > 0) break;
      return r;
    }
    total += drain_pending(bufs.subspan(total));
    if (static_cast<size_t>(r) < want) break;  // queue drained
    first = rx_->count;
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

int UdpSocket::try_recv_batch(std::span<PacketBuf> bufs) {
  if (bufs.empty()) return 0;
  std::shared_ptr<Sock> s = current();
  return recv_ready(*s, bufs);
}

int UdpSocket::send_chunk(Sock& s, std::span<PacketBuf> bufs, int* first_err) {
  SendPlan p;
  for (size_t i = 0; i < bufs.size(); ++i) {
    p.tolen[i] = dest_sockaddr(bufs[i].endpoint, s.family, &p.to[i]);
    if (p.tolen[i] == 0) {  // no endpoint yet, or IPv6 peer on an IPv4-only host
      if (*first_err == 0) *first_err = bufs[i].endpoint.valid() ? EAFNOSUPPORT : EDESTADDRREQ;
      counters_->add(Counter::udp_send_errors);
    }
  }
  size_t m = plan_messages(bufs, 0, s.gso.load(std::memory_order_relaxed), p);
  int sent = 0;
  size_t done = 0;
  while (done < m) {
    int r = sendmmsg(s.fd, p.msgs + done, static_cast<unsigned>(m - done), 0);
    if (r > 0) {
      for (size_t k = done; k < done + static_cast<size_t>(r); ++k) {
        sent += p.segs[k];
        if (p.segs[k] > 1) counters_->add(Counter::udp_gso_sends);
      }
      done += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    int err = r < 0 ? errno : EIO;
    if (p.segs[done] > 1 && gso_refused(err)) {
      // Like wireguard-go: a device without checksum offload will refuse every GSO message,
      // so stop trying on this socket. EMSGSIZE is about one path's MTU: retry without GSO
      // for this chunk only. Either way the refused datagrams go out again one by one.
      if (err != EMSGSIZE) s.gso.store(false, std::memory_order_relaxed);
      m = plan_messages(bufs, p.first[done], false, p);
      done = 0;
      continue;
    }
    // sendmmsg stops at the first failing message (and reports its errno only if it was the
    // first of the call): skip exactly that one and go on with the rest.
    if (*first_err == 0) *first_err = err;
    counters_->add(Counter::udp_send_errors, p.segs[done]);
    ++done;
  }
  return sent;
}

int UdpSocket::send_batch(std::span<PacketBuf> bufs) {
  std::shared_ptr<Sock> s = current();
  int sent = 0;
  int first_err = 0;
  for (size_t off = 0; off < bufs.size(); off += kSendChunk) {
    sent += send_chunk(*s, bufs.subspan(off, std::min(kSendChunk, bufs.size() - off)), &first_err);
  }
  return sent > 0 || first_err == 0 ? sent : -first_err;
}

int UdpSocket::rebind(uint16_t port) {
  std::lock_guard lk(mu_);
  if (port != 0 && port == sock_->port) return 0;
  int err = 0;
  std::shared_ptr<Sock> fresh = open_sock(port, fwmark_.load(std::memory_order_relaxed), reuseport_, &err);
  // A -> B -> A: the socket retired from A may still be held by a thread that has not yet
  // noticed the switch (its fd closes with the last reference), so A looks taken by us.
  // An expired entry still counts: its last holder may be inside ~Sock, just before close().
  bool ours = std::any_of(retired_.begin(), retired_.end(), [&](const auto& r) { return r.first == port; });
  for (int waited = 0; !fresh && err == EADDRINUSE && ours && waited < kRebindWaitMs; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    fresh = open_sock(port, fwmark_.load(std::memory_order_relaxed), reuseport_, &err);
  }
  if (!fresh) return -err;
  if (ready_ok_) {
    // The single-thread Runner polls ready_: it must see the new socket, or it would sleep
    // through its datagrams. Failing here keeps the old socket, like any other failure.
    if (int r = ready_.add(fresh->fd); r < 0) return r;
    ready_.remove(sock_->fd);
  }
  std::erase_if(retired_, [](const auto& r) { return r.second.expired(); });
  retired_.emplace_back(sock_->port, sock_);
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

uint64_t UdpSocket::receive_drops() const {
  uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof mem;
  auto s = current();
  if (getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 || len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
    return 0;
  return mem[SK_MEMINFO_DROPS];
}

}  // namespace xsktun::io
