// Handshake rate limiter; see ratelimiter.h. Token-bucket rules follow the kernel's
// wg_ratelimiter_allow (drivers/net/wireguard/ratelimiter.c): tokens are nanoseconds of credit,
// a handshake costs 1/20 s, the bucket holds 5 handshakes, and a new source starts with a full
// bucket minus the handshake that created it.
#include "xsktun/protocol/ratelimiter.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace xsktun::proto {
namespace {

// A flood of new sources against a full table would otherwise trigger a full sweep per packet;
// sweeping at most this often bounds that work. Entries only become collectable as time passes,
// so a sweep sooner than this after the previous one could free very little anyway.
constexpr Nanos kInlineGcMinInterval = 10 * kMillisecond;

}  // namespace

size_t HandshakeRateLimiter::KeyHash::operator()(const Key& k) const {
  uint8_t in[9];
  std::memcpy(in, &k.ip, sizeof(k.ip));
  in[8] = k.family;
  uint8_t out[crypto_shorthash_BYTES];
  static_assert(crypto_shorthash_KEYBYTES == sizeof(secret));
  crypto_shorthash(out, in, sizeof(in), secret.data());
  size_t h;
  static_assert(sizeof(h) <= sizeof(out));
  std::memcpy(&h, out, sizeof(h));
  return h;
}

HandshakeRateLimiter::KeyHash HandshakeRateLimiter::random_hasher() {
  if (sodium_init() < 0) throw std::runtime_error("sodium_init failed");
  KeyHash hasher;
  randombytes_buf(hasher.secret.data(), hasher.secret.size());
  return hasher;
}

HandshakeRateLimiter::HandshakeRateLimiter(size_t max_entries)
    : max_entries_(max_entries), table_(0, random_hasher()) {}

bool HandshakeRateLimiter::make_key(const IpAddr& source, Key* key) {
  key->family = source.family;
  if (source.family == AF_INET) {
    uint32_t v4;
    std::memcpy(&v4, source.bytes.data(), sizeof(v4));
    key->ip = v4;
    return true;
  }
  if (source.family == AF_INET6) {
    // Only the /64 prefix: kernel ratelimiter.c "ratelimit the whole /64".
    std::memcpy(&key->ip, source.bytes.data(), sizeof(key->ip));
    return true;
  }
  return false;  // the kernel also refuses anything that is not IPv4 or IPv6
}

// Refill by elapsed time, capped at the burst. A clock that steps backwards refills nothing.
Nanos HandshakeRateLimiter::refilled(const Entry& e, Nanos now) {
  const Nanos elapsed = std::max<Nanos>(0, now - e.last);
  return std::min(kTokenMax, e.tokens + std::min(elapsed, kTokenMax));
}

bool HandshakeRateLimiter::would_allow(const IpAddr& source, Nanos now) const {
  Key key;
  if (!make_key(source, &key)) return false;
  std::lock_guard lock(mu_);
  auto it = table_.find(key);
  if (it != table_.end()) return refilled(it->second, now) >= kPacketCost;
  // A new source starts with a full bucket (whether a full table has room is allow()'s call).
  return true;
}

bool HandshakeRateLimiter::allow(const IpAddr& source, Nanos now) {
  Key key;
  if (!make_key(source, &key)) return false;
  std::lock_guard lock(mu_);

  if (auto it = table_.find(key); it != table_.end()) {
    Entry& e = it->second;
    const Nanos tokens = refilled(e, now);
    e.last = std::max(e.last, now);
    const bool ok = tokens >= kPacketCost;
    e.tokens = ok ? tokens - kPacketCost : tokens;
    return ok;
  }

  if (table_.size() >= max_entries_) {
    // Kernel denies outright when full (err_oom); we first try to make room, but rate-limit the
    // sweep so a stream of new sources cannot make every packet cost O(max_entries).
    if (!inline_gc_ran_ || now - last_inline_gc_ >= kInlineGcMinInterval) {
      inline_gc_ran_ = true;
      last_inline_gc_ = now;
      gc_locked(now);
    }
    if (table_.size() >= max_entries_) return false;
  }
  table_.emplace(key, Entry{now, kTokenMax - kPacketCost});
  return true;
}

// Dropping an entry idle for a second is invisible to the sender: after kTokenMax (250 ms) idle its
// bucket is full again, which is exactly how a re-created entry would start.
void HandshakeRateLimiter::gc_locked(Nanos now) {
  std::erase_if(table_, [now](const auto& kv) { return now - kv.second.last >= kIdleTimeout; });
}

void HandshakeRateLimiter::gc(Nanos now) {
  std::lock_guard lock(mu_);
  gc_locked(now);
}

size_t HandshakeRateLimiter::size() const {
  std::lock_guard lock(mu_);
  return table_.size();
}

}  // namespace xsktun::proto
