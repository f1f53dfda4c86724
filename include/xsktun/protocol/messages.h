// WireGuard wire formats and protocol constants, in one place.
// Whitepaper: "WireGuard: Next Generation Kernel Network Tunnel" (J. Donenfeld),
// sections 5.4 (messages) and 6 (timers). All multi-byte integers on the wire are little-endian.
#pragma once

#include <cstddef>
#include <cstdint>

#include "xsktun_shared.h"

namespace xsktun::proto {

using Nanos = int64_t;  // monotonic clock, nanoseconds
constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kMillisecond = 1'000'000;

// Sizes of the primitives (whitepaper 5.4: DH-Len, Hash-Len, AEAD-Len(0)).
constexpr size_t kKeyLen = 32;
constexpr size_t kHashLen = 32;
constexpr size_t kTagLen = 16;  // Poly1305 tag
constexpr size_t kMacLen = 16;  // keyed BLAKE2s-128
constexpr size_t kCookieLen = 16;
constexpr size_t kXNonceLen = 24;
constexpr size_t kTimestampLen = 12;  // TAI64N

// Section 6.1 and kernel messages.h.
constexpr uint64_t kRekeyAfterMessages = 1ULL << 60;
constexpr uint64_t kRejectAfterMessages = UINT64_MAX - (1ULL << 13);  // minus the window size
constexpr Nanos kRekeyAfterTime = 120 * kSecond;
constexpr Nanos kRejectAfterTime = 180 * kSecond;
constexpr Nanos kRekeyAttemptTime = 90 * kSecond;
constexpr Nanos kRekeyTimeout = 5 * kSecond;
constexpr Nanos kRekeyTimeoutJitterMax = kSecond / 3;
constexpr Nanos kKeepaliveTimeout = 10 * kSecond;
constexpr Nanos kCookieSecretMaxAge = 120 * kSecond;
constexpr Nanos kCookieSecretLatency = 5 * kSecond;
constexpr int kMaxTimerHandshakes = static_cast<int>(kRekeyAttemptTime / kRekeyTimeout);  // 18
constexpr int kMaxQueuedIncomingHandshakes = 4096;
constexpr int kMaxStagedPackets = 128;
constexpr int kMaxPeers = 1 << 20;
constexpr size_t kReplayWindowBits = 8192;  // RFC 6479 bitmap, 128 x 64-bit blocks
// Section 5.1: at most one initiation per peer consumed per this interval (flood protection).
constexpr Nanos kInitiationMinInterval = kSecond / 50;  // 20 ms
// Handshake rate limiter (kernel ratelimiter.c): 20 per second, burst 5.
constexpr uint64_t kHandshakesPerSecond = 20;
constexpr uint64_t kHandshakeBurst = 5;

constexpr size_t kMessagePaddingMultiple = 16;
constexpr size_t kDefaultMtu = 1420;

enum MessageType : uint8_t {
  kMessageInvalid = 0,
  kMessageHandshakeInitiation = 1,
  kMessageHandshakeResponse = 2,
  kMessageHandshakeCookie = 3,
  kMessageData = 4,
};

#pragma pack(push, 1)
// The 4-byte header: type, then three reserved bytes that must be zero.
struct MessageHeader {
  uint8_t type;
  uint8_t reserved[3];
};

struct MessageMacs {
  uint8_t mac1[kMacLen];
  uint8_t mac2[kMacLen];
};

struct MessageInitiation {
  MessageHeader header;
  uint32_t sender_index;
  uint8_t unencrypted_ephemeral[kKeyLen];
  uint8_t encrypted_static[kKeyLen + kTagLen];
  uint8_t encrypted_timestamp[kTimestampLen + kTagLen];
  MessageMacs macs;
};

struct MessageResponse {
  MessageHeader header;
  uint32_t sender_index;
  uint32_t receiver_index;
  uint8_t unencrypted_ephemeral[kKeyLen];
  uint8_t encrypted_nothing[kTagLen];
  MessageMacs macs;
};

struct MessageCookieReply {
  MessageHeader header;
  uint32_t receiver_index;
  uint8_t nonce[kXNonceLen];
  uint8_t encrypted_cookie[kCookieLen + kTagLen];
};

struct MessageData {
  MessageHeader header;
  uint32_t receiver_index;
  uint64_t counter;
  // followed by the encrypted, padded packet and its 16-byte tag
};
#pragma pack(pop)

static_assert(sizeof(MessageInitiation) == 148);
static_assert(sizeof(MessageResponse) == 92);
static_assert(sizeof(MessageCookieReply) == 64);
static_assert(sizeof(MessageData) == 16);

constexpr size_t kDataHeaderLen = sizeof(MessageData);
constexpr size_t kDataOverhead = kDataHeaderLen + kTagLen;  // 32: a keepalive is exactly this
constexpr size_t kMinDataLen = kDataOverhead;

// The XDP program classifies with its own copies of these (bpf/xsktun_shared.h, C): tie them.
static_assert(XSKTUN_MSG_INITIATION == kMessageHandshakeInitiation &&
              XSKTUN_MSG_RESPONSE == kMessageHandshakeResponse &&
              XSKTUN_MSG_COOKIE == kMessageHandshakeCookie && XSKTUN_MSG_DATA == kMessageData);
static_assert(XSKTUN_INITIATION_LEN == sizeof(MessageInitiation) &&
              XSKTUN_RESPONSE_LEN == sizeof(MessageResponse) &&
              XSKTUN_COOKIE_LEN == sizeof(MessageCookieReply) && XSKTUN_DATA_MIN_LEN == kMinDataLen);

// Offsets of the MACs inside the messages that carry them (mac1 covers everything before it).
template <typename Msg>
constexpr size_t mac1_offset() {
  return sizeof(Msg) - sizeof(MessageMacs);
}
template <typename Msg>
constexpr size_t mac2_offset() {
  return sizeof(Msg) - kMacLen;
}

// The message type of a datagram if its header is well formed (reserved bytes zero and the exact
// length for handshake messages, at least kMinDataLen for data); kMessageInvalid otherwise.
MessageType classify(const uint8_t* buf, size_t len);

// This machine is little-endian (x86_64/arm64); the wire is little-endian, so these are copies.
// They exist so the intent is explicit and a big-endian port has one place to change.
inline uint32_t le32(uint32_t v) { return v; }
inline uint64_t le64(uint64_t v) { return v; }

}  // namespace xsktun::proto
