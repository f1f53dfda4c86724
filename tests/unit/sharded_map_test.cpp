// ShardedMap: the map semantics the device relies on (insert never overwrites, so a random
// receiver index is claimed once; assign replaces; erase; every entry visited once), and
// readers racing writers on the same and on other shards (run under the tsan preset too).
#include "xsktun/common/sharded_map.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace xsktun {
namespace {

TEST(ShardedMap, InsertClaimsAKeyOnceAssignReplacesEraseRemoves) {
  ShardedMap<uint32_t, int> m;
  EXPECT_TRUE(m.insert(7, 1));
  EXPECT_FALSE(m.insert(7, 2)) << "a second insert of the same key must fail";
  EXPECT_EQ(m.find(7), 1);
  m.assign(7, 3);
  EXPECT_EQ(m.find(7), 3);
  EXPECT_FALSE(m.find(8).has_value());
  EXPECT_TRUE(m.erase(7));
  EXPECT_FALSE(m.erase(7));
  EXPECT_FALSE(m.find(7).has_value());
  EXPECT_EQ(m.size(), 0u);
}

TEST(ShardedMap, ForEachVisitsEveryEntryOnceAcrossShards) {
  ShardedMap<uint32_t, uint32_t, 8> m;
  for (uint32_t k = 1; k <= 1000; ++k) ASSERT_TRUE(m.insert(k, k * 10));
  EXPECT_EQ(m.size(), 1000u);
  std::set<uint32_t> seen;
  m.for_each([&](uint32_t k, uint32_t v) {
    EXPECT_EQ(v, k * 10);
    EXPECT_TRUE(seen.insert(k).second) << "key " << k << " visited twice";
  });
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ShardedMap, ReadersSeeWholeValuesWhileWritersChangeThem) {
  // Values are shared_ptrs, as in the device: a reader holds its copy while a writer replaces
  // or erases the entry, and must never see a torn or freed value.
  ShardedMap<uint32_t, std::shared_ptr<const uint64_t>> m;
  constexpr uint32_t kKeys = 256;
  for (uint32_t k = 0; k < kKeys; ++k) m.insert(k, std::make_shared<const uint64_t>(k));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&, t] {
      for (uint32_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        uint32_t k = (i * 7 + static_cast<uint32_t>(t)) % kKeys;
        if (auto v = m.find(k)) {
          found.fetch_add(1, std::memory_order_relaxed);
          if (**v % kKeys != k) bad.fetch_add(1);
        }
      }
    });
  // At least 200 rounds, and on until the readers (maybe scheduled late on a busy machine) have
  // looked at values many times meanwhile.
  for (uint32_t round = 1; round <= 200 || (found.load() < 10000 && round < 1000000); ++round)
    for (uint32_t k = 0; k < kKeys; ++k) {
      if ((k + round) % 3 == 0)
        m.erase(k);
      else
        m.assign(k, std::make_shared<const uint64_t>(k + uint64_t{round} * kKeys));
    }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(found.load(), 0u);
}

}  // namespace
}  // namespace xsktun
