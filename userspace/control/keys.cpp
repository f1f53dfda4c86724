#include "xsktun/control/keys.h"

#include <sodium.h>

namespace xsktun::control {
namespace {

// Decodes into `out` (32 bytes); on failure wipes `out` so a half-decoded secret never survives.
bool decode_base64(std::string_view s, uint8_t* out) {
  if (s.size() != kKeyBase64Len || s[kKeyBase64Len - 1] != '=' || s[kKeyBase64Len - 2] == '=') return false;
  size_t bin_len = 0;
  const char* end = nullptr;
  int rc =
      sodium_base642bin(out, 32, s.data(), s.size(), nullptr, &bin_len, &end, sodium_base64_VARIANT_ORIGINAL);
  if (rc != 0 || bin_len != 32 || end != s.data() + s.size()) {
    sodium_memzero(out, 32);
    return false;
  }
  return true;
}

bool decode_hex(std::string_view s, uint8_t* out) {
  if (s.size() != kKeyHexLen) return false;
  size_t bin_len = 0;
  const char* end = nullptr;
  int rc = sodium_hex2bin(out, 32, s.data(), s.size(), nullptr, &bin_len, &end);
  if (rc != 0 || bin_len != 32 || end != s.data() + s.size()) {
    sodium_memzero(out, 32);
    return false;
  }
  return true;
}

}  // namespace

std::optional<Key> key_from_base64(std::string_view s) {
  Key k{};
  if (!decode_base64(s, k.data())) return std::nullopt;
  return k;
}

std::optional<Key> key_from_hex(std::string_view s) {
  Key k{};
  if (!decode_hex(s, k.data())) return std::nullopt;
  return k;
}

std::optional<SecretKey> secret_from_base64(std::string_view s) {
  std::optional<SecretKey> k(std::in_place);
  if (!decode_base64(s, k->data())) return std::nullopt;
  return k;
}

std::optional<SecretKey> secret_from_hex(std::string_view s) {
  std::optional<SecretKey> k(std::in_place);
  if (!decode_hex(s, k->data())) return std::nullopt;
  return k;
}

std::string key_to_base64(const uint8_t* key32) {
  char buf[kKeyBase64Len + 1];
  sodium_bin2base64(buf, sizeof buf, key32, 32, sodium_base64_VARIANT_ORIGINAL);
  std::string out(buf, kKeyBase64Len);
  sodium_memzero(buf, sizeof buf);
  return out;
}

std::string key_to_hex(const uint8_t* key32) {
  char buf[kKeyHexLen + 1];
  sodium_bin2hex(buf, sizeof buf, key32, 32);
  std::string out(buf, kKeyHexLen);
  sodium_memzero(buf, sizeof buf);
  return out;
}

}  // namespace xsktun::control
