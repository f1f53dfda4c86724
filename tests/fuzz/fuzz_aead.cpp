// Fuzz: the OpenSSL backend of the data AEAD (RFC 8439 composed over OpenSSL's ChaCha20 and
// Poly1305, data_aead.cpp) against libsodium's AEAD on arbitrary keys, counters and messages:
// identical sealed bytes, its own output opens to the message, and a message changed in any
// one bit (the position chosen by the input) is refused by both backends alike.
#include <cstring>
#include <vector>

#include "xsktun/protocol/crypto.h"
#include "xsktun/protocol/data_aead.h"

using namespace xsktun;
using namespace xsktun::proto::aead;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = proto::crypto::init() && openssl_available();
  if (!init) __builtin_trap();  // would compare libsodium with itself
  if (size < 32 + 8 + 2 + 2) return 0;
  const uint8_t* key = data;
  uint64_t counter;
  std::memcpy(&counter, data + 32, 8);
  uint16_t flip, len16;
  std::memcpy(&flip, data + 40, 2);
  std::memcpy(&len16, data + 42, 2);
  // The length comes from the input, not its size, so every length up to past a jumbo MTU is
  // reachable at once (libFuzzer grows inputs slowly); the rest of the input, cycled, is the
  // message.
  size_t len = len16 % 9300;
  std::vector<uint8_t> message(len);
  for (size_t i = 0; i < len; ++i)
    message[i] = size > 44 ? data[44 + i % (size - 44)] : static_cast<uint8_t>(i);
  const uint8_t* msg = message.data();
  std::vector<uint8_t> a(len + 16), b(len + 16), out(len + 16);
  seal_with(Backend::kLibsodium, a.data(), msg, len, counter, key);
  seal_with(Backend::kOpenssl, b.data(), msg, len, counter, key);
  if (a != b) __builtin_trap();
  if (!open_with(Backend::kOpenssl, out.data(), b.data(), b.size(), counter, key)) __builtin_trap();
  if (len && std::memcmp(out.data(), msg, len) != 0) __builtin_trap();
  size_t bit = flip % (b.size() * 8);
  b[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  bool ours = open_with(Backend::kOpenssl, out.data(), b.data(), b.size(), counter, key);
  bool theirs = open_with(Backend::kLibsodium, out.data(), b.data(), b.size(), counter, key);
  if (ours || theirs) __builtin_trap();
  return 0;
}
