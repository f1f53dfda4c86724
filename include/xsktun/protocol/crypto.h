// The primitives of whitepaper section 5.4, each a thin wrapper over a library:
// BLAKE2s from libb2, X25519 and the AEADs from libsodium. No hand-written crypto.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "xsktun/common/secret.h"
#include "xsktun/protocol/messages.h"

namespace xsktun::proto::crypto {

using Bytes = std::span<const uint8_t>;

// Must be called once before anything else (sodium_init); safe to call repeatedly.
bool init();

// HASH(a || b || c): BLAKE2s-256.
void hash(uint8_t out[kHashLen], Bytes a, Bytes b = {}, Bytes c = {});
// MAC(key, input): keyed BLAKE2s with a 16-byte output (keys of 16 or 32 bytes).
void mac(uint8_t out[kMacLen], Bytes key, Bytes input);
// HMAC(key, input) over BLAKE2s-256 (RFC 2104, 64-byte block).
void hmac(uint8_t out[kHashLen], const uint8_t key[kHashLen], Bytes input);
// HKDF-n(key, input) of whitepaper 5.4: out1..out_n with n = number of non-null outputs (1..3).
void kdf(uint8_t* out1, uint8_t* out2, uint8_t* out3, const uint8_t chaining_key[kHashLen], Bytes input);

// X25519 private key: random, clamped.
void generate_private(SecretKey& priv);
void public_from_private(uint8_t pub[kKeyLen], const SecretKey& priv);
// DH(priv, pub). Returns false when the result is all zero (pub is a low-order point), which
// the handshake must treat as failure (whitepaper 5.4.2-5.4.3, kernel noise.c mix_dh).
[[nodiscard]] bool dh(SecretKey& out, const SecretKey& priv, const uint8_t pub[kKeyLen]);

// The AEAD nonce of a counter: 32 zero bits || le64(counter) (whitepaper 5.4.6).
void nonce12(uint8_t nonce[12], uint64_t counter);
// AEAD(key, counter, plain, ad): ChaCha20-Poly1305 IETF, nonce = 32 zero bits || le64(counter).
// out must hold plain.size() + kTagLen bytes; out may alias plain (in place).
void aead_encrypt(uint8_t* out, Bytes plain, uint64_t counter, const uint8_t key[kKeyLen], Bytes ad);
[[nodiscard]] bool aead_decrypt(uint8_t* out, Bytes cipher, uint64_t counter, const uint8_t key[kKeyLen],
                                Bytes ad);
// XAEAD(key, nonce24, plain, ad): XChaCha20-Poly1305, for cookie replies (whitepaper 5.4.7).
void xaead_encrypt(uint8_t* out, Bytes plain, const uint8_t nonce[kXNonceLen], const uint8_t key[kKeyLen],
                   Bytes ad);
[[nodiscard]] bool xaead_decrypt(uint8_t* out, Bytes cipher, const uint8_t nonce[kXNonceLen],
                                 const uint8_t key[kKeyLen], Bytes ad);

void random_bytes(uint8_t* out, size_t n);
uint32_t random_u32();

}  // namespace xsktun::proto::crypto
