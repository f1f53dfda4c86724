#include "xsktun/routing/length_index.h"

#include <algorithm>

namespace xsktun::routing {

void LengthIndex::set(const LpmKey& masked, uint8_t cidr, uint32_t peer) {
  // Linear probing stays short up to 3/4 full (about 2.5 probes for a miss, Knuth).
  if ((size_ + 1) * 4 > slots_.size() * 3) grow();
  size_t mask = slots_.size() - 1;
  for (size_t i = hash(masked, cidr) & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.used && (s.cidr != cidr || s.key != masked)) continue;
    if (!s.used) {
      s = Slot{masked, peer, cidr, true};
      ++size_;
      count_length(cidr, +1);
    }
    s.peer = peer;
    return;
  }
}

void LengthIndex::erase(const LpmKey& masked, uint8_t cidr) {
  if (slots_.empty()) return;
  size_t mask = slots_.size() - 1;
  size_t i = hash(masked, cidr) & mask;
  while (slots_[i].used && (slots_[i].cidr != cidr || slots_[i].key != masked)) i = (i + 1) & mask;
  if (!slots_[i].used) return;
  slots_[i].used = false;
  --size_;
  count_length(cidr, -1);
  // Backward-shift deletion (linear probing): move later entries of the run into the hole when
  // their home slot does not lie cyclically in (hole, j], so every entry stays reachable.
  for (size_t j = (i + 1) & mask; slots_[j].used; j = (j + 1) & mask) {
    size_t home = hash(slots_[j].key, slots_[j].cidr) & mask;
    bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (between) continue;
    slots_[i] = slots_[j];
    slots_[j].used = false;
    i = j;
  }
}

void LengthIndex::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(std::max<size_t>(16, old.size() * 2), Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (!s.used) continue;
    size_t i = hash(s.key, s.cidr) & mask;
    while (slots_[i].used) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void LengthIndex::count_length(uint8_t cidr, int delta) {
  uint32_t& n = per_length_[cidr];
  n = static_cast<uint32_t>(static_cast<int64_t>(n) + delta);
  bool listed = std::find(lengths_.begin(), lengths_.end(), cidr) != lengths_.end();
  if (n > 0 && !listed) {
    lengths_.insert(std::upper_bound(lengths_.begin(), lengths_.end(), cidr, std::greater<>()), cidr);
  } else if (n == 0 && listed) {
    lengths_.erase(std::find(lengths_.begin(), lengths_.end(), cidr));
  }
}

void LengthIndex::clear() {
  slots_.clear();
  size_ = 0;
  per_length_.fill(0);
  lengths_.clear();
}

}  // namespace xsktun::routing
