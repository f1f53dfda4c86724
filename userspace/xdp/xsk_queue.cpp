#include "xsktun/xdp/xsk_queue.h"

#include <linux/bpf.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace xsktun::xdp {

XskQueue::Umem::~Umem() {
  if (umem) xsk_umem__delete(umem);
  if (area) munmap(area, size);
}

std::unique_ptr<XskQueue> XskQueue::create(const XskOptions& o, std::string* err) {
  std::unique_ptr<XskQueue> q(new XskQueue());
  q->queue_ = o.queue;
  q->frame_size_ = o.frame_size;
  q->rx_frames_ = o.rx_frames;
  q->tx_frames_ = o.tx_frames;
  q->tx_ring_ = o.tx_frames;
  if (!std::has_single_bit(o.rx_frames) || !std::has_single_bit(o.tx_frames)) {
    *err = "AF_XDP frame counts must be powers of two";
    return nullptr;
  }
  auto um = std::make_shared<Umem>();
  um->size = size_t{o.frames()} * o.frame_size;
  um->pools = 1 + o.siblings;
  um->returned.resize(um->pools);
  um->ifname = o.ifname;
  // Every pool's frames can be in flight at once: the completion ring holds them all.
  um->comp_size = std::bit_ceil(o.tx_frames * um->pools);
  um->area = mmap(nullptr, um->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (um->area == MAP_FAILED) {
    um->area = nullptr;
    *err = std::string("mmap UMEM: ") + strerror(errno);
    return nullptr;
  }
  q->um_ = um;
  q->area_ = um->area;
  q->area_size_ = um->size;
  xsk_umem_config ucfg{};
  ucfg.fill_size = o.rx_frames;
  ucfg.comp_size = um->comp_size;
  ucfg.frame_size = o.frame_size;
  ucfg.frame_headroom = 0;
  int rc = xsk_umem__create(&um->umem, um->area, um->size, &um->fill, &um->comp, &ucfg);
  if (rc) {
    *err = std::string("xsk_umem__create: ") + strerror(-rc);
    return nullptr;
  }
  xsk_socket_config scfg{};
  scfg.rx_size = o.rx_frames;
  scfg.tx_size = o.tx_frames;
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our own program steers to us
  // Zero-copy first (real NICs), copy mode as the fallback (veth has no zero-copy).
  bool try_zc = o.zerocopy != XskOptions::ZeroCopy::kOff;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool zc = try_zc && attempt == 0;
    if (!try_zc && attempt == 0) continue;
    if (o.zerocopy == XskOptions::ZeroCopy::kOn && !zc) break;
    // need_wakeup in copy mode too, although there the kernel keeps TX flagged for good and every
    // poll() of the RX thread then runs the copy-mode transmit (xsk_poll -> xsk_generic_xmit,
    // contending for the socket mutex with the TUN thread's kicks): that shares the transmit
    // work between two threads, which measured faster (README, "Benchmark", tried and dropped: copy mode
    // without it).
    scfg.bind_flags = XDP_USE_NEED_WAKEUP | (zc ? XDP_ZEROCOPY : XDP_COPY);
    rc = xsk_socket__create(&q->xsk_, o.ifname.c_str(), o.queue, um->umem, &q->rx_, &q->tx_, &scfg);
    if (rc == 0) {
      q->zerocopy_ = zc;
      break;
    }
    q->xsk_ = nullptr;
  }
  if (!q->xsk_) {
    *err = "AF_XDP bind on " + o.ifname + " queue " + std::to_string(o.queue) + ": " + strerror(-rc);
    return nullptr;
  }
  if (o.xsks_map_fd >= 0 && (rc = xsk_socket__update_xskmap(q->xsk_, o.xsks_map_fd)) != 0) {
    *err = std::string("xsks map update: ") + strerror(-rc);
    return nullptr;
  }
  // Every RX frame goes to the fill ring; pool 0 of the TX frames is this socket's.
  uint32_t n = o.rx_frames, idx = 0;
  if (xsk_ring_prod__reserve(&um->fill, n, &idx) != n) {
    *err = "cannot reserve fill ring";
    return nullptr;
  }
  for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&um->fill, idx + i) = uint64_t{i} * o.frame_size;
  xsk_ring_prod__submit(&um->fill, n);
  q->init_tx_frames(0);
  return q;
}

std::unique_ptr<XskQueue> XskQueue::create_sibling(XskQueue& first, std::string* err) {
  Umem& um = *first.um_;
  if (um.next_pool >= um.pools) {
    *err = "no TX frames left for another socket on queue " + std::to_string(first.queue_);
    return nullptr;
  }
  std::unique_ptr<XskQueue> q(new XskQueue());
  q->queue_ = first.queue_;
  q->zerocopy_ = first.zerocopy_;
  q->has_rx_ = false;
  q->frame_size_ = first.frame_size_;
  q->rx_frames_ = first.rx_frames_;
  q->tx_frames_ = first.tx_frames_;
  q->tx_ring_ = first.tx_frames_;
  q->um_ = first.um_;
  q->area_ = um.area;
  q->area_size_ = um.size;
  xsk_socket_config scfg{};
  scfg.tx_size = q->tx_ring_;
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  // Same UMEM and queue: libxdp binds with XDP_SHARED_UMEM and the kernel gives this socket the
  // first one's buffer pool, fill and completion rings (net/xdp/xsk.c xsk_bind), and its mode.
  int rc = xsk_socket__create_shared(&q->xsk_, um.ifname.c_str(), q->queue_, um.umem, nullptr, &q->tx_,
                                     &um.fill, &um.comp, &scfg);
  if (rc) {
    q->xsk_ = nullptr;
    *err = "AF_XDP transmit socket on " + um.ifname + " queue " + std::to_string(q->queue_) + ": " +
           strerror(-rc);
    return nullptr;
  }
  q->init_tx_frames(um.next_pool++);
  return q;
}

void XskQueue::init_tx_frames(uint32_t pool) {
  pool_ = pool;
  uint32_t first = rx_frames_ + pool * tx_frames_;  // frame index; pool_of inverts it
  for (uint32_t i = first; i < first + tx_frames_; ++i) tx_free_.push_back(uint64_t{i} * frame_size_);
  lent_state_.assign(static_cast<size_t>(area_size_ / frame_size_), 0);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

XskQueue::~XskQueue() {
  // The socket first; the UMEM goes with the last socket that shares it (Umem's destructor).
  if (xsk_) xsk_socket__delete(xsk_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

uint32_t XskQueue::max_rx_frame() const { return frame_size_ - XDP_PACKET_HEADROOM; }

bool XskQueue::statistics(xdp_statistics* out) const {
  socklen_t len = sizeof *out;
  *out = {};
  return getsockopt(xsk_socket__fd(xsk_), SOL_XDP, XDP_STATISTICS, out, &len) == 0;
}

void XskQueue::wake() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

int XskQueue::recv(std::span<io::PacketBuf> bufs, int timeout_ms) {
  recycle_previous();
  int n = peek_rx(bufs, timeout_ms);
  // Into this queue's counters (its worker's), as TX does: not a line all workers write.
  if (n > 0) counters_->add(device::Counter::xsk_rx_packets, static_cast<uint64_t>(n));
  return n;
}

void XskQueue::recycle_previous() {
  if (held_.empty()) return;
  uint32_t idx = 0;
  uint32_t n = static_cast<uint32_t>(held_.size());
  // The fill ring has room for every RX frame, so this cannot fail short.
  while (xsk_ring_prod__reserve(&um_->fill, n, &idx) != n) {
  }
  for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&um_->fill, idx + i) = held_[i];
  xsk_ring_prod__submit(&um_->fill, n);
  held_.clear();
  held_parsed_.clear();
}

int XskQueue::peek_rx(std::span<io::PacketBuf> bufs, int timeout_ms) {
  if (!has_rx_) {
    // Transmit-only: nothing ever arrives; a caller that waits is woken by wake() only.
    pollfd pfd{wake_fd_, POLLIN, 0};
    if (timeout_ms != 0 && poll(&pfd, 1, timeout_ms) > 0) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof v);
    }
    return 0;
  }
  uint32_t idx = 0;
  uint32_t got = xsk_ring_cons__peek(&rx_, static_cast<uint32_t>(bufs.size()), &idx);
  if (got == 0) {
    // Nothing and no wait: no syscall either. The caller's poll() on fd() waits and kicks.
    if (timeout_ms == 0) return 0;
    // need_wakeup: the kernel wants a syscall to refill; poll() both waits and kicks it.
    pollfd pfd[2] = {{xsk_socket__fd(xsk_), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int rc = poll(pfd, 2, timeout_ms);
    if (rc < 0 && errno != EINTR) return -errno;
    if (pfd[1].revents) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof v);
      return 0;
    }
    got = xsk_ring_cons__peek(&rx_, static_cast<uint32_t>(bufs.size()), &idx);
    if (got == 0) return 0;
  }
  int out = 0;
  for (uint32_t i = 0; i < got; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
    uint64_t addr = xsk_umem__extract_addr(d->addr);
    uint8_t* frame = static_cast<uint8_t*>(xsk_umem__get_data(area_, d->addr));
    held_.push_back(addr);
    ParsedFrame pf;
    // The program redirects only what this parser takes (both use bpf/xsktun_parse.h); a frame
    // that does not parse came from something else steering to our socket.
    if (!parse_frame(frame, d->len, &pf)) {
      counters_->add(device::Counter::drop_xsk_unparsed);
      continue;
    }
    auto& b = bufs[static_cast<size_t>(out++)];
    b.data = const_cast<uint8_t*>(pf.payload);
    b.len = pf.payload_len;
    b.cap = pf.payload_len;
    b.endpoint = pf.source;
    held_parsed_.resize(static_cast<size_t>(out));
    held_parsed_[static_cast<size_t>(out - 1)] = pf;
  }
  xsk_ring_cons__release(&rx_, got);
  return out;
}

void XskQueue::kick_tx() {
  // Copy mode transmits only inside sendto(), at most 32 frames per call (TX_BATCH_SIZE in
  // net/xdp/xsk.c), answering EAGAIN while more are queued: kick until the ring is drained,
  // or frames sit in the ring until the next batch and the ring fills under load. Zero-copy
  // drivers need a kick only when they ask for one (need_wakeup).
  if (zerocopy_ && !xsk_ring_prod__needs_wakeup(&tx_)) return;
  for (int i = 0; i < 1 + static_cast<int>(tx_ring_ / 32); ++i) {
    if (sendto(xsk_socket__fd(xsk_), nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) return;
    if (errno != EAGAIN && errno != EBUSY && errno != EINTR) return;
    reclaim_completions();  // EAGAIN/EBUSY can also mean a full completion ring
  }
}

uint32_t XskQueue::reclaim_completions() {
  Umem& um = *um_;
  std::unique_lock lock(um.comp_mu, std::defer_lock);
  if (um.pools > 1) lock.lock();
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(&um.comp, um.comp_size, &idx);
  // A lent frame was submitted at an offset into it (behind shorter headers): back to its start.
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t a = *xsk_ring_cons__comp_addr(&um.comp, idx + i);
    uint64_t frame = a - a % frame_size_;
    if (um.pools == 1) {  // no siblings: every completion is ours
      tx_free_.push_back(frame);
      continue;
    }
    uint32_t pool = pool_of(frame);
    if (pool == pool_)
      tx_free_.push_back(frame);
    else
      um.returned[pool].push_back(frame);
  }
  if (n) {
    xsk_ring_cons__release(&um.comp, n);
    // Completed: the kernel took the frame off a TX ring (copy mode: handed to the driver).
    counters_->add(device::Counter::xsk_tx_packets, n);
  }
  if (um.pools > 1 && !um.returned[pool_].empty()) {
    auto& mine = um.returned[pool_];
    tx_free_.insert(tx_free_.end(), mine.begin(), mine.end());
    mine.clear();
  }
  return n;
}

size_t XskQueue::lend(std::span<io::PacketBuf> bufs, size_t headroom) {
  std::lock_guard lock(tx_mu_);
  reclaim_completions();
  size_t n = std::min(bufs.size(), tx_free_.size());
  for (size_t i = 0; i < n; ++i) {
    uint64_t addr = tx_free_.back();
    tx_free_.pop_back();
    lent_.push_back(addr);
    lent_state_[addr / frame_size_] = 1;
    auto* frame = static_cast<uint8_t*>(xsk_umem__get_data(area_, addr));
    bufs[i].data = frame + kTxHeadroom + headroom;
    bufs[i].cap = frame_size_ - kTxHeadroom - headroom;
    bufs[i].len = 0;
  }
  return n;
}

void XskQueue::reclaim_lent() {
  std::lock_guard lock(tx_mu_);
  for (uint64_t addr : lent_) {
    uint8_t& st = lent_state_[addr / frame_size_];
    if (st == 1) tx_free_.push_back(addr);  // submitted ones come back through completions
    st = 0;
  }
  lent_.clear();
}

bool XskQueue::lent_frame(const uint8_t* p, uint64_t* frame) const {
  auto* base = static_cast<const uint8_t*>(area_);
  if (p < base || p >= base + area_size_) return false;
  uint64_t off = static_cast<uint64_t>(p - base);
  *frame = off - off % frame_size_;
  return lent_state_[*frame / frame_size_] == 1;
}

int XskQueue::send(std::span<const io::PacketBuf> bufs, std::span<const Path* const> paths) {
  std::lock_guard lock(tx_mu_);
  // Copy mode drains the ring inside every kick, so frames left in it mean the kernel refused
  // the last one. With the NIC down it refuses everything (net/xdp/xsk.c xsk_xmit: ENETDOWN
  // without IFF_UP) and would keep all we queue: up to a ring of packets counted as sent that
  // leave seconds later in one stale burst when the link is back, crowding out the fresh ones
  // (seen with `ip link set NIC down`; tests/netns/faults.sh case 1). Kick once more; while the
  // NIC is down send nothing, so the caller counts the batch as send drops, as socket mode does.
  if (!zerocopy_ && xsk_prod_nb_free(&tx_, tx_ring_) < tx_ring_ &&
      sendto(xsk_socket__fd(xsk_), nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0 && errno == ENETDOWN)
    return 0;
  reclaim_completions();
  // Reserve exactly what will be submitted: the ring's cached producer index must not run
  // ahead of what we fill. XskBind sends longer frames through the kernel; any that still
  // reach here, and those beyond the free frames or ring slots, are dropped and counted.
  uint32_t fits = 0, too_big = 0, copies = 0;
  uint64_t frame = 0;
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (lent_frame(bufs[i].data, &frame))
      ++fits;  // headers fit the headroom by construction
    else if (header_len(*paths[i], bufs[i].endpoint.addr.family) + bufs[i].len > frame_size_)
      ++too_big;
    else if (copies < tx_free_.size())
      ++fits, ++copies;
  }
  uint32_t idx = 0;
  uint32_t n = fits ? xsk_ring_prod__reserve(&tx_, fits, &idx) : 0;
  uint32_t used = 0;
  for (size_t i = 0; i < bufs.size() && used < n; ++i) {
    const auto& b = bufs[i];
    const Path& path = *paths[i];
    size_t hl = header_len(path, b.endpoint.addr.family);
    uint64_t addr = 0;
    uint8_t* start = nullptr;
    if (lent_frame(b.data, &addr)) {
      // Sealed where the TUN read it: the headers go right in front, the frame is submitted
      // from there (a descriptor may start anywhere inside its frame).
      start = b.data - hl;
      lent_state_[addr / frame_size_] = 2;
      addr += static_cast<uint64_t>(start - static_cast<uint8_t*>(xsk_umem__get_data(area_, addr)));
    } else {
      if (hl + b.len > frame_size_ || copies == 0) continue;
      --copies;
      addr = tx_free_.back();
      tx_free_.pop_back();
      start = static_cast<uint8_t*>(xsk_umem__get_data(area_, addr));
      std::memcpy(start + hl, b.data, b.len);
    }
    xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx + used);
    d->addr = addr;
    d->len = static_cast<uint32_t>(build_headers(start, path, b.endpoint, b.len));
    d->options = 0;
    ++used;
  }
  if (too_big) counters_->add(device::Counter::drop_xsk_too_big, too_big);
  if (bufs.size() - too_big > used)
    counters_->add(device::Counter::drop_xsk_tx_full, bufs.size() - too_big - used);
  if (used) xsk_ring_prod__submit(&tx_, used);
  kick_tx();
  reclaim_completions();  // copy mode completes inside the kick: count them now
  return static_cast<int>(used);
}

}  // namespace xsktun::xdp
