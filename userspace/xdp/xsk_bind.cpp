#include "xsktun/xdp/xsk_bind.h"

namespace xsktun::xdp {

using device::Counter;

XskBind::XskBind(std::unique_ptr<io::UdpSocket> kernel, std::vector<std::unique_ptr<XskQueue>> queues)
    : kernel_(std::move(kernel)), queues_(std::move(queues)), counters_(&scratch_) {}

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
    if (paths_.size() >= 65536) paths_.clear();  // bounded: relearned from the next frames
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
  {
    std::lock_guard lock(paths_mu_);
    for (auto& b : bufs) {
      auto it = paths_.find(b.endpoint);
      if (queues_.empty() || it == paths_.end()) {
        slow.push_back(b);
      } else {
        fast.push_back(b);
        fast_paths.push_back(it->second);
      }
    }
  }
  int sent = 0;
  if (!fast.empty()) {
    for (auto& p : fast_paths) ptrs.push_back(&p);
    int n = queues_[0]->send(fast, ptrs);
    counters_->add(Counter::xsk_tx_packets, static_cast<uint64_t>(n));
    sent += n;
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
