// Text encodings of 32-byte WireGuard keys: base64 (config files, `wg` output) and lowercase hex
// (the UAPI protocol). Both decoders are strict: exactly 44 base64 chars with canonical padding
// (libsodium's ORIGINAL variant rejects non-zero trailing bits, as wireguard-tools' decoder does)
// or exactly 64 hex digits, nothing more, nothing less.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "xsktun/common/secret.h"

namespace xsktun::control {

constexpr size_t kKeyBase64Len = 44;  // 4 * ceil(32 / 3), including one '=' of padding
constexpr size_t kKeyHexLen = 64;

std::optional<Key> key_from_base64(std::string_view s);
std::optional<Key> key_from_hex(std::string_view s);
// Secret variants decode straight into wiping storage, so no plain copy of the key lingers.
std::optional<SecretKey> secret_from_base64(std::string_view s);
std::optional<SecretKey> secret_from_hex(std::string_view s);

std::string key_to_base64(const uint8_t* key32);
std::string key_to_hex(const uint8_t* key32);
inline std::string key_to_base64(const Key& k) { return key_to_base64(k.data()); }
inline std::string key_to_hex(const Key& k) { return key_to_hex(k.data()); }
inline std::string key_to_base64(const SecretKey& k) { return key_to_base64(k.data()); }
inline std::string key_to_hex(const SecretKey& k) { return key_to_hex(k.data()); }

}  // namespace xsktun::control
