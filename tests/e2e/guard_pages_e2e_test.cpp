// --guard-pages (issue 12, point 11): an access past a block's end, or to a freed block, faults
// at the instruction that made it and is reported with that instruction's stack; a correct
// program runs as it does natively. programs/guard_pages.c makes one access per mode.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

using nlohmann::json;

struct FaultCase {
  std::string mode;
  std::string kind;    // the error's kind
  std::string access;  // "read" or "write"
  long offset;         // from the block's start
  long block_size;
  std::string function;  // where the access is
};

void PrintTo(const FaultCase& c, std::ostream* out) { *out << c.mode; }

class GuardPagesE2E : public ::testing::TestWithParam<FaultCase> {};

TEST_P(GuardPagesE2E, TheAccessFaultsAndIsReportedWithItsOwnStack) {
  const FaultCase& c = GetParam();
  const std::vector<std::string> command{program("guard_pages"), c.mode};
  // Natively (and under heapscope without the option) the access goes unnoticed.
  const RunOutput native = run_native(command);
  ASSERT_EQ(native.exit_code, 0) << native.err;
  ASSERT_EQ(native.out, "survived\n");

  const RunOutput run = run_heapscope({"--guard-pages"}, command);
  EXPECT_EQ(run.exit_code, 128 + 11) << run.err;  // killed by SIGSEGV, as Electric Fence does
  EXPECT_EQ(run.out, "");
  ASSERT_FALSE(run.report.is_null()) << run.err;
  const json& process = run.report["processes"][0];
  ASSERT_EQ(process["errors"].size(), 1u) << process["errors"].dump(1);
  const json& error = process["errors"][0];
  EXPECT_EQ(error["kind"], c.kind);
  EXPECT_EQ(error["access"], c.access);
  EXPECT_EQ(error["offset"], c.offset);
  EXPECT_EQ(error["block_size"], c.block_size);
  EXPECT_EQ(error["detected_at_exit"], false);
  // Frame 0 is the faulting line itself, then its caller.
  ASSERT_FALSE(error["stack"].empty());
  EXPECT_TRUE(function_is(error["stack"][0], c.function)) << error["stack"].dump(1);
  EXPECT_EQ(error["stack"][0]["line"], line_of("guard_pages.c", "guard:" + c.mode)) << error["stack"][0].dump();
  ASSERT_GE(error["stack"].size(), 2u);
  EXPECT_TRUE(function_is(error["stack"][1], "main"));
  ASSERT_TRUE(error["alloc_stack"].is_array());
  EXPECT_TRUE(function_is(error["alloc_stack"][0], "main"));
  if (c.kind == "use_after_free") {
    ASSERT_TRUE(error["free_stack"].is_array()) << error.dump(1);
    EXPECT_TRUE(function_is(error["free_stack"][0], "main"));
  }
  EXPECT_NE(run.err.find(c.kind == "overflow" ? "caught by its guard page" : "caught by its inaccessible pages"),
            std::string::npos) << run.err;
  EXPECT_NE(run.err.find("the " + c.access + " at"), std::string::npos) << run.err;

  const RunOutput plain = run_heapscope({}, command);
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "survived\n");
}

INSTANTIATE_TEST_SUITE_P(
    EveryFaultingAccess, GuardPagesE2E,
    ::testing::Values(FaultCase{"write-past-end", "overflow", "write", 16, 10, "write_past_end"},
                      FaultCase{"read-past-end", "overflow", "read", 24, 10, "read_past_end"},
                      FaultCase{"read-after-free", "use_after_free", "read", 3, 10, "read_after_free"},
                      FaultCase{"write-after-free", "use_after_free", "write", 40, 100, "write_after_free"}),
    [](const ::testing::TestParamInfo<FaultCase>& info) {
      std::string name = info.param.mode;
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

// The bytes alignment leaves between a block's end and its guard page hold the tail canary: a
// write there does not fault, and free() reports it, as without the option.
TEST(GuardPagesE2E, TheGapBeforeTheGuardPageIsCheckedAtFree) {
  const RunOutput run = run_heapscope({"--guard-pages"}, {program("guard_pages"), "tail"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "survived\n");
  const json& errors = run.report["processes"][0]["errors"];
  ASSERT_EQ(errors.size(), 1u) << errors.dump(1);
  EXPECT_EQ(errors[0]["kind"], "overflow");
  EXPECT_EQ(errors[0]["offset"], 12);
  EXPECT_TRUE(errors[0]["access"].is_null());
  EXPECT_TRUE(function_is(errors[0]["stack"][0], "main"));  // the free()
}

// A correct program: every API, reallocs, alignments up to a page (and one past it, laid out
// as usual), blocks written end to end, a quarantine small enough that guarded blocks leave it
// (and are unmapped) while the program runs.
TEST(GuardPagesE2E, ACorrectProgramRunsAsItDoesNatively) {
  const std::vector<std::string> command{program("guard_pages"), "clean"};
  const RunOutput native = run_native(command);
  ASSERT_EQ(native.exit_code, 0) << native.err;
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{"--guard-pages"}, std::vector<std::string>{"--guard-pages", "--quarantine-mib", "1"},
        std::vector<std::string>{"--guard-pages", "--quarantine-mib", "0"}}) {
    const RunOutput run = run_heapscope(options, command);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, native.out);
    const json& process = run.report["processes"][0];
    EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
    EXPECT_EQ(process["summary"]["allocations"], process["summary"]["frees"].get<long>() + 1)
        << "all freed but stdout's buffer";
    EXPECT_EQ(process["summary"]["leaks"]["definite"]["blocks"], 0);
  }
}

// Past what vm.max_map_count leaves room for, blocks get the ordinary layout (and a warning),
// never a failed allocation: every mmap would fail at the limit, the allocator's included.
TEST(GuardPagesE2E, BlocksPastTheKernelsMappingLimitGetTheOrdinaryLayout) {
  const RunOutput run = run_heapscope({"--guard-pages"}, {program("guard_pages"), "many"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "many\n");
  EXPECT_NE(run.err.find("blocks have guard pages, as many as vm.max_map_count leaves room for"), std::string::npos)
      << run.err;
  const json& process = run.report["processes"][0];
  EXPECT_EQ(process["errors"].size(), 0u);
  EXPECT_EQ(process["leak_scan"]["classified"], true) << process["leak_scan"].dump();
}

}  // namespace
}  // namespace heapscope::test
