// Per-source token bucket for handshake messages under load (whitepaper section 5.3; semantics of
// the kernel's drivers/net/wireguard/ratelimiter.c): 20 handshakes per second per source with a
// burst of 5. Sources are keyed by full IPv4 address, or by IPv6 /64 prefix, since one host
// usually owns a whole /64 and could otherwise rotate addresses to get unlimited buckets.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "xsktun/common/ip.h"
#include "xsktun/protocol/messages.h"

namespace xsktun::proto {

class HandshakeRateLimiter {
 public:
  // Cost of one handshake in nanoseconds of refill time, and the bucket capacity (kernel
  // PACKET_COST and TOKEN_MAX).
  static constexpr Nanos kPacketCost = kSecond / static_cast<Nanos>(kHandshakesPerSecond);
  static constexpr Nanos kTokenMax = kPacketCost * static_cast<Nanos>(kHandshakeBurst);
  // Entries idle at least this long are dropped by gc().
  static constexpr Nanos kIdleTimeout = kSecond;

  explicit HandshakeRateLimiter(size_t max_entries = 8192);

  // True: process this handshake; false: over budget (or table full, or source not IPv4/IPv6).
  // `now` is a monotonic clock injected by the caller; the limiter never reads a clock.
  bool allow(const IpAddr& source, Nanos now);
  // False if allow() would refuse this source now for lack of tokens; charges and creates
  // nothing. Lets a caller skip expensive checks (MAC1/MAC2) for a source already over budget.
  bool would_allow(const IpAddr& source, Nanos now) const;
  // Drops entries idle for >= 1 s. Call about once a second.
  void gc(Nanos now);
  size_t size() const;

 private:
  struct Key {
    uint64_t ip = 0;  // IPv4 address, or the first 64 bits of an IPv6 address
    uint8_t family = 0;
    bool operator==(const Key&) const = default;
  };
  // SipHash with a per-instance random key (libsodium crypto_shorthash), as the kernel uses
  // hsiphash: source addresses are attacker chosen, so a predictable hash would let a flood pile
  // every entry into one bucket.
  struct KeyHash {
    std::array<uint8_t, 16> secret{};
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    Nanos last = 0;
    Nanos tokens = 0;
  };

  static KeyHash random_hasher();
  static bool make_key(const IpAddr& source, Key* key);
  static Nanos refilled(const Entry& e, Nanos now);
  void gc_locked(Nanos now);

  const size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<Key, Entry, KeyHash> table_;
  Nanos last_inline_gc_ = 0;
  bool inline_gc_ran_ = false;
};

}  // namespace xsktun::proto
