// Noise_IKpsk2 handshake, whitepaper section 5.4. Comments mark the Noise tokens.
#include "xsktun/protocol/noise.h"

#include <cstring>

#include "xsktun/protocol/crypto.h"

namespace xsktun::proto {

namespace {

constexpr char kConstruction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr char kIdentifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

using crypto::Bytes;

Bytes str_bytes(const char* s, size_t n) { return Bytes(reinterpret_cast<const uint8_t*>(s), n); }

// C0 = HASH(Construction); H0 = HASH(C0 || Identifier); computed once.
struct InitialState {
  uint8_t chaining_key[kHashLen];
  uint8_t hash[kHashLen];
  InitialState() {
    crypto::hash(chaining_key, str_bytes(kConstruction, sizeof kConstruction - 1));
    crypto::hash(hash, Bytes(chaining_key, kHashLen), str_bytes(kIdentifier, sizeof kIdentifier - 1));
  }
};
const InitialState& initial() {
  static const InitialState s;
  return s;
}

// The running (ck, h) pair of one handshake computation, wiped when it goes out of scope.
struct Transcript {
  SecretKey ck;
  uint8_t h[kHashLen];
  SecretKey key;  // the current AEAD key

  explicit Transcript(const Key& responder_static) {
    ck.assign(initial().chaining_key);
    crypto::hash(h, Bytes(initial().hash, kHashLen), Bytes(responder_static));
  }
  Transcript(const SecretKey& chaining_key, const uint8_t hash[kHashLen]) : ck(chaining_key) {
    std::memcpy(h, hash, kHashLen);
  }
  ~Transcript() { sodium_memzero(h, sizeof h); }

  void mix_hash(Bytes b) { crypto::hash(h, Bytes(h, kHashLen), b); }
  // The `e` token: C = KDF1(C, e_pub); H = HASH(H || e_pub).
  void mix_ephemeral(const uint8_t pub[kKeyLen]) {
    crypto::kdf(ck.data(), nullptr, nullptr, ck.data(), Bytes(pub, kKeyLen));
    mix_hash(Bytes(pub, kKeyLen));
  }
  // (C, k) = KDF2(C, dh); with_key=false means KDF1 (ee and se in the response).
  void mix_key(const SecretKey& dh_result, bool with_key) {
    crypto::kdf(ck.data(), with_key ? key.data() : nullptr, nullptr, ck.data(),
                Bytes(dh_result.data(), kKeyLen));
  }
  [[nodiscard]] bool mix_dh(const SecretKey& priv, const uint8_t pub[kKeyLen], bool with_key) {
    SecretKey shared;
    if (!crypto::dh(shared, priv, pub)) return false;
    mix_key(shared, with_key);
    return true;
  }
  // The `psk` token: (C, tau, k) = KDF3(C, Q); H = HASH(H || tau).
  void mix_psk(const SecretKey& psk) {
    uint8_t tau[kHashLen];
    crypto::kdf(ck.data(), tau, key.data(), ck.data(), Bytes(psk.data(), kKeyLen));
    mix_hash(Bytes(tau, kHashLen));
    sodium_memzero(tau, sizeof tau);
  }
  // msg = AEAD(k, 0, plain, H); H = HASH(H || msg).
  void encrypt(uint8_t* out, Bytes plain) {
    crypto::aead_encrypt(out, plain, 0, key.data(), Bytes(h, kHashLen));
    mix_hash(Bytes(out, plain.size() + kTagLen));
  }
  [[nodiscard]] bool decrypt(uint8_t* out, Bytes cipher) {
    if (!crypto::aead_decrypt(out, cipher, 0, key.data(), Bytes(h, kHashLen))) return false;
    mix_hash(cipher);
    return true;
  }
};

void fill_header(MessageHeader* h, MessageType t) {
  h->type = t;
  std::memset(h->reserved, 0, sizeof h->reserved);
}

}  // namespace

const char* to_string(HandshakeError e) {
  switch (e) {
    case HandshakeError::kOk: return "ok";
    case HandshakeError::kNoIdentity: return "no private key";
    case HandshakeError::kBadDh: return "DH result is zero (low-order point)";
    case HandshakeError::kDecrypt: return "decryption failed";
    case HandshakeError::kUnknownPeer: return "unknown peer";
    case HandshakeError::kStaleTimestamp: return "timestamp not newer (replay)";
    case HandshakeError::kFlood: return "initiation flood";
    case HandshakeError::kWrongState: return "unexpected handshake state";
  }
  return "?";
}

void StaticIdentity::set_private(const SecretKey& priv) {
  private_key = priv;
  crypto::public_from_private(public_key.data(), private_key);
  has_private = !private_key.is_zero();
}

void StaticIdentity::clear() {
  private_key.clear();
  public_key.fill(0);
  has_private = false;
}

void Handshake::precompute(const StaticIdentity& id) {
  if (!id.has_private || !crypto::dh(precomputed_static_static, id.private_key, remote_static.data()))
    precomputed_static_static.clear();
}

void Handshake::clear() {
  state = HandshakeState::kZeroed;
  ephemeral_private.clear();
  remote_ephemeral.fill(0);
  sodium_memzero(hash, sizeof hash);
  chaining_key.clear();
  remote_index = 0;
}

void tai64n(uint8_t out[kTimestampLen], int64_t unix_seconds, uint32_t nanoseconds) {
  // TAI64 label: 2^62 + 10 (TAI-UTC offset used by the reference implementations) + seconds.
  uint64_t secs = (1ULL << 62) + 10 + static_cast<uint64_t>(unix_seconds);
  uint32_t ns = nanoseconds & ~((1U << 24) - 1);  // rounddown_pow_of_two(1e9 / 50) = 2^24
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(secs >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<uint8_t>(ns >> (24 - 8 * i));
}

HandshakeError create_initiation(MessageInitiation* msg, Handshake& hs, const StaticIdentity& id,
                                 uint32_t local_index, const uint8_t timestamp[kTimestampLen]) {
  if (!id.has_private) return HandshakeError::kNoIdentity;
  if (hs.precomputed_static_static.is_zero()) return HandshakeError::kBadDh;
  Transcript t(hs.remote_static);
  fill_header(&msg->header, kMessageHandshakeInitiation);
  msg->sender_index = le32(local_index);

  /* e */
  crypto::generate_private(hs.ephemeral_private);
  crypto::public_from_private(msg->unencrypted_ephemeral, hs.ephemeral_private);
  t.mix_ephemeral(msg->unencrypted_ephemeral);
  /* es */
  if (!t.mix_dh(hs.ephemeral_private, hs.remote_static.data(), true)) return HandshakeError::kBadDh;
  /* s */
  t.encrypt(msg->encrypted_static, Bytes(id.public_key));
  /* ss */
  t.mix_key(hs.precomputed_static_static, true);
  /* {t} */
  t.encrypt(msg->encrypted_timestamp, Bytes(timestamp, kTimestampLen));

  std::memcpy(hs.hash, t.h, kHashLen);
  hs.chaining_key = t.ck;
  hs.local_index = local_index;
  hs.state = HandshakeState::kCreatedInitiation;
  return HandshakeError::kOk;
}

HandshakeError consume_initiation(const MessageInitiation& msg, const StaticIdentity& id,
                                  const PeerByKey& lookup, Nanos now, Handshake** peer_out) {
  if (!id.has_private) return HandshakeError::kNoIdentity;
  Transcript t(id.public_key);
  Key remote_static{};
  uint8_t timestamp[kTimestampLen];

  /* e */
  t.mix_ephemeral(msg.unencrypted_ephemeral);
  /* es */
  if (!t.mix_dh(id.private_key, msg.unencrypted_ephemeral, true)) return HandshakeError::kBadDh;
  /* s */
  if (!t.decrypt(remote_static.data(), Bytes(msg.encrypted_static, sizeof msg.encrypted_static)))
    return HandshakeError::kDecrypt;
  Handshake* hs = lookup(remote_static);
  if (!hs) return HandshakeError::kUnknownPeer;
  /* ss */
  if (hs->precomputed_static_static.is_zero()) return HandshakeError::kBadDh;
  t.mix_key(hs->precomputed_static_static, true);
  /* {t} */
  if (!t.decrypt(timestamp, Bytes(msg.encrypted_timestamp, sizeof msg.encrypted_timestamp)))
    return HandshakeError::kDecrypt;

  // Whitepaper 5.1: a replayed initiation carries an old timestamp; and at most one initiation
  // per peer is consumed per kInitiationMinInterval, which bounds the CPU an attacker can burn.
  if (std::memcmp(timestamp, hs->latest_timestamp, kTimestampLen) <= 0)
    return HandshakeError::kStaleTimestamp;
  if (hs->has_consumed_initiation && now - hs->last_initiation_consumption < kInitiationMinInterval)
    return HandshakeError::kFlood;

  std::memcpy(hs->remote_ephemeral.data(), msg.unencrypted_ephemeral, kKeyLen);
  std::memcpy(hs->latest_timestamp, timestamp, kTimestampLen);
  std::memcpy(hs->hash, t.h, kHashLen);
  hs->chaining_key = t.ck;
  hs->remote_index = le32(msg.sender_index);
  hs->last_initiation_consumption = now;
  hs->has_consumed_initiation = true;
  hs->state = HandshakeState::kConsumedInitiation;
  *peer_out = hs;
  return HandshakeError::kOk;
}

HandshakeError create_response(MessageResponse* msg, Handshake& hs, const StaticIdentity& id,
                               uint32_t local_index) {
  if (!id.has_private) return HandshakeError::kNoIdentity;
  if (hs.state != HandshakeState::kConsumedInitiation) return HandshakeError::kWrongState;
  Transcript t(hs.chaining_key, hs.hash);
  fill_header(&msg->header, kMessageHandshakeResponse);
  msg->sender_index = le32(local_index);
  msg->receiver_index = le32(hs.remote_index);

  /* e */
  crypto::generate_private(hs.ephemeral_private);
  crypto::public_from_private(msg->unencrypted_ephemeral, hs.ephemeral_private);
  t.mix_ephemeral(msg->unencrypted_ephemeral);
  /* ee */
  if (!t.mix_dh(hs.ephemeral_private, hs.remote_ephemeral.data(), false)) return HandshakeError::kBadDh;
  /* se */
  if (!t.mix_dh(hs.ephemeral_private, hs.remote_static.data(), false)) return HandshakeError::kBadDh;
  /* psk */
  t.mix_psk(hs.preshared_key);
  /* {} */
  t.encrypt(msg->encrypted_nothing, Bytes());

  std::memcpy(hs.hash, t.h, kHashLen);
  hs.chaining_key = t.ck;
  hs.local_index = local_index;
  hs.state = HandshakeState::kCreatedResponse;
  return HandshakeError::kOk;
}

HandshakeError consume_response(const MessageResponse& msg, const StaticIdentity& id, Handshake& hs) {
  if (!id.has_private) return HandshakeError::kNoIdentity;
  if (hs.state != HandshakeState::kCreatedInitiation || hs.local_index != le32(msg.receiver_index))
    return HandshakeError::kWrongState;
  Transcript t(hs.chaining_key, hs.hash);

  /* e */
  t.mix_ephemeral(msg.unencrypted_ephemeral);
  /* ee */
  if (!t.mix_dh(hs.ephemeral_private, msg.unencrypted_ephemeral, false)) return HandshakeError::kBadDh;
  /* se */
  if (!t.mix_dh(id.private_key, msg.unencrypted_ephemeral, false)) return HandshakeError::kBadDh;
  /* psk */
  t.mix_psk(hs.preshared_key);
  /* {} */
  uint8_t nothing[1];
  if (!t.decrypt(nothing, Bytes(msg.encrypted_nothing, sizeof msg.encrypted_nothing)))
    return HandshakeError::kDecrypt;

  std::memcpy(hs.remote_ephemeral.data(), msg.unencrypted_ephemeral, kKeyLen);
  std::memcpy(hs.hash, t.h, kHashLen);
  hs.chaining_key = t.ck;
  hs.remote_index = le32(msg.sender_index);
  hs.state = HandshakeState::kConsumedResponse;
  return HandshakeError::kOk;
}

bool derive_session(Handshake& hs, SessionKeys* out) {
  bool initiator = hs.state == HandshakeState::kConsumedResponse;
  if (!initiator && hs.state != HandshakeState::kCreatedResponse) return false;
  // Whitepaper 5.4.5: (T_send_i = T_recv_r, T_recv_i = T_send_r) = KDF2(C, empty).
  SecretKey first, second;
  crypto::kdf(first.data(), second.data(), nullptr, hs.chaining_key.data(), Bytes());
  out->send = initiator ? first : second;
  out->recv = initiator ? second : first;
  out->local_index = hs.local_index;
  out->remote_index = hs.remote_index;
  out->i_am_initiator = initiator;
  hs.clear();
  return true;
}

}  // namespace xsktun::proto
