// MAC1/MAC2 and cookie replies: whitepaper section 5.4.4 and 5.4.7 (DoS mitigation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "xsktun/common/ip.h"
#include "xsktun/common/secret.h"
#include "xsktun/protocol/messages.h"

namespace xsktun::proto {

enum class MacState : uint8_t {
  kInvalid,          // mac1 wrong: drop silently
  kValidNoCookie,    // mac1 right, mac2 absent or wrong
  kValidWithCookie,  // both right
};

// Responder side, one per device: checks the MACs of handshake messages sent to us and makes
// cookie replies when we are under load.
class CookieChecker {
 public:
  // Keys are HASH("mac1----" || our_pub) and HASH("cookie--" || our_pub).
  void set_public_key(const Key& our_public);
  // msg/len is an initiation or response (exact size). src is the outer source address and port:
  // mac2 is only valid for the address the cookie was made for.
  MacState validate(const uint8_t* msg, size_t len, const Endpoint& src, Nanos now);
  // Builds the reply to msg (whose mac1 is already valid) for src.
  void create_reply(MessageCookieReply* out, const uint8_t* msg, size_t len, uint32_t receiver_index,
                    const Endpoint& src, Nanos now);

 private:
  void make_cookie_locked(uint8_t out[kCookieLen], const Endpoint& src, Nanos now);  // mu_ held

  std::mutex mu_;  // guards the keys and the rotating secret (several threads validate)
  uint8_t mac1_key_[kKeyLen]{};
  uint8_t cookie_key_[kKeyLen]{};
  SecretKey secret_;
  Nanos secret_birth_ = 0;
  bool has_secret_ = false;
};

// Initiator side, one per peer: adds MACs to the handshake messages we send to that peer and
// consumes the cookie replies it sends back.
class CookieMaker {
 public:
  void set_remote_public_key(const Key& remote_public);
  // Writes mac1 (and mac2 when we hold a cookie younger than 120 s minus latency) into msg.
  void add_macs(uint8_t* msg, size_t len, Nanos now);
  // Accepts the reply only if it decrypts with the mac1 we last sent as additional data.
  [[nodiscard]] bool consume_reply(const MessageCookieReply& reply, Nanos now);
  bool has_cookie(Nanos now) const;

 private:
  uint8_t mac1_key_[kKeyLen]{};
  uint8_t cookie_key_[kKeyLen]{};
  Secret<kCookieLen> cookie_;
  Nanos cookie_birth_ = 0;
  bool has_cookie_ = false;
  uint8_t last_mac1_sent_[kMacLen]{};
  bool has_sent_mac1_ = false;
};

}  // namespace xsktun::proto
