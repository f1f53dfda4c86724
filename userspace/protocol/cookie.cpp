#include "xsktun/protocol/cookie.h"

#include <arpa/inet.h>

#include <cstring>

#include "xsktun/protocol/crypto.h"

namespace xsktun::proto {

namespace {
using crypto::Bytes;

void derive_key(uint8_t out[kKeyLen], const char label[8], const Key& pub) {
  crypto::hash(out, Bytes(reinterpret_cast<const uint8_t*>(label), 8), Bytes(pub));
}

// mac1 covers the message up to mac1; mac2 covers it up to mac2.
size_t mac1_off(size_t len) { return len - sizeof(MessageMacs); }
size_t mac2_off(size_t len) { return len - kMacLen; }
bool has_macs(size_t len) { return len == sizeof(MessageInitiation) || len == sizeof(MessageResponse); }
}  // namespace

void CookieChecker::set_public_key(const Key& our_public) {
  std::lock_guard lock(mu_);
  derive_key(mac1_key_, "mac1----", our_public);
  derive_key(cookie_key_, "cookie--", our_public);
}

void CookieChecker::make_cookie_locked(uint8_t out[kCookieLen], const Endpoint& src, Nanos now) {
  // R_m changes every two minutes (whitepaper 5.4.7).
  if (!has_secret_ || now - secret_birth_ >= kCookieSecretMaxAge) {
    crypto::random_bytes(secret_.data(), secret_.size());
    secret_birth_ = now;
    has_secret_ = true;
  }
  // tau = MAC(R_m, A_m): the source IP bytes then the port in network order.
  uint8_t addr[18];
  size_t n = src.addr.len();
  std::memcpy(addr, src.addr.bytes.data(), n);
  uint16_t port = htons(src.port);
  std::memcpy(addr + n, &port, 2);
  crypto::mac(out, Bytes(secret_.data(), secret_.size()), Bytes(addr, n + 2));
}

MacState CookieChecker::validate(const uint8_t* msg, size_t len, const Endpoint& src, Nanos now) {
  if (!has_macs(len)) return MacState::kInvalid;
  // Receive threads and the handshake worker validate concurrently with key changes: the keys
  // and the secret are read under the lock, the MACs computed outside it.
  uint8_t mac1_key[kKeyLen], cookie[kCookieLen];
  {
    std::lock_guard lock(mu_);
    std::memcpy(mac1_key, mac1_key_, kKeyLen);
    make_cookie_locked(cookie, src, now);
  }
  uint8_t computed[kMacLen];
  crypto::mac(computed, Bytes(mac1_key), Bytes(msg, mac1_off(len)));
  if (!ct_equal(computed, msg + mac1_off(len), kMacLen)) {
    sodium_memzero(cookie, sizeof cookie);
    return MacState::kInvalid;
  }
  crypto::mac(computed, Bytes(cookie), Bytes(msg, mac2_off(len)));
  sodium_memzero(cookie, sizeof cookie);
  return ct_equal(computed, msg + mac2_off(len), kMacLen) ? MacState::kValidWithCookie
                                                          : MacState::kValidNoCookie;
}

void CookieChecker::create_reply(MessageCookieReply* out, const uint8_t* msg, size_t len,
                                 uint32_t receiver_index, const Endpoint& src, Nanos now) {
  out->header.type = kMessageHandshakeCookie;
  std::memset(out->header.reserved, 0, sizeof out->header.reserved);
  out->receiver_index = le32(receiver_index);
  crypto::random_bytes(out->nonce, sizeof out->nonce);
  uint8_t cookie[kCookieLen], cookie_key[kKeyLen];
  {
    std::lock_guard lock(mu_);
    std::memcpy(cookie_key, cookie_key_, kKeyLen);
    make_cookie_locked(cookie, src, now);
  }
  // The cookie is bound to the mac1 of the message it answers, so only its sender can use it.
  crypto::xaead_encrypt(out->encrypted_cookie, Bytes(cookie, kCookieLen), out->nonce, cookie_key,
                        Bytes(msg + mac1_off(len), kMacLen));
  sodium_memzero(cookie, sizeof cookie);
}

void CookieMaker::set_remote_public_key(const Key& remote_public) {
  derive_key(mac1_key_, "mac1----", remote_public);
  derive_key(cookie_key_, "cookie--", remote_public);
  cookie_.clear();
  has_cookie_ = false;
  has_sent_mac1_ = false;
}

bool CookieMaker::has_cookie(Nanos now) const {
  // Stop using a cookie a little before the responder's secret can have rotated.
  return has_cookie_ && now - cookie_birth_ < kCookieSecretMaxAge - kCookieSecretLatency;
}

void CookieMaker::add_macs(uint8_t* msg, size_t len, Nanos now) {
  if (!has_macs(len)) return;
  crypto::mac(msg + mac1_off(len), Bytes(mac1_key_), Bytes(msg, mac1_off(len)));
  std::memcpy(last_mac1_sent_, msg + mac1_off(len), kMacLen);
  has_sent_mac1_ = true;
  if (has_cookie(now))
    crypto::mac(msg + mac2_off(len), Bytes(cookie_.data(), cookie_.size()), Bytes(msg, mac2_off(len)));
  else
    std::memset(msg + mac2_off(len), 0, kMacLen);
}

bool CookieMaker::consume_reply(const MessageCookieReply& reply, Nanos now) {
  if (!has_sent_mac1_) return false;
  uint8_t cookie[kCookieLen];
  if (!crypto::xaead_decrypt(cookie, Bytes(reply.encrypted_cookie, sizeof reply.encrypted_cookie),
                             reply.nonce, cookie_key_, Bytes(last_mac1_sent_, kMacLen)))
    return false;
  cookie_.assign(cookie);
  sodium_memzero(cookie, sizeof cookie);
  cookie_birth_ = now;
  has_cookie_ = true;
  has_sent_mac1_ = false;  // one reply per mac1 sent (kernel cookie.c)
  return true;
}

}  // namespace xsktun::proto
