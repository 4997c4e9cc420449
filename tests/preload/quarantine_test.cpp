// The quarantine: FIFO order and its byte budget.
#include "quarantine.h"

#include <gtest/gtest.h>

namespace heapscope::preload {
namespace {

TEST(Quarantine, HoldsUntilOverBudgetThenReleasesOldestFirst) {
  static Quarantine quarantine;
  ASSERT_TRUE(quarantine.init(1000));
  EXPECT_TRUE(quarantine.accepts(500));
  EXPECT_FALSE(quarantine.accepts(501));  // more than half the budget: released at once
  uint64_t leaving = 1;
  uint64_t leaving_size = 1;
  ASSERT_TRUE(quarantine.push(0x10, 400, leaving, leaving_size));
  EXPECT_EQ(leaving, 0u);
  ASSERT_TRUE(quarantine.push(0x20, 400, leaving, leaving_size));
  EXPECT_EQ(leaving, 0u);  // 800 <= 1000: keep
  uint64_t address = 0;
  uint64_t size = 0;
  EXPECT_FALSE(quarantine.pop(address, size, false));
  ASSERT_TRUE(quarantine.push(0x30, 300, leaving, leaving_size));
  EXPECT_EQ(leaving, 0x10u);  // 1100 > 1000: the oldest leaves with the push
  EXPECT_EQ(leaving_size, 400u);
  EXPECT_EQ(quarantine.held_bytes(), 700u);
  ASSERT_TRUE(quarantine.push(0x40, 450, leaving, leaving_size));
  EXPECT_EQ(leaving, 0x20u);  // 1150 > 1000: one leaves with the push...
  EXPECT_EQ(quarantine.held_bytes(), 750u);
  EXPECT_FALSE(quarantine.pop(address, size, false));  // ...and that was enough
  ASSERT_TRUE(quarantine.pop(address, size, true));  // at exit: everything
  EXPECT_EQ(address, 0x30u);
  EXPECT_EQ(size, 300u);
  ASSERT_TRUE(quarantine.pop(address, size, true));
  EXPECT_EQ(address, 0x40u);
  EXPECT_FALSE(quarantine.pop(address, size, true));
}

TEST(Quarantine, PopTakesMoreWhileStillOverBudget) {
  static Quarantine quarantine;
  ASSERT_TRUE(quarantine.init(1000));
  uint64_t leaving = 0;
  uint64_t leaving_size = 0;
  for (uint64_t address : {0x10, 0x20, 0x30}) ASSERT_TRUE(quarantine.push(address, 100, leaving, leaving_size));
  ASSERT_TRUE(quarantine.push(0x40, 500, leaving, leaving_size));
  EXPECT_EQ(leaving, 0u);  // 800
  ASSERT_TRUE(quarantine.push(0x50, 500, leaving, leaving_size));
  EXPECT_EQ(leaving, 0x10u);  // 1300, then 1200: still over
  uint64_t address = 0;
  uint64_t size = 0;
  ASSERT_TRUE(quarantine.pop(address, size, false));
  EXPECT_EQ(address, 0x20u);  // 1100
  ASSERT_TRUE(quarantine.pop(address, size, false));
  EXPECT_EQ(address, 0x30u);  // 1000: within the budget
  EXPECT_FALSE(quarantine.pop(address, size, false));
  EXPECT_EQ(quarantine.held_bytes(), 1000u);
}

TEST(Quarantine, ZeroBudgetDisablesIt) {
  static Quarantine quarantine;
  ASSERT_TRUE(quarantine.init(0));
  EXPECT_FALSE(quarantine.enabled());
  EXPECT_FALSE(quarantine.accepts(1));
}

}  // namespace
}  // namespace heapscope::preload
