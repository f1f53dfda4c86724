// Noise_IKpsk2 as WireGuard uses it (whitepaper section 5.4.2-5.4.4). Functions fill and consume
// message structs; they never touch a socket or a clock of their own. Indices are allocated by the
// caller; MACs are added and checked by cookie.h.
#pragma once

#include <cstdint>
#include <functional>

#include "xsktun/common/secret.h"
#include "xsktun/protocol/messages.h"

namespace xsktun::proto {

// Our static identity. mac1_key / cookie_key depend only on our public key and are what peers use
// to MAC messages to us and what we use to encrypt cookie replies (whitepaper 5.4.4, 5.4.7).
struct StaticIdentity {
  SecretKey private_key;
  Key public_key{};
  bool has_private = false;
  void set_private(const SecretKey& priv);
  void clear();
};

enum class HandshakeState : uint8_t {
  kZeroed,
  kCreatedInitiation,
  kConsumedInitiation,
  kCreatedResponse,
  kConsumedResponse,
};

enum class HandshakeError : uint8_t {
  kOk,
  kNoIdentity,      // we have no private key
  kBadDh,           // a DH result was all zero (low-order point)
  kDecrypt,         // an AEAD did not authenticate
  kUnknownPeer,     // the static key is not one of our peers
  kStaleTimestamp,  // TAI64N not newer than the last accepted (replayed initiation)
  kFlood,           // a second initiation from this peer within kInitiationMinInterval
  kWrongState,      // a response for a handshake we are not waiting on
};
const char* to_string(HandshakeError e);

// Per-peer handshake state (kernel: struct noise_handshake).
struct Handshake {
  Key remote_static{};
  SecretKey preshared_key;              // all zero when the peer has none (whitepaper 5.4: Q = 0^32)
  SecretKey precomputed_static_static;  // DH(S_priv, S_pub_remote), zero if low order / no identity
  HandshakeState state = HandshakeState::kZeroed;
  SecretKey ephemeral_private;
  Key remote_ephemeral{};
  uint8_t hash[kHashLen]{};
  SecretKey chaining_key;
  uint32_t local_index = 0;
  uint32_t remote_index = 0;
  uint8_t latest_timestamp[kTimestampLen]{};  // newest TAI64N accepted from this peer
  Nanos last_initiation_consumption = 0;
  bool has_consumed_initiation = false;

  // (Re)computes the static-static DH; call when our key or the peer's key changes.
  void precompute(const StaticIdentity& id);
  // Forgets the ephemeral state (keeps remote_static, psk, timestamp, flood state).
  void clear();
};

// Keys derived at the end of a handshake (whitepaper 5.4.5).
struct SessionKeys {
  SecretKey send;
  SecretKey recv;
  uint32_t local_index = 0;
  uint32_t remote_index = 0;
  bool i_am_initiator = false;
};

// TAI64N of a wall-clock time (seconds and nanoseconds since the Unix epoch). Nanoseconds are
// rounded down to a power of two near 1/50 s so the timestamp does not leak a fine clock
// (kernel noise.c tai64n_now).
void tai64n(uint8_t out[kTimestampLen], int64_t unix_seconds, uint32_t nanoseconds);

// Initiator: fills msg (all but the MACs) and moves hs to kCreatedInitiation.
HandshakeError create_initiation(MessageInitiation* msg, Handshake& hs, const StaticIdentity& id,
                                 uint32_t local_index, const uint8_t timestamp[kTimestampLen]);

// Responder: `lookup` maps a decrypted static public key to that peer's Handshake (nullptr if none).
// `now` is the monotonic clock for the per-peer flood limit. On success *peer_out is the peer's
// handshake, now in kConsumedInitiation.
using PeerByKey = std::function<Handshake*(const Key& remote_static)>;
HandshakeError consume_initiation(const MessageInitiation& msg, const StaticIdentity& id,
                                  const PeerByKey& lookup, Nanos now, Handshake** peer_out);

// Responder: fills msg (all but the MACs) and moves hs to kCreatedResponse.
HandshakeError create_response(MessageResponse* msg, Handshake& hs, const StaticIdentity& id,
                               uint32_t local_index);

// Initiator: `hs` is the handshake that owns msg.receiver_index (the caller looks it up).
HandshakeError consume_response(const MessageResponse& msg, const StaticIdentity& id, Handshake& hs);

// After create_response (responder) or consume_response (initiator): derives the transport keys,
// then zeroes the handshake's ephemeral state. Returns false if hs is in neither state.
bool derive_session(Handshake& hs, SessionKeys* out);

}  // namespace xsktun::proto
