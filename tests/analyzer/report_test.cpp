// Which leaks count: the kind sets of --show-leak-kinds / --errors-for-leak-kinds, and what
// "leaked" means with and without a scan.
#include "report.h"

#include <gtest/gtest.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

LeakRecord record(const char* kind) {
  LeakRecord leak;
  leak.kind = kind;
  return leak;
}

TEST(LeakKinds, SetsParseListsAllAndNone) {
  const LeakKindSet defaults;
  EXPECT_TRUE(defaults.contains("definite"));
  EXPECT_TRUE(defaults.contains("possible"));
  EXPECT_FALSE(defaults.contains("indirect"));
  EXPECT_FALSE(defaults.contains("reachable"));
  const LeakKindSet two = LeakKindSet::parse("indirect,reachable", "--x");
  EXPECT_TRUE(two.contains("indirect"));
  EXPECT_TRUE(two.contains("reachable"));
  EXPECT_FALSE(two.contains("definite"));
  EXPECT_TRUE(LeakKindSet::parse("all", "--x").contains("reachable"));
  EXPECT_FALSE(LeakKindSet::parse("none", "--x").contains("definite"));
  EXPECT_THROW(LeakKindSet::parse("definite,lost", "--x"), UsageError);
}

TEST(LeakKinds, UnclassifiedCountsOnlyWhereNoScanRan) {
  ProcessReport scanned;
  scanned.leak_scan.ran = true;
  ProcessReport unscanned;
  const LeakKindSet none = LeakKindSet::parse("none", "--x");
  // No scan: nothing excuses the blocks, whatever the set says.
  EXPECT_TRUE(none.counts(unscanned, record("unclassified")));
  EXPECT_TRUE(is_lost(unscanned, record("unclassified")));
  // After a scan: allocated once it was over, never seen lost.
  EXPECT_FALSE(LeakKindSet::parse("all", "--x").counts(scanned, record("unclassified")));
  EXPECT_FALSE(is_lost(scanned, record("unclassified")));
  EXPECT_TRUE(is_lost(scanned, record("indirect")));
  EXPECT_FALSE(is_lost(scanned, record("reachable")));
}

TEST(LeakKinds, TotalsPerKind) {
  LeakRecord a = record("definite");
  a.blocks = 2;
  a.bytes = 10;
  LeakRecord b = record("definite");
  b.blocks = 1;
  b.bytes = 5;
  LeakRecord c = record("reachable");
  c.blocks = 4;
  c.bytes = 40;
  const LeakTotals totals = leak_totals({a, b, c});
  EXPECT_EQ(totals.definite.blocks, 3u);
  EXPECT_EQ(totals.definite.bytes, 15u);
  EXPECT_EQ(totals.reachable.bytes, 40u);
  EXPECT_EQ(totals.unclassified.blocks, 0u);
}

}  // namespace
}  // namespace heapscope::analyzer
