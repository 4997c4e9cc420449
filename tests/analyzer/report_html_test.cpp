// The HTML page around its payload: the data survives any text a program's names contain.
#include "report_html.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace heapscope::analyzer {
namespace {

size_t count(const std::string& text, const std::string& needle) {
  size_t found = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++found;
  return found;
}

TEST(ReportHtml, ANameThatClosesAScriptCannotBreakOutOfThePayload) {
  const std::string hostile = "</script><script>alert(1)</script>";
  Report report;
  ProcessReport process;
  LeakRecord leak;
  leak.kind = "definite";
  leak.blocks = 1;
  leak.bytes = 8;
  leak.allocator = "malloc";
  leak.stack = {SymbolizedFrame{0x10, hostile, "/src/a.c", 3, "/bin/a", false}};
  process.leaks = {leak};
  report.processes.push_back(process);
  std::vector<TracedProcess> traced(1);
  Symbolizer symbolizer;

  const std::string page = render_html(report, traced, symbolizer);
  // The page's own two script ends, none from the data.
  EXPECT_EQ(count(page, "</script>"), 2u);
  const size_t begin = page.find(kHtmlPageHead) + std::string(kHtmlPageHead).size();
  const size_t end = page.find("</script>", begin);
  const std::string payload = page.substr(begin, end - begin);
  EXPECT_EQ(payload.find_first_of("<>&"), std::string::npos);  // all written as \u escapes
  const auto data = nlohmann::json::parse(payload);
  EXPECT_EQ(data["processes"][0]["leaks"][0]["stack"][0]["function"], hostile);
  EXPECT_TRUE(data["processes"][0]["flame"].is_array());  // [name, costs, children]
  EXPECT_FALSE(data["processes"][0].contains("modules"));
}

TEST(ReportHtml, TablesKeepTheLargestRecordsAndCountTheRest) {
  Report report;
  ProcessReport process;
  for (int i = 0; i < 600; ++i) {
    LeakRecord leak;
    leak.kind = "definite";
    leak.blocks = 1;
    leak.bytes = static_cast<uint64_t>(1000 - i);
    leak.allocator = "malloc";
    process.leaks.push_back(leak);
  }
  report.processes.push_back(process);
  std::vector<TracedProcess> traced(1);
  Symbolizer symbolizer;
  const std::string page = render_html(report, traced, symbolizer);
  const size_t begin = page.find(kHtmlPageHead) + std::string(kHtmlPageHead).size();
  const auto data = nlohmann::json::parse(page.substr(begin, page.find("</script>", begin) - begin));
  EXPECT_EQ(data["processes"][0]["leaks"].size(), 500u);
  EXPECT_EQ(data["processes"][0]["leaks_not_shown"], 100);
  EXPECT_EQ(data["processes"][0]["leaks"][0]["bytes"], 1000);
}

}  // namespace
}  // namespace heapscope::analyzer
