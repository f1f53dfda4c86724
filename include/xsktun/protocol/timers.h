// Per-peer WireGuard timer state machine, I/O-free.
//
// Models the five per-peer timers of the Linux kernel (drivers/net/wireguard/timers.c), the
// keep_key_fresh() rekey conditions of send.c / receive.c, and the REKEY_TIMEOUT rate limit of
// wg_packet_send_handshake_initiation() (send.c). Whitepaper section 6.
//
// There are no threads and no sleeping: deadlines are plain monotonic timestamps. The owner
//   * reports what happened through the event methods (named after the kernel's wg_timers_* hooks),
//   * calls poll(now) when next_deadline() has passed and performs the returned actions,
//   * and, whenever it actually sends an initiation, calls handshake_initiated(now).
// Not thread-safe: one PeerTimers belongs to the thread that owns the peer.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>

#include "xsktun/protocol/messages.h"

namespace xsktun::proto {

// Bit flags: poll() may return several at once.
enum class TimerAction : uint32_t {
  kNone = 0,
  kSendInitiation = 1,  // send a handshake initiation now (already rate limited), then handshake_initiated
  kSendKeepalive = 2,   // send an empty authenticated data packet (kernel wg_packet_send_keepalive)
  kZeroKeys = 4,        // clear the handshake state and every keypair of the peer
  kDropStaged = 8,      // handshake gave up: drop the packets queued waiting for a keypair
};

constexpr uint32_t action_bit(TimerAction a) { return static_cast<uint32_t>(a); }

struct TimerActions {
  uint32_t bits = 0;

  constexpr bool has(TimerAction a) const { return a != TimerAction::kNone && (bits & action_bit(a)) != 0; }
  constexpr bool empty() const { return bits == 0; }
  constexpr explicit operator bool() const { return bits != 0; }
  constexpr TimerActions& operator|=(TimerAction a) {
    bits |= action_bit(a);
    return *this;
  }
  constexpr TimerActions& operator|=(TimerActions o) {
    bits |= o.bits;
    return *this;
  }
  constexpr bool operator==(const TimerActions&) const = default;
};

constexpr TimerActions operator|(TimerAction a, TimerAction b) { return {action_bit(a) | action_bit(b)}; }
constexpr TimerActions operator|(TimerActions a, TimerAction b) { return a |= b; }
constexpr TimerActions operator|(TimerActions a, TimerActions b) { return a |= b; }
constexpr TimerActions operator&(TimerActions a, TimerAction b) { return {a.bits & action_bit(b)}; }
constexpr TimerActions operator&(TimerActions a, TimerActions b) { return {a.bits & b.bits}; }

class PeerTimers {
 public:
  // jitter_seed drives a deterministic PRNG; jitter is uniform in [0, kRekeyTimeoutJitterMax).
  explicit PeerTimers(uint64_t jitter_seed = 0);

  // 0 turns persistent keepalive off (and disarms its deadline). Like the kernel, a non-zero
  // interval is armed by the next any_authenticated_packet_traversal; the kernel's netlink
  // set_peer sends a keepalive right away when the interval is configured on a running device.
  void set_persistent_keepalive(Nanos interval);
  Nanos persistent_keepalive() const { return persistent_keepalive_interval_; }

  // --- Events (kernel timers.c wg_timers_*) ---
  // An authenticated data packet (not a keepalive) was sent.
  void data_sent(Nanos now);
  // An authenticated data packet that is not a keepalive was received (receive.c skips keepalives,
  // otherwise two peers would answer each other's keepalives forever).
  void data_received(Nanos now);
  // Any authenticated packet (handshake, data, keepalive) was sent.
  void any_authenticated_packet_sent(Nanos now);
  // Any authenticated packet (handshake, data, keepalive) was received.
  void any_authenticated_packet_received(Nanos now);
  // Any authenticated packet is about to be sent or was received (re-arms persistent keepalive).
  void any_authenticated_packet_traversal(Nanos now);
  // An initiation was just sent: arms the retransmit timer and starts the REKEY_TIMEOUT rate limit.
  void handshake_initiated(Nanos now);
  // A response was consumed, or the first data packet arrived on a responder keypair.
  void handshake_complete(Nanos now);
  // A new keypair was derived (either side): re-arms the zero-key-material timer.
  void session_derived(Nanos now);
  // A handshake response was just sent. The kernel (send.c wg_packet_send_handshake_response)
  // also stamps last_sent_handshake here, so a responder does not initiate within REKEY_TIMEOUT.
  void handshake_response_sent(Nanos now);

  // --- Handshake requests ---
  // False if an initiation (or response) was sent less than kRekeyTimeout ago
  // (kernel send.c wg_packet_send_handshake_initiation / wg_birthdate_has_expired).
  bool may_send_initiation(Nanos now) const;
  // The owner wants a fresh handshake that is not a retransmission: it has data to send and no
  // valid keypair, or want_rekey_on_send / want_rekey_on_receive said so. Resets the attempt
  // counter (kernel wg_packet_send_queued_handshake_initiation with is_retry = false) and
  // returns may_send_initiation(now): if true the owner sends an initiation and then calls
  // handshake_initiated(now); if false a recent initiation is still in flight and its
  // retransmit timer covers this request.
  bool request_handshake(Nanos now);

  // Send-path rekey (kernel send.c keep_key_fresh): the current keypair has sent more than
  // kRekeyAfterMessages, or we initiated it and it is at least kRekeyAfterTime old.
  bool want_rekey_on_send(uint64_t send_counter, Nanos keypair_birth, bool i_am_initiator, Nanos now) const;
  // Receive-path rekey (kernel receive.c keep_key_fresh): we initiated the current keypair and it
  // is at least kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout old. True at most once per
  // handshake (sets sent_lastminute_handshake; handshake_complete clears it).
  bool want_rekey_on_receive(Nanos keypair_birth, bool i_am_initiator, Nanos now);

  // Fires every deadline <= now, in deadline order, and returns the union of their actions.
  TimerActions poll(Nanos now);

  // --- Scheduling without periodic polling ---
  // `wakeup(when)` is called (from inside the event or poll call that armed it, so under
  // whatever lock the owner holds for this object) whenever a deadline is armed earlier than
  // every wakeup still outstanding: the owner keeps it in a timer heap and, once `when` has
  // come, calls poll(now) and then woke(when). An idle peer therefore costs nothing until its
  // earliest deadline. Set before the first event.
  void set_wakeup(std::function<void(Nanos)> wakeup) { wakeup_ = std::move(wakeup); }
  // The wakeup for `when` has been served (after poll): if it was the outstanding one, asks
  // for the next deadline, if any. A wakeup superseded by an earlier one is ignored.
  void woke(Nanos when);
  // The earliest armed deadline; nullopt when nothing is armed.
  std::optional<Nanos> next_deadline() const;

  // Retransmissions since the last non-retry initiation (kernel timer_handshake_attempts).
  int handshake_attempts() const { return handshake_attempts_; }
  bool sent_lastminute_handshake() const { return sent_lastminute_handshake_; }

  // Clears every deadline and the per-handshake state (peer removed / device down: kernel
  // wg_timers_stop plus wg_noise_reset_last_sent_handshake in device.c wg_stop). Events after
  // stop() arm timers again, as they do in the kernel once the device is back up.
  void stop();

 private:
  enum Timer : size_t {
    kRetransmitHandshake,
    kSendKeepaliveTimer,
    kNewHandshake,
    kZeroKeyMaterial,
    kPersistentKeepalive,
    kTimerCount,
  };

  bool armed(Timer t) const { return deadlines_[t].has_value(); }
  void arm(Timer t, Nanos when) {
    deadlines_[t] = when;
    if (wakeup_ && when < wakeup_at_) {
      wakeup_at_ = when;
      wakeup_(when);
    }
  }
  void disarm(Timer t) { deadlines_[t].reset(); }
  Nanos jitter();
  // Mirrors wg_packet_send_queued_handshake_initiation: the REKEY_TIMEOUT gate for every path.
  bool queue_initiation(Nanos now, bool is_retry);
  TimerActions fire(Timer t, Nanos now);
  TimerActions expired_retransmit_handshake(Nanos now);
  TimerActions expired_send_keepalive(Nanos now);

  std::array<std::optional<Nanos>, kTimerCount> deadlines_{};
  std::optional<Nanos> last_sent_handshake_;
  Nanos persistent_keepalive_interval_ = 0;
  int handshake_attempts_ = 0;
  bool need_another_keepalive_ = false;
  bool sent_lastminute_handshake_ = false;
  uint64_t rng_state_;
  std::function<void(Nanos)> wakeup_;
  // The earliest wakeup requested and not yet served (max: none).
  Nanos wakeup_at_ = std::numeric_limits<Nanos>::max();
};

}  // namespace xsktun::proto
