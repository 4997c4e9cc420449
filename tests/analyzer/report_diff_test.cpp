// Comparing two JSON reports for regressions.
#include "report_diff.h"

#include <gtest/gtest.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

using nlohmann::json;

json report_with(const std::vector<std::pair<std::string, int>>& leaks, int peak, int errors = 0) {
  json process = {{"command", {"/usr/bin/app"}}, {"summary", {{"peak_live_bytes", peak}}}, {"errors", json::array()}};
  for (int i = 0; i < errors; ++i) process["errors"].push_back({{"kind", "overflow"}});
  process["leaks"] = json::array();
  for (const auto& [function, bytes] : leaks) {
    // Addresses differ between runs (ASLR): only names identify a site.
    process["leaks"].push_back({{"bytes", bytes},
                                {"stack", {{{"address", "0x" + std::to_string(rand())}, {"function", function},
                                            {"module", "/usr/bin/app"}}}}});
  }
  return {{"schema", "heapscope.report"}, {"schema_version", 1}, {"processes", {process}}};
}

TEST(ReportDiff, SameReportsHaveNoRegression) {
  const DiffResult diff = diff_reports(report_with({{"a", 10}}, 100), report_with({{"a", 10}}, 100), {});
  EXPECT_FALSE(diff.regressed());
  EXPECT_TRUE(diff.findings.empty());
}

TEST(ReportDiff, NewAndGrownLeaksNewErrorsAndPeakGrowthRegress) {
  const DiffResult diff =
      diff_reports(report_with({{"a", 10}, {"b", 5}}, 100), report_with({{"a", 20}, {"c", 7}}, 111, 1), {});
  EXPECT_TRUE(diff.regressed());
  std::map<std::string, DiffFinding> by_kind;
  for (const DiffFinding& finding : diff.findings) by_kind[finding.kind] = finding;
  EXPECT_EQ(by_kind["grown_leak"].site, "a");
  EXPECT_EQ(by_kind["grown_leak"].current, 20);
  EXPECT_EQ(by_kind["new_leak"].site, "c");
  EXPECT_EQ(by_kind["fixed_leak"].site, "b");
  EXPECT_FALSE(by_kind["fixed_leak"].regression);
  EXPECT_EQ(by_kind["new_errors"].current, 1);
  EXPECT_EQ(by_kind["peak_growth"].current, 111);  // +11% > 10% tolerance
  EXPECT_NE(render_diff_text(diff).find("REGRESSION: app: new leak 0 -> 7 bytes at c"), std::string::npos)
      << render_diff_text(diff);
  EXPECT_EQ(diff_to_json(diff)["regressed"], true);
}

TEST(ReportDiff, PeakWithinToleranceAndShrinkingLeaksDoNot) {
  const DiffResult diff = diff_reports(report_with({{"a", 10}}, 100), report_with({{"a", 4}}, 110), {});
  EXPECT_FALSE(diff.regressed());
  DiffOptions strict;
  strict.peak_tolerance_percent = 5;
  EXPECT_TRUE(diff_reports(report_with({}, 100), report_with({}, 106), strict).regressed());
}

TEST(ReportDiff, BlocksStillReachableAreNotLeaks) {
  json base = report_with({}, 100);
  json current = report_with({{"cache", 4096}, {"lost", 8}}, 100);
  current["processes"][0]["leaks"][0]["kind"] = "reachable";
  current["processes"][0]["leaks"][1]["kind"] = "definite";
  const DiffResult diff = diff_reports(base, current, {});
  ASSERT_EQ(diff.findings.size(), 1u);
  EXPECT_EQ(diff.findings[0].site, "lost");
  EXPECT_TRUE(diff.regressed());
}

TEST(ReportDiff, RejectsWhatIsNotAReport) {
  EXPECT_THROW(diff_reports(json::object(), report_with({}, 1), {}), FormatError);
  json future = report_with({}, 1);
  future["schema_version"] = 2;
  EXPECT_THROW(diff_reports(report_with({}, 1), future, {}), FormatError);
}

}  // namespace
}  // namespace heapscope::analyzer
