// The heap model's live-block map: every key works, including the table's reserved values.
#include "address_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

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

TEST(AddressMap, DeletionKeepsLongClustersFindable) {
  // Near the growth threshold, with arbitrary keys: long probe runs that wrap around the end of
  // the table, where a backward-shift deletion must move exactly the right entries.
  AddressMap<uint64_t> map;
  std::map<uint64_t, uint64_t> reference;
  std::mt19937_64 random(11);
  std::vector<uint64_t> keys(760);
  for (uint64_t& key : keys) key = random();
  for (int step = 0; step < 300000; ++step) {
    const uint64_t key = keys[random() % keys.size()];
    if (random() % 10 == 0) {
      ASSERT_EQ(map.erase(key), reference.erase(key) == 1);
    } else {
      bool inserted = false;
      map.try_emplace(key, inserted) = key ^ static_cast<uint64_t>(step);
      reference[key] = key ^ static_cast<uint64_t>(step);
    }
    if (step % 1000 == 0) {
      for (const uint64_t probe : keys) {
        const auto found = reference.find(probe);
        const uint64_t* value = map.find(probe);
        ASSERT_EQ(value != nullptr, found != reference.end());
        if (value != nullptr) {
          ASSERT_EQ(*value, found->second);
        }
      }
    }
  }
  EXPECT_EQ(map.size(), reference.size());
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
