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
  uint64_t address = 0;
  ASSERT_TRUE(quarantine.push(0x10, 400));
  ASSERT_TRUE(quarantine.push(0x20, 400));
  EXPECT_FALSE(quarantine.pop(address, false));  // 800 <= 1000: keep
  ASSERT_TRUE(quarantine.push(0x30, 400));
  ASSERT_TRUE(quarantine.pop(address, false));  // 1200 > 1000
  EXPECT_EQ(address, 0x10u);
  EXPECT_FALSE(quarantine.pop(address, false));
  EXPECT_EQ(quarantine.held_bytes(), 800u);
  ASSERT_TRUE(quarantine.pop(address, true));  // at exit: everything
  EXPECT_EQ(address, 0x20u);
  ASSERT_TRUE(quarantine.pop(address, true));
  EXPECT_EQ(address, 0x30u);
  EXPECT_FALSE(quarantine.pop(address, true));
}

TEST(Quarantine, ZeroBudgetDisablesIt) {
  static Quarantine quarantine;
  ASSERT_TRUE(quarantine.init(0));
  EXPECT_FALSE(quarantine.enabled());
  EXPECT_FALSE(quarantine.accepts(1));
}

}  // namespace
}  // namespace heapscope::preload
