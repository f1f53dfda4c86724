#include "xsktun/protocol/data_aead.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "xsktun/protocol/crypto.h"

namespace xsktun::proto::aead {

namespace {

using crypto::nonce12;

Backend initial_backend() {
  const char* e = getenv("XSKTUN_AEAD");
  if (e && std::strcmp(e, "libsodium") == 0) return Backend::kLibsodium;
  return Backend::kOpenssl;
}
std::atomic<Backend> g_backend{initial_backend()};

// OpenSSL's ChaCha20-Poly1305 from its default provider, called through the provider's own
// dispatch table (public provider API: OSSL_PROVIDER_query_operation) instead of the EVP layer.
// EVP re-asks the provider for the IV length on every init (5 parameter-name lookups) and
// checks state per call: 60-150 ns of a 1420 B seal (both ways timed side by side in one
// process; same provider code underneath, same bytes). Without the default provider (a FIPS-only configuration)
// the OpenSSL backend is unavailable and libsodium serves every size.
struct Provider {
  OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
  OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
  OSSL_FUNC_cipher_encrypt_init_fn* einit = nullptr;
  OSSL_FUNC_cipher_decrypt_init_fn* dinit = nullptr;
  OSSL_FUNC_cipher_update_fn* update = nullptr;
  OSSL_FUNC_cipher_final_fn* final = nullptr;
  OSSL_FUNC_cipher_get_ctx_params_fn* get_params = nullptr;
  OSSL_FUNC_cipher_set_ctx_params_fn* set_params = nullptr;
  void* provctx = nullptr;
  bool ok = false;  // every pointer above found (decided once, not per packet)
};

bool is_chacha20_poly1305(const char* names) {  // "NAME[:ALIAS...]"
  constexpr std::string_view kName = "ChaCha20-Poly1305";
  std::string_view n(names);
  return n.substr(0, n.find(':')) == kName;
}

void take(Provider& p, const OSSL_DISPATCH* d) {
  for (; d->function_id != 0; ++d) {
    switch (d->function_id) {
      case OSSL_FUNC_CIPHER_NEWCTX: p.newctx = OSSL_FUNC_cipher_newctx(d); break;
      case OSSL_FUNC_CIPHER_FREECTX: p.freectx = OSSL_FUNC_cipher_freectx(d); break;
      case OSSL_FUNC_CIPHER_ENCRYPT_INIT: p.einit = OSSL_FUNC_cipher_encrypt_init(d); break;
      case OSSL_FUNC_CIPHER_DECRYPT_INIT: p.dinit = OSSL_FUNC_cipher_decrypt_init(d); break;
      case OSSL_FUNC_CIPHER_UPDATE: p.update = OSSL_FUNC_cipher_update(d); break;
      case OSSL_FUNC_CIPHER_FINAL: p.final = OSSL_FUNC_cipher_final(d); break;
      case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: p.get_params = OSSL_FUNC_cipher_get_ctx_params(d); break;
      case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: p.set_params = OSSL_FUNC_cipher_set_ctx_params(d); break;
      default: break;
    }
  }
}

bool known_answers_ok(const Provider& pr);

const Provider& provider() {
  static const Provider p = [] {
    Provider p;
    // Loaded once and kept for the life of the process: the function pointers live in it.
    OSSL_PROVIDER* prov = OSSL_PROVIDER_load(nullptr, "default");
    if (prov == nullptr) return p;
    int no_cache = 0;
    const OSSL_ALGORITHM* algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
    for (const OSSL_ALGORITHM* a = algs; a && a->algorithm_names; ++a) {
      if (is_chacha20_poly1305(a->algorithm_names)) {
        take(p, a->implementation);
        break;
      }
    }
    if (algs) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
    p.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
    p.ok = p.newctx && p.freectx && p.einit && p.dinit && p.update && p.final && p.get_params && p.set_params &&
           p.provctx && known_answers_ok(p);
    return p;
  }();
  return p;
}

// One cipher context per thread and direction, set up once; each packet only sets the nonce.
// The key is only set again when it changes (a thread mostly serves one keypair per direction).
struct Ctx {
  void* enc = nullptr;
  void* dec = nullptr;
  uint8_t enc_key[32] = {}, dec_key[32] = {};
  bool enc_keyed = false, dec_keyed = false;
  Ctx() {
    const Provider& p = provider();
    enc = p.newctx(p.provctx);
    dec = p.newctx(p.provctx);
  }
  ~Ctx() {
    const Provider& p = provider();
    p.freectx(enc);  // cleanses the key
    p.freectx(dec);
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

// The tag travels through the provider's parameters (the only way in and out of it).
OSSL_PARAM tag_param(uint8_t* tag) {
  return OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16);
}

// One AEAD operation on provider context `c`; `k` null keeps the key the context holds.
// False if a provider call failed (after init failed, nothing was written).
bool provider_seal(const Provider& pr, void* c, const uint8_t* k, uint8_t* out, const uint8_t* in, size_t len,
                   const uint8_t n[12]) {
  if (pr.einit(c, k, k ? 32 : 0, n, 12, nullptr) != 1) return false;
  size_t outl = 0;
  bool ok = len == 0 || (pr.update(c, out, &outl, len, in, len) == 1 && outl == len);
  clean_upper();
  ok = ok && pr.final(c, out + len, &outl, 0) == 1;
  clean_upper();
  OSSL_PARAM p[2] = {tag_param(out + len), OSSL_PARAM_construct_end()};
  return ok && pr.get_params(c, p) == 1;
}

bool provider_open(const Provider& pr, void* c, const uint8_t* k, uint8_t* out, const uint8_t* in,
                   size_t len_with_tag, const uint8_t n[12]) {
  size_t len = len_with_tag - 16;
  uint8_t tag[16];
  std::memcpy(tag, in + len, 16);  // in place: read the tag before the output can overlap it
  if (pr.dinit(c, k, k ? 32 : 0, n, 12, nullptr) != 1) return false;
  size_t outl = 0;
  bool ok = len == 0 || pr.update(c, out, &outl, len, in, len) == 1;
  clean_upper();
  OSSL_PARAM p[2] = {tag_param(tag), OSSL_PARAM_construct_end()};
  ok = pr.set_params(c, p) == 1 && ok;
  ok = pr.final(c, out + len, &outl, 0) == 1 && ok;  // compares the tag in constant time
  clean_upper();
  return ok;
}

// Run once before the provider is used: it must give libsodium's bytes, open what it sealed
// and refuse a changed tag, at sizes below, at and around one block and at the MTU.
bool known_answers_ok(const Provider& pr) {
  void* c = pr.newctx(pr.provctx);
  if (c == nullptr) return false;
  uint8_t key[32], n[12], in[1436], ours[1436], ref[1436], back[1436];
  for (size_t i = 0; i < sizeof key; ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < sizeof in; ++i) in[i] = static_cast<uint8_t>(i * 13);
  nonce12(n, 0x0807060504030201);
  bool ok = true;
  for (size_t len : {0, 1, 64, 65, 1420}) {
    crypto::aead_encrypt(ref, {in, len}, 0x0807060504030201, key, {});
    ok = ok && provider_seal(pr, c, key, ours, in, len, n) && std::memcmp(ours, ref, len + 16) == 0;
    ok = ok && provider_open(pr, c, key, back, ours, len + 16, n) && std::memcmp(back, in, len) == 0;
    ours[len] ^= 1;
    ok = ok && !provider_open(pr, c, key, back, ours, len + 16, n);
  }
  pr.freectx(c);
  sodium_memzero(key, sizeof key);
  return ok;
}

// False if a provider call failed, which the known-answer check makes as good as impossible.
// If it happened anyway: before the cipher ran (init) or out of place, `in` is intact and the
// caller seals with libsodium; in place the plaintext is gone, so the tag is zeroed: the peer
// drops the packet as unauthenticated and no stale buffer bytes go out as a tag.
bool ossl_seal(const Provider& pr, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter,
               const uint8_t key[32]) {
  uint8_t n[12];
  nonce12(n, counter);
  Ctx& x = ctx();
  const uint8_t* k = rekey(x.enc_key, &x.enc_keyed, key);
  if (provider_seal(pr, x.enc, k, out, in, len, n)) return true;
  x.enc_keyed = false;  // the context may not hold the key now
  if (out != in) return false;
  std::memset(out + len, 0, 16);
  return true;  // nothing left to seal again
}

bool ossl_open(const Provider& pr, uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
               const uint8_t key[32]) {
  if (len_with_tag < 16) return false;
  uint8_t n[12];
  nonce12(n, counter);
  Ctx& x = ctx();
  const uint8_t* k = rekey(x.dec_key, &x.dec_keyed, key);
  return provider_open(pr, x.dec, k, out, in, len_with_tag, n);
}

// The libsodium backend is the handshake's AEAD (crypto.h) with empty associated data.
void sodium_seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  crypto::aead_encrypt(out, {in, len}, counter, key, {});
}

bool sodium_open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter, const uint8_t key[32]) {
  return crypto::aead_decrypt(out, {in, len_with_tag}, counter, key, {});
}

}  // namespace

const char* name(Backend b) { return b == Backend::kOpenssl ? "openssl" : "libsodium"; }
Backend backend() { return g_backend.load(std::memory_order_relaxed); }
void set_backend(Backend b) { g_backend.store(b, std::memory_order_relaxed); }

bool openssl_available() { return provider().ok; }

void seal_with(Backend b, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  if (b == Backend::kOpenssl) {  // the provider looked up once per packet
    const Provider& pr = provider();
    if (pr.ok && ossl_seal(pr, out, in, len, counter, key)) return;
  }
  sodium_seal(out, in, len, counter, key);
}

bool open_with(Backend b, uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
               const uint8_t key[32]) {
  if (b == Backend::kOpenssl) {
    const Provider& pr = provider();
    if (pr.ok) return ossl_open(pr, out, in, len_with_tag, counter, key);
  }
  return sodium_open(out, in, len_with_tag, counter, key);
}

// OpenSSL's fixed per-call cost (provider init, Poly1305 setup, the tag's OSSL_PARAM lookup)
// outweighs its faster bulk cipher below about 128 bytes (build/xsktun-microbench medians of
// three runs, libsodium / OpenSSL: seal 64 B 454-568 / 507-605 ns, 128 B 640-763 / 574-663,
// 512 B 916-1137 / 663-935; open 64 B 453-576 / 515-614, 128 B 666-762 / 608-682), so those
// take libsodium. Same bytes either way. (A microbench that ran libsodium before sodium_init,
// i.e. its reference code, and OpenSSL with the vector-state penalty, put the line elsewhere
// for a while.)
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
