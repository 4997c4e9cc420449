// The HTML report in a real browser: headless Chromium loads the page heapscope wrote, runs its
// script, and we read the DOM it built: no script error, every part present, the flame graph's
// search and zoom working, nothing fetched from the network. One screenshot is saved.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

const char* const kChromium = "chromium";

// Each Chromium gets its own profile and output files: ctest runs these tests in parallel, and
// a second Chromium on one profile hands its work to the first and exits.
std::string scratch(const std::string& name) {
  static int calls = 0;
  return testing::TempDir() + "/heapscope-" + std::to_string(getpid()) + "-" + std::to_string(++calls) + "-" + name;
}

// Runs headless Chromium with `flags` (and redirections); returns system()'s status.
int run_chromium(const std::string& flags) {
  const std::string profile = scratch("profile");
  const std::string command = std::string("timeout 120 ") + kChromium +
                              " --headless --no-sandbox --disable-gpu --user-data-dir=" + profile + " " + flags;
  const int status = std::system(command.c_str());
  std::system(("rm -rf " + profile).c_str());
  return status;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

size_t count(const std::string& text, const std::string& needle) {
  size_t found = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++found;
  return found;
}

// The DOM after the page's script ran, as Chromium serializes it. Whatever the page wrote to
// the console (errors, warnings, logs) fails the test: Chromium logs it as ":CONSOLE:" lines.
std::string rendered_dom(const std::string& html, const std::string& fragment = "") {
  const std::string out = scratch("dom.html");
  const std::string log = scratch("chromium.log");
  EXPECT_EQ(run_chromium("--enable-logging=stderr --v=0 --dump-dom 'file://" + html + fragment + "' > " + out + " 2> " + log), 0);
  const std::string messages = read_file(log);
  size_t line = messages.find(":CONSOLE:");
  EXPECT_EQ(line, std::string::npos) << messages.substr(line == std::string::npos ? 0 : line, 400);
  return read_file(out);
}

class HtmlReportE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!program_exists(kChromium))
      FAIL() << "chromium is not installed: scripts/install-deps.sh installs it (Debian's chromium package)";
  }
};

TEST_F(HtmlReportE2E, PageRendersEveryPartWithoutAScriptError) {
  const std::string html = testing::TempDir() + "/heapscope-report.html";
  const RunOutput run = run_heapscope({"--html", html}, {program("leak_kinds")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string page = read_file(html);
  ASSERT_FALSE(page.empty());
  // Self-contained: no stylesheet, script or image from anywhere else.
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_EQ(page.find("src="), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(page.find("import("), std::string::npos);

  const std::string dom = rendered_dom(html);
  EXPECT_NE(dom.find("data-js-errors=\"0\""), std::string::npos) << dom.substr(0, 2000);
  EXPECT_NE(dom.find("data-rendered=\"1\""), std::string::npos);
  for (const char* part : {"summary-cards", "timeline", "flame-graph", "leak-table", "error-table", "size-histogram",
                           "statistics", "top-sites", "leak-checks", "mappings"})
    EXPECT_NE(dom.find(std::string("data-role=\"") + part + "\""), std::string::npos) << part;
  // Summary cards with the leak kinds; the leak table lists the lost records by default.
  EXPECT_NE(dom.find("definitely lost"), std::string::npos);
  EXPECT_NE(dom.find(">244 B<"), std::string::npos) << "definitely lost bytes";
  // issue 12: exact byte counts on hover, not only "12.4 KiB".
  EXPECT_NE(dom.find("title=\"244 bytes\""), std::string::npos);
  EXPECT_GE(count(dom, "class=\"kind definite\""), 5u);
  EXPECT_NE(dom.find("definite_block"), std::string::npos);
  // The heap-over-time chart has its live-heap line and the peak; the flame graph its frames.
  EXPECT_NE(dom.find("data-series=\"live_bytes\""), std::string::npos);
  EXPECT_NE(dom.find("class=\"peak-line\""), std::string::npos);
  // issue 12: heapscope's own memory apart from the program's in the RSS curve and the table.
  EXPECT_NE(dom.find("data-series=\"agent_bytes\""), std::string::npos);
  EXPECT_NE(dom.find("data-series=\"program_rss_bytes\""), std::string::npos);
  EXPECT_NE(dom.find("heapscope's share of the highest sampled RSS"), std::string::npos);
  EXPECT_GE(count(dom, "class=\"frame"), 5u);
  EXPECT_GE(count(dom, "class=\"bar\""), 2u);
  EXPECT_EQ(dom.find(">null<"), std::string::npos);  // an absent part printed as text

  // Saved for people to look at (and the README's picture comes from the same page).
  const std::string screenshot = HTML_SCREENSHOT;
  std::remove(screenshot.c_str());
  ASSERT_EQ(run_chromium("--hide-scrollbars --window-size=1280,2200 --screenshot=" + screenshot + " 'file://" + html +
                         "' > /dev/null 2>&1"), 0);
  const std::string png = read_file(screenshot);
  ASSERT_GT(png.size(), 20000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

// issue 15: non-UTF-8 bytes in argv made --json and --html fail ("internal error", empty files,
// status 125), and "<!--<script>" in any string left the page blank.
TEST_F(HtmlReportE2E, HostileStringsCannotBreakTheReports) {
  const std::string html = scratch("hostile.html");
  const std::string json_path = scratch("hostile.json");
  const RunOutput run = run_native({heapscope_binary(), "run", "--html", html, "--json", json_path, "--",
                                    program("leak_shapes"), "\xff\xfe bytes", "<!--<script>", "</script>&\xe2\x80\xa8"});
  EXPECT_EQ(run.exit_code, 3) << run.err;  // leak_shapes' own status
  EXPECT_EQ(run.err.find("internal error"), std::string::npos) << run.err;
  const nlohmann::json report = nlohmann::json::parse(read_file(json_path));
  const auto& command = report["processes"][0]["command"];
  ASSERT_EQ(command.size(), 4u);
  EXPECT_EQ(command[1], "\xef\xbf\xbd\xef\xbf\xbd bytes");  // each bad byte is U+FFFD
  EXPECT_EQ(command[2], "<!--<script>");
  const std::string page = read_file(html);
  EXPECT_EQ(page.find("<!--<script>"), std::string::npos) << "payload strings must not contain markup";
  const std::string dom = rendered_dom(html);
  EXPECT_NE(dom.find("data-js-errors=\"0\""), std::string::npos) << dom.substr(0, 2000);
  EXPECT_NE(dom.find("data-rendered=\"1\""), std::string::npos);
  EXPECT_NE(dom.find("&lt;!--&lt;script&gt;"), std::string::npos) << "the command line shown as text";
}

// issue 12: a run shorter than a millisecond drew a time axis of "0 µs 0 µs 0 µs".
TEST_F(HtmlReportE2E, AVeryShortRunGetsAReadableTimeAxis) {
  const std::string html = scratch("short.html");
  const RunOutput run = run_heapscope({"--html", html}, {program("realloc_peak")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string dom = rendered_dom(html);
  EXPECT_EQ(dom.find(">0 µs<"), std::string::npos) << "an axis of zeros";
  EXPECT_NE(dom.find("data-rendered=\"1\""), std::string::npos);
}

// issue 12 (11): the memory the program maps itself, as a table by site and a curve; and a
// guard-page fault shown as the access it was.
TEST_F(HtmlReportE2E, MappingsTableAndGuardPageFaults) {
  const std::string html = scratch("mappings.html");
  const RunOutput run = run_heapscope({"--html", html}, {program("mappings")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string dom = rendered_dom(html);
  EXPECT_NE(dom.find("data-js-errors=\"0\""), std::string::npos);
  EXPECT_NE(dom.find("data-series=\"mapped_bytes\""), std::string::npos);
  EXPECT_NE(dom.find("grow_table"), std::string::npos) << "the mremap's site in the table";
  EXPECT_NE(dom.find("file_shared"), std::string::npos);
  EXPECT_NE(dom.find("title=\"2,097,152 bytes\""), std::string::npos) << "the grown table's exact size on hover";

  const std::string faulted = scratch("guard.html");
  const RunOutput guarded = run_heapscope({"--guard-pages", "--html", faulted}, {program("guard_pages"), "write-past-end"});
  EXPECT_EQ(guarded.exit_code, 128 + 11) << guarded.err;
  const std::string errors = rendered_dom(faulted);
  EXPECT_NE(errors.find("the write itself, in write_past_end"), std::string::npos) << errors.substr(0, 3000);
}

TEST_F(HtmlReportE2E, FlameGraphSwitchesCostSearchesAndZooms) {
  const std::string html = testing::TempDir() + "/heapscope-flame.html";
  const RunOutput run = run_heapscope({"--html", html}, {program("leak_kinds")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string plain = rendered_dom(html);
  EXPECT_NE(plain.find("allocated bytes: "), std::string::npos);
  EXPECT_EQ(count(plain, "class=\"frame match\""), 0u);

  const std::string searched = rendered_dom(html, "#metric=2&search=chain_&zoom=lose_things");
  EXPECT_NE(searched.find("data-js-errors=\"0\""), std::string::npos);
  EXPECT_NE(searched.find("leaked bytes (live at exit): "), std::string::npos);
  EXPECT_NE(searched.find(" in lose_things"), std::string::npos);  // zoomed
  EXPECT_EQ(count(searched, "class=\"frame match\""), 3u);          // chain_head, _middle, _tail
  EXPECT_NE(searched.find("matches: "), std::string::npos);
}

TEST_F(HtmlReportE2E, ReportFromTracesAndOneSectionPerProcess) {
  const std::string dir = testing::TempDir() + "/heapscope-html-traces";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const RunOutput run = run_heapscope({"--output", dir}, {program("fork_exec")});
  ASSERT_EQ(run.exit_code, 7) << run.err;  // its own status
  const std::string html = dir + "/report.html";
  const std::string command = heapscope_binary() + " report --quiet --html " + html + " " + dir + " > /dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const std::string dom = rendered_dom(html);
  EXPECT_NE(dom.find("data-js-errors=\"0\""), std::string::npos);
  EXPECT_NE(dom.find("id=\"process-0\""), std::string::npos);
  EXPECT_NE(dom.find("<details class=\"process\" id=\"process-1\""), std::string::npos);  // opened on demand
}

// issue 12 (10): a closed section says on its summary line what it holds: heap errors, leaks.
TEST_F(HtmlReportE2E, ClosedSectionsCarryErrorAndLeakBadges) {
  const std::string dir = testing::TempDir() + "/heapscope-html-badges";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const std::string html = dir + "/report.html";
  const RunOutput run = run_heapscope(
      {"--html", html}, {"sh", "-c", program("leak_shapes") + "; " + program("heap_errors") + " double_free; true"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string dom = rendered_dom(html);
  std::vector<std::string> summaries;
  for (size_t at = dom.find("<summary>"); at != std::string::npos; at = dom.find("<summary>", at + 1))
    summaries.push_back(dom.substr(at, dom.find("</summary>", at) - at));
  auto badged = [&](const std::string& program_name, const std::string& text) {
    for (const std::string& summary : summaries)
      if (summary.find(program_name) != std::string::npos && summary.find("data-role=\"badge\"") != std::string::npos &&
          summary.find(text) != std::string::npos)
        return true;
    return false;
  };
  EXPECT_TRUE(badged("/leak_shapes", "2.05 KiB leaked</span>")) << dom.substr(dom.find("<details"), 3000);
  EXPECT_TRUE(badged("/heap_errors", "1 heap error</span>")) << dom.substr(dom.find("<details"), 3000);
}

TEST_F(HtmlReportE2E, AnUnwritableDestinationFailsBeforeTheProgramRuns) {
  const RunOutput run = run_heapscope({"--html", "/nonexistent/dir/report.html"}, {program("leak_shapes")});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_NE(run.err.find("cannot write the HTML report to /nonexistent/dir/report.html"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace heapscope::test
