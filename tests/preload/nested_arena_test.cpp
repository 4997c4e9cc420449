// The nested arena: what signal handlers and the unwinder get instead of the real allocator.
#include "nested_arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace heapscope::preload::nested {
namespace {

TEST(NestedArena, AllocatesAlignedRecognizableBlocksAndReusesThem) {
  void* a = allocate(100, 16, false);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(owns(a));
  EXPECT_GE(usable_size(a), 100u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 16, 0u);
  int stack_variable = 0;
  EXPECT_FALSE(owns(&stack_variable));
  EXPECT_EQ(release(&stack_variable), Release::kNotOurs);  // not ours: refused, nothing read
  EXPECT_EQ(release(a), Release::kReleased);
  void* again = allocate(100, 16, false);
  EXPECT_EQ(again, a);  // the free list gives it back
  EXPECT_EQ(release(again), Release::kReleased);
  void* aligned = allocate(10, 4096, true);
  ASSERT_NE(aligned, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) % 4096, 0u);
  EXPECT_EQ(static_cast<char*>(aligned)[9], 0);
  EXPECT_EQ(release(aligned), Release::kReleased);
  EXPECT_EQ(allocate(size_t{2} << 20, 16, false), nullptr);  // nested callers stay small
}

// issue 15 #8: the free-list link overwrote the header a second free trusted: it then pushed
// the block onto a list picked by garbage (a write into the agent's globals) or crashed.
TEST(NestedArena, ASecondFreeChangesNothingAndIsToldApart) {
  for (size_t alignment : {size_t{16}, size_t{64}, size_t{4096}}) {
    SCOPED_TRACE(alignment);
    void* block = allocate(40, alignment, false);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(release(block), Release::kReleased);
    EXPECT_EQ(release(block), Release::kAlreadyFree);
    EXPECT_EQ(release(block), Release::kAlreadyFree);
    // The list holds it once: two allocations of its class get two blocks.
    void* first = allocate(40, alignment, false);
    void* second = allocate(40, alignment, false);
    EXPECT_NE(first, second);
    EXPECT_EQ(release(first), Release::kReleased);
    EXPECT_EQ(release(second), Release::kReleased);
  }
  char* block = static_cast<char*>(allocate(100, 16, /*zeroed=*/true));
  EXPECT_EQ(release(block + 8), Release::kInvalid);  // inside a block: not an address we gave
  EXPECT_EQ(release(block), Release::kReleased);
}

TEST(NestedArena, ReallocateKeepsContents) {
  char* block = static_cast<char*>(allocate(8, 16, false));
  std::memcpy(block, "abcdefg", 8);
  char* grown = static_cast<char*>(reallocate(block, 5000));
  ASSERT_NE(grown, nullptr);
  EXPECT_STREQ(grown, "abcdefg");
  EXPECT_EQ(release(grown), Release::kReleased);
}

TEST(NestedArena, ConcurrentUseNeverHandsOutABlockTwice) {
  std::vector<std::thread> threads;
  std::vector<std::set<void*>> held(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      for (int i = 0; i < 20000; ++i) {
        void* block = allocate(48, 16, false);
        ASSERT_NE(block, nullptr);
        std::memset(block, t, 48);
        mine.push_back(block);
        if (i % 2 == 1) {
          release(mine.front());
          mine.erase(mine.begin());
        }
      }
      held[t].insert(mine.begin(), mine.end());
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<void*> all;
  for (int t = 0; t < 4; ++t) {
    for (void* block : held[t]) {
      EXPECT_TRUE(all.insert(block).second);
      EXPECT_EQ(static_cast<unsigned char*>(block)[47], t);  // nobody else wrote into it
    }
  }
  for (void* block : all) release(block);
}

}  // namespace
}  // namespace heapscope::preload::nested
