// The data-path AEAD (ChaCha20-Poly1305, RFC 8439; nonce = 32 zero bits || le64(counter),
// whitepaper 5.4.6) behind one small interface with two backends: libsodium's AEAD, and RFC 8439
// 2.8's construction over OpenSSL libcrypto's ChaCha20 and Poly1305 (why not its AEAD cipher:
// data_aead.cpp). Both produce identical bytes (tested); the faster one is the default (the
// README's "Microbenchmarks" has the numbers).
// Handshakes keep using libsodium through crypto.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xsktun::proto::aead {

enum class Backend { kLibsodium, kOpenssl };
const char* name(Backend b);
// Process-wide choice; XSKTUN_AEAD=libsodium|openssl in the environment overrides the default.
Backend backend();
void set_backend(Backend b);
// Whether OpenSSL's default provider offers ChaCha20 and Poly1305 here and the AEAD built from
// them gave libsodium's bytes; if not, the OpenSSL backend falls back to libsodium (same bytes).
bool openssl_available();
// The backend seal/open actually use: backend(), or libsodium when that is OpenSSL and OpenSSL
// is unavailable here (what `xsktun show` reports as "aead").
Backend effective_backend();
// Messages the OpenSSL backend handed to libsodium (same bytes) because a provider call failed
// or the message is over 64 KiB; `xsktun show` reports it as "aead_fallbacks".
uint64_t openssl_fallbacks();
// Overwrites the calling thread's copy of the last data key in its OpenSSL context, so a thread
// that goes idle keeps no session key (the Runner calls it before every blocking wait).
void forget_thread_key();
// forget_thread_key() when the scope ends: for code that seals now and then on a thread that
// then waits for something else (Device::apply on the UAPI thread: switching persistent
// keepalive on sends one).
class ForgetThreadKeyOnExit {
 public:
  ForgetThreadKeyOnExit() = default;
  ForgetThreadKeyOnExit(const ForgetThreadKeyOnExit&) = delete;
  ForgetThreadKeyOnExit& operator=(const ForgetThreadKeyOnExit&) = delete;
  ~ForgetThreadKeyOnExit() { forget_thread_key(); }
};

// out may equal in (in place). seal writes len + 16 bytes; open reads len_with_tag bytes and
// writes len_with_tag - 16, returning false (output unspecified, never to be used) on a bad tag.
void seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]);
[[nodiscard]] bool open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
                        const uint8_t key[32]);

void seal_with(Backend b, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter,
               const uint8_t key[32]);
[[nodiscard]] bool open_with(Backend b, uint8_t* out, const uint8_t* in, size_t len_with_tag,
                             uint64_t counter, const uint8_t key[32]);

}  // namespace xsktun::proto::aead
