// Fixed-size key material that wipes itself (sodium_memzero) when destroyed or cleared,
// and compares in constant time.
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace xsktun {

template <size_t N>
class Secret {
 public:
  Secret() { std::memset(bytes_.data(), 0, N); }
  explicit Secret(const uint8_t* src) { std::memcpy(bytes_.data(), src, N); }
  Secret(const Secret& o) : bytes_(o.bytes_) {}
  Secret& operator=(const Secret& o) {
    if (this != &o) bytes_ = o.bytes_;
    return *this;
  }
  ~Secret() { clear(); }

  void clear() { sodium_memzero(bytes_.data(), N); }
  void assign(const uint8_t* src) { std::memcpy(bytes_.data(), src, N); }
  bool is_zero() const { return sodium_is_zero(bytes_.data(), N) == 1; }
  // Constant time: never leaks where two keys differ.
  bool equals(const Secret& o) const { return sodium_memcmp(bytes_.data(), o.bytes_.data(), N) == 0; }
  bool equals(const uint8_t* o) const { return sodium_memcmp(bytes_.data(), o, N) == 0; }

  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  static constexpr size_t size() { return N; }

 private:
  std::array<uint8_t, N> bytes_;
};

using Key = std::array<uint8_t, 32>;  // public values (public keys, hashes)
using SecretKey = Secret<32>;

inline bool ct_equal(const uint8_t* a, const uint8_t* b, size_t n) { return sodium_memcmp(a, b, n) == 0; }

}  // namespace xsktun
