// Transport keypairs and data messages (whitepaper 5.4.6), and the previous/current/next slots
// of kernel noise.c: a responder may only send with a new keypair once the initiator has proven
// it has it, by sending the first data message.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "xsktun/common/secret.h"
#include "xsktun/protocol/messages.h"
#include "xsktun/protocol/noise.h"
#include "xsktun/protocol/replay.h"

namespace xsktun::proto {

struct Keypair {
  SecretKey send_key;
  SecretKey recv_key;
  uint32_t local_index = 0;   // what the peer puts in receiver_index of data sent to us
  uint32_t remote_index = 0;  // what we put in receiver_index of data we send
  bool i_am_initiator = false;
  Nanos birthdate = 0;
  std::atomic<uint64_t> send_counter{0};
  std::mutex replay_mu;  // the window is shared by all receive workers
  ReplayWindow replay;

  Keypair(const SessionKeys& keys, Nanos now);
  // Whitepaper 6.2: never send past REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES.
  bool can_send(Nanos now) const;
  bool can_receive(Nanos now) const { return now - birthdate < kRejectAfterTime; }
};

// Bytes a sealed packet of `len` plaintext bytes occupies: header + padded payload + tag.
// Padding rounds up to 16 but never past the MTU (kernel send.c calculate_skb_padding).
size_t padded_len(size_t len, size_t mtu);
inline size_t sealed_len(size_t len, size_t mtu) { return kDataHeaderLen + padded_len(len, mtu) + kTagLen; }

// Encrypts plaintext (len bytes, may be 0 for a keepalive) into out, which must hold
// sealed_len(len, mtu) bytes; out may equal plaintext - kDataHeaderLen (in place). Returns the
// message length, or 0 if the keypair may not send (expired or counter exhausted).
size_t seal(Keypair& kp, const uint8_t* plaintext, size_t len, size_t mtu, uint8_t* out, Nanos now,
            uint64_t* counter_used = nullptr);
// For a run of n packets: reserves n consecutive send counters with one atomic add, so workers
// sealing for the same keypair share one cache line per run, not per packet. Returns how many
// of them may be used (0 if the keypair is too old or exhausted), the first in *first.
size_t reserve_send_counters(Keypair& kp, size_t n, Nanos now, uint64_t* first);
// seal() with a counter from reserve_send_counters; never fails. The caller holds a reference
// to kp, so its keys stay alive (they are wiped when the last reference goes).
size_t seal_at(const Keypair& kp, uint64_t counter, const uint8_t* plaintext, size_t len, size_t mtu,
               uint8_t* out);

enum class OpenResult : uint8_t { kOk, kMalformed, kExpired, kAuthFailed, kReplay };
const char* to_string(OpenResult r);

// Decrypts a data message in place: on kOk the plaintext (with padding) is at msg + kDataHeaderLen
// and *plain_len is its length. The replay window is updated only after authentication.
OpenResult open(Keypair& kp, uint8_t* msg, size_t len, Nanos now, size_t* plain_len);
// open() without the replay window, for a run of messages: on kOk *counter is the message's
// counter, which the caller then passes through accept_counters() (one lock for the run).
OpenResult open_unwindowed(Keypair& kp, uint8_t* msg, size_t len, Nanos now, size_t* plain_len,
                           uint64_t* counter);
// Moves the replay window over the counters of authenticated messages, in order, under one
// lock. Entries already kReplayed (messages that failed before the window) are skipped; a
// counter the window rejects (seen before, or behind it) becomes kReplayed. Returns how many
// the window rejected.
inline constexpr uint64_t kReplayed = UINT64_MAX;
size_t accept_counters(Keypair& kp, std::span<uint64_t> counters);

// The three keypair slots of one peer.
class Keypairs {
 public:
  // Installs a freshly derived keypair: an initiator starts using it at once; a responder parks
  // it in `next` until confirmed. Returns the keypairs that were dropped (their indices must be
  // freed by the caller), at most two.
  struct Dropped {
    std::shared_ptr<Keypair> a, b;
  };
  Dropped add(std::shared_ptr<Keypair> kp);
  // Called after data authenticated with kp: if kp is `next`, it becomes `current`. Returns true
  // when that rotation happened (the handshake is then complete for the responder); *dropped gets
  // the old previous keypair if one fell out.
  bool received_with(const Keypair* kp, std::shared_ptr<Keypair>* dropped);
  std::shared_ptr<Keypair> current() const;
  std::shared_ptr<Keypair> previous() const;
  std::shared_ptr<Keypair> next() const;
  // Drops everything (zero key material). Returns what was held so indices can be freed.
  std::array<std::shared_ptr<Keypair>, 3> clear();

 private:
  mutable std::mutex mu_;
  std::shared_ptr<Keypair> previous_, current_, next_;
};

}  // namespace xsktun::proto
