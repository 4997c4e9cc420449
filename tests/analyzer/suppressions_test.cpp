// LSan-compatible leak suppressions.
#include "suppressions.h"

#include <gtest/gtest.h>

#include <fstream>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

TEST(Suppressions, MatchesLikeLeakSanitizer) {
  EXPECT_TRUE(pattern_matches("make_list", "make_list"));
  EXPECT_TRUE(pattern_matches("list", "make_list"));          // substring
  EXPECT_TRUE(pattern_matches("^make", "make_list"));
  EXPECT_FALSE(pattern_matches("^list", "make_list"));
  EXPECT_TRUE(pattern_matches("list$", "make_list"));
  EXPECT_FALSE(pattern_matches("make$", "make_list"));
  EXPECT_TRUE(pattern_matches("ma*st", "make_list"));
  EXPECT_TRUE(pattern_matches("^ns::*::run$", "ns::Worker::run"));
  EXPECT_FALSE(pattern_matches("^ns::*::run$", "ns::Worker::runner"));
  EXPECT_TRUE(pattern_matches("libfoo.so", "/usr/lib/libfoo.so.1"));
  EXPECT_FALSE(pattern_matches("", "anything"));
  EXPECT_FALSE(pattern_matches("x", ""));
}

Report report_with_leaks() {
  Report report;
  ProcessReport process;
  LeakRecord in_lib;
  in_lib.blocks = 2;
  in_lib.bytes = 100;
  in_lib.stack = {SymbolizedFrame{1, "strdup", "", 0, "/lib/x86_64-linux-gnu/libc.so.6", false},
                  SymbolizedFrame{2, "third_party::init(int)", "/src/vendor/init.cc", 9, "/usr/lib/libvendor.so", false}};
  LeakRecord ours;
  ours.blocks = 1;
  ours.bytes = 7;
  ours.stack = {SymbolizedFrame{3, "make_list", "/src/list.c", 4, "/bin/app", false}};
  process.leaks = {in_lib, ours};
  report.processes.push_back(process);
  return report;
}

TEST(Suppressions, HideMatchingLeaksAndCountThem) {
  Suppressions suppressions;
  suppressions.add("libvendor.so", "test:1");  // module of any frame
  suppressions.add("nothing_matches", "test:2");
  Report report = report_with_leaks();
  suppressions.apply(report);
  ASSERT_EQ(report.processes[0].leaks.size(), 1u);
  EXPECT_EQ(report.processes[0].leaks[0].stack[0].function, "make_list");
  EXPECT_EQ(report.processes[0].suppressed_blocks, 2u);
  EXPECT_EQ(report.processes[0].suppressed_bytes, 100u);
  ASSERT_EQ(report.suppressions.size(), 2u);
  EXPECT_EQ(report.suppressions[0].hits, 1u);
  EXPECT_EQ(report.suppressions[1].hits, 0u);  // unused ones are listed too: stale entries show
  suppressions.add("/src/list.c", "test:3");  // file of a frame
  suppressions.apply(report);
  EXPECT_TRUE(report.processes[0].leaks.empty());
  EXPECT_EQ(report.processes[0].suppressed_blocks, 3u);
}

TEST(Suppressions, FilesUseLeakLinesAndComments) {
  const std::string path = testing::TempDir() + "/heapscope-supp.txt";
  std::ofstream(path) << "# vendored code\n\nleak:libvendor.so\n  leak:^make_list$  \n";
  Suppressions suppressions;
  suppressions.load(path);
  ASSERT_EQ(suppressions.entries().size(), 2u);
  EXPECT_EQ(suppressions.entries()[1].pattern, "^make_list$");
  EXPECT_EQ(suppressions.entries()[1].origin, path + ":4");
  std::ofstream(path) << "leak:ok\ninterceptor_via_fun:foo\n";
  try {
    Suppressions bad;
    bad.load(path);
    FAIL();
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what()).find(":2: expected 'leak:PATTERN'"), std::string::npos) << error.what();
  }
  EXPECT_THROW(Suppressions().load("/nonexistent/supp"), IoError);
}

TEST(Suppressions, SuggestionSkipsLibcWrappers) {
  const Report report = report_with_leaks();
  EXPECT_EQ(suggested_suppression(report.processes[0].leaks[0]), "leak:third_party::init");
  EXPECT_EQ(suggested_suppression(report.processes[0].leaks[1]), "leak:make_list");
}

}  // namespace
}  // namespace heapscope::analyzer
