#include "xsktun/xdp/xsk_bind.h"

#include <sys/socket.h>

#include <algorithm>

#include "xsktun_shared.h"

namespace xsktun::xdp {

using device::Counter;

XskBind::XskBind(std::unique_ptr<io::UdpSocket> kernel, std::vector<std::unique_ptr<XskQueue>> queues)
    : kernel_(std::move(kernel)), queues_(std::move(queues)), counters_(&scratch_) {}

void XskBind::set_counters(device::Counters* c) {
  counters_ = c;
  for (auto& q : queues_) q->set_counters(c);
}

xdp_statistics XskBind::xsk_statistics() const {
  xdp_statistics sum{};
  for (const auto& q : queues_) {
    xdp_statistics s;
    if (!q->statistics(&s)) continue;
    sum.rx_dropped += s.rx_dropped;
    sum.rx_invalid_descs += s.rx_invalid_descs;
    sum.tx_invalid_descs += s.tx_invalid_descs;
    sum.rx_ring_full += s.rx_ring_full;
    sum.rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
    sum.tx_ring_empty_descs += s.tx_ring_empty_descs;
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
  }
  if (rc == 0 && on_port_change_) on_port_change_(kernel_->port());
  return rc;
}

void XskBind::learn(const ParsedFrame& pf) {
  std::lock_guard lock(paths_mu_);
  auto it = paths_.find(pf.source);
  if (it == paths_.end()) {
    if (paths_.size() >= XSKTUN_MAX_PEERS) paths_.clear();  // bounded: relearned from the next frames
    paths_.emplace(pf.source, pf.reply);
  } else if (!(it->second == pf.reply)) {
    it->second = pf.reply;
  }
}

int XskBind::recv_xsk(size_t i, std::span<io::PacketBuf> bufs, int timeout_ms) {
  int n = queues_[i]->recv(bufs, timeout_ms, [this](const ParsedFrame& pf) { learn(pf); });
  if (n > 0) counters_->add(Counter::xsk_rx_packets, static_cast<uint64_t>(n));
  return n;
}

int XskBind::send_batch(std::span<io::PacketBuf> bufs) {
  // Split by whether the return path is known; one lock for the whole batch.
  // Per-thread scratch (several threads send): no allocation per batch once warmed up.
  thread_local std::vector<io::PacketBuf> fast, slow;
  thread_local std::vector<Path> fast_paths;
  thread_local std::vector<const Path*> ptrs;
  fast.clear();
  slow.clear();
  fast_paths.clear();
  ptrs.clear();
  uint64_t too_big = 0;
  {
    std::lock_guard lock(paths_mu_);
    for (auto& b : bufs) {
      auto it = queues_.empty() ? paths_.end() : paths_.find(b.endpoint);
      if (it == paths_.end()) {
        slow.push_back(b);
      } else if (!fits_xsk(b, it->second)) {
        slow.push_back(b);  // the kernel fragments what AF_XDP cannot send whole
        ++too_big;
      } else {
        fast.push_back(b);
        fast_paths.push_back(it->second);
      }
    }
  }
  if (too_big) counters_->add(Counter::slowpath_tx_too_big, too_big);
  int sent = 0;
  if (!fast.empty()) {
    for (auto& p : fast_paths) ptrs.push_back(&p);
    sent += queues_[0]->send(fast, ptrs);  // counts xsk_tx_packets as the kernel completes them
  }
  if (!slow.empty()) {
    int n = kernel_->send_batch(slow);
    if (n > 0) {
      counters_->add(Counter::slowpath_tx_packets, static_cast<uint64_t>(n));
      sent += n;
    }
  }
  return sent;
}

}  // namespace xsktun::xdp
