// Stack deduplication: one id per distinct stack, defined exactly once.
#include "stack_depot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace heapscope::preload {
namespace {

struct Definitions {
  std::atomic<int> count{0};
};

void count_definition(uint32_t, const uint64_t*, size_t, void* context) {
  static_cast<Definitions*>(context)->count++;
}

TEST(StackDepot, SameFramesSameIdDefinedOnce) {
  static StackDepot depot;
  ASSERT_TRUE(depot.init());
  Definitions definitions;
  const uint64_t a[] = {0x401000, 0x402000, 0x403000};
  const uint64_t b[] = {0x401000, 0x402000, 0x403001};
  const uint32_t first = depot.put(a, 3, count_definition, &definitions);
  EXPECT_GT(first, 0u);
  EXPECT_EQ(depot.put(a, 3, count_definition, &definitions), first);
  const uint32_t other = depot.put(b, 3, count_definition, &definitions);
  EXPECT_NE(other, first);
  EXPECT_NE(depot.put(a, 2, count_definition, &definitions), first);  // a prefix is another stack
  EXPECT_EQ(definitions.count.load(), 3);
  EXPECT_EQ(depot.put(a, 0, count_definition, &definitions), 0u);  // no frames: no stack
  depot.release();
}

TEST(StackDepot, ConcurrentPutsAgreeOnIds) {
  static StackDepot depot;
  ASSERT_TRUE(depot.init());
  Definitions definitions;
  constexpr int kStacks = 2000;
  std::vector<std::vector<uint32_t>> ids(4, std::vector<uint32_t>(kStacks));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < kStacks; ++s) {
        const uint64_t frames[] = {0x1000u + static_cast<uint64_t>(s), 0x2000, 0x3000};
        ids[t][s] = depot.put(frames, 3, count_definition, &definitions);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<uint32_t> distinct;
  for (int s = 0; s < kStacks; ++s) {
    for (int t = 1; t < 4; ++t) ASSERT_EQ(ids[t][s], ids[0][s]) << s;
    distinct.insert(ids[0][s]);
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kStacks));
  EXPECT_EQ(definitions.count.load(), kStacks);  // each defined exactly once
  depot.release();
}

}  // namespace
}  // namespace heapscope::preload
