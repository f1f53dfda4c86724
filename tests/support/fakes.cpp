#include "xsktun/io/fakes.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

namespace xsktun::io {
namespace {

// Copies `src` into `b`; returns false (and sets len to what fit) if it did not fit.
bool copy_in(PacketBuf& b, const Bytes& src) {
  size_t n = std::min(src.size(), b.cap);
  if (n) std::memcpy(b.data, src.data(), n);
  b.len = n;
  return n == src.size();
}

// drivers/net/tun.c tun_get_user: with IFF_NO_PI the protocol comes from the IP version nibble
// and anything but 4 or 6 is -EINVAL.
bool looks_like_ip(const PacketBuf& b) {
  return b.len > 0 && ((b.data[0] >> 4) == 4 || (b.data[0] >> 4) == 6);
}

}  // namespace

// ---- ReadyFlag ----

ReadyFlag::ReadyFlag() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
ReadyFlag::~ReadyFlag() {
  if (fd_ >= 0) close(fd_);
}
void ReadyFlag::set(bool on) {
  if (on == on_ || fd_ < 0) return;
  uint64_t v = 1;
  ssize_t r = on ? write(fd_, &v, sizeof v) : read(fd_, &v, sizeof v);  // set / reset the counter
  if (r == sizeof v) on_ = on;
}

// ---- FakeTun ----

void FakeTun::inject(Bytes packet) {
  {
    std::lock_guard lk(mu_);
    rx_.push_back(std::move(packet));
    sync_ready_locked();
  }
  cv_.notify_all();
}

std::vector<Bytes> FakeTun::take_written() {
  std::lock_guard lk(mu_);
  return std::exchange(written_, {});
}

size_t FakeTun::pending() const {
  std::lock_guard lk(mu_);
  return rx_.size();
}

void FakeTun::set_blocking(bool blocking) {
  {
    std::lock_guard lk(mu_);
    blocking_ = blocking;
  }
  cv_.notify_all();
}

uint64_t FakeTun::write_errors() const {
  std::lock_guard lk(mu_);
  return write_errors_;
}

uint64_t FakeTun::truncated() const {
  std::lock_guard lk(mu_);
  return truncated_;
}

bool FakeTun::woken() const {
  std::lock_guard lk(mu_);
  return woken_;
}

int FakeTun::read_batch(std::span<PacketBuf> bufs) {
  if (bufs.empty()) return 0;
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !blocking_ || woken_ || !rx_.empty(); });
  return take_locked(bufs);
}

int FakeTun::try_read_batch(std::span<PacketBuf> bufs) {
  std::lock_guard lk(mu_);
  return take_locked(bufs);
}

int FakeTun::take_locked(std::span<PacketBuf> bufs) {
  size_t n = 0;
  for (; n < bufs.size() && !rx_.empty(); ++n) {
    if (!copy_in(bufs[n], rx_.front())) ++truncated_;  // the kernel truncates silently too
    rx_.pop_front();
  }
  sync_ready_locked();
  return static_cast<int>(n);
}

int FakeTun::write_batch(std::span<PacketBuf> bufs) {
  std::lock_guard lk(mu_);
  int written = 0;
  for (const PacketBuf& b : bufs) {
    if (!looks_like_ip(b)) {
      ++write_errors_;
      continue;
    }
    written_.emplace_back(b.data, b.data + b.len);
    ++written;
  }
  return written;
}

void FakeTun::wake() {
  {
    std::lock_guard lk(mu_);
    woken_ = true;
    sync_ready_locked();
  }
  cv_.notify_all();
}

// ---- FakeNetwork ----

FakeNetwork::~FakeNetwork() {
  // A FakeUdp outliving its network would dereference a dead mutex; catch that in debug builds.
  assert(hosts_.empty() && "FakeNetwork destroyed before its FakeUdp hosts");
}

std::unique_ptr<FakeUdp> FakeNetwork::attach(const IpAddr& addr, uint16_t port) {
  std::lock_guard lk(mu_);
  std::vector<IpAddr> addrs{addr};
  if (port == 0) {
    port = pick_port_locked(addrs);
  } else if (!port_free_locked(addrs, port, nullptr)) {
    return nullptr;
  }
  std::unique_ptr<FakeUdp> host(new FakeUdp(*this, addr, port));
  hosts_.push_back(host.get());
  return host;
}

FakeUdp* FakeNetwork::find_locked(const Endpoint& to) const {
  for (FakeUdp* h : hosts_) {
    if (h->port_ == to.port && std::find(h->addrs_.begin(), h->addrs_.end(), to.addr) != h->addrs_.end()) {
      return h;
    }
  }
  return nullptr;
}

bool FakeNetwork::port_free_locked(const std::vector<IpAddr>& addrs, uint16_t port,
                                   const FakeUdp* self) const {
  for (const IpAddr& a : addrs) {
    FakeUdp* h = find_locked(Endpoint{a, port});
    if (h && h != self) return false;
  }
  return true;
}

uint16_t FakeNetwork::pick_port_locked(const std::vector<IpAddr>& addrs) {
  // Sequential from the IANA dynamic range (RFC 6335); deterministic for reproducible tests.
  for (;;) {
    uint16_t p = next_port_;
    next_port_ = next_port_ == 65535 ? 49152 : static_cast<uint16_t>(next_port_ + 1);
    if (port_free_locked(addrs, p, nullptr)) return p;
  }
}

void FakeNetwork::enqueue_locked(FakeUdp* dst, const Endpoint& from, Bytes bytes) {
  if (dst->rx_.size() >= kQueueLimit) {
    ++dropped_;
    return;
  }
  dst->rx_.push_back({from, std::move(bytes)});
  dst->sync_ready_locked();
  dst->cv_.notify_all();
}

void FakeNetwork::send_locked(const Datagram& d) {
  if (capture_) captured_.push_back(d);
  if (drop_ || (filter_ && filter_(d))) {
    ++dropped_;
    return;
  }
  FakeUdp* dst = find_locked(d.to);
  if (!dst) return;  // nobody listens there: lost silently, as UDP is
  size_t before = dropped_;
  enqueue_locked(dst, d.from, d.bytes);
  if (dropped_ == before) ++delivered_;
}

void FakeNetwork::set_drop(bool drop) {
  std::lock_guard lk(mu_);
  drop_ = drop;
}

void FakeNetwork::set_filter(Filter drop_if) {
  std::lock_guard lk(mu_);
  filter_ = std::move(drop_if);
}

std::vector<Datagram> FakeNetwork::capture() const {
  std::lock_guard lk(mu_);
  return captured_;
}

void FakeNetwork::clear_capture() {
  std::lock_guard lk(mu_);
  captured_.clear();
}

void FakeNetwork::set_capture(bool enabled) {
  std::lock_guard lk(mu_);
  capture_ = enabled;
}

uint64_t FakeNetwork::delivered() const {
  std::lock_guard lk(mu_);
  return delivered_;
}

uint64_t FakeNetwork::dropped() const {
  std::lock_guard lk(mu_);
  return dropped_;
}

// ---- FakeUdp ----

FakeUdp::FakeUdp(FakeNetwork& net, const IpAddr& addr, uint16_t port)
    : net_(net), addrs_{addr}, port_(port) {}

FakeUdp::~FakeUdp() {
  std::lock_guard lk(net_.mu_);
  std::erase(net_.hosts_, this);
}

void FakeUdp::inject(const Endpoint& from, Bytes bytes) {
  std::lock_guard lk(net_.mu_);
  net_.enqueue_locked(this, from, std::move(bytes));
}

Endpoint FakeUdp::local() const {
  std::lock_guard lk(net_.mu_);
  return Endpoint{addrs_.front(), port_};
}

int FakeUdp::add_address(const IpAddr& addr) {
  std::lock_guard lk(net_.mu_);
  if (std::find(addrs_.begin(), addrs_.end(), addr) != addrs_.end()) return 0;
  if (!net_.port_free_locked({addr}, port_, this)) return -EADDRINUSE;
  addrs_.push_back(addr);
  return 0;
}

int FakeUdp::set_address(const IpAddr& addr) {
  std::lock_guard lk(net_.mu_);
  if (!net_.port_free_locked({addr}, port_, this)) return -EADDRINUSE;
  addrs_.assign(1, addr);
  return 0;
}

size_t FakeUdp::pending() const {
  std::lock_guard lk(net_.mu_);
  return rx_.size();
}

void FakeUdp::set_blocking(bool blocking) {
  std::lock_guard lk(net_.mu_);
  blocking_ = blocking;
  cv_.notify_all();
}

uint32_t FakeUdp::fwmark() const {
  std::lock_guard lk(net_.mu_);
  return fwmark_;
}

uint64_t FakeUdp::truncated() const {
  std::lock_guard lk(net_.mu_);
  return truncated_;
}

bool FakeUdp::woken() const {
  std::lock_guard lk(net_.mu_);
  return woken_;
}

int FakeUdp::recv_batch(std::span<PacketBuf> bufs) {
  if (bufs.empty()) return 0;
  std::unique_lock lk(net_.mu_);
  cv_.wait(lk, [&] { return !blocking_ || woken_ || !rx_.empty(); });
  return take_locked(bufs);
}

int FakeUdp::try_recv_batch(std::span<PacketBuf> bufs) {
  std::lock_guard lk(net_.mu_);
  return take_locked(bufs);
}

int FakeUdp::take_locked(std::span<PacketBuf> bufs) {
  size_t n = 0;
  for (; n < bufs.size() && !rx_.empty(); ++n) {
    PacketBuf& b = bufs[n];
    if (!copy_in(b, rx_.front().bytes)) {  // mirror UdpSocket: a truncated datagram reads as empty
      b.len = 0;
      ++truncated_;
    }
    b.endpoint = rx_.front().from;
    rx_.pop_front();
  }
  sync_ready_locked();
  return static_cast<int>(n);
}

int FakeUdp::send_batch(std::span<PacketBuf> bufs) {
  std::lock_guard lk(net_.mu_);
  int sent = 0;
  int first_err = 0;
  for (const PacketBuf& b : bufs) {
    auto src = std::find_if(addrs_.begin(), addrs_.end(),
                            [&](const IpAddr& a) { return a.family == b.endpoint.addr.family; });
    if (!b.endpoint.valid() || src == addrs_.end()) {
      if (first_err == 0) first_err = b.endpoint.valid() ? ENETUNREACH : EDESTADDRREQ;
      continue;
    }
    net_.send_locked(Datagram{Endpoint{*src, port_}, b.endpoint, Bytes(b.data, b.data + b.len)});
    ++sent;
  }
  return sent > 0 || first_err == 0 ? sent : -first_err;
}

uint16_t FakeUdp::port() const {
  std::lock_guard lk(net_.mu_);
  return port_;
}

int FakeUdp::rebind(uint16_t port) {
  std::lock_guard lk(net_.mu_);
  if (port != 0 && port == port_) return 0;
  if (port == 0) {
    port = net_.pick_port_locked(addrs_);
  } else if (!net_.port_free_locked(addrs_, port, this)) {
    return -EADDRINUSE;
  }
  port_ = port;
  rx_.clear();  // a real rebind opens a fresh socket: whatever the old one queued is gone
  sync_ready_locked();
  return 0;
}

void FakeUdp::set_fwmark(uint32_t mark) {
  std::lock_guard lk(net_.mu_);
  fwmark_ = mark;
}

void FakeUdp::wake() {
  std::lock_guard lk(net_.mu_);
  woken_ = true;
  sync_ready_locked();
  cv_.notify_all();
}

}  // namespace xsktun::io
