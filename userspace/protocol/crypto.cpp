#include "xsktun/protocol/crypto.h"

#include <blake2.h>
#include <sodium.h>

#include <cstring>

namespace xsktun::proto::crypto {

namespace {
constexpr size_t kBlake2sBlock = 64;
}  // namespace

void nonce12(uint8_t nonce[12], uint64_t counter) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

bool init() { return sodium_init() >= 0; }

void hash(uint8_t out[kHashLen], Bytes a, Bytes b, Bytes c) {
  blake2s_state st;
  blake2s_init(&st, kHashLen);
  blake2s_update(&st, a.data(), a.size());
  if (!b.empty()) blake2s_update(&st, b.data(), b.size());
  if (!c.empty()) blake2s_update(&st, c.data(), c.size());
  blake2s_final(&st, out, kHashLen);
  sodium_memzero(&st, sizeof st);
}

void mac(uint8_t out[kMacLen], Bytes key, Bytes input) {
  blake2s(out, input.data(), key.data(), kMacLen, input.size(), key.size());
}

void hmac(uint8_t out[kHashLen], const uint8_t key[kHashLen], Bytes input) {
  uint8_t pad[kBlake2sBlock];
  uint8_t inner[kHashLen];
  // Inner: H((K ^ ipad) || input). Keys are 32 bytes (< block size), so zero-extend.
  std::memset(pad, 0x36, sizeof pad);
  for (size_t i = 0; i < kHashLen; ++i) pad[i] ^= key[i];
  hash(inner, Bytes(pad, sizeof pad), input);
  // Outer: H((K ^ opad) || inner).
  std::memset(pad, 0x5c, sizeof pad);
  for (size_t i = 0; i < kHashLen; ++i) pad[i] ^= key[i];
  hash(out, Bytes(pad, sizeof pad), Bytes(inner, sizeof inner));
  sodium_memzero(pad, sizeof pad);
  sodium_memzero(inner, sizeof inner);
}

void kdf(uint8_t* out1, uint8_t* out2, uint8_t* out3, const uint8_t chaining_key[kHashLen], Bytes input) {
  // HKDF as in whitepaper 5.4: tau0 = HMAC(C, input); tau_i = HMAC(tau0, tau_{i-1} || i).
  uint8_t secret[kHashLen];
  uint8_t t[kHashLen + 1];
  hmac(secret, chaining_key, input);
  t[0] = 1;
  hmac(t, secret, Bytes(t, 1));
  std::memcpy(out1, t, kHashLen);
  if (out2) {
    t[kHashLen] = 2;
    hmac(t, secret, Bytes(t, kHashLen + 1));
    std::memcpy(out2, t, kHashLen);
  }
  if (out2 && out3) {
    t[kHashLen] = 3;
    hmac(t, secret, Bytes(t, kHashLen + 1));
    std::memcpy(out3, t, kHashLen);
  }
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(t, sizeof t);
}

void generate_private(SecretKey& priv) {
  randombytes_buf(priv.data(), kKeyLen);
  // Curve25519 clamping (RFC 7748 section 5), as wg genkey does.
  priv.data()[0] &= 248;
  priv.data()[31] = static_cast<uint8_t>((priv.data()[31] & 127) | 64);
}

void public_from_private(uint8_t pub[kKeyLen], const SecretKey& priv) {
  crypto_scalarmult_curve25519_base(pub, priv.data());
}

bool dh(SecretKey& out, const SecretKey& priv, const uint8_t pub[kKeyLen]) {
  // libsodium returns -1 when the shared point is all zero (a low-order input point).
  if (crypto_scalarmult_curve25519(out.data(), priv.data(), pub) != 0) {
    out.clear();
    return false;
  }
  return !out.is_zero();
}

void aead_encrypt(uint8_t* out, Bytes plain, uint64_t counter, const uint8_t key[kKeyLen], Bytes ad) {
  uint8_t nonce[12];
  nonce12(nonce, counter);
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, plain.data(), plain.size(), ad.data(), ad.size(),
                                            nullptr, nonce, key);
}

bool aead_decrypt(uint8_t* out, Bytes cipher, uint64_t counter, const uint8_t key[kKeyLen], Bytes ad) {
  if (cipher.size() < kTagLen) return false;
  uint8_t nonce[12];
  nonce12(nonce, counter);
  unsigned long long plen = 0;
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, nullptr, cipher.data(), cipher.size(),
                                                   ad.data(), ad.size(), nonce, key) == 0;
}

void xaead_encrypt(uint8_t* out, Bytes plain, const uint8_t nonce[kXNonceLen], const uint8_t key[kKeyLen],
                   Bytes ad) {
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, plain.data(), plain.size(), ad.data(), ad.size(),
                                             nullptr, nonce, key);
}

bool xaead_decrypt(uint8_t* out, Bytes cipher, const uint8_t nonce[kXNonceLen], const uint8_t key[kKeyLen],
                   Bytes ad) {
  if (cipher.size() < kTagLen) return false;
  unsigned long long plen = 0;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, nullptr, cipher.data(), cipher.size(),
                                                    ad.data(), ad.size(), nonce, key) == 0;
}

void random_bytes(uint8_t* out, size_t n) { randombytes_buf(out, n); }
uint32_t random_u32() { return randombytes_random(); }

}  // namespace xsktun::proto::crypto
