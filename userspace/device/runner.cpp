#include "xsktun/device/runner.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "xsktun/common/log.h"
#include "xsktun/protocol/data_aead.h"

namespace xsktun::device {

// One buffer per batch slot: headroom for the data header in front, room for padding and the
// tag behind the largest inner packet.
struct Runner::BufferPool {
  std::vector<uint8_t> storage;
  std::vector<io::PacketBuf> bufs;
  size_t stride;
  BufferPool(size_t n, size_t payload) : stride((payload + proto::kDataOverhead + 64 + 63) & ~size_t{63}) {
    storage.resize(n * stride);
    bufs.resize(n);
  }
  // TUN reads land after the headroom so sealing can happen in place.
  void reset(size_t headroom) {
    for (size_t i = 0; i < bufs.size(); ++i) {
      bufs[i].data = storage.data() + i * stride + headroom;
      bufs[i].cap = stride - headroom;
      bufs[i].len = 0;
      bufs[i].authenticated = false;  // the device sets it; delivered() reads it
    }
  }
};

namespace {
using BufferPool = Runner::BufferPool;

// Before a thread may block: it keeps no copy of a session key while idle, so erasing an
// expired keypair (as the kernel's timers.c does) leaves none behind in an OpenSSL context.
// Costs one key load per wait.
void before_wait() { proto::aead::forget_thread_key(); }

// One batch from each side, waiting for it or not, handed to the device: the count or -errno.
// TUN reads land in memory the UDP side lends (XDP mode: its UMEM frames, so packets are sealed
// and sent where they were read) or else in the pool; what the batch did not send goes back.
int tun_batch(Device& dev, const Lane& l, BufferPool& pool, bool wait) {
  if (wait) before_wait();
  pool.reset(proto::kDataHeaderLen);
  size_t lent = l.udp.lend(pool.bufs, proto::kDataHeaderLen);
  int n = wait ? l.tun.read_batch(pool.bufs) : l.tun.try_read_batch(pool.bufs);
  if (n > 0) dev.process_tun(std::span(pool.bufs.data(), static_cast<size_t>(n)), l);
  if (lent) l.udp.reclaim_lent();
  return n;
}
// A batch from `rx` through lane l, then handed back to rx with what the device found out.
int udp_batch(Device& dev, const Lane& l, io::UdpIo& rx, BufferPool& pool, bool wait) {
  if (wait) before_wait();
  pool.reset(0);
  int n = wait ? rx.recv_batch(pool.bufs) : rx.try_recv_batch(pool.bufs);
  if (n <= 0) return n;
  auto got = std::span(pool.bufs.data(), static_cast<size_t>(n));
  dev.process_udp(got, l);
  rx.delivered(got);
  return n;
}
size_t udp_payload(size_t mtu) { return std::max<size_t>(mtu, 2048); }
}  // namespace

Runner::Runner(Device& dev) : dev_(dev) {}

Runner::Runner(Device& dev, io::TunIo& tun, io::UdpIo& udp) : dev_(dev) {
  add_worker(tun, udp, &dev.counters());
}

Runner::~Runner() { stop(); }

size_t Runner::add_worker(io::TunIo& tun, io::UdpIo& udp, Counters* counters) {
  Counters& c = counters ? *counters : dev_.add_lane_counters();
  workers_.push_back(std::make_unique<Worker>(Worker{Lane{tun, udp, c}, {}}));
  return workers_.size() - 1;
}

void Runner::add_receiver(size_t w, io::UdpIo& rx) {
  auto pool = std::make_shared<BufferPool>(kBatch, udp_payload(dev_.mtu()));
  workers_.at(w)->receivers.push_back({&rx, std::move(pool)});
}

void Runner::start() {
  running_ = true;
  single_io_ = want_single_io_;
  for (const auto& w : workers_) {
    const auto& rs = w->receivers;
    single_io_ = single_io_ && w->lane.tun.ready_fd() >= 0 && w->lane.udp.ready_fd() >= 0 &&
                 std::all_of(rs.begin(), rs.end(), [](const Receiver& r) { return r.rx->ready_fd() >= 0; });
  }
  for (auto& wp : workers_) {
    Worker* w = wp.get();
    if (single_io_) {
      threads_.emplace_back([this, w] { io_loop(*w); });
      continue;
    }
    threads_.emplace_back([this, w] { tun_loop(*w); });
    threads_.emplace_back([this, w] { udp_loop(*w); });
    for (size_t i = 0; i < w->receivers.size(); ++i)
      threads_.emplace_back([this, w, i] { receiver_loop(*w, i); });
  }
  threads_.emplace_back([this] { handshake_loop(); });
  threads_.emplace_back([this] { timer_loop(); });
}

void Runner::stop() {
  if (!running_.exchange(false) && threads_.empty()) return;
  for (auto& w : workers_) {
    w->lane.tun.wake();
    w->lane.udp.wake();
    for (auto& r : w->receivers) r.rx->wake();
  }
  dev_.wake_handshakes();
  dev_.wake_timers();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Runner::fail(const char* what, int err) {
  XLOG_ERROR("%s failed: %s; shutting down", what, strerror(err));
  failed_ = true;
  running_ = false;
  if (on_failure_) on_failure_();
}

bool Runner::check(int n, const char* what) {
  if (n >= 0) return true;
  if (running_) fail(what, -n);
  return false;
}

void Runner::tun_loop(Worker& w) {
  BufferPool pool(kBatch, dev_.mtu());
  while (running_ && check(tun_batch(dev_, w.lane, pool, true), "TUN read")) {
  }
}

void Runner::udp_loop(Worker& w) {
  BufferPool pool(kBatch, udp_payload(dev_.mtu()));
  while (running_ && check(udp_batch(dev_, w.lane, w.lane.udp, pool, true), "UDP receive")) {
  }
}

void Runner::io_loop(Worker& w) {
  BufferPool tun_pool(kBatch, dev_.mtu());
  BufferPool udp_pool(kBatch, udp_payload(dev_.mtu()));
  // The TUN and UDP ready descriptors include the wake eventfds, so stop() ends the poll below;
  // none of them changes while running (UdpSocket::rebind keeps its ready descriptor).
  std::vector<pollfd> pfds = {{w.lane.tun.ready_fd(), POLLIN, 0}, {w.lane.udp.ready_fd(), POLLIN, 0}};
  for (auto& r : w.receivers) pfds.push_back({r.rx->ready_fd(), POLLIN, 0});
  // Sources: 0 the TUN queue, 1 the UDP side, 2.. the extra receivers. While some are busy, one
  // that came back empty is asked again only every kSweepEvery turns: each ask of an idle TUN or
  // kernel socket is a syscall answering EAGAIN (one direction of a bulk flow left one per
  // turn). Before sleeping every source is asked once more, so nothing waits behind a poll.
  std::vector<uint8_t> active(pfds.size(), 1);
  unsigned turn = 0;
  auto ask = [&](size_t i, auto&& batch) {
    int n = active[i] ? batch() : 0;
    active[i] = n > 0;
    return n;
  };
  while (running_) {
    bool sweep =
        ++turn % kSweepEvery == 0 || std::all_of(active.begin(), active.end(), [](uint8_t a) { return a; });
    if (sweep) std::fill(active.begin(), active.end(), 1);
    // A batch from each active side in turn; segments left pending inside either device are
    // taken on the next turn (the side stays active) without a poll.
    int t = ask(0, [&] { return tun_batch(dev_, w.lane, tun_pool, false); });
    if (!check(t, "TUN read")) return;
    int u = ask(1, [&] { return udp_batch(dev_, w.lane, w.lane.udp, udp_pool, false); });
    if (!check(u, "UDP receive")) return;
    bool busy = t > 0 || u > 0;
    for (size_t i = 0; i < w.receivers.size(); ++i) {
      int n = ask(2 + i, [&] { return receiver_batch(w, w.receivers[i], false); });
      if (!check(n, "AF_XDP receive")) return;
      busy = busy || n > 0;
    }
    if (busy) continue;
    if (!sweep) {  // some sources were skipped: ask them all before sleeping
      std::fill(active.begin(), active.end(), 1);
      continue;
    }
    // poll(), not epoll: an AF_XDP socket's poll callback is also what kicks a driver that
    // asked for a wakeup (need_wakeup), and epoll would not call it on every wait.
    before_wait();
    if (poll(pfds.data(), pfds.size(), -1) < 0 && !check(errno == EINTR ? 0 : -errno, "poll")) return;
    std::fill(active.begin(), active.end(), 1);  // a wakeup asks every source
  }
}

int Runner::receiver_batch(Worker& w, Receiver& r, bool wait) {
  return udp_batch(dev_, w.lane, *r.rx, *r.pool, wait);
}

void Runner::receiver_loop(Worker& w, size_t i) {
  // Blocks in the receiver until data or stop(), which wakes every receiver.
  while (running_ && check(receiver_batch(w, w.receivers[i], true), "receive")) {
  }
}

void Runner::handshake_loop() {
  while (running_) {
    before_wait();
    dev_.wait_handshakes(100 * proto::kMillisecond);
    dev_.process_handshakes();
  }
}

void Runner::timer_loop() {
  // Sleeps until the earliest peer timer (or at most 1 s): idle peers wake nobody.
  while (running_) {
    Nanos next = dev_.tick();
    before_wait();
    dev_.wait_timers(next);
  }
}

}  // namespace xsktun::device
