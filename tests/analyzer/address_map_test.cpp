// The heap model's live-block map: every key works, including the table's reserved values.
#include "address_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>

namespace heapscope::analyzer {
namespace {

TEST(AddressMap, BehavesLikeAMapUnderChurn) {
  AddressMap<int> map;
  std::map<uint64_t, int> reference;
  std::mt19937_64 random(7);
  for (int step = 0; step < 200000; ++step) {
    const uint64_t key = (random() % 5000) * 16;
    if (random() % 3 == 0) {
      EXPECT_EQ(map.erase(key), reference.erase(key) == 1);
    } else {
      bool inserted = false;
      map.try_emplace(key, inserted) = step;
      EXPECT_EQ(inserted, !reference.contains(key));
      reference[key] = step;
    }
  }
  ASSERT_EQ(map.size(), reference.size());
  for (const auto& [key, value] : reference) ASSERT_EQ(*map.find(key), value);
  size_t visited = 0;
  map.for_each([&](uint64_t key, int value) {
    ++visited;
    EXPECT_EQ(reference.at(key), value);
  });
  EXPECT_EQ(visited, reference.size());
}

TEST(AddressMap, TheReservedKeysAreOrdinaryKeys) {
  // Regression: a trace naming address 0xffffffffffffffff matched an empty slot (tests/fuzz).
  AddressMap<int> map;
  for (uint64_t key : {UINT64_MAX, UINT64_MAX - 1, uint64_t{0}}) {
    EXPECT_EQ(map.find(key), nullptr);
    bool inserted = false;
    map.try_emplace(key, inserted) = 5;
    EXPECT_TRUE(inserted);
    map.try_emplace(key, inserted);
    EXPECT_FALSE(inserted);
    ASSERT_NE(map.find(key), nullptr);
    EXPECT_EQ(*map.find(key), 5);
  }
  EXPECT_EQ(map.size(), 3u);
  EXPECT_TRUE(map.erase(UINT64_MAX));
  EXPECT_FALSE(map.erase(UINT64_MAX));
  EXPECT_EQ(map.size(), 2u);
}

}  // namespace
}  // namespace heapscope::analyzer
