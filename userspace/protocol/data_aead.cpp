#include "xsktun/protocol/data_aead.h"

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/provider.h>
#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
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

// The OpenSSL backend is RFC 8439 2.8's AEAD built from OpenSSL's own ChaCha20 and Poly1305
// (default provider, called through its dispatch table: OSSL_PROVIDER_query_operation), not
// its "ChaCha20-Poly1305" cipher. That cipher enters the ChaCha20 assembly up to three times
// per packet: one 64-byte call for the Poly1305 key, one for the whole 64-byte blocks and one
// more 64-byte call for a partial last block (1424 B = 22 blocks + 16 B). On this CPU a short
// call into the AVX-512 code costs as much as a few hundred bytes of bulk keystream (`openssl
// speed -evp chacha20`: 1408 B 476 ns, 1424 B 631 ns), so here the
// key block, the message and the partial block come from ONE call over a contiguous scratch
// copy ([64 zero bytes | message | up to 63 bytes]); the copies in and out are cheap next to
// that. Measured side by side in one process (provider AEAD vs this, seal): 1424 B 960 -> 747
// ns, 64 B 361 -> 236 ns. Only the construction is ours (key block, counter 1 for the message,
// the MAC over ciphertext || pad16 || le64(0) || le64(len)); the primitives are the library's,
// and the result is checked against libsodium's AEAD before first use (known_answers_ok) and
// in tests at every length up to beyond the MTU. The default provider (built into libcrypto)
// is loaded into a private library context, so the process's default context keeps whatever
// its configuration says; if that load or a lookup fails, libsodium serves every packet.
struct Provider {
  OSSL_FUNC_cipher_newctx_fn* cipher_new = nullptr;
  OSSL_FUNC_cipher_freectx_fn* cipher_free = nullptr;
  OSSL_FUNC_cipher_encrypt_init_fn* cipher_init = nullptr;
  OSSL_FUNC_cipher_update_fn* cipher_update = nullptr;
  OSSL_FUNC_mac_newctx_fn* mac_new = nullptr;
  OSSL_FUNC_mac_freectx_fn* mac_free = nullptr;
  OSSL_FUNC_mac_init_fn* mac_init = nullptr;
  OSSL_FUNC_mac_update_fn* mac_update = nullptr;
  OSSL_FUNC_mac_final_fn* mac_final = nullptr;
  void* provctx = nullptr;
  bool ok = false;  // every pointer above found and the known answers given (decided once)
};

bool named(const char* names, std::string_view want) {  // names: "NAME[:ALIAS...]"
  std::string_view n(names);
  return n.substr(0, n.find(':')) == want;
}

void take_cipher(Provider& p, const OSSL_DISPATCH* d) {
  for (; d->function_id != 0; ++d) {
    switch (d->function_id) {
      case OSSL_FUNC_CIPHER_NEWCTX: p.cipher_new = OSSL_FUNC_cipher_newctx(d); break;
      case OSSL_FUNC_CIPHER_FREECTX: p.cipher_free = OSSL_FUNC_cipher_freectx(d); break;
      case OSSL_FUNC_CIPHER_ENCRYPT_INIT: p.cipher_init = OSSL_FUNC_cipher_encrypt_init(d); break;
      case OSSL_FUNC_CIPHER_UPDATE: p.cipher_update = OSSL_FUNC_cipher_update(d); break;
      default: break;
    }
  }
}

void take_mac(Provider& p, const OSSL_DISPATCH* d) {
  for (; d->function_id != 0; ++d) {
    switch (d->function_id) {
      case OSSL_FUNC_MAC_NEWCTX: p.mac_new = OSSL_FUNC_mac_newctx(d); break;
      case OSSL_FUNC_MAC_FREECTX: p.mac_free = OSSL_FUNC_mac_freectx(d); break;
      case OSSL_FUNC_MAC_INIT: p.mac_init = OSSL_FUNC_mac_init(d); break;
      case OSSL_FUNC_MAC_UPDATE: p.mac_update = OSSL_FUNC_mac_update(d); break;
      case OSSL_FUNC_MAC_FINAL: p.mac_final = OSSL_FUNC_mac_final(d); break;
      default: break;
    }
  }
}

// Finds `name` among the provider's algorithms for `op` and hands its table to `take`.
template <typename Take>
void query(OSSL_PROVIDER* prov, int op, std::string_view name, Provider& p, Take take) {
  int no_cache = 0;
  const OSSL_ALGORITHM* algs = OSSL_PROVIDER_query_operation(prov, op, &no_cache);
  for (const OSSL_ALGORITHM* a = algs; a && a->algorithm_names; ++a) {
    if (named(a->algorithm_names, name)) {
      take(p, a->implementation);
      break;
    }
  }
  if (algs) OSSL_PROVIDER_unquery_operation(prov, op, algs);
}

bool known_answers_ok(const Provider& pr);

const Provider& provider() {
  static const Provider p = [] {
    Provider p;
    // Loaded once and kept for the life of the process: the function pointers live in it.
    OSSL_LIB_CTX* libctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER* prov = libctx ? OSSL_PROVIDER_load(libctx, "default") : nullptr;
    if (prov == nullptr) return p;
    query(prov, OSSL_OP_CIPHER, "ChaCha20", p, take_cipher);
    query(prov, OSSL_OP_MAC, "POLY1305", p, take_mac);
    p.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
    p.ok = p.cipher_new && p.cipher_free && p.cipher_init && p.cipher_update && p.mac_new && p.mac_free &&
           p.mac_init && p.mac_update && p.mac_final && p.provctx && known_answers_ok(p);
    return p;
  }();
  return p;
}

constexpr size_t kBlock = 64;          // one ChaCha20 block
constexpr size_t kMaxMessage = 65536;  // larger messages (none fit a UDP datagram) take libsodium

// Per thread: one ChaCha20 and one Poly1305 context and the scratch the single cipher call
// runs over. The ChaCha20 context holds the last data key until forget_thread_key() (a worker
// calls it before it blocks) or thread exit; both contexts cleanse themselves when freed; the
// scratch is wiped at thread exit and its key block after every packet. The free functions
// are copied: the first Ctx is built while provider() is still being initialised.
struct Ctx;
thread_local Ctx* t_ctx = nullptr;  // this thread's Ctx, if it has one yet
struct Ctx {
  OSSL_FUNC_cipher_freectx_fn* cipher_free;
  OSSL_FUNC_mac_freectx_fn* mac_free;
  void* cipher = nullptr;
  void* mac = nullptr;
  bool keyed = false;  // the ChaCha20 context may hold a data key
  std::unique_ptr<uint8_t[]> scratch{new uint8_t[kBlock + kMaxMessage + kBlock]};
  explicit Ctx(const Provider& p)
      : cipher_free(p.cipher_free),
        mac_free(p.mac_free),
        cipher(p.cipher_new(p.provctx)),
        mac(p.mac_new(p.provctx)) {
    t_ctx = this;
  }
  ~Ctx() {
    t_ctx = nullptr;
    if (cipher) cipher_free(cipher);
    if (mac) mac_free(mac);
    sodium_memzero(scratch.get(), kBlock + kMaxMessage + kBlock);
  }
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;
};
Ctx& ctx(const Provider& p) {
  thread_local Ctx c(p);
  return c;
}

// OpenSSL's AVX-512 ChaCha20/Poly1305 code returns with the upper vector state dirty; every
// legacy-SSE instruction after it (OpenSSL's own C code, ours, glibc's) then pays a state
// penalty, so a vzeroupper follows each call that runs its assembly (docs/design.md, "AEAD";
// numbers in the README). Only on CPUs with AVX, where the instruction exists.
__attribute__((target("avx"))) void vzeroupper_avx() { __builtin_ia32_vzeroupper(); }
const bool g_has_avx = [] {
  __builtin_cpu_init();  // this runs as a static initializer, possibly before the runtime's own
  return __builtin_cpu_supports("avx") != 0;
}();
inline void clean_upper() {
  if (g_has_avx) vzeroupper_avx();
}

// RFC 8439 2.8 step by step. ChaCha20 over s = [0^64 | message | slack] from block counter 0:
// block 0's keystream (s[0..32)) is the one-time Poly1305 key (2.6), the message is XORed
// with blocks 1.. (the IV is le32(block counter) || nonce, OpenSSL's raw ChaCha20 layout).
// The slack rounds the call up to whole blocks so OpenSSL makes exactly one assembly call.
// Copies `in` (len bytes) into s and XORs it there: returns the result (ciphertext when
// sealing, plaintext when opening) at s + 64, or nullptr if the context is missing, the
// message too long or a call failed; `in` is only read.
uint8_t* xor_in_scratch(const Provider& pr, Ctx& x, const uint8_t* in, size_t len, uint64_t counter,
                        const uint8_t key[32]) {
  if (x.cipher == nullptr || x.mac == nullptr || len > kMaxMessage) return nullptr;
  uint8_t iv[16] = {};
  nonce12(iv + 4, counter);
  uint8_t* s = x.scratch.get();
  std::memset(s, 0, kBlock);
  if (len) std::memcpy(s + kBlock, in, len);  // an empty message may come with null pointers
  size_t total = (kBlock + len + kBlock - 1) & ~(kBlock - 1);
  size_t outl = 0;
  x.keyed = true;
  bool ok = pr.cipher_init(x.cipher, key, 32, iv, sizeof iv, nullptr) == 1 &&
            pr.cipher_update(x.cipher, s, &outl, total, s, total) == 1 && outl == total;
  clean_upper();
  if (ok) return s + kBlock;
  sodium_memzero(s, kBlock);  // whatever of the key block got written
  return nullptr;
}

// Tag over the ciphertext `ct` with the one-time key in the scratch's first 32 bytes (2.8:
// no associated data, so only ct || pad16(ct) || le64(0) || le64(len)). Wipes the key block
// after, whether or not the MAC calls succeeded.
bool poly_tag(const Provider& pr, Ctx& x, uint8_t tag[16], const uint8_t* ct, size_t len) {
  uint8_t trailer[32] = {};
  size_t pad = (16 - len % 16) % 16;
  for (size_t i = 0; i < 8; ++i)
    trailer[pad + 8 + i] = static_cast<uint8_t>(static_cast<uint64_t>(len) >> (8 * i));
  size_t outl = 0;
  bool ok = pr.mac_init(x.mac, x.scratch.get(), 32, nullptr) == 1 &&
            (len == 0 || pr.mac_update(x.mac, ct, len) == 1) &&
            pr.mac_update(x.mac, trailer, pad + 16) == 1 && pr.mac_final(x.mac, tag, &outl, 16) == 1 &&
            outl == 16;
  clean_upper();
  sodium_memzero(x.scratch.get(), kBlock);
  return ok;
}

// False if a provider call failed (the known-answer check makes that as good as impossible);
// `out` is only written once everything succeeded, so the caller can seal with libsodium.
bool ossl_seal(const Provider& pr, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter,
               const uint8_t key[32]) {
  Ctx& x = ctx(pr);
  uint8_t tag[16];
  const uint8_t* msg = xor_in_scratch(pr, x, in, len, counter, key);
  if (msg == nullptr || !poly_tag(pr, x, tag, msg, len)) return false;
  if (len) std::memcpy(out, msg, len);
  std::memcpy(out + len, tag, 16);
  return true;
}

// Authenticates before anything is written: on a bad tag `out` is untouched.
bool ossl_open(const Provider& pr, bool* opened, uint8_t* out, const uint8_t* in, size_t len_with_tag,
               uint64_t counter, const uint8_t key[32]) {
  Ctx& x = ctx(pr);
  size_t len = len_with_tag - 16;
  uint8_t tag[16];
  const uint8_t* msg = xor_in_scratch(pr, x, in, len, counter, key);
  if (msg == nullptr || !poly_tag(pr, x, tag, in, len)) return false;  // the MAC is over the ciphertext
  *opened = CRYPTO_memcmp(tag, in + len, 16) == 0;
  if (*opened && len) std::memcpy(out, msg, len);
  return true;
}

// Before first use: the construction must give libsodium's bytes, open what it sealed and
// refuse a changed tag, at lengths around every block boundary that changes the slack or the
// Poly1305 padding, and at the MTU.
bool known_answers_ok(const Provider& pr) {
  uint8_t key[32], in[1500], ours[1516], ref[1516], back[1500];
  for (size_t i = 0; i < sizeof key; ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < sizeof in; ++i) in[i] = static_cast<uint8_t>(i * 13);
  constexpr uint64_t kCounter = 0x0807060504030201;
  bool ok = true;
  for (size_t len : {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 1420, 1424, 1500}) {
    bool opened = false;
    crypto::aead_encrypt(ref, {in, len}, kCounter, key, {});
    ok = ok && ossl_seal(pr, ours, in, len, kCounter, key) && std::memcmp(ours, ref, len + 16) == 0;
    ok = ok && ossl_open(pr, &opened, back, ours, len + 16, kCounter, key) && opened &&
         std::memcmp(back, in, len) == 0;
    ours[len] ^= 1;
    ok = ok && ossl_open(pr, &opened, back, ours, len + 16, kCounter, key) && !opened;
  }
  sodium_memzero(key, sizeof key);
  return ok;
}

// The libsodium backend is the handshake's AEAD (crypto.h) with empty associated data.
void sodium_seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  crypto::aead_encrypt(out, {in, len}, counter, key, {});
}

bool sodium_open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
                 const uint8_t key[32]) {
  return crypto::aead_decrypt(out, {in, len_with_tag}, counter, key, {});
}

std::atomic<uint64_t> g_fallbacks{0};

}  // namespace

const char* name(Backend b) { return b == Backend::kOpenssl ? "openssl" : "libsodium"; }
Backend backend() { return g_backend.load(std::memory_order_relaxed); }
void set_backend(Backend b) { g_backend.store(b, std::memory_order_relaxed); }

bool openssl_available() { return provider().ok; }

uint64_t openssl_fallbacks() { return g_fallbacks.load(std::memory_order_relaxed); }

void forget_thread_key() {
  Ctx* x = t_ctx;
  if (x == nullptr || !x->keyed || x->cipher == nullptr) return;
  static const uint8_t kZeroKey[32] = {};
  provider().cipher_init(x->cipher, kZeroKey, sizeof kZeroKey, nullptr, 0, nullptr);  // key words only
  x->keyed = false;
}

Backend effective_backend() {
  Backend b = backend();
  return b == Backend::kOpenssl && !openssl_available() ? Backend::kLibsodium : b;
}

void seal_with(Backend b, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter,
               const uint8_t key[32]) {
  if (b == Backend::kOpenssl) {  // the provider looked up once per packet
    const Provider& pr = provider();
    if (pr.ok) {
      if (ossl_seal(pr, out, in, len, counter, key)) return;
      g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    }
  }
  sodium_seal(out, in, len, counter, key);
}

bool open_with(Backend b, uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
               const uint8_t key[32]) {
  if (len_with_tag < 16) return false;
  if (b == Backend::kOpenssl) {
    const Provider& pr = provider();
    bool opened = false;
    if (pr.ok) {
      if (ossl_open(pr, &opened, out, in, len_with_tag, counter, key)) return opened;
      g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return sodium_open(out, in, len_with_tag, counter, key);
}

void seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]) {
  seal_with(backend(), out, in, len, counter, key);
}

bool open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter, const uint8_t key[32]) {
  return open_with(backend(), out, in, len_with_tag, counter, key);
}

}  // namespace xsktun::proto::aead
