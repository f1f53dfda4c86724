// The data-path AEAD (ChaCha20-Poly1305, RFC 8439; nonce = 32 zero bits || le64(counter),
// whitepaper 5.4.6) behind one small interface with two backends: libsodium and OpenSSL's
// libcrypto. Both produce identical bytes (tested); the faster one is the default (measured by
// build/xsktun-microbench: OpenSSL 3's assembly is ~3x libsodium 1.0.18's on this CPU).
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
// Whether OpenSSL's default provider offers ChaCha20-Poly1305 here; if not, the OpenSSL backend
// falls back to libsodium (same bytes).
bool openssl_available();

// Below this many bytes seal/open use libsodium even when the backend is OpenSSL (its fixed
// per-call cost dominates there; see data_aead.cpp).
inline constexpr size_t kSmallPacket = 128;
// Backend that seal/open use for a message of `len` bytes.
Backend for_len(size_t len);

// out may equal in (in place). seal writes len + 16 bytes; open reads len_with_tag bytes and
// writes len_with_tag - 16, returning false (output unspecified, never to be used) on a bad tag.
void seal(uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]);
[[nodiscard]] bool open(uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
                        const uint8_t key[32]);

void seal_with(Backend b, uint8_t* out, const uint8_t* in, size_t len, uint64_t counter, const uint8_t key[32]);
[[nodiscard]] bool open_with(Backend b, uint8_t* out, const uint8_t* in, size_t len_with_tag, uint64_t counter,
                             const uint8_t key[32]);

}  // namespace xsktun::proto::aead
