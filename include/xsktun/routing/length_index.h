// A longest-prefix-match index over one address family: one open-addressing hash table keyed by
// (masked address, prefix length), probed from the longest length in use down. A lookup costs
// one probe per distinct length in use, whatever the number of prefixes: with the few lengths a
// VPN configuration has (hosts, a few networks, a default route) it stays flat from a thousand
// to a million prefixes, where a binary trie's walk grows with log2 of the table (and misses
// cache on every level). AllowedIps keeps it beside its trie and uses it while at most
// kMaxLengths lengths are in use (more would mean more probes than the trie's walk).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace xsktun::routing {

using LpmKey = std::array<uint64_t, 2>;  // an address as a 128-bit big-endian number (AllowedIps)

// Clears every bit at position >= cidr.
inline LpmKey mask_lpm_key(const LpmKey& k, unsigned cidr) {
  if (cidr == 0) return {0, 0};
  if (cidr < 64) return {k[0] & (~0ULL << (64 - cidr)), 0};
  if (cidr == 64) return {k[0], 0};
  if (cidr < 128) return {k[0], k[1] & (~0ULL << (128 - cidr))};
  return k;
}

class LengthIndex {
 public:
  static constexpr size_t kMaxLengths = 6;

  // Inserts or overwrites (masked key, cidr) -> peer.
  void set(const LpmKey& masked, uint8_t cidr, uint32_t peer);
  void erase(const LpmKey& masked, uint8_t cidr);
  // Longest match for an address; valid only while usable().
  std::optional<uint32_t> lookup(const LpmKey& addr) const {
    for (uint8_t len : lengths_)
      if (const Slot* s = find(mask_lpm_key(addr, len), len)) return s->peer;
    return std::nullopt;
  }
  bool usable() const { return lengths_.size() <= kMaxLengths; }
  size_t size() const { return size_; }
  void clear();

 private:
  struct Slot {
    LpmKey key{};
    uint32_t peer = 0;
    uint8_t cidr = 0;
    bool used = false;
  };
  // Every key bit must reach the low bits the table uses: IPv4 keys live in the top 32 bits.
  static size_t hash(const LpmKey& k, uint8_t cidr) {
    uint64_t x = k[0] ^ (k[1] * 0x9E3779B97F4A7C15ULL) ^ cidr;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ULL;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ULL;
    return static_cast<size_t>(x ^ (x >> 32));
  }
  const Slot* find(const LpmKey& k, uint8_t cidr) const {
    if (slots_.empty()) return nullptr;
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(k, cidr) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.cidr == cidr && s.key == k) return &s;
    }
  }
  void grow();
  void count_length(uint8_t cidr, int delta);

  std::vector<Slot> slots_;  // power-of-two size, at most 3/4 full
  size_t size_ = 0;
  std::array<uint32_t, 129> per_length_{};  // prefixes per length
  std::vector<uint8_t> lengths_;            // lengths in use, longest first
};

}  // namespace xsktun::routing
