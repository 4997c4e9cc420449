// The live-block index: ownership proof for every free().
#include "block_index.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>
#include <vector>

namespace heapscope::preload {
namespace {

BlockEntry entry_for(uint64_t address, uint64_t size = 16) {
  return BlockEntry{address, size, 7, 0, 32, 1, BlockState::kLive, 0, 0};
}

TEST(BlockIndex, InsertFindRemove) {
  static BlockIndex index;  // large: keep it off the test's stack
  ASSERT_TRUE(index.init());
  ASSERT_TRUE(index.insert(entry_for(0x1000, 24)));
  BlockEntry found{};
  ASSERT_TRUE(index.find(0x1000, found));
  EXPECT_EQ(found.size, 24u);
  EXPECT_FALSE(index.find(0x1010, found));  // interior or unknown: not ours
  EXPECT_TRUE(index.remove(0x1000));
  EXPECT_FALSE(index.find(0x1000, found));
  EXPECT_FALSE(index.remove(0x1000));
}

TEST(BlockIndex, BeginFreeTellsOursFromFreedFromUnknown) {
  static BlockIndex index;
  ASSERT_TRUE(index.init());
  ASSERT_TRUE(index.insert(entry_for(0x2000)));
  BlockEntry seen{};
  EXPECT_EQ(index.begin_free(0x3000, 9, 10, seen), FreeCheck::kNotOurs);
  EXPECT_EQ(index.begin_free(0x2000, 9, 10, seen), FreeCheck::kOk);
  EXPECT_EQ(seen.state, BlockState::kLive);  // the entry as it was
  EXPECT_EQ(index.begin_free(0x2000, 11, 10, seen), FreeCheck::kAlreadyFreed);
  EXPECT_EQ(seen.free_stack_id, 9u);  // the first free's stack, for the double-free report
}

TEST(BlockIndex, TakeProvesAndRemovesInOneStep) {
  static BlockIndex index;
  ASSERT_TRUE(index.init());
  ASSERT_TRUE(index.insert(entry_for(0x4000, 99)));
  BlockEntry seen{};
  EXPECT_EQ(index.take(0x4010, 5, seen), FreeCheck::kNotOurs);
  EXPECT_EQ(index.take(0x4000, 5, seen), FreeCheck::kOk);
  EXPECT_EQ(seen.size, 99u);
  EXPECT_EQ(seen.free_stack_id, 5u);
  EXPECT_FALSE(index.find(0x4000, seen));  // gone: a second free is not ours any more
  EXPECT_EQ(index.take(0x4000, 5, seen), FreeCheck::kNotOurs);
  ASSERT_TRUE(index.insert(entry_for(0x5000)));
  ASSERT_EQ(index.begin_free(0x5000, 1, 10, seen), FreeCheck::kOk);
  EXPECT_EQ(index.take(0x5000, 2, seen), FreeCheck::kAlreadyFreed);  // quarantined stays put
  EXPECT_TRUE(index.find(0x5000, seen));
}

TEST(BlockIndex, GrowsAndChurnsThroughRemovals) {
  static BlockIndex index;
  ASSERT_TRUE(index.init());
  constexpr uint64_t kCount = 200000;
  for (uint64_t i = 1; i <= kCount; ++i) ASSERT_TRUE(index.insert(entry_for(i * 16)));
  EXPECT_EQ(index.live_count(), kCount);
  for (uint64_t i = 1; i <= kCount; i += 2) ASSERT_TRUE(index.remove(i * 16));
  for (uint64_t round = 0; round < 5; ++round) {  // churn: removals shift probe runs back
    for (uint64_t i = 1; i <= kCount; i += 2) ASSERT_TRUE(index.insert(entry_for(i * 16 + 8 * (round % 2))));
    for (uint64_t i = 1; i <= kCount; i += 2) ASSERT_TRUE(index.remove(i * 16 + 8 * (round % 2)));
  }
  EXPECT_EQ(index.live_count(), kCount / 2);
  BlockEntry found{};
  for (uint64_t i = 2; i <= kCount; i += 2) ASSERT_TRUE(index.find(i * 16, found)) << i;
  size_t visited = 0;
  index.for_each([](const BlockEntry&, void* count) { ++*static_cast<size_t*>(count); }, &visited);
  EXPECT_EQ(visited, kCount / 2);
}

// Removal shifts later entries of a probe run back into the hole. Random inserts and removals
// over a small pool of addresses make long runs, runs that wrap around a table's end, and
// growth, and every address's presence must match a plain set after each step.
TEST(BlockIndex, RandomInsertsAndRemovalsMatchASet) {
  static BlockIndex index;
  ASSERT_TRUE(index.init());
  std::set<uint64_t> expected;
  std::mt19937_64 random(42);
  constexpr uint64_t kPool = 6000;
  for (int step = 0; step < 300000; ++step) {
    const uint64_t address = (random() % kPool + 1) * 16;
    if (expected.count(address) != 0 && random() % 2 == 0) {
      ASSERT_TRUE(index.remove(address));
      expected.erase(address);
    } else {
      ASSERT_TRUE(index.insert(entry_for(address)));
      expected.insert(address);
    }
    if (step % 20000 == 0) {
      BlockEntry seen{};
      for (uint64_t a = 16; a <= kPool * 16; a += 16) ASSERT_EQ(index.find(a, seen), expected.count(a) != 0) << a;
    }
  }
  EXPECT_EQ(index.live_count(), expected.size());
  BlockEntry seen{};
  for (uint64_t a = 16; a <= kPool * 16; a += 16) ASSERT_EQ(index.find(a, seen), expected.count(a) != 0) << a;
}

TEST(BlockIndex, ConcurrentInsertAndRemoveStayConsistent) {
  static BlockIndex index;
  ASSERT_TRUE(index.init());
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (uint64_t i = 0; i < 50000; ++i) {
        const uint64_t address = (t << 40) | ((i + 1) << 4);
        index.insert(entry_for(address));
        if (i % 3 != 0) index.remove(address);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  size_t expected = 0;
  for (uint64_t i = 0; i < 50000; ++i) expected += i % 3 == 0;
  EXPECT_EQ(index.live_count(), 4 * expected);
}

}  // namespace
}  // namespace heapscope::preload
