// Per-peer timers without periodic polling: each peer's PeerTimers asks for a wakeup when a
// deadline is armed earlier than any it asked for (PeerTimers::set_wakeup), the device keeps the
// wakeups in one min-heap, and the timer thread sleeps until the earliest. An idle peer costs
// nothing; kernel WireGuard gets the same from the kernel's timer wheel (timers.c, mod_timer).
#include <algorithm>
#include <chrono>

#include "xsktun/device/device.h"

namespace xsktun::device {

namespace {
// Later wakeups sink: std::push_heap builds a max-heap, so compare the other way round.
bool later(const Device::TimerEntry& a, const Device::TimerEntry& b) { return a.when > b.when; }
}  // namespace

void Device::schedule(std::weak_ptr<Peer> peer, Nanos when) {
  bool earliest;
  {
    std::lock_guard lock(timer_mu_);
    earliest = timer_heap_.empty() || when < timer_heap_.front().when;
    timer_heap_.push_back({when, std::move(peer)});
    std::push_heap(timer_heap_.begin(), timer_heap_.end(), later);
  }
  if (earliest) timer_cv_.notify_one();  // the timer thread sleeps until the old earliest
}

void Device::watch_timers(const std::shared_ptr<Peer>& p) {
  p->timers.set_wakeup([this, w = std::weak_ptr<Peer>(p)](Nanos when) { schedule(w, when); });
}

Nanos Device::tick() {
  Nanos now = clock_.now();
  std::vector<TimerEntry> due;
  {
    std::lock_guard lock(timer_mu_);
    while (!timer_heap_.empty() && timer_heap_.front().when <= now) {
      std::pop_heap(timer_heap_.begin(), timer_heap_.end(), later);
      due.push_back(std::move(timer_heap_.back()));
      timer_heap_.pop_back();
    }
  }
  // Outside timer_mu_: the handlers send, which arms timers, which schedules.
  for (auto& e : due) {
    auto p = e.peer.lock();
    if (!p) continue;  // removed meanwhile
    std::lock_guard pl(p->mu);
    handle_timer_actions(*p, p->timers.poll(now));
    p->timers.woke(e.when);
  }
  if (now - last_gc_ >= proto::kSecond) {
    ratelimiter_.gc(now);
    cookie_limiter_.gc(now);
    last_gc_ = now;
  }
  std::lock_guard lock(timer_mu_);
  Nanos next = now + proto::kSecond;  // the rate limiters' gc
  return timer_heap_.empty() ? next : std::min(next, timer_heap_.front().when);
}

void Device::wait_timers(Nanos until) {
  std::unique_lock lock(timer_mu_);
  Nanos wait = until - clock_.now();
  if (wait <= 0 || timer_wake_) {
    timer_wake_ = false;
    return;
  }
  // Woken early by a wakeup earlier than `until` (schedule) or by wake_timers.
  timer_cv_.wait_for(lock, std::chrono::nanoseconds(wait));
  timer_wake_ = false;
}

void Device::wake_timers() {
  {
    std::lock_guard lock(timer_mu_);
    timer_wake_ = true;
  }
  timer_cv_.notify_all();
}

size_t Device::pending_timers() const {
  std::lock_guard lock(timer_mu_);
  return timer_heap_.size();
}

}  // namespace xsktun::device
