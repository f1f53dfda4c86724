#include "xsktun/protocol/data_aead.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace xsktun::proto::aead {

namespace {

void nonce12(uint8_t n[12], uint64_t counter) {
  std::memset(n, 0, 4);
  for (int i = 0; i < 8; ++i) n[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

Backend initial_backend() {
  const char* e = getenv("XSKTUN_AEAD");
  if (e && std::strcmp(e, "libsodium") == 0) return Backend::kLibsodium;
  return Backend::kOpenssl;
}
std::atomic<Backend> g_backend{initial_backend()};

// One cipher context per thread, set up once; each packet only sets key and nonce.
// The key schedule is only redone when the key changes (a thread mostly serves one keypair per
// direction): each packet then costs a nonce update instead of a key setup.
struct Ctx {
  EVP_CIPHER_CTX* enc = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* dec = EVP_CIPHER_CTX_new();
  uint8_t enc_key[32] = {}, dec_key[32] = {};
  bool enc_keyed = false, dec_keyed = false;
  Ctx() {
    EVP_EncryptInit_ex(enc, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr);
    EVP_DecryptInit_ex(dec, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr);
  }
  ~Ctx() {
    EVP_CIPHER_CTX_free(enc);  // cleanses the key schedule
    EVP_CIPHER_CTX_free(dec);
    sodium_memzero(enc_key, sizeof enc_key);
    sodium_memzero(dec_key, sizeof dec_key);
  }
};
Ctx& ctx() {
  thread_local Ctx c;
  return c;
}

// Constant-time 32-byte equality in four word operations (sodium_memcmp's volatile byte loop
// cost ~1% of a TCP stream's CPU when run per packet).
bool same_key(const uint8_t a[32], const uint8_t b[32]) {
  uint64_t diff = 0;
  for (int i = 0; i < 4; ++i) {
    uint64_t x, y;
    std::memcpy(&x, a + 8 * i, 8);
    std::memcpy(&y, b + 8 * i, 8);
    diff |= x ^ y;
  }
  return diff == 0;
}

// Key for this packet, or nullptr if `cached` already holds it (then only the nonce is set).
const uint8_t* rekey(uint8_t cached[32], bool* keyed, const uint8_t key[32]) {
  if (*keyed && same_key(cached, key)) return nullptr;
  std::memcpy(cached, key, 32);
  *keyed = true;
  return key;
}

// OpenSSL's AVX-512 ChaCha20/Poly1305 code returns with the upper vector state dirty; every
// legacy-SSE instruction after it (OpenSSL's own C code, ours, glibc's) then pays a state
// penalty. A vzeroupper after each call that runs its assembly made a 64 B seal ~2x and a
// 1420 B seal/open 20-30% faster (build/xsktun-microbench, interleaved A/B: seal 1420 B
// 2022-2117 -> 1322-1791 ns, open 1664-1935 -> 1304-1704 ns). Only on CPUs with AVX, where the
// instruction exists.
__attribute__((target("avx"))) void vzeroupper_avx() { __builtin_ia32_vzeroupper(); }
const bool g_has_avx = [] {
  __builtin_cpu_init();  // this runs as a static initializer, possibly before the runtime's own
  return __builtin_cpu_supports("avx") != 0;
}();
inline void clean_upper() {
  if (g_has_avx) vzeroupper_avx();
}

void ossl_seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  uint8_t n[12];
  nonce12(n, counter);
  Ctx& x = ctx();
  EVP_CIPHER_CTX* c = x.enc;
  int outl = 0;
  // OpenSSL 3 calls straight into the provider (CipherInit_ex2, get/set_params) instead of the
  // legacy EncryptInit_ex/ctrl wrappers, which translate every call into parameter lookups.
  EVP_CipherInit_ex2(c, nullptr, rekey(x.enc_key, &x.enc_keyed, key), n, 1, nullptr);
  if (len) EVP_CipherUpdate(c, out, &outl, in, static_cast<int>(len));
  clean_upper();
  EVP_CipherFinal_ex(c, out + outl, &outl);
  clean_upper();
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + len, 16),
                     OSSL_PARAM_construct_end()};
  EVP_CIPHER_CTX_get_params(c, p);
}

bool ossl_open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter, const uint8_t key[32]) {
  if (len_with_tag < 16) return false;
  size_t len = len_with_tag - 16;
  uint8_t n[12], tag[16];
  std::memcpy(tag, in + len, 16);  // in place: read the tag before the output can overlap it
  nonce12(n, counter);
  Ctx& x = ctx();
  EVP_CIPHER_CTX* c = x.dec;
  int outl = 0;
  EVP_CipherInit_ex2(c, nullptr, rekey(x.dec_key, &x.dec_keyed, key), n, 0, nullptr);
  if (len) EVP_CipherUpdate(c, out, &outl, in, static_cast<int>(len));
  clean_upper();
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16),
                     OSSL_PARAM_construct_end()};
  EVP_CIPHER_CTX_set_params(c, p);
  bool ok = EVP_CipherFinal_ex(c, out + outl, &outl) > 0;
  clean_upper();
  return ok;
}

void sodium_seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  uint8_t n[12];
  nonce12(n, counter);
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, in, len, nullptr, 0, nullptr, n, key);
}

bool sodium_open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter, const uint8_t key[32]) {
  if (len_with_tag < 16) return false;
  uint8_t n[12];
  nonce12(n, counter);
  unsigned long long plen = 0;
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, nullptr, in, len_with_tag, nullptr, 0, n, key) == 0;
}

}  // namespace

const char* name(Backend b) { return b == Backend::kOpenssl ? "openssl" : "libsodium"; }
Backend backend() { return g_backend.load(std::memory_order_relaxed); }
void set_backend(Backend b) { g_backend.store(b, std::memory_order_relaxed); }

void seal_with(Backend b, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  if (b == Backend::kOpenssl) ossl_seal(out, in, len, counter, key);
  else sodium_seal(out, in, len, counter, key);
}

bool open_with(Backend b, uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
               const uint8_t key[32]) {
  return b == Backend::kOpenssl ? ossl_open(out, in, len_with_tag, counter, key)
                                : sodium_open(out, in, len_with_tag, counter, key);
}

// OpenSSL's fixed per-call cost (provider init, Poly1305 setup, OSSL_PARAM lookups) outweighs
// its faster bulk cipher below about 512 bytes (build/xsktun-microbench medians, libsodium /
// OpenSSL: seal 64 B 430-498 / 493-526 ns, 512 B 763-797 / 730-767, 1420 B 2006-2525 /
// 1168-1360; open 64 B 405-462 / 567-725, 512 B 696-795 / 728-918), so those take libsodium.
// Same bytes either way. (An earlier limit of 128 B came from a microbench that ran libsodium
// before sodium_init, i.e. its portable reference code.)
Backend for_len(size_t len) {
  Backend b = backend();
  return (b == Backend::kOpenssl && len < kSmallPacket) ? Backend::kLibsodium : b;
}

void seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  seal_with(for_len(len), out, in, len, counter, key);
}

bool open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter, const uint8_t key[32]) {
  return open_with(for_len(len_with_tag), out, in, len_with_tag, counter, key);
}

}  // namespace xsktun::proto::aead
