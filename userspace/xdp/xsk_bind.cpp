#include "xsktun/xdp/xsk_bind.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "xsktun_shared.h"

namespace xsktun::xdp {

using device::Counter;

namespace {
// Over the whole address: IPv4 lives in the first 4 bytes. Unkeyed is enough: only sources that
// authenticated get in (learn), so a sender cannot choose colliding keys.
struct EndpointHash {
  size_t operator()(const Endpoint& e) const {
    uint64_t lo = 0, hi = 0;
    std::memcpy(&lo, e.addr.bytes.data(), 8);
    std::memcpy(&hi, e.addr.bytes.data() + 8, 8);
    uint64_t h = lo * 0x9e3779b97f4a7c15ULL ^ hi ^ (uint64_t{e.port} << 8 | e.addr.family);
    return std::hash<uint64_t>()(h * 0xbf58476d1ce4e5b9ULL);
  }
};

// A thread's copy of the paths it used: the send and learn paths of a worker take no lock
// shared with other workers once warm. Emptied when the bind's version moves (a path changed
// or was dropped); a path new to the bind needs no invalidation (a miss looks it up).
struct PathCache {
  const void* owner = nullptr;
  uint64_t version = 0;
  std::unordered_map<Endpoint, Path, EndpointHash> paths;
  void sync(const void* bind, uint64_t v) {
    if (owner == bind && version == v) return;
    owner = bind;
    version = v;
    paths.clear();
  }
};
thread_local PathCache t_paths;

// Worker i's UDP side (XskBind::lane).
class XskLane final : public io::UdpIo {
 public:
  XskLane(XskBind& b, size_t q, device::Counters& c) : b_(b), q_(q), c_(c) {}
  int recv_batch(std::span<io::PacketBuf> bufs) override { return b_.recv_xsk(q_, bufs, -1); }
  int try_recv_batch(std::span<io::PacketBuf> bufs) override { return b_.recv_xsk(q_, bufs, 0); }
  int send_batch(std::span<io::PacketBuf> bufs) override { return b_.send_on(q_, bufs, c_); }
  uint16_t port() const override { return b_.port(); }
  int rebind(uint16_t port) override { return b_.rebind(port); }
  void set_fwmark(uint32_t mark) override { b_.set_fwmark(mark); }
  void wake() override { b_.wake(); }
  int ready_fd() const override { return b_.queue_fd(q_); }
  void delivered(std::span<const io::PacketBuf> bufs) override { b_.learn_from(q_, bufs); }
  size_t lend(std::span<io::PacketBuf> bufs, size_t headroom) override { return b_.lend(q_, bufs, headroom); }
  void reclaim_lent() override { b_.reclaim_lent(q_); }

 private:
  XskBind& b_;
  size_t q_;
  device::Counters& c_;
};
}  // namespace

std::unique_ptr<io::UdpIo> XskBind::lane(size_t i, device::Counters& c) {
  queues_.at(i)->set_counters(&c);
  return std::make_unique<XskLane>(*this, i, c);
}

XskBind::XskBind(std::unique_ptr<io::UdpSocket> kernel, std::vector<std::unique_ptr<XskQueue>> queues)
    : kernel_(std::move(kernel)), queues_(std::move(queues)), counters_(&scratch_) {}

void XskBind::set_counters(device::Counters* c) {
  counters_ = c;
  for (auto& q : queues_) q->set_counters(c);
  kernel_->set_counters(c);
}

xdp_statistics XskBind::xsk_statistics() const {
  xdp_statistics sum{};
  for (const auto& q : queues_) {
    xdp_statistics s;
    if (!q->statistics(&s)) continue;
    sum.tx_invalid_descs += s.tx_invalid_descs;
    sum.tx_ring_empty_descs += s.tx_ring_empty_descs;
    if (!q->receives()) continue;  // a sibling reports its queue's shared fill ring again
    sum.rx_dropped += s.rx_dropped;
    sum.rx_invalid_descs += s.rx_invalid_descs;
    sum.rx_ring_full += s.rx_ring_full;
    sum.rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
  }
  return sum;
}

uint32_t XskBind::max_rx_frame() const {
  uint32_t m = 0;
  for (const auto& q : queues_) m = m ? std::min(m, q->max_rx_frame()) : q->max_rx_frame();
  return m;
}

bool XskBind::fits_xsk(const io::PacketBuf& b, const Path& path) const {
  int family = b.endpoint.addr.family;
  size_t ip_len = (family == AF_INET ? 20 : 40) + 8 + b.len;  // what the NIC MTU limits
  return ip_len <= nic_mtu() && header_len(path, family) + b.len <= queues_[0]->frame_size();
}

bool XskBind::zerocopy() const {
  for (const auto& q : queues_)
    if (!q->zerocopy()) return false;
  return !queues_.empty();
}

size_t XskBind::known_paths() const {
  std::lock_guard lock(paths_mu_);
  return paths_.size();
}

void XskBind::wake() {
  kernel_->wake();
  for (auto& q : queues_) q->wake();
}

int XskBind::rebind(uint16_t port) {
  int rc = kernel_->rebind(port);
  if (rc == 0) {
    std::lock_guard lock(paths_mu_);
    paths_.clear();  // learned paths carry the old source port
    paths_version_.fetch_add(1, std::memory_order_release);
  }
  return rc;
}

void XskBind::sync_path_cache() { t_paths.sync(this, paths_version_.load(std::memory_order_acquire)); }

const Path* XskBind::find_path(const Endpoint& to) {
  auto c = t_paths.paths.find(to);
  if (c != t_paths.paths.end()) return &c->second;
  std::lock_guard lock(paths_mu_);
  auto it = paths_.find(to);
  if (it == paths_.end()) return nullptr;
  if (t_paths.paths.size() >= XSKTUN_MAX_PEERS) t_paths.paths.clear();
  return &t_paths.paths.emplace(to, it->second).first->second;
}

void XskBind::learn(const ParsedFrame& pf) {
  // The common case, a frame from a known peer on its known path, takes no lock.
  const Path* known = find_path(pf.source);
  if (known && *known == pf.reply) return;
  std::lock_guard lock(paths_mu_);
  auto it = paths_.find(pf.source);
  if (it == paths_.end()) {
    if (paths_.size() >= XSKTUN_MAX_PEERS) {  // bounded: relearned from the next frames
      paths_.clear();
      paths_version_.fetch_add(1, std::memory_order_release);
    }
    paths_.emplace(pf.source, pf.reply);
  } else if (!(it->second == pf.reply)) {
    it->second = pf.reply;
    paths_version_.fetch_add(1, std::memory_order_release);
  }
}

int XskBind::recv_xsk(size_t i, std::span<io::PacketBuf> bufs, int timeout_ms) {
  return queues_[i]->recv(bufs, timeout_ms);
}

void XskBind::learn_from(size_t i, std::span<const io::PacketBuf> bufs) {
  sync_path_cache();
  queues_[i]->delivered(bufs, [this](const ParsedFrame& pf) { learn(pf); });
}

int XskBind::send_batch(std::span<io::PacketBuf> bufs) { return send_on(0, bufs, *counters_); }

int XskBind::send_on(size_t q, std::span<io::PacketBuf> bufs, device::Counters& c) {
  // Split by whether the return path is known (this thread's cache, no shared lock once warm).
  // Per-thread scratch (several threads send): no allocation per batch once warmed up.
  thread_local std::vector<io::PacketBuf> fast, slow;
  thread_local std::vector<Path> fast_paths;
  thread_local std::vector<const Path*> ptrs;
  fast.clear();
  slow.clear();
  fast_paths.clear();
  ptrs.clear();
  uint64_t too_big = 0;
  sync_path_cache();  // once per batch: a change during it is seen by the next one
  for (auto& b : bufs) {
    const Path* path = queues_.empty() ? nullptr : find_path(b.endpoint);
    if (!path) {
      slow.push_back(b);
    } else if (!fits_xsk(b, *path)) {
      slow.push_back(b);  // the kernel fragments what AF_XDP cannot send whole
      ++too_big;
    } else {
      fast.push_back(b);
      fast_paths.push_back(*path);
    }
  }
  if (too_big) c.add(Counter::slowpath_tx_too_big, too_big);
  int sent = 0;
  if (!fast.empty()) {
    for (auto& p : fast_paths) ptrs.push_back(&p);
    sent += queues_[q]->send(fast, ptrs);  // counts xsk_tx_packets as the kernel completes them
  }
  if (!slow.empty()) {
    int n = kernel_->send_batch(slow);
    if (n > 0) {
      c.add(Counter::slowpath_tx_packets, static_cast<uint64_t>(n));
      sent += n;
    }
  }
  return sent;
}

}  // namespace xsktun::xdp
