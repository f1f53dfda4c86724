// Per-peer timer state machine. The rules follow the Linux kernel's drivers/net/wireguard/timers.c
// (the five timers and their expiry handlers), send.c / receive.c (keep_key_fresh and the
// REKEY_TIMEOUT guard of wg_packet_send_handshake_initiation) and whitepaper section 6.
#include "xsktun/protocol/timers.h"

namespace xsktun::proto {
namespace {

// splitmix64 finaliser: spreads a small or structured seed over the whole 64-bit state.
uint64_t mix_seed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Kernel wg_birthdate_has_expired: birthday + expiration <= now, i.e. age >= expiration.
bool has_expired(Nanos birth, Nanos expiration, Nanos now) { return now - birth >= expiration; }

}  // namespace

PeerTimers::PeerTimers(uint64_t jitter_seed) : rng_state_(mix_seed(jitter_seed)) {
  if (rng_state_ == 0) rng_state_ = 1;  // xorshift must never hold the all-zero state
}

Nanos PeerTimers::jitter() {
  // xorshift64*. The jitter only de-synchronises peers that would otherwise retry in lockstep
  // (kernel: get_random_u32_below(REKEY_TIMEOUT_JITTER_MAX_JIFFIES)); it need not be secret.
  rng_state_ ^= rng_state_ >> 12;
  rng_state_ ^= rng_state_ << 25;
  rng_state_ ^= rng_state_ >> 27;
  const uint64_t r = rng_state_ * 0x2545F4914F6CDD1DULL;
  return static_cast<Nanos>(r % static_cast<uint64_t>(kRekeyTimeoutJitterMax));
}

void PeerTimers::set_persistent_keepalive(Nanos interval) {
  persistent_keepalive_interval_ = interval > 0 ? interval : 0;
  // The kernel's expiry handler ignores a stale timer once the interval is 0; disarming is the
  // same from outside and keeps next_deadline() honest.
  if (persistent_keepalive_interval_ == 0) disarm(kPersistentKeepalive);
}

void PeerTimers::data_sent(Nanos now) {
  // Not re-armed while pending: the deadline measures from the first unanswered packet.
  if (!armed(kNewHandshake)) arm(kNewHandshake, now + kKeepaliveTimeout + kRekeyTimeout + jitter());
}

void PeerTimers::data_received(Nanos now) {
  if (!armed(kSendKeepaliveTimer)) {
    arm(kSendKeepaliveTimer, now + kKeepaliveTimeout);
  } else {
    // Data kept arriving while we owed a keepalive: owe another one after this one is sent.
    need_another_keepalive_ = true;
  }
}

void PeerTimers::any_authenticated_packet_sent(Nanos) {
  // Whatever we sent already told the peer we are alive.
  disarm(kSendKeepaliveTimer);
}

void PeerTimers::any_authenticated_packet_received(Nanos) {
  // The peer answered, so the session is not dead.
  disarm(kNewHandshake);
}

void PeerTimers::any_authenticated_packet_traversal(Nanos now) {
  if (persistent_keepalive_interval_ > 0) arm(kPersistentKeepalive, now + persistent_keepalive_interval_);
}

void PeerTimers::handshake_initiated(Nanos now) {
  last_sent_handshake_ = now;
  arm(kRetransmitHandshake, now + kRekeyTimeout + jitter());
}

void PeerTimers::handshake_complete(Nanos) {
  disarm(kRetransmitHandshake);
  handshake_attempts_ = 0;
  sent_lastminute_handshake_ = false;
}

void PeerTimers::session_derived(Nanos now) {
  // Fresh keys postpone the wipe: keys are destroyed 3 x REJECT_AFTER_TIME after the last one.
  arm(kZeroKeyMaterial, now + 3 * kRejectAfterTime);
}

void PeerTimers::handshake_response_sent(Nanos now) { last_sent_handshake_ = now; }

bool PeerTimers::may_send_initiation(Nanos now) const {
  return !last_sent_handshake_ || has_expired(*last_sent_handshake_, kRekeyTimeout, now);
}

bool PeerTimers::queue_initiation(Nanos now, bool is_retry) {
  if (!is_retry) handshake_attempts_ = 0;
  return may_send_initiation(now);
}

bool PeerTimers::request_handshake(Nanos now) { return queue_initiation(now, /*is_retry=*/false); }

bool PeerTimers::want_rekey_on_send(uint64_t send_counter, Nanos keypair_birth, bool i_am_initiator,
                                    Nanos now) const {
  // Only the initiator rekeys on age, so both sides do not start a handshake at the same moment
  // (whitepaper 6.2); either side rekeys when the nonce space is getting used up.
  if (send_counter > kRekeyAfterMessages) return true;
  return i_am_initiator && has_expired(keypair_birth, kRekeyAfterTime, now);
}

bool PeerTimers::want_rekey_on_receive(Nanos keypair_birth, bool i_am_initiator, Nanos now) {
  // Last chance before REJECT_AFTER_TIME: if the initiator has been receiving but not sending
  // (so the send-path check never ran), it rekeys now, leaving time for a keepalive and one
  // handshake round. Once per handshake, or every received packet would ask again.
  if (sent_lastminute_handshake_ || !i_am_initiator) return false;
  if (!has_expired(keypair_birth, kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout, now)) return false;
  sent_lastminute_handshake_ = true;
  return true;
}

TimerActions PeerTimers::expired_retransmit_handshake(Nanos now) {
  TimerActions out;
  if (handshake_attempts_ > kMaxTimerHandshakes) {
    // Give up (kernel: after MAX_TIMER_HANDSHAKES + 2 initiations). Staged packets would wait
    // forever, and there is nothing to keep alive.
    disarm(kSendKeepaliveTimer);
    out |= TimerAction::kDropStaged;
    // Wipe any residue of the partial exchange later, unless a wipe is already scheduled.
    if (!armed(kZeroKeyMaterial)) arm(kZeroKeyMaterial, now + 3 * kRejectAfterTime);
    return out;
  }
  ++handshake_attempts_;
  if (queue_initiation(now, /*is_retry=*/true)) out |= TimerAction::kSendInitiation;
  return out;
}

TimerActions PeerTimers::expired_send_keepalive(Nanos now) {
  if (need_another_keepalive_) {
    need_another_keepalive_ = false;
    arm(kSendKeepaliveTimer, now + kKeepaliveTimeout);
  }
  return TimerActions{} | TimerAction::kSendKeepalive;
}

TimerActions PeerTimers::fire(Timer t, Nanos now) {
  switch (t) {
    case kRetransmitHandshake: return expired_retransmit_handshake(now);
    case kSendKeepaliveTimer: return expired_send_keepalive(now);
    case kNewHandshake:
      // We sent data but heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: the peer should have
      // sent at least a keepalive by now, so assume the session is broken and start over.
      return queue_initiation(now, /*is_retry=*/false) ? TimerActions{} | TimerAction::kSendInitiation
                                                       : TimerActions{};
    case kZeroKeyMaterial: return TimerActions{} | TimerAction::kZeroKeys;
    case kPersistentKeepalive:
      return persistent_keepalive_interval_ > 0 ? TimerActions{} | TimerAction::kSendKeepalive
                                                : TimerActions{};
    case kTimerCount: break;
  }
  return {};
}

TimerActions PeerTimers::poll(Nanos now) {
  // Fire in deadline order, like kernel timers would, because one handler can cancel another
  // (giving up disarms the keepalive). Handlers only arm deadlines > now, so this terminates.
  TimerActions out;
  for (;;) {
    std::optional<size_t> due;
    for (size_t t = 0; t < kTimerCount; ++t) {
      if (deadlines_[t] && *deadlines_[t] <= now && (!due || *deadlines_[t] < *deadlines_[*due])) due = t;
    }
    if (!due) return out;
    disarm(static_cast<Timer>(*due));
    out |= fire(static_cast<Timer>(*due), now);
  }
}

std::optional<Nanos> PeerTimers::next_deadline() const {
  std::optional<Nanos> best;
  for (const auto& d : deadlines_) {
    if (d && (!best || *d < *best)) best = d;
  }
  return best;
}

void PeerTimers::woke(Nanos when) {
  if (when != wakeup_at_) return;  // superseded: the earlier wakeup is the outstanding one
  wakeup_at_ = std::numeric_limits<Nanos>::max();
  if (auto next = next_deadline(); next && wakeup_) {
    wakeup_at_ = *next;
    wakeup_(*next);
  }
}

void PeerTimers::stop() {
  // An outstanding wakeup finds nothing armed; the next event asks for a new one.
  wakeup_at_ = std::numeric_limits<Nanos>::max();
  for (auto& d : deadlines_) d.reset();
  last_sent_handshake_.reset();
  handshake_attempts_ = 0;
  need_another_keepalive_ = false;
  sent_lastminute_handshake_ = false;
}

}  // namespace xsktun::proto
