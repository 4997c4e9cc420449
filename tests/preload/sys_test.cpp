// The agent's mapping list (preload/support/sys.h): a leak scan excludes every mapping in it, so a
// mapping it cannot take must be known, never silently dropped (issue 15 #13).
#include "sys.h"

#include <gtest/gtest.h>

#include <vector>

namespace heapscope::preload::sys {
namespace {

TEST(AgentMappings, AMappingTheFullListCannotTakeIsCountedUntilUnmapped) {
  const uint64_t unlisted_before = unlisted_mappings();
  const size_t listed_before = agent_mapping_count();
  std::vector<void*> mappings;
  for (int i = 0; i < 2600; ++i) {
    void* mapping = map_anonymous(4096);
    ASSERT_NE(mapping, nullptr);
    mappings.push_back(mapping);
  }
  EXPECT_GT(unlisted_mappings(), unlisted_before);
  EXPECT_EQ(agent_mapping_count() + (unlisted_mappings() - unlisted_before), listed_before + mappings.size());
  for (void* mapping : mappings) unmap(mapping, 4096);
  EXPECT_EQ(unlisted_mappings(), unlisted_before);
  EXPECT_EQ(agent_mapping_count(), listed_before);
}

TEST(RawCalls, LeaveErrnoAlone) {
  errno = 4242;
  EXPECT_EQ(open_file("/nonexistent/heapscope", 0), -1);
  EXPECT_FALSE(process_alive(-1));
  sleep_ns(1000);
  EXPECT_EQ(errno, 4242);
}

}  // namespace
}  // namespace heapscope::preload::sys
