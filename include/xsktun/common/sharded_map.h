// A hash map split into shards, each under its own reader-writer lock on its own cache line.
// Workers look up a receiver index or a peer id once per run of packets. Under one
// std::shared_mutex every such lookup wrote the same line (a reader lock is an atomic add on the
// lock word), so N workers serving N different peers still bounced that line between them.
// With shards, lookups of different keys take different locks; workers share a line only when
// they serve the same peer, and then they share the peer's own lock anyway.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

namespace xsktun {

template <typename K, typename V, size_t Shards = 64>
class ShardedMap {
  static_assert(Shards >= 2 && std::has_single_bit(Shards), "a power of two, at least 2");
  static constexpr int kBits = std::countr_zero(Shards);

 public:
  // A copy of the value, taken under the shard's reader lock.
  std::optional<V> find(K k) const {
    const Shard& s = shard(k);
    std::shared_lock lock(s.mu);
    auto it = s.map.find(k);
    if (it == s.map.end()) return std::nullopt;
    return it->second;
  }
  // False (and no change) if k is present: a check-and-insert no other writer can split.
  bool insert(K k, V v) {
    Shard& s = shard(k);
    std::unique_lock lock(s.mu);
    return s.map.emplace(k, std::move(v)).second;
  }
  void assign(K k, V v) {
    Shard& s = shard(k);
    std::unique_lock lock(s.mu);
    s.map.insert_or_assign(k, std::move(v));
  }
  bool erase(K k) {
    Shard& s = shard(k);
    std::unique_lock lock(s.mu);
    return s.map.erase(k) > 0;
  }
  // f(key, value) for every entry, one shard at a time under its reader lock: entries added or
  // removed meanwhile in other shards may or may not be seen (callers only take copies).
  template <typename F>
  void for_each(F&& f) const {
    for (const Shard& s : shards_) {
      std::shared_lock lock(s.mu);
      for (const auto& [k, v] : s.map) f(k, v);
    }
  }
  size_t size() const {
    size_t n = 0;
    for (const Shard& s : shards_) {
      std::shared_lock lock(s.mu);
      n += s.map.size();
    }
    return n;
  }

 private:
  struct alignas(64) Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<K, V> map;
  };
  // Fibonacci hashing: sequential peer ids and random receiver indices both spread evenly.
  static size_t slot(K k) {
    return static_cast<size_t>((uint64_t{k} * 0x9E3779B97F4A7C15ull) >> (64 - kBits));
  }
  Shard& shard(K k) { return shards_[slot(k)]; }
  const Shard& shard(K k) const { return shards_[slot(k)]; }
  std::array<Shard, Shards> shards_;
};

}  // namespace xsktun
