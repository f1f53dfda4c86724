#include "xsktun/protocol/keypair.h"

#include <algorithm>
#include <cstring>

#include "xsktun/protocol/data_aead.h"

namespace xsktun::proto {

Keypair::Keypair(const SessionKeys& keys, Nanos now)
    : send_key(keys.send),
      recv_key(keys.recv),
      local_index(keys.local_index),
      remote_index(keys.remote_index),
      i_am_initiator(keys.i_am_initiator),
      birthdate(now) {}

bool Keypair::can_send(Nanos now) const {
  return now - birthdate < kRejectAfterTime &&
         send_counter.load(std::memory_order_relaxed) < kRejectAfterMessages;
}

size_t padded_len(size_t len, size_t mtu) {
  size_t padded = (len + kMessagePaddingMultiple - 1) & ~(kMessagePaddingMultiple - 1);
  if (len <= mtu && padded > mtu) padded = mtu;
  return padded;
}

size_t reserve_send_counters(Keypair& kp, size_t n, Nanos now, uint64_t* first) {
  if (n == 0 || now - kp.birthdate >= kRejectAfterTime) return 0;
  uint64_t c = kp.send_counter.fetch_add(n, std::memory_order_relaxed);
  *first = c;
  if (c >= kRejectAfterMessages) {
    kp.send_counter.store(kRejectAfterMessages, std::memory_order_relaxed);  // stay exhausted
    return 0;
  }
  return static_cast<size_t>(std::min<uint64_t>(n, kRejectAfterMessages - c));
}

size_t seal_at(const Keypair& kp, uint64_t counter, const uint8_t* plaintext, size_t len, size_t mtu,
               uint8_t* out) {
  size_t plen = padded_len(len, mtu);
  uint8_t* payload = out + kDataHeaderLen;
  if (len && payload != plaintext) std::memmove(payload, plaintext, len);
  std::memset(payload + len, 0, plen - len);
  auto* hdr = reinterpret_cast<MessageData*>(out);
  hdr->header.type = kMessageData;
  std::memset(hdr->header.reserved, 0, sizeof hdr->header.reserved);
  hdr->receiver_index = le32(kp.remote_index);
  hdr->counter = le64(counter);
  aead::seal(payload, payload, plen, counter, kp.send_key.data());
  return kDataHeaderLen + plen + kTagLen;
}

size_t seal(Keypair& kp, const uint8_t* plaintext, size_t len, size_t mtu, uint8_t* out, Nanos now,
            uint64_t* counter_used) {
  uint64_t counter = 0;
  if (reserve_send_counters(kp, 1, now, &counter) == 0) return 0;
  if (counter_used) *counter_used = counter;
  return seal_at(kp, counter, plaintext, len, mtu, out);
}

const char* to_string(OpenResult r) {
  switch (r) {
    case OpenResult::kOk: return "ok";
    case OpenResult::kMalformed: return "malformed";
    case OpenResult::kExpired: return "keypair expired";
    case OpenResult::kAuthFailed: return "authentication failed";
    case OpenResult::kReplay: return "replayed counter";
  }
  return "?";
}

OpenResult open_unwindowed(Keypair& kp, uint8_t* msg, size_t len, Nanos now, size_t* plain_len,
                           uint64_t* counter) {
  if (len < kDataOverhead) return OpenResult::kMalformed;
  if (!kp.can_receive(now)) return OpenResult::kExpired;
  const auto* hdr = reinterpret_cast<const MessageData*>(msg);
  uint64_t c = le64(hdr->counter);
  if (c >= kRejectAfterMessages) return OpenResult::kReplay;
  uint8_t* payload = msg + kDataHeaderLen;
  size_t clen = len - kDataHeaderLen;
  if (!aead::open(payload, payload, clen, c, kp.recv_key.data())) return OpenResult::kAuthFailed;
  *plain_len = clen - kTagLen;
  *counter = c;
  return OpenResult::kOk;
}

size_t accept_counters(Keypair& kp, std::span<uint64_t> counters) {
  size_t rejected = 0;
  std::lock_guard lock(kp.replay_mu);
  for (uint64_t& c : counters) {
    if (c == kReplayed || kp.replay.check_and_update(c)) continue;
    c = kReplayed;
    ++rejected;
  }
  return rejected;
}

OpenResult open(Keypair& kp, uint8_t* msg, size_t len, Nanos now, size_t* plain_len) {
  uint64_t counter;
  OpenResult r = open_unwindowed(kp, msg, len, now, plain_len, &counter);
  if (r != OpenResult::kOk) return r;
  return accept_counters(kp, std::span(&counter, 1)) == 0 ? OpenResult::kOk : OpenResult::kReplay;
}

Keypairs::Dropped Keypairs::add(std::shared_ptr<Keypair> kp) {
  std::lock_guard lock(mu_);
  Dropped d;
  if (kp->i_am_initiator) {
    // An unconfirmed `next` is superseded; it moves to previous so in-flight data still opens.
    if (next_) {
      d.a = std::move(previous_);
      d.b = std::move(current_);
      previous_ = std::move(next_);
    } else {
      d.a = std::move(previous_);
      previous_ = std::move(current_);
    }
    current_ = std::move(kp);
  } else {
    d.a = std::move(next_);
    d.b = std::move(previous_);
    next_ = std::move(kp);
  }
  return d;
}

bool Keypairs::received_with(const Keypair* kp, std::shared_ptr<Keypair>* dropped) {
  std::lock_guard lock(mu_);
  if (!next_ || next_.get() != kp) return false;
  *dropped = std::move(previous_);
  previous_ = std::move(current_);
  current_ = std::move(next_);
  return true;
}

std::shared_ptr<Keypair> Keypairs::current() const {
  std::lock_guard lock(mu_);
  return current_;
}
std::shared_ptr<Keypair> Keypairs::previous() const {
  std::lock_guard lock(mu_);
  return previous_;
}
std::shared_ptr<Keypair> Keypairs::next() const {
  std::lock_guard lock(mu_);
  return next_;
}

std::array<std::shared_ptr<Keypair>, 3> Keypairs::clear() {
  std::lock_guard lock(mu_);
  return {std::move(previous_), std::move(current_), std::move(next_)};
}

}  // namespace xsktun::proto
