// End-to-end: real programs from tests/e2e/programs run under `heapscope run`; assertions are
// on the JSON report (schema heapscope.report v1) and on what the program itself saw.
#include <fcntl.h>
#include <cstddef>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <csignal>
#include <set>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

using nlohmann::json;

const json& only_process(const RunOutput& run) {
  EXPECT_EQ(run.report["processes"].size(), 1u) << run.err;
  return run.report["processes"][0];
}

TEST(PreloadE2E, ReportsEachLeakShapeAtItsAllocatingFunction) {
  const RunOutput run = run_heapscope({}, {program("leak_shapes")});
  ASSERT_EQ(run.exit_code, 3) << run.err;  // the program's own status passes through
  ASSERT_EQ(run.report["schema"], "heapscope.report");
  ASSERT_EQ(run.report["schema_version"], 1);
  const json& process = only_process(run);
  EXPECT_EQ(process["launched"], true);
  EXPECT_EQ(process["exit"]["code"], 3);
  EXPECT_TRUE(process["exit"]["signal"].is_null());

  const json& summary = process["summary"];
  EXPECT_EQ(summary["allocations"], 20);  // realloc counts as one allocation...
  EXPECT_EQ(summary["frees"], 6);         // ...plus one free of the old block
  EXPECT_EQ(summary["bytes_allocated"], 2374);
  EXPECT_EQ(summary["peak_live_bytes"], 2158);
  EXPECT_EQ(summary["live_at_exit"]["blocks"], 14);
  EXPECT_EQ(summary["live_at_exit"]["bytes"], 2104);
  EXPECT_EQ(summary["error_count"], 0);

  const json& leaks = process["leaks"];
  ASSERT_EQ(leaks.size(), 5u);
  // Largest first; equal bytes: more blocks first.
  const std::vector<std::tuple<std::string, int, int>> expected = {
      {"leak_many_blocks", 10, 1000}, {"leak_after_realloc", 1, 1000}, {"leak_calloc", 1, 63},
      {"leak_one_block", 1, 24}, {"leak_strdup", 1, 17}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [function, blocks, bytes] = expected[i];
    SCOPED_TRACE(function);
    EXPECT_EQ(leaks[i]["kind"], "definite");
    EXPECT_EQ(leaks[i]["blocks"], blocks);
    EXPECT_EQ(leaks[i]["bytes"], bytes);
    EXPECT_EQ(leaks[i]["allocator"], "malloc");
    EXPECT_NE(find_frame(leaks[i]["stack"], function), nullptr) << leaks[i].dump(1);
  }
  // stack[0] is the caller of the allocation function, with file and line.
  const json& top = leaks[3]["stack"][0];
  EXPECT_EQ(top["function"], "leak_one_block");
  EXPECT_TRUE(top["file"].get<std::string>().ends_with("leak_shapes.c"));
  EXPECT_EQ(top["line"], line_of("leak_shapes.c", "keep[0] = malloc(24)"));
  EXPECT_TRUE(top["module"].get<std::string>().ends_with("/leak_shapes"));
  EXPECT_TRUE(top["address"].get<std::string>().starts_with("0x"));
  EXPECT_NE(find_frame(leaks[3]["stack"], "main"), nullptr);
  // strdup's own frame comes first, then the program's.
  EXPECT_EQ(leaks[4]["stack"][1]["function"], "leak_strdup");
}

// issue 12 (10): frames of a stripped program or library were bare addresses, different in every
// run. They now carry the module and the offset in it: the same in every run, what addr2line
// takes.
TEST(PreloadE2E, FramesOfAStrippedProgramAreNamedByModuleAndOffset) {
  const std::string dir = scratch_directory("heapscope-stripped");
  const std::string stripped = dir + "/leak_shapes";
  ASSERT_EQ(run_native({"cp", program("leak_shapes"), stripped}).exit_code, 0);
  ASSERT_EQ(run_native({"strip", "--strip-all", stripped}).exit_code, 0);
  const RunOutput symbols = run_heapscope({}, {program("leak_shapes")});
  const RunOutput bare = run_heapscope({}, {stripped});
  ASSERT_EQ(bare.exit_code, 3) << bare.err;
  const auto named = leaks_from(only_process(symbols), "/leak_shapes");
  const auto unnamed = leaks_from(only_process(bare), "/leak_shapes");
  ASSERT_EQ(named.size(), 4u);  // the fifth leak's innermost frame is strdup's, in libc
  ASSERT_EQ(unnamed.size(), 4u);
  for (size_t i = 0; i < named.size(); ++i) {
    const json& with = named[i]["stack"][0];
    const json& without = unnamed[i]["stack"][0];
    EXPECT_TRUE(without["function"].is_null()) << without.dump();
    EXPECT_EQ(without["module"], stripped);
    EXPECT_EQ(without["module_offset"], with["module_offset"]) << "the same code, the same offset in every run";
    EXPECT_NE(without["module_offset"], without["address"]);
    EXPECT_NE(bare.err.find("??? (in " + stripped + "+" + without["module_offset"].get<std::string>() + ")"),
              std::string::npos) << bare.err;
  }
}

struct ErrorCase {
  std::string argument;
  std::string kind;
  std::string detected_in;    // function expected in the detection stack
  std::string allocated_in;   // "" when the pointer was never allocated
  bool has_free_stack;
  bool at_exit;
  std::string freed_in = "";  // function expected in the free stack
};

void PrintTo(const ErrorCase& c, std::ostream* out) { *out << c.argument; }

class HeapErrorE2E : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(HeapErrorE2E, ReportsOnceWithStacksAndTheProgramCarriesOn) {
  const ErrorCase& c = GetParam();
  const RunOutput run = run_heapscope({"--quarantine-mib", "1"}, {program("heap_errors"), c.argument});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // the program survived its bug
  const json& process = only_process(run);
  ASSERT_EQ(process["errors"].size(), 1u) << process["errors"].dump(1);
  const json& error = process["errors"][0];
  EXPECT_EQ(error["kind"], c.kind);
  EXPECT_EQ(process["summary"]["error_count"], 1);
  EXPECT_EQ(error["detected_at_exit"], c.at_exit);
  if (c.at_exit) {
    EXPECT_TRUE(error["stack"].empty());
  } else {
    EXPECT_NE(find_frame(error["stack"], c.detected_in), nullptr) << error["stack"].dump(1);
    EXPECT_NE(find_frame(error["stack"], "main"), nullptr);
  }
  if (c.allocated_in.empty()) {
    EXPECT_TRUE(error["alloc_stack"].is_null());
    EXPECT_EQ(error["block_size"], 0);
  } else {
    ASSERT_TRUE(error["alloc_stack"].is_array());
    EXPECT_TRUE(function_is(error["alloc_stack"][0], c.allocated_in)) << error["alloc_stack"].dump(1);
    EXPECT_GT(error["block_size"].get<int>(), 0);
  }
  EXPECT_EQ(error["free_stack"].is_array(), c.has_free_stack);
  if (c.has_free_stack) {
    EXPECT_NE(find_frame(error["free_stack"], c.freed_in), nullptr) << error["free_stack"].dump(1);
  }
  // Nothing the program allocated itself is left live: mismatched and damaged blocks were still
  // released, skipped double/invalid frees released nothing.
  EXPECT_TRUE(leaks_from(process, "/heap_errors").empty()) << process["leaks"].dump(1);
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, HeapErrorE2E,
    ::testing::Values(
        ErrorCase{"overflow", "overflow", "overflow", "make_block", false, false},
        ErrorCase{"underflow", "underflow", "underflow", "make_block", false, false},
        ErrorCase{"double_free", "double_free", "double_free", "make_block", true, false, "double_free"},
        ErrorCase{"invalid_free_stack", "invalid_free", "invalid_free_stack", "", false, false},
        ErrorCase{"invalid_free_global", "invalid_free", "invalid_free_global", "", false, false},
        ErrorCase{"invalid_free_interior", "invalid_free", "invalid_free_interior", "", false, false},
        ErrorCase{"malloc_delete", "mismatched_free", "malloc_then_delete", "malloc_then_delete", false, false},
        ErrorCase{"new_free", "mismatched_free", "new_then_free", "new_then_free", false, false},
        ErrorCase{"new_array_delete", "mismatched_free", "new_array_then_delete", "new_array_then_delete", false, false},
        ErrorCase{"use_after_free", "use_after_free", "", "make_block", true, true, "write_after_free"},
        ErrorCase{"use_after_free_evicted", "use_after_free", "write_after_free_evicted", "make_block", true, false,
                  "write_after_free_evicted"}),
    [](const auto& info) { return info.param.argument; });

// The agent must not change what a C program loads: no libstdc++ (its start-up allocations
// would appear in the report, and it changes the program). A compiler quirk once pulled it in
// through the C++ personality routine (see preload/stacks/stack_capture.h).
TEST(PreloadE2E, AgentLoadsNoLibstdcxxIntoACProgram) {
  const RunOutput run = run_heapscope({}, {program("leak_shapes")});
  const json& process = only_process(run);
  ASSERT_GT(process["modules"].size(), 2u);
  for (const json& module : process["modules"])
    EXPECT_EQ(module["path"].get<std::string>().find("libstdc++"), std::string::npos) << module["path"];
}

TEST(PreloadE2E, ErrorDetailsNameTheDamage) {
  const RunOutput double_free = run_heapscope({}, {program("heap_errors"), "double_free"});
  EXPECT_EQ(double_free.report["processes"][0]["errors"][0]["block_size"], 48);

  const RunOutput overflow = run_heapscope({}, {program("heap_errors"), "overflow"});
  const json& error = overflow.report["processes"][0]["errors"][0];
  EXPECT_EQ(error["block_size"], 32);
  EXPECT_EQ(error["offset"], 32);  // the first byte past the end
  EXPECT_EQ(error["allocator"], "malloc");
  EXPECT_EQ(error["release"], "free");

  const RunOutput underflow = run_heapscope({}, {program("heap_errors"), "underflow"});
  EXPECT_EQ(underflow.report["processes"][0]["errors"][0]["offset"], -1);

  const RunOutput mismatch = run_heapscope({}, {program("heap_errors"), "new_array_delete"});
  const json& mismatched = mismatch.report["processes"][0]["errors"][0];
  EXPECT_EQ(mismatched["allocator"], "new[]");
  EXPECT_EQ(mismatched["release"], "delete");

  const RunOutput uaf = run_heapscope({}, {program("heap_errors"), "use_after_free"});
  const json& after = uaf.report["processes"][0]["errors"][0];
  EXPECT_EQ(after["offset"], 5);
  EXPECT_EQ(after["block_size"], 56);
}

TEST(PreloadE2E, StatisticsHistogramTemporariesAndTopSites) {
  const RunOutput run = run_heapscope({}, {program("leak_shapes")});
  const json& statistics = only_process(run)["statistics"];
  // no_leak's five free(malloc(n)) are the only allocations freed before the next one.
  EXPECT_EQ(statistics["temporary_allocations"], 5);
  ASSERT_FALSE(statistics["top_sites"]["by_temporary"].empty());
  EXPECT_EQ(statistics["top_sites"]["by_temporary"][0]["temporary"], 5);
  EXPECT_NE(find_frame(statistics["top_sites"]["by_temporary"][0]["stack"], "no_leak"), nullptr);
  EXPECT_EQ(statistics["top_sites"]["by_count"][0]["allocations"], 10);
  EXPECT_NE(find_frame(statistics["top_sites"]["by_count"][0]["stack"], "leak_many_blocks"), nullptr);
  std::map<long, long> buckets;  // min -> count
  long total = 0;
  for (const json& bucket : statistics["size_histogram"]) {
    buckets[bucket["min"].get<long>()] = bucket["count"].get<long>();
    total += bucket["count"].get<long>();
  }
  EXPECT_EQ(total, 20);
  EXPECT_EQ(buckets, (std::map<long, long>{{8, 1}, {16, 2}, {32, 6}, {64, 10}, {512, 1}}));
}

TEST(PreloadE2E, SamplesOverTimeAllocatorViewAndOverhead) {
  const RunOutput run = run_heapscope({}, {program("leak_shapes")});
  const json& statistics = only_process(run)["statistics"];
  // A sample at start and one at the end, however short the run.
  ASSERT_GE(statistics["timeline"].size(), 2u);
  EXPECT_EQ(statistics["timeline"][0]["live_bytes"], 0);
  EXPECT_EQ(statistics["timeline"].back()["live_bytes"], 2104);
  EXPECT_EQ(statistics["timeline"].back()["live_blocks"], 14);
  EXPECT_GT(statistics["rss_bytes"].get<long>(), 0);
  // glibc underneath: its own view, which holds at least what the program holds.
  ASSERT_TRUE(statistics["allocator"].is_object());
  EXPECT_GE(statistics["allocator"]["uordblks"].get<long>(), 2104);
  EXPECT_GT(statistics["allocator"]["arena"].get<long>(), 0);
  // 14 live blocks: 32-byte headers plus tail canaries (24, 10 x 28, 24, 17 and 31 bytes).
  EXPECT_EQ(statistics["overhead"]["headers_and_canaries"], 14 * 32 + 24 + 10 * 28 + 24 + 17 + 31);
  EXPECT_EQ(statistics["overhead"]["quarantine"], 50 + 51 + 52 + 53 + 54 + 10);  // freed, still held
  // heapscope's share of the RSS, by part, at the highest sample (issue 12, point 10). The
  // last sample is taken before the exit checks: it sees the same blocks and quarantine.
  const json& share = statistics["agent_rss"];
  ASSERT_TRUE(share.is_object()) << statistics.dump();
  EXPECT_GT(share["tables"].get<long>(), 0);
  EXPECT_GT(share["ring"].get<long>(), 0);
  EXPECT_GT(share["image"].get<long>(), 0);
  EXPECT_EQ(share["total"].get<long>(), share["tables"].get<long>() + share["ring"].get<long>() +
                                            share["image"].get<long>() + share["quarantine"].get<long>() +
                                            share["headers_and_canaries"].get<long>());
  EXPECT_LT(share["total"].get<long>(), share["rss_bytes"].get<long>());
  const json& last = statistics["timeline"].back();
  ASSERT_FALSE(last["agent_bytes"].is_null());
  EXPECT_LT(last["agent_bytes"].get<long>(), last["rss_bytes"].get<long>());
  if (last["rss_bytes"] == share["rss_bytes"]) {
    EXPECT_EQ(share["headers_and_canaries"], statistics["overhead"]["headers_and_canaries"]);
    EXPECT_EQ(share["quarantine"], statistics["overhead"]["quarantine"]);
  }

  // Periodic samples while a longer program runs.
  const RunOutput longer = run_heapscope({"--sample-ms", "10"}, {ALLOC_WORKLOAD, "300000", "few"});
  ASSERT_EQ(longer.exit_code, 0) << longer.err;
  const json& longer_statistics = longer.report["processes"][0]["statistics"];
  EXPECT_GE(longer_statistics["timeline"].size(), 5u);
  // A churning program with 16 MiB of quarantine: heapscope's share is measured at every
  // sample, and the quarantine's part is there while the program runs.
  for (const json& point : longer_statistics["timeline"]) {
    ASSERT_FALSE(point["agent_bytes"].is_null());
    EXPECT_LT(point["agent_bytes"].get<long>(), point["rss_bytes"].get<long>());
  }
  const json& busy = longer_statistics["agent_rss"];
  EXPECT_GT(busy["quarantine"].get<long>(), 8 << 20) << busy.dump();
}

// The highest RSS the program reaches when run natively (wait4's ru_maxrss), in bytes.
long native_peak_rss(const std::vector<std::string>& command) {
  const pid_t child = fork();
  if (child == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    exec_or_exit(command);
  }
  int status = 0;
  struct rusage usage {};
  if (child < 0 || wait4(child, &status, 0, &usage) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return -1;
  return usage.ru_maxrss * 1024;
}

// issue 12, point 10: the RSS curve shows heapscope's own memory apart. Without the quarantine
// (whose churn also leaves the allocator holding freed memory, which is not counted as
// heapscope's), the RSS minus heapscope's share peaks where the program alone does natively,
// though the whole RSS is several times that.
TEST(PreloadE2E, TheRssWithoutHeapscopesShareIsTheProgramsOwn) {
  const std::vector<std::string> command{ALLOC_WORKLOAD, "300000", "few"};
  const long native = native_peak_rss(command);
  ASSERT_GT(native, 0);
  const RunOutput run = run_heapscope({"--sample-ms", "10", "--quarantine-mib", "0", "--verbose"}, command);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("heapscope's share of the rss at its highest sample: "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(", quarantine 0, headers and canaries "), std::string::npos) << run.err;
  long whole = 0, without = 0;
  for (const json& point : only_process(run)["statistics"]["timeline"]) {
    whole = std::max(whole, point["rss_bytes"].get<long>());
    without = std::max(without, point["rss_bytes"].get<long>() - point["agent_bytes"].get<long>());
  }
  EXPECT_GT(whole, 2 * native) << "whole " << whole << ", native " << native;
  EXPECT_GT(without, native * 7 / 10) << "without heapscope's share " << without << ", native " << native;
  EXPECT_LT(without, native * 13 / 10) << "without heapscope's share " << without << ", native " << native;
}

// issue 12, point 11: the memory the program maps itself is its own family in the reports:
// by call site, cut by partial munmaps, moved by mremap, with what is still mapped at exit.
TEST(PreloadE2E, TheProgramsOwnMappingsAreReportedBySite) {
  const RunOutput run = run_heapscope({"--verbose"}, {program("mappings")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "mapped\n");
  const json& process = only_process(run);
  const json& mappings = process["mappings"];
  EXPECT_EQ(mappings["calls"]["mmap"], 5);
  EXPECT_EQ(mappings["calls"]["munmap"], 3) << "the unaligned munmap fails and is not counted";
  EXPECT_EQ(mappings["calls"]["mremap"], 1);
  EXPECT_EQ(mappings["at_exit"]["bytes"], (64 + 60 + 2048) * 1024);
  EXPECT_EQ(mappings["at_exit"]["regions"], 4);
  EXPECT_EQ(mappings["peak_bytes"], (64 + 60 + 2048 + 4) * 1024);
  std::map<std::string, long> at_exit_by_function;  // innermost frame -> bytes
  std::map<std::string, long> mapped_by_function;
  for (const json& site : mappings["sites"]) {
    ASSERT_FALSE(site["stack"].empty());
    const std::string function = site["stack"][0]["function"];
    at_exit_by_function[function] += site["at_exit"]["bytes"].get<long>();
    mapped_by_function[function] += site["bytes_mapped"].get<long>();
    if (function == "map_file") {
      EXPECT_EQ(site["kind"], "file_shared");
      EXPECT_EQ(site["stack"][0]["line"], line_of("mappings.c", "mappings:file"));
    } else {
      EXPECT_EQ(site["kind"], "anonymous") << function;
    }
  }
  EXPECT_EQ(at_exit_by_function, (std::map<std::string, long>{
                                     {"map_scratch", 124 * 1024}, {"map_table", 0}, {"grow_table", 2048 * 1024}, {"map_file", 0}}));
  EXPECT_EQ(mapped_by_function["map_scratch"], 3 * 64 * 1024);
  EXPECT_EQ(mapped_by_function["map_file"], 4096);
  // Mapped memory is no leak: nothing is lost, and the text says where the memory went.
  EXPECT_EQ(process["summary"]["leaks"]["definite"]["bytes"], 0);
  EXPECT_NE(run.err.find("mapped with mmap: 2,224,128 bytes still mapped at exit in 4 regions"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("grow_table"), std::string::npos);
  // The timeline's last sample has it too.
  EXPECT_EQ(process["statistics"]["timeline"].back()["mapped_bytes"], (64 + 60 + 2048) * 1024);

  // --track-mmap=no: nothing recorded.
  const RunOutput off = run_heapscope({"--track-mmap=no"}, {program("mappings")});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_EQ(only_process(off)["mappings"]["calls"]["mmap"], 0);
}

TEST(PreloadE2E, SizesAreWhatTheProgramAskedFor) {
  const RunOutput run = run_heapscope({}, {program("sizes")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  std::multiset<long> sizes;
  for (const json& leak : process["leaks"]) {
    EXPECT_EQ(leak["blocks"], 1);
    sizes.insert(leak["bytes"].get<long>());
  }
  const long page = sysconf(_SC_PAGESIZE);
  EXPECT_EQ(sizes, (std::multiset<long>{0, 15, 24, 100, 33, 7, 100, page}));
  EXPECT_EQ(process["summary"]["allocations"], 8);
}

TEST(PreloadE2E, AbortOnErrorStopsAtTheFirstErrorAfterRecordingIt) {
  const RunOutput run = run_heapscope({"--abort-on-error"}, {program("heap_errors"), "double_free"});
  EXPECT_EQ(run.exit_code, 128 + SIGABRT) << run.err;
  EXPECT_NE(run.err.find("aborting (abort_on_error=1)"), std::string::npos) << run.err;
  const json& process = only_process(run);
  EXPECT_EQ(process["exit"]["signal"], SIGABRT);
  ASSERT_EQ(process["errors"].size(), 1u);
  EXPECT_EQ(process["errors"][0]["kind"], "double_free");
}

TEST(PreloadE2E, DoubleAndInvalidFreesAreSkippedAndNotCounted) {
  // Natively glibc aborts on these; under heapscope the program carries on (exit 0, checked in
  // HeapErrorE2E) and the skipped call counts as no free at all.
  for (const char* which : {"double_free", "invalid_free_interior", "invalid_free_stack"}) {
    SCOPED_TRACE(which);
    const RunOutput run = run_heapscope({}, {program("heap_errors"), which});
    const json& summary = run.report["processes"][0]["summary"];
    const int own_frees = std::string(which) == "invalid_free_stack" ? 0 : 1;
    // heap_errors is C++: libstdc++ makes one allocation of its own at start (its emergency
    // exception pool), never freed.
    EXPECT_EQ(summary["allocations"], 1 + own_frees);
    EXPECT_EQ(summary["frees"], own_frees);
  }
}

TEST(PreloadE2E, EveryCAllocationApiKeepsItsContract) {
  const RunOutput run = run_heapscope({}, {program("api_edges")});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // the program checked every result itself
  const json& process = only_process(run);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  EXPECT_EQ(process["leaks"].size(), 0u) << process["leaks"].dump(1);
  EXPECT_EQ(process["summary"]["allocations"], 48);
  EXPECT_EQ(process["summary"]["frees"], 48);
  EXPECT_EQ(process["summary"]["live_at_exit"]["blocks"], 0);
}

TEST(PreloadE2E, EveryOperatorNewAndDeleteFormKeepsItsContract) {
  const RunOutput run = run_heapscope({}, {program("cxx_new")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  EXPECT_TRUE(leaks_from(process, "/cxx_new").empty()) << process["leaks"].dump(1);
}

TEST(PreloadE2E, ThreadsWithCrossThreadFreesAndExitFromAThread) {
  const RunOutput run = run_heapscope({}, {program("threads")});
  ASSERT_EQ(run.exit_code, 5) << run.err;
  const json& process = only_process(run);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  const auto leaks = leaks_from(process, "/threads");
  ASSERT_EQ(leaks.size(), 1u) << process["leaks"].dump(1);
  EXPECT_EQ(leaks[0]["bytes"], 77);
  EXPECT_TRUE(function_is(leaks[0]["stack"][0], "exiter"));
  EXPECT_GE(process["summary"]["allocations"].get<int>(), 80005);
  EXPECT_GE(process["summary"]["frees"].get<int>(), 80004);

  // Thread lifetimes: four workers that return (20,000 allocations and a handoff block each),
  // then the one that calls exit() while running (its 77 bytes; no end).
  const json& threads = process["threads"];
  ASSERT_EQ(threads.size(), 5u) << threads.dump(1);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(threads[i]["parent_thread_id"], process["pid"]);
    EXPECT_EQ(threads[i]["allocations"], 20001);
    ASSERT_TRUE(threads[i]["end_seconds"].is_number());
    EXPECT_GE(threads[i]["end_seconds"].get<double>(), threads[i]["start_seconds"].get<double>());
  }
  EXPECT_EQ(threads[4]["allocations"], 1);
  EXPECT_EQ(threads[4]["bytes_allocated"], 77);
  EXPECT_TRUE(threads[4]["end_seconds"].is_null());
  EXPECT_GE(threads[4]["start_seconds"].get<double>(), threads[3]["end_seconds"].get<double>());
  const RunOutput verbose = run_heapscope({"--verbose"}, {program("threads")});
  EXPECT_NE(verbose.err.find("threads: 5 started, 4 ended; most allocations: thread "), std::string::npos)
      << verbose.err;
}

TEST(PreloadE2E, ForkedChildIsItsOwnProcessWithItsOwnLeaks) {
  const RunOutput run = run_heapscope({}, {program("fork_exec")});
  ASSERT_EQ(run.exit_code, 7) << run.err;
  const json& processes = run.report["processes"];
  ASSERT_EQ(processes.size(), 2u) << run.report.dump(1);
  const json& parent = processes[0];
  const json& child = processes[1];
  EXPECT_EQ(parent["launched"], true);
  EXPECT_EQ(child["parent_pid"], parent["pid"]);
  EXPECT_EQ(child["exit"]["code"], 7);
  ASSERT_EQ(parent["leaks"].size(), 1u);
  EXPECT_EQ(parent["leaks"][0]["bytes"], 222);
  ASSERT_EQ(child["leaks"].size(), 1u);
  EXPECT_EQ(child["leaks"][0]["bytes"], 111);
}

// The child's stack ids start afresh: what the parent's walker remembered about a call site (its
// stack id) must not label the child's allocations from that same site.
TEST(PreloadE2E, ForkedChildAllocatingFromTheParentsCallSiteGetsItsOwnStacks) {
  const RunOutput run = run_heapscope({}, {program("fork_same_site")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& processes = run.report["processes"];
  ASSERT_EQ(processes.size(), 2u) << run.report.dump(1);
  EXPECT_TRUE(leaks_from(processes[0], "/fork_same_site").empty()) << processes[0]["leaks"].dump(1);
  const json& child = processes[1];
  ASSERT_EQ(child["leaks"].size(), 3u) << child["leaks"].dump(1);
  for (const json& leak : child["leaks"]) {
    const std::string function = leak["stack"][0]["function"];
    if (leak["bytes"] == 123) EXPECT_EQ(function, "make") << leak.dump(1);
    else if (leak["bytes"] == 77) EXPECT_EQ(function, "other") << leak.dump(1);
    else if (leak["bytes"] == 8) EXPECT_EQ(function, "deeper") << leak.dump(1);
    else ADD_FAILURE() << "unexpected leak " << leak.dump(1);
  }
}

// A thread's walker table is unmapped by the agent's end-of-thread hook; what the thread
// allocates after that (a later key's destructor) is walked by libunwind, whole.
TEST(PreloadE2E, AllocationAfterTheThreadEndHookStillHasItsWholeStack) {
  const RunOutput run = run_heapscope({}, {program("thread_end_alloc")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto leaks = leaks_from(only_process(run), "/thread_end_alloc");
  ASSERT_EQ(leaks.size(), 1u) << only_process(run)["leaks"].dump(1);
  EXPECT_EQ(leaks[0]["bytes"], 99);
  const json& stack = leaks[0]["stack"];
  EXPECT_EQ(stack[0]["function"], "late_alloc") << stack.dump(1);
  EXPECT_EQ(stack[0]["line"], line_of("thread_end_alloc.c", "kept = malloc(99)"));
  EXPECT_NE(find_frame(stack, "on_late_key"), nullptr) << stack.dump(1);
  EXPECT_GE(stack.size(), 4u) << stack.dump(1);  // on through glibc's thread exit
}

// One program run twice by a shell: two processes with the program and libc at their own
// addresses (ASLR). The report opens each file once and must still name every frame right in
// both.
TEST(PreloadE2E, TheSameProgramInTwoProcessesIsSymbolizedInEach) {
  const std::string leaky = program("leak_shapes");
  const RunOutput run = run_heapscope({}, {"sh", "-c", leaky + "; " + leaky});
  ASSERT_EQ(run.exit_code, 3) << run.err;
  std::vector<std::string> addresses;
  for (const json& process : run.report["processes"]) {
    if (!process["command"][0].get<std::string>().ends_with("/leak_shapes")) continue;
    SCOPED_TRACE(process["pid"].dump());
    bool found = false;
    for (const json& leak : process["leaks"]) {
      if (leak["bytes"] != 24) continue;
      const json& top = leak["stack"][0];
      EXPECT_EQ(top["function"], "leak_one_block");
      EXPECT_EQ(top["line"], line_of("leak_shapes.c", "keep[0] = malloc(24)"));
      EXPECT_NE(find_frame(leak["stack"], "main"), nullptr);
      EXPECT_NE(find_frame(leak["stack"], "__libc_start_call_main"), nullptr) << leak["stack"].dump(1);
      addresses.push_back(top["address"]);
      found = true;
    }
    EXPECT_TRUE(found) << process["leaks"].dump(1);
  }
  ASSERT_EQ(addresses.size(), 2u) << run.report.dump(1);
  // With ASLR (the default) the two processes load the program at different addresses, which is
  // what this test is about; without it the names are checked all the same.
  if (addresses[0] == addresses[1]) std::cerr << "note: both processes at one address (ASLR off?)\n";
}

TEST(PreloadE2E, ExecReleasesTheOldImageAndTracesTheNewOne) {
  const RunOutput run = run_heapscope({}, {program("fork_exec"), "exec"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& processes = run.report["processes"];
  ASSERT_EQ(processes.size(), 2u) << run.report.dump(1);
  const json& leaf = processes[1];
  EXPECT_EQ(leaf["command"].back(), "leaf");
  EXPECT_EQ(leaf["exit"]["code"], 0);
  ASSERT_EQ(leaf["leaks"].size(), 1u);
  EXPECT_EQ(leaf["leaks"][0]["bytes"], 333);
  for (const json& process : processes)
    for (const json& leak : process["leaks"]) EXPECT_NE(leak["bytes"], 444) << "exec released it";
}

TEST(PreloadE2E, ExecleKeepsItsOwnEnvironment) {
  // Regression: the execle wrapper once passed the argument list's NULL as the environment.
  const RunOutput run = run_heapscope({}, {program("fork_exec"), "execle"});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // the leaf saw FORK_EXEC_MARKER
  const json& processes = run.report["processes"];
  ASSERT_EQ(processes.size(), 2u) << run.report.dump(1);
  EXPECT_EQ(processes[1]["command"].back(), "execle");
  EXPECT_EQ(processes[1]["leaks"][0]["bytes"], 333);
}

TEST(PreloadE2E, SignalHandlerThatAllocatesIsSafe) {
  const RunOutput run = run_heapscope({}, {program("signal_alloc")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  EXPECT_EQ(process["leaks"].size(), 0u) << process["leaks"].dump(1);
}

TEST(PreloadE2E, ForkWhileOtherThreadsAllocateDoesNotDeadlock) {
  const RunOutput run = run_heapscope({}, {program("fork_threads")});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // every child ran to completion
  const json& processes = run.report["processes"];
  EXPECT_EQ(processes.size(), 41u);  // the parent and its 40 children
  for (const json& process : processes) {
    EXPECT_EQ(process["errors"].size(), 0u) << process.dump(1);
    EXPECT_TRUE(leaks_from(process, "/fork_threads").empty()) << process["leaks"].dump(1);
  }
}

// issue 12: a statically linked program ran untraced without a word ("0 processes traced").
TEST(PreloadE2E, AStaticallyLinkedProgramIsNamedAsNotTraced) {
  const RunOutput run = run_heapscope({}, {program("static_sleeper")});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(run.report["untraced_processes"].size(), 1u) << run.report.dump(1).substr(0, 1000);
  EXPECT_EQ(run.report["untraced_processes"][0]["exe"], program("static_sleeper"));
  EXPECT_NE(run.report["untraced_processes"][0]["reason"].get<std::string>().find("statically linked"),
            std::string::npos);
  EXPECT_NE(run.err.find("static_sleeper was not traced: it is statically linked"), std::string::npos) << run.err;
  // Started by a traced process: the shell's image that exec'd it names it.
  const RunOutput child = run_heapscope({}, {"sh", "-c", program("static_sleeper") + "; true"});
  EXPECT_EQ(child.exit_code, 0) << child.err;
  ASSERT_EQ(child.report["untraced_processes"].size(), 1u) << child.report.dump(1).substr(0, 1000);
  EXPECT_EQ(child.report["untraced_processes"][0]["exe"], program("static_sleeper"));
  EXPECT_TRUE(run_heapscope({}, {program("leak_shapes")}).report["untraced_processes"].empty());
}

// issue 12: the peak counted a moved realloc's old and new blocks at once (384 KiB here).
TEST(PreloadE2E, APeakNeverCountsBothBlocksOfARealloc) {
  const RunOutput run = run_heapscope({}, {program("realloc_peak")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& summary = only_process(run)["summary"];
  EXPECT_EQ(summary["allocations"], 2);
  EXPECT_EQ(summary["peak_live_bytes"], 256 << 10);
}

// issue 15: the agent's dlopen made itself glibc's caller, so the program's RUNPATH and
// $ORIGIN were replaced by the agent's and both loads failed.
TEST(PreloadE2E, DlopenSearchesTheProgramsOwnRunpathAndOrigin) {
  const RunOutput native = run_native({program("origin_host")});
  ASSERT_EQ(native.exit_code, 0) << native.out;
  const RunOutput run = run_heapscope({}, {program("origin_host")});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(run.out, native.out);
  const auto from_plugin = leaks_from(only_process(run), "/plugins/libplugin.so");
  ASSERT_EQ(from_plugin.size(), 1u) << only_process(run)["leaks"].dump(1);
  EXPECT_EQ(from_plugin[0]["stack"][0]["function"], "plugin_leak");
}

TEST(PreloadE2E, LeakInADlclosedLibraryIsSymbolizedInThatLibrary) {
  const RunOutput run = run_heapscope({}, {program("dlopen_host"), program("plugin.so")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  const auto from_plugin = leaks_from(process, "/plugin.so");
  ASSERT_EQ(from_plugin.size(), 1u) << process["leaks"].dump(1);
  EXPECT_EQ(from_plugin[0]["bytes"], 555);
  const json& frame = from_plugin[0]["stack"][0];
  EXPECT_EQ(frame["function"], "plugin_leak");
  EXPECT_TRUE(frame["file"].get<std::string>().ends_with("plugin.c"));
  EXPECT_EQ(frame["line"], line_of("plugin.c", "plugin_keep = malloc(555)"));
  const auto from_host = leaks_from(process, "/dlopen_host");
  ASSERT_EQ(from_host.size(), 1u);
  EXPECT_EQ(from_host[0]["bytes"], 666);
  // Its global went away with it: nothing points to its block any more.
  EXPECT_EQ(from_plugin[0]["kind"], "definite");

  // The module list says when the plugin came and went (dlopen, dlclose).
  bool plugin_seen = false;
  for (const json& module : process["modules"]) {
    if (module["path"].get<std::string>().ends_with("/plugin.so")) {
      plugin_seen = true;
      ASSERT_TRUE(module["unloaded_seconds"].is_number()) << module.dump();
      EXPECT_GE(module["unloaded_seconds"].get<double>(), module["loaded_seconds"].get<double>());
    } else {
      EXPECT_TRUE(module["unloaded_seconds"].is_null()) << module.dump();
    }
  }
  EXPECT_TRUE(plugin_seen);
}

TEST(PreloadE2E, ChildrenOfPosixSpawnAndSystemAreTraced) {
  const RunOutput run = run_heapscope({}, {program("spawn")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& processes = run.report["processes"];
  int children = 0;
  for (const json& process : processes) {
    if (process["command"].size() == 2 && process["command"][1] == "child") {
      ++children;
      EXPECT_EQ(process["exit"]["code"], 4);
      ASSERT_EQ(process["leaks"].size(), 1u);
      EXPECT_EQ(process["leaks"][0]["bytes"], 321);
    }
  }
  EXPECT_EQ(children, 2) << run.report.dump(1);  // the posix_spawn child and the system() one
  EXPECT_EQ(processes[0]["launched"], true);
  EXPECT_TRUE(leaks_from(processes[0], "/spawn").empty());
}

class CrashE2E : public ::testing::TestWithParam<std::pair<std::string, int>> {};

TEST_P(CrashE2E, ReportOfEverythingUpToTheCrashAndHowItEnded) {
  const auto& [how, signal_number] = GetParam();
  const RunOutput run = run_heapscope({}, {program("crash"), how});
  EXPECT_EQ(run.exit_code, 128 + signal_number) << run.err;
  const json& process = only_process(run);
  EXPECT_TRUE(process["exit"]["code"].is_null());
  EXPECT_EQ(process["exit"]["signal"], signal_number);
  const auto leaks = leaks_from(process, "/crash");
  ASSERT_EQ(leaks.size(), 1u) << process["leaks"].dump(1);
  EXPECT_EQ(leaks[0]["bytes"], 777);
  EXPECT_TRUE(function_is(leaks[0]["stack"][0], "leak_before_crash"));
  EXPECT_NE(run.err.find(std::string("killed by signal ") + std::to_string(signal_number)), std::string::npos)
      << run.err;
  // issue 12: classified before the signal killed it (as memcheck does), except by SIGKILL,
  // which nothing in the process sees.
  EXPECT_EQ(process["leak_scan"]["classified"].get<bool>(), signal_number != SIGKILL) << process["leak_scan"].dump();
  if (signal_number != SIGKILL) {
    EXPECT_EQ(leaks[0]["kind"], "reachable");  // `keep` is a global
  }
}

INSTANTIATE_TEST_SUITE_P(Signals, CrashE2E,
                         ::testing::Values(std::make_pair(std::string("segv"), SIGSEGV),
                                           std::make_pair(std::string("kill"), SIGKILL),
                                           std::make_pair(std::string("abort"), SIGABRT),
                                           std::make_pair(std::string("term"), SIGTERM),
                                           std::make_pair(std::string("pipe"), SIGPIPE)),
                         [](const auto& info) { return info.param.first; });

TEST(CrashE2E, ACrashedGrandchildSaysWhichSignalEndedIt) {
  // `; true` makes the shell fork the program instead of exec'ing it: heapscope cannot wait for
  // it, so the signal comes from the agent's own record.
  const std::string command = program("crash") + " segv; " + program("crash") + " kill; true";
  const RunOutput run = run_heapscope({}, {"sh", "-c", command});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  int crashed = 0;
  for (const json& process : run.report["processes"]) {
    if (process["launched"] == true) continue;
    ++crashed;
    ASSERT_EQ(leaks_from(process, "/crash").size(), 1u) << process.dump(1);
    if (process["command"][1] == "segv") {
      EXPECT_EQ(process["exit"]["signal"], SIGSEGV);
    } else {
      // SIGKILL cannot be seen from inside; the report says it does not know.
      EXPECT_TRUE(process["exit"]["signal"].is_null());
      EXPECT_TRUE(process["exit"]["code"].is_null());
    }
  }
  EXPECT_EQ(crashed, 2) << run.report.dump(1);
}

TEST(RunCommandE2E, NoFollowChildrenTracesOnlyTheLaunchedProgram) {
  const RunOutput forked = run_heapscope({"--no-follow-children"}, {program("fork_exec")});
  ASSERT_EQ(forked.exit_code, 7) << forked.err;  // the untraced child still ran normally
  ASSERT_EQ(forked.report["processes"].size(), 1u) << forked.report.dump(1);
  EXPECT_EQ(forked.report["processes"][0]["leaks"][0]["bytes"], 222);

  const RunOutput shell = run_heapscope({"--no-follow-children"}, {"sh", "-c", program("crash") + "; true"});
  ASSERT_EQ(shell.exit_code, 0) << shell.err;
  ASSERT_EQ(shell.report["processes"].size(), 1u) << shell.report.dump(1);
  EXPECT_EQ(shell.report["processes"][0]["command"][0], "sh");

  const RunOutput spawned = run_heapscope({"--no-follow-children"}, {program("spawn")});
  ASSERT_EQ(spawned.exit_code, 0) << spawned.err;
  EXPECT_EQ(spawned.report["processes"].size(), 1u) << spawned.report.dump(1);
}

// Runs with --output into a fresh directory; returns the directory.
std::string run_with_traces(const std::vector<std::string>& command, RunOutput& run) {
  std::string dir = testing::TempDir() + "/heapscope-traces-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
  run = run_heapscope({"--output", dir}, command);
  return dir;
}

RunOutput report_of(const std::vector<std::string>& arguments) {
  // A directory of its own: tests run in parallel processes (ctest -j).
  std::string dir = testing::TempDir() + "/heapscope-report-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
  const std::string json_path = dir + "/report.json";
  std::vector<std::string> argv = {heapscope_binary(), "report", "--json", json_path};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  RunOutput output = run_native(argv);
  std::ifstream in(json_path);
  if (in) output.report = json::parse(in);
  return output;
}

// Traces pack alloc and free events and name blocks by ordinal (docs/trace-format.md): the
// reports from them must not differ in anything, leak kinds and ignored blocks included.
TEST(TraceE2E, ReportFromTracesEqualsTheLiveReport) {
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{program("fork_exec"), "exec"}, {program("leak_shapes")},
        {program("heap_errors"), "double_free"}, {program("crash"), "segv"}, {program("spawn")},
        {program("leak_kinds")}, {program("client_api")}, {program("threads")}}) {
    SCOPED_TRACE(command[0]);
    RunOutput run;
    const std::string dir = run_with_traces(command, run);
    EXPECT_NE(run.err.find("trace written to " + dir), std::string::npos) << run.err;
    const RunOutput report = report_of({dir});
    ASSERT_EQ(report.exit_code, 0) << report.err;
    EXPECT_TRUE(report.report == run.report) << json::diff(run.report, report.report).dump(1);
  }
}

TEST(TraceE2E, TracesAreOwnerOnlyAndNamedAfterTheProgram) {
  RunOutput run;
  const std::string dir = run_with_traces({program("leak_shapes")}, run);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_TRUE(entry.path().filename().string().starts_with("heapscope.leak_shapes."));
    EXPECT_EQ(entry.status().permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  EXPECT_EQ(files, 1);
}

TEST(TraceE2E, ReportTextGoesToStdoutAndGatesLikeRun) {
  RunOutput run;
  const std::string dir = run_with_traces({program("leak_shapes")}, run);
  const RunOutput text = run_native({heapscope_binary(), "report", "--error-exitcode", "9", dir});
  EXPECT_EQ(text.exit_code, 9);
  EXPECT_NE(text.out.find("leak_one_block"), std::string::npos) << text.out;
}

TEST(TraceE2E, ReportTextDestinations) {
  RunOutput run;
  const std::string dir = run_with_traces({program("leak_shapes")}, run);
  const std::string log = dir + "/report.txt";
  const RunOutput to_log = run_native({heapscope_binary(), "report", "--log-file", log, dir});
  EXPECT_EQ(to_log.exit_code, 0);
  EXPECT_TRUE(to_log.out.empty()) << to_log.out;
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("leak_one_block"), std::string::npos);
  const std::string json_path = dir + "/r.json";
  EXPECT_TRUE(run_native({heapscope_binary(), "report", "--json", json_path, dir}).out.empty());  // JSON only
  const RunOutput both = run_native({heapscope_binary(), "report", "--json", json_path, "--text", dir});
  EXPECT_NE(both.out.find("leak_one_block"), std::string::npos) << both.out;
}

TEST(TraceE2E, BadTracesGetAOneLineMessageAndStatus125) {
  RunOutput run;
  const std::string dir = run_with_traces({program("leak_shapes")}, run);
  std::string trace;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) trace = entry.path().string();
  const std::string bad = dir + "/bad.trace.zst";
  auto expect_rejected = [&](const std::string& content, const std::string& message) {
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << content;
    const RunOutput result = run_native({heapscope_binary(), "report", bad});
    EXPECT_EQ(result.exit_code, 125) << message;
    EXPECT_NE(result.err.find(message), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  };
  std::ifstream in(trace, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  expect_rejected("", "is empty, not a heapscope trace");
  expect_rejected("#!/bin/sh\necho not a trace\n", "is not a heapscope trace");
  std::string future = good;
  future[8] = static_cast<char>(future[8] + 1);  // the version field
  expect_rejected(future, "this heapscope reads version");
  std::string garbled = good;
  for (size_t i = 40; i < garbled.size(); ++i) garbled[i] = static_cast<char>(garbled[i] ^ 0x5a);
  expect_rejected(garbled, "corrupt");

  const RunOutput missing = run_native({heapscope_binary(), "report", "/nonexistent/trace"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("cannot open trace /nonexistent/trace"), std::string::npos) << missing.err;
  const RunOutput nothing = run_native({heapscope_binary(), "report"});
  EXPECT_EQ(nothing.exit_code, 125);
  const RunOutput unwritable = run_heapscope({"--output", "/nonexistent/dir"}, {program("leak_shapes")});
  EXPECT_EQ(unwritable.exit_code, 125);
  EXPECT_NE(unwritable.err.find("cannot write traces to /nonexistent/dir"), std::string::npos) << unwritable.err;
}

TEST(TraceE2E, ATruncatedTraceStillReportsWhatItHolds) {
  RunOutput run;
  const std::string dir = run_with_traces({program("threads")}, run);  // 80k allocations
  // First the whole run: a failure below then says what the trace held, not only that half of
  // it held too little. (The program exits 5 from a worker thread; 80,005 allocations.)
  ASSERT_EQ(run.exit_code, 5) << run.err;
  ASSERT_GE(run.report["processes"][0]["summary"]["allocations"].get<int>(), 80000) << run.err;
  std::vector<std::string> traces;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) traces.push_back(entry.path().string());
  ASSERT_EQ(traces.size(), 1u);
  const std::string& trace = traces[0];
  const auto whole = std::filesystem::file_size(trace);
  std::filesystem::resize_file(trace, whole / 2);  // the collector died
  const RunOutput report = report_of({trace});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(report.err.find("reporting what it holds"), std::string::npos) << report.err;
  const json& process = report.report["processes"][0];
  EXPECT_EQ(process["complete"], false);
  // The writer flushes every 256 KiB of records (about 6,500 events), so what came before the
  // last flush in the first half survives. How many that is depends on how well the events
  // packed: threads that ran one at a time pack to a few bytes per thousand.
  EXPECT_GT(process["summary"]["allocations"].get<int>(), 1000) << "trace of " << whole << " bytes cut in half";
  EXPECT_LT(process["summary"]["allocations"].get<int>(), 80000);
}

// issue 12: --output on a regular file said "Permission denied"; a missing directory was refused;
// a --log-file that could not be written lost the report and replaced the status with 125.
TEST(RunCommandE2E, OutputProblemsAreNamedAndNeverCostTheReportOrTheStatus) {
  const std::string dir = scratch_directory("heapscope-outputs");
  std::ofstream(dir + "/file") << "x";
  const RunOutput file = run_native({heapscope_binary(), "run", "--output", dir + "/file", "--", "true"});
  EXPECT_EQ(file.exit_code, 125);
  EXPECT_NE(file.err.find("it is not a directory (--output takes a directory)"), std::string::npos) << file.err;
  const RunOutput made = run_native({heapscope_binary(), "run", "--quiet", "--output", dir + "/new", "--", "true"});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/new"));
  EXPECT_FALSE(std::filesystem::is_empty(dir + "/new"));
  if (std::filesystem::exists("/dev/full")) {
    const RunOutput full = run_native({heapscope_binary(), "run", "--log-file", "/dev/full", "--", program("leak_shapes")});
    EXPECT_EQ(full.exit_code, 3);  // leak_shapes' own status, not 125
    EXPECT_NE(full.err.find("cannot write the text report to /dev/full"), std::string::npos) << full.err;
    EXPECT_NE(full.err.find("LEAK SUMMARY"), std::string::npos) << "the report went to stderr instead";
  }
}

TEST(RunCommandE2E, SuppressionsHideLeaksCountThemAndOpenTheGate) {
  const std::string dir = scratch_directory("heapscope-supp");
  const std::string first = dir + "/a.supp";
  const std::string second = dir + "/b.supp";
  std::ofstream(first) << "# the list is intentional\nleak:leak_many_blocks\nleak:^leak_calloc$\n";
  std::ofstream(second) << "leak:leak_shapes.c\n";  // a file: hides the rest
  const RunOutput some = run_heapscope({"--suppressions", first, "--error-exitcode", "9"}, {program("leak_shapes")});
  EXPECT_EQ(some.exit_code, 9);
  const json& process = some.report["processes"][0];
  EXPECT_EQ(process["leaks"].size(), 3u) << process["leaks"].dump(1);
  EXPECT_EQ(process["suppressed"]["blocks"], 11);
  EXPECT_EQ(process["suppressed"]["bytes"], 1063);
  // The built-in list first (it hides nothing here), then the file's entries in order.
  ASSERT_EQ(some.report["suppressions"].size(), 3u);
  EXPECT_EQ(some.report["suppressions"][0]["origin"], "built-in");
  EXPECT_EQ(some.report["suppressions"][0]["hits"], 0);
  EXPECT_EQ(some.report["suppressions"][1]["hits"], 1);
  EXPECT_NE(some.err.find("suppressed: 1,063 bytes in 11 blocks"), std::string::npos) << some.err;

  const RunOutput all = run_heapscope({"--suppressions", first, "--suppressions", second, "--error-exitcode", "9"},
                                      {program("leak_shapes")});
  EXPECT_EQ(all.exit_code, 3);  // nothing left to gate on: the program's own status
  EXPECT_TRUE(all.report["processes"][0]["leaks"].empty());

  const RunOutput generated = run_heapscope({"--gen-suppressions"}, {program("leak_shapes")});
  EXPECT_NE(generated.err.find("leak:leak_many_blocks\n"), std::string::npos) << generated.err;
  EXPECT_NE(generated.err.find("leak:leak_strdup\n"), std::string::npos) << generated.err;

  std::ofstream(dir + "/bad.supp") << "leak_without_prefix\n";
  const RunOutput bad = run_heapscope({"--suppressions", dir + "/bad.supp"}, {program("leak_shapes")});
  EXPECT_EQ(bad.exit_code, 125);  // refused before the program ran
  EXPECT_NE(bad.err.find("bad.supp:1: expected 'leak:PATTERN'"), std::string::npos) << bad.err;
}

TEST(RunCommandE2E, CollapsedStacksAddUpToTheReportsFigures) {
  const std::string dir = scratch_directory("heapscope-collapsed");
  const std::map<std::string, std::string> figure = {
      {"leaked", "/live_at_exit/bytes"}, {"peak", "/peak_live_bytes"}, {"allocated", "/bytes_allocated"},
      {"count", "/allocations"}};
  for (const auto& [cost, pointer] : figure) {
    SCOPED_TRACE(cost);
    const std::string path = dir + "/" + cost + ".folded";
    const RunOutput run = run_heapscope({"--collapsed", path, "--cost", cost}, {program("leak_shapes")});
    ASSERT_EQ(run.exit_code, 3) << run.err;
    std::ifstream in(path);
    long total = 0;
    int lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
      EXPECT_TRUE(line.starts_with("leak_shapes[")) << line;  // one root per process
      EXPECT_NE(line.find(";main;"), std::string::npos) << line;  // outermost first
      total += std::stol(line.substr(line.rfind(' ') + 1));
    }
    EXPECT_GT(lines, 0);
    EXPECT_EQ(total, run.report["processes"][0]["summary"][json::json_pointer(pointer)].get<long>());
  }
  EXPECT_EQ(run_heapscope({"--collapsed", dir + "/x", "--cost", "weight"}, {program("leak_shapes")}).exit_code, 125);
}

TEST(RunCommandE2E, ThresholdsGateOnLeakedBytesAndPeak) {
  // leak_shapes leaks 2104 bytes and peaks at 2158; its own status is 3.
  EXPECT_EQ(run_heapscope({"--fail-on-leak-bytes", "2104"}, {program("leak_shapes")}).exit_code, 3);
  const RunOutput over = run_heapscope({"--fail-on-leak-bytes", "2K"}, {program("leak_shapes")});
  EXPECT_EQ(over.exit_code, 23);  // LSan's default when no --error-exitcode
  EXPECT_NE(over.err.find("2104 bytes leaked is above --fail-on-leak-bytes 2048"), std::string::npos) << over.err;
  EXPECT_EQ(run_heapscope({"--fail-on-leak-bytes", "4K", "--error-exitcode", "9"}, {program("leak_shapes")}).exit_code, 3);
  EXPECT_EQ(run_heapscope({"--max-peak", "2158"}, {program("leak_shapes")}).exit_code, 3);
  const RunOutput peak = run_heapscope({"--max-peak", "2157", "--error-exitcode", "9"}, {program("leak_shapes")});
  EXPECT_EQ(peak.exit_code, 9);
  EXPECT_NE(peak.err.find("peak 2158 bytes is above --max-peak 2157"), std::string::npos) << peak.err;
  // Errors still trip --error-exitcode whatever the leak threshold.
  EXPECT_EQ(run_heapscope({"--fail-on-leak-bytes", "1M", "--error-exitcode", "9"}, {program("heap_errors"), "overflow"}).exit_code, 9);
  EXPECT_EQ(run_heapscope({"--max-peak", "lots"}, {program("leak_shapes")}).exit_code, 125);
}

TEST(DiffE2E, ANewLeakSiteBetweenTwoRealRunsIsARegression) {
  const std::string dir = scratch_directory("heapscope-diff");
  std::ofstream(dir + "/hide.supp") << "leak:leak_calloc\n";
  // The base run does not see the calloc leak (suppressed), the new one does.
  const std::string base = dir + "/base.json";
  const std::string again = dir + "/again.json";
  const std::string current = dir + "/new.json";
  run_native({heapscope_binary(), "run", "--json", base, "--suppressions", dir + "/hide.supp", "--", program("leak_shapes")});
  run_native({heapscope_binary(), "run", "--json", again, "--suppressions", dir + "/hide.supp", "--", program("leak_shapes")});
  run_native({heapscope_binary(), "run", "--json", current, "--", program("leak_shapes")});
  const RunOutput same = run_native({heapscope_binary(), "diff", base, again});
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;  // ASLR moved every address; nothing changed
  const RunOutput worse = run_native({heapscope_binary(), "diff", "--json", dir + "/diff.json", base, current});
  EXPECT_EQ(worse.exit_code, 1);
  EXPECT_NE(worse.out.find("REGRESSION: leak_shapes: new leak 0 -> 63 bytes at leak_calloc"), std::string::npos)
      << worse.out;
  std::ifstream in(dir + "/diff.json");
  const json diff = json::parse(in);
  EXPECT_EQ(diff["regressed"], true);
  const RunOutput prefix = run_native({heapscope_binary(), "diff", "--jsonx", dir + "/x.json", base, current});
  EXPECT_EQ(prefix.exit_code, 125);  // options match whole, not by prefix
  EXPECT_NE(prefix.err.find("unknown option '--jsonx'"), std::string::npos) << prefix.err;
  const RunOutput bad = run_native({heapscope_binary(), "diff", base, dir + "/hide.supp"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("is not valid JSON"), std::string::npos) << bad.err;
}

TEST(DiffE2E, BlocksStillReachableAreNotRegressions) {
  const std::string dir = scratch_directory("heapscope-diff-reachable");
  // The same program, once with one thread more: its start (pthread_create at another line of
  // main) adds a reachable site, and no lost one.
  const std::string base = dir + "/base.json";
  const std::string current = dir + "/new.json";
  run_native({heapscope_binary(), "run", "--json", base, "--", program("leak_kinds")});
  run_native({heapscope_binary(), "run", "--json", current, "--", program("leak_kinds"), "blocked"});
  auto reachable_sites = [](const std::string& path) {
    std::ifstream in(path);
    const json report = json::parse(in);
    size_t sites = 0;
    for (const json& leak : report["processes"][0]["leaks"]) sites += leak["kind"] == "reachable" ? 1 : 0;
    return sites;
  };
  ASSERT_GT(reachable_sites(current), reachable_sites(base));
  const RunOutput diff = run_native({heapscope_binary(), "diff", base, current});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
  EXPECT_EQ(diff.out.find("REGRESSION"), std::string::npos) << diff.out;
}

TEST(RunCommandE2E, ColorsOnlyOnATerminalUnlessNoColor) {
  const std::string escape = "\x1b[";
  EXPECT_EQ(run_heapscope({}, {program("leak_shapes")}).err.find(escape), std::string::npos);  // piped
  EXPECT_NE(run_heapscope({"--color=always"}, {program("leak_shapes")}).err.find(escape), std::string::npos);
  if (!program_exists("script")) GTEST_SKIP() << "script(1) is needed to run under a terminal";
  // script(1) gives heapscope a real pseudo-terminal as stderr.
  const std::string command = heapscope_binary() + " run -- " + program("leak_shapes");
  const RunOutput terminal = run_native({"script", "-qec", command, "/dev/null"});
  EXPECT_NE(terminal.out.find(escape), std::string::npos) << terminal.out;
  const RunOutput no_color = run_native({"script", "-qec", "NO_COLOR=1 " + command, "/dev/null"});
  EXPECT_EQ(no_color.out.find(escape), std::string::npos);
  EXPECT_NE(no_color.out.find("leak_one_block"), std::string::npos) << no_color.out;
  EXPECT_EQ(run_heapscope({"--color=sometimes"}, {program("leak_shapes")}).exit_code, 125);
}

TEST(RunCommandE2E, TextHasASectionPerProcessWithSomethingToReport) {
  // A shell running two clean helpers (coreutils true frees everything) and a leaking program.
  const std::string script = "/bin/true; /bin/true; " + program("leak_shapes") + "; true";
  const RunOutput run = run_heapscope({}, {"sh", "-c", script});
  EXPECT_NE(run.err.find("leak_shapes (exit code 3)"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("2 more processes with no heap error and no leak"), std::string::npos) << run.err;
  const RunOutput verbose = run_heapscope({"--verbose"}, {"sh", "-c", script});
  EXPECT_EQ(verbose.err.find("with no heap error and no leak"), std::string::npos) << verbose.err;
  // The JSON always has every process.
  EXPECT_EQ(run.report["processes"].size(), 4u);
}

TEST(RunCommandE2E, QuietKeepsTheSummariesOnly) {
  const RunOutput quiet = run_heapscope({"--quiet"}, {program("leak_shapes")});
  EXPECT_NE(quiet.err.find("live at exit: 2,104 bytes in 14 blocks"), std::string::npos) << quiet.err;
  EXPECT_EQ(quiet.err.find("#0"), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find("== heapscope: 1 process traced"), std::string::npos);
  const RunOutput verbose = run_heapscope({"--verbose"}, {program("leak_shapes")});
  EXPECT_NE(verbose.err.find("leak 5:"), std::string::npos) << verbose.err;
}

TEST(SchemaE2E, RealReportsValidateAgainstThePublishedSchema) {
  if (run_native({"/usr/bin/python3", "-c", "import jsonschema"}).exit_code != 0)
    GTEST_SKIP() << "python3-jsonschema is not installed";
  const std::string dir = scratch_directory("heapscope-schema");
  std::ofstream(dir + "/s.supp") << "leak:leak_calloc\n";
  // Reports with leaks, every error kind's stacks, several processes, crashes, suppressions.
  const std::vector<std::vector<std::string>> runs = {
      {"--suppressions", dir + "/s.supp", "--", program("leak_shapes")},
      {"--", program("heap_errors"), "double_free"},
      {"--", program("heap_errors"), "use_after_free"},
      {"--", program("heap_errors"), "invalid_free_stack"},
      {"--", program("cxx_new")},
      {"--", program("fork_exec"), "exec"},
      {"--", program("crash"), "segv"},
      {"--", program("dlopen_host"), program("plugin.so")},
      {"--", program("client_api"), "traced"},
      {"--", program("leak_kinds"), "noptrace", "blocked"},
      {"--leak-check=no", "--", program("leak_kinds_cxx")}};
  std::vector<std::string> validate = {"/usr/bin/python3", E2E_SOURCE_DIR "/validate_report.py",
                                       PROJECT_SOURCE_DIR "/docs/report.schema.json"};
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string path = dir + "/" + std::to_string(i) + ".json";
    std::vector<std::string> argv = {heapscope_binary(), "run", "--json", path};
    argv.insert(argv.end(), runs[i].begin(), runs[i].end());
    run_native(argv);
    validate.push_back(path);
  }
  const RunOutput result = run_native(validate);
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

// Built twice: PIE, and non-PIE, where the linker resolves undefined weak references to 0 and the
// header must look the agent's entry points up instead (issue 15 #19).
class ClientApiE2E : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Builds, ClientApiE2E, ::testing::Values("client_api", "client_api_nopie"));

TEST_P(ClientApiE2E, NoOpsWithoutHeapscopeAndNoLinkDependency) {
  EXPECT_EQ(run_native({program(GetParam()), "native"}).exit_code, 0);
}

TEST_P(ClientApiE2E, VerifyIgnoreAndPhasesUnderHeapscope) {
  const RunOutput run = run_heapscope({}, {program(GetParam()), "traced"});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // every call returned what the program expected
  const json& process = only_process(run);
  // The damaged block: reported once, by verify, with the program's stack; not again at exit.
  ASSERT_EQ(process["errors"].size(), 1u) << process["errors"].dump(1);
  EXPECT_EQ(process["errors"][0]["kind"], "overflow");
  EXPECT_EQ(process["errors"][0]["detected_at_exit"], false);
  EXPECT_NE(find_frame(process["errors"][0]["stack"], "main"), nullptr);
  EXPECT_EQ(process["ignored"]["blocks"], 1);
  EXPECT_EQ(process["ignored"]["bytes"], 4321);
  for (const json& leak : process["leaks"]) EXPECT_NE(leak["bytes"], 4321);
  ASSERT_EQ(process["phases"].size(), 2u);
  EXPECT_EQ(process["phases"][0]["label"], "setup");
  EXPECT_EQ(process["phases"][0]["allocations"], 0);
  EXPECT_EQ(process["phases"][1]["label"], "work");
  EXPECT_EQ(process["phases"][1]["live_bytes"], 4321 + 99);
  EXPECT_NE(run.err.find("phases: setup (0 bytes live), work (4,420 bytes live)"), std::string::npos) << run.err;
}

TEST(TraceE2E, BigTraceShowsProgressOnATerminalOnly) {
  if (!program_exists("script")) GTEST_SKIP() << "script(1) is needed to run under a terminal";
  RunOutput run;
  const std::string dir = run_with_traces({ALLOC_WORKLOAD, "1000000", "few"}, run);  // a 5 MB trace
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const RunOutput terminal =
      run_native({"script", "-qec", heapscope_binary() + " report --quiet " + dir, "/dev/null"});
  EXPECT_NE(terminal.out.find("% "), std::string::npos) << terminal.out;
  EXPECT_NE(terminal.out.find("heapscope: reading " + dir), std::string::npos) << terminal.out;
  const RunOutput piped = run_native({heapscope_binary(), "report", "--quiet", dir});
  EXPECT_EQ(piped.err.find("reading"), std::string::npos) << piped.err;
}

// Starts `heapscope ARGS...` in the background, its rings in `ring_dir`, its own output to
// /dev/null; `own_group` puts it (and what it starts) in a process group of its own.
pid_t start_heapscope(const std::string& ring_dir, const std::vector<std::string>& arguments, bool own_group = false) {
  const pid_t child = fork();
  if (child == 0) {
    if (own_group) setpgid(0, 0);
    setenv("HEAPSCOPE_RING_DIR", ring_dir.c_str(), 1);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<std::string> argv = {heapscope_binary()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    exec_or_exit(argv);
  }
  return child;
}

TEST(TraceE2E, KilledCollectorLeavesTheProgramRunningAndAPartialTrace) {
  const std::string dir = scratch_directory("heapscope-killed");
  const std::string traces = dir + "/traces";
  const std::string tmp = dir + "/tmp";
  std::filesystem::create_directories(traces);
  std::filesystem::create_directories(tmp);
  const std::string done = dir + "/done";
  // The workload runs a few seconds under heapscope; `touch` proves it ended normally.
  const std::string script = std::string(ALLOC_WORKLOAD) + " 3000000 few && touch " + done;
  const pid_t collector = start_heapscope(tmp, {"run", "--output", traces, "--", "sh", "-c", script});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(collector, SIGKILL);
  waitpid(collector, nullptr, 0);
  // The program goes on without its collector and finishes normally.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!std::filesystem::exists(done) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(std::filesystem::exists(done)) << "the traced program did not finish after its collector died";
  // Whatever the collector wrote is reported, and said to be incomplete.
  const RunOutput report = report_of({traces});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  bool found_workload = false;
  for (const json& process : report.report["processes"]) {
    EXPECT_EQ(process["complete"], false);
    if (process["command"][0].get<std::string>().ends_with("alloc_workload")) {
      found_workload = true;
      EXPECT_GT(process["summary"]["allocations"].get<long>(), 1000);
    }
  }
  EXPECT_TRUE(found_workload) << report.report.dump(1);
  // No ring file the collector had picked up is left in the ring directory.
  size_t ring_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(tmp))
    if (entry.is_regular_file()) ring_bytes += entry.file_size();
  EXPECT_EQ(ring_bytes, 0u) << "ring files left in " << tmp;
}

// issue 15 #21: a killed heapscope left its session directory (and ring files) in /dev/shm.
// SIGTERM now goes to the program and the report is still written; after SIGKILL, the next
// heapscope removes the directory of the one that died.
TEST(RunCommandE2E, SigtermGoesToTheProgramAndTheReportIsStillWritten) {
  const std::string dir = scratch_directory("heapscope-term");
  const std::string rings = dir + "/rings";
  std::filesystem::create_directories(rings);
  const std::string json_path = dir + "/report.json";
  const std::string script = program("leak_shapes") + "; exec sleep 60";
  const auto started = std::chrono::steady_clock::now();
  const pid_t heapscope = start_heapscope(rings, {"run", "--json", json_path, "--", "sh", "-c", script});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(heapscope, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(heapscope, &status, 0), heapscope);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30)) << "sleep was not terminated";
  ASSERT_TRUE(WIFEXITED(status)) << "heapscope itself was killed";
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);  // the program's status: killed by SIGTERM
  std::ifstream in(json_path);
  ASSERT_TRUE(in.good()) << "no report written";
  const json report = json::parse(in);
  bool leaks_seen = false;
  bool launched_seen = false;
  for (const json& process : report["processes"]) {
    if (process["launched"] == true) {
      launched_seen = true;
      EXPECT_EQ(process["exit"]["signal"], SIGTERM) << process["exit"].dump();
    }
    if (!leaks_from(process, "/leak_shapes").empty()) leaks_seen = true;
  }
  EXPECT_TRUE(launched_seen) << report.dump(1).substr(0, 2000);
  EXPECT_TRUE(leaks_seen) << report.dump(1).substr(0, 2000);
  EXPECT_TRUE(std::filesystem::is_empty(rings)) << "session directory left in " << rings;
}

TEST(RunCommandE2E, TheNextHeapscopeRemovesTheSessionOfAKilledOne) {
  const std::string dir = scratch_directory("heapscope-stale");
  const std::string rings = dir + "/rings";
  std::filesystem::create_directories(rings);
  const pid_t heapscope = start_heapscope(rings, {"run", "--", "sleep", "60"}, /*own_group=*/true);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  kill(-heapscope, SIGKILL);  // heapscope and the program, as a CI timeout does
  waitpid(heapscope, nullptr, 0);
  size_t left = 0;
  for (const auto& entry : std::filesystem::directory_iterator(rings)) left += entry.is_directory() ? 1 : 0;
  ASSERT_EQ(left, 1u) << "the killed heapscope's session directory should be there to be found";
  const RunOutput next = run_heapscope({}, {"true"}, {"HEAPSCOPE_RING_DIR=" + rings});
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_TRUE(std::filesystem::is_empty(rings)) << "the dead heapscope's session was not removed";
}

// issue 15 #4: without pidfd_open (kernels before 5.3, or a seccomp profile that refuses it)
// every process was taken for ended at once: its ring was closed while it still wrote, events
// were lost, and a program waiting on a full ring hung heapscope in waitpid. Runs heapscope and
// the program under a filter that makes pidfd_open fail with ENOSYS.
RunOutput run_without_pidfd(const std::vector<std::string>& options, const std::vector<std::string>& command) {
  const std::string dir = scratch_directory("heapscope-nopidfd");
  const std::string json_path = dir + "/report.json";
  const std::string err_path = dir + "/err";
  std::vector<std::string> argv = {heapscope_binary(), "run", "--json", json_path};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  const pid_t child = fork();
  if (child == 0) {
    setpgid(0, 0);
    const int null = open("/dev/null", O_RDWR);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(err, 2);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof(filter) / sizeof(filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
      _exit(99);
    exec_or_exit(argv);
  }
  RunOutput output;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-child, SIGKILL);
      waitpid(child, &status, 0);
      ADD_FAILURE() << "heapscope hung without pidfd_open";
      return output;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream err(err_path);
  output.err.assign(std::istreambuf_iterator<char>(err), {});
  std::ifstream in(json_path);
  if (in.good()) output.report = json::parse(in);
  return output;
}

TEST(RunCommandE2E, WithoutPidfdOpenNothingIsLostAndNothingHangs) {
  const RunOutput small = run_without_pidfd({}, {program("leak_shapes")});
  ASSERT_EQ(small.exit_code, 3) << small.err;
  const json& process = only_process(small);
  EXPECT_EQ(process["summary"]["allocations"], 20);
  EXPECT_EQ(process["summary"]["frees"], 6);
  EXPECT_EQ(process["leaks"].size(), 5u);
  EXPECT_EQ(process["complete"], true);
  // A small ring the program fills again and again, from four threads.
  const RunOutput busy = run_without_pidfd({"--ring-mib", "1"}, {program("exact_counts"), "1000000"});
  ASSERT_EQ(busy.exit_code, 0) << busy.err;
  const json& summary = only_process(busy)["summary"];
  EXPECT_EQ(summary["allocations"].get<long>() - summary["frees"].get<long>(), summary["live_at_exit"]["blocks"].get<long>());
  EXPECT_GE(summary["allocations"].get<long>(), 500000);
}

TEST(StressE2E, TenMillionCallsOnFourThreadsGiveExactCounts) {
  const RunOutput run = run_heapscope({}, {program("exact_counts"), "10000000"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  EXPECT_TRUE(leaks_from(process, "/exact_counts").empty()) << process["leaks"].dump(1);
  // The program's own calls, counted per allocation site: exactly 5,000,000 (no event lost,
  // no free misattributed when an address came back on another thread).
  long own = 0;
  for (const json& site : process["statistics"]["top_sites"]["by_count"])
    if (find_frame(site["stack"], "worker") != nullptr) own += site["allocations"].get<long>();
  EXPECT_EQ(own, 5000000);
  const json& summary = process["summary"];
  // What the runtime adds (pthread_create's TLS vectors) is small and stays live.
  EXPECT_GE(summary["allocations"].get<long>(), 5000000);
  EXPECT_LE(summary["allocations"].get<long>(), 5000000 + 16);
  EXPECT_EQ(summary["allocations"].get<long>() - summary["frees"].get<long>(),
            summary["live_at_exit"]["blocks"].get<long>());
}

TEST(StressE2E, EightThreadsPassingBlocksEndWithNoErrorAndExactlyTheIntendedLeaks) {
  // A 1 MiB quarantine makes blocks cycle through it (and its use-after-free checks) quickly.
  const RunOutput run = run_heapscope({"--quarantine-mib", "1"}, {STRESS_PROGRAM, "60000"});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // every block's bytes were intact when freed
  const json& process = only_process(run);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  // Lost, all of them (main forgets them); the runtime's own blocks (thread TLS vectors made
  // by pthread_create, under main) are reachable.
  std::vector<json> lost;
  for (const json& leak : leaks_from(process, "/churn_stress"))
    if (leak["kind"] != "reachable") lost.push_back(leak);
  ASSERT_EQ(lost.size(), 1u) << process["leaks"].dump(1);
  EXPECT_EQ(lost[0]["kind"], "definite");
  EXPECT_EQ(lost[0]["blocks"], 8 * 3);
  EXPECT_EQ(lost[0]["bytes"], 8 * 3 * 4321);
  EXPECT_GT(process["summary"]["allocations"].get<long>(), 8 * 20000);
}

TEST(AgentOptionsE2E, CanariesOffMissOverflows) {
  const RunOutput run = run_heapscope({"--canaries=no"}, {program("heap_errors"), "overflow"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(only_process(run)["errors"].size(), 0u);
}

TEST(AgentOptionsE2E, QuarantineOffMissesWritesAfterFreeAndForgetsFreedBlocks) {
  const RunOutput uaf = run_heapscope({"--quarantine-mib", "0"}, {program("heap_errors"), "use_after_free"});
  ASSERT_EQ(uaf.exit_code, 0) << uaf.err;
  EXPECT_EQ(only_process(uaf)["errors"].size(), 0u);
  // Without a quarantine the first free returns the block at once: the second is not ours.
  const RunOutput twice = run_heapscope({"--quarantine-mib", "0"}, {program("heap_errors"), "double_free"});
  ASSERT_EQ(only_process(twice)["errors"].size(), 1u);
  EXPECT_EQ(only_process(twice)["errors"][0]["kind"], "invalid_free");
}

TEST(AgentOptionsE2E, FreeStacksOffLeaveDoubleFreesWithoutAFreeStack) {
  const RunOutput run = run_heapscope({"--free-stacks=no"}, {program("heap_errors"), "double_free"});
  const json& error = only_process(run)["errors"][0];
  EXPECT_EQ(error["kind"], "double_free");
  EXPECT_TRUE(error["free_stack"].is_null());
  EXPECT_NE(find_frame(error["stack"], "double_free"), nullptr);  // detection still has one
}

TEST(AgentOptionsE2E, ASmallRingThrottlesTheProgramAndLosesNothing) {
  const RunOutput run = run_heapscope({"--ring-mib", "1"}, {program("exact_counts"), "2000000"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  long own = 0;
  for (const json& site : process["statistics"]["top_sites"]["by_count"])
    if (find_frame(site["stack"], "worker") != nullptr) own += site["allocations"].get<long>();
  EXPECT_EQ(own, 1000000);
  EXPECT_TRUE(process["ring_waits"].is_number_unsigned());
}

// Runs `command` in `dir` with only LD_PRELOAD (and HEAPSCOPE_OPTIONS) set: no heapscope run.
RunOutput run_preloaded_alone(const std::string& dir, const std::string& options, const std::string& command) {
  return run_native({"bash", "-c", "cd " + dir + " && exec env LD_PRELOAD=" + AGENT_LIBRARY +
                                       " HEAPSCOPE_OPTIONS=" + options + " " + command});
}

// The JSON report of a trace the detached collector writes, once it has finished (it ends a
// moment after the program: up to 10 s is allowed here).
json report_when_complete(const std::string& trace) {
  const std::string json_path = trace + ".json";
  for (int attempt = 0; attempt < 100; ++attempt) {
    const RunOutput report = run_native({heapscope_binary(), "report", "--json", json_path, trace});
    if (report.exit_code == 0 && report.err.find("collector stopped") == std::string::npos) {
      std::ifstream in(json_path);
      return json::parse(in);
    }
    usleep(100 * 1000);
  }
  return nullptr;
}

TEST(StandaloneE2E, PreloadedAloneItWritesATraceAndPrintsASummary) {
  std::string dir = testing::TempDir() + "/heapscope-standalone";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  dir = std::filesystem::canonical(dir).string();  // as the program's getcwd() says it
  const RunOutput run = run_preloaded_alone(dir, "", program("leak_shapes"));
  ASSERT_EQ(run.exit_code, 3) << run.err;  // the program's own status
  const std::string summary = "2104 bytes in 14 blocks live at exit (definitely lost 2104, indirectly 0, possibly 0), "
                              "0 heap errors; full report: heapscope report " + dir + "/heapscope.leak_shapes.";
  EXPECT_NE(run.err.find(summary), std::string::npos) << run.err;
  const size_t at = run.err.find("heapscope report ");
  ASSERT_NE(at, std::string::npos);
  const std::string trace = run.err.substr(at + 17, run.err.find('\n', at) - at - 17);
  EXPECT_TRUE(trace.ends_with(".trace.zst")) << trace;
  const json report = report_when_complete(trace);
  ASSERT_TRUE(report.is_object()) << "the trace was not completed: " << trace;
  const json& process = report["processes"][0];
  EXPECT_EQ(process["exit"]["code"], 3);
  EXPECT_EQ(process["complete"], true);
  EXPECT_EQ(process["summary"]["allocations"], 20);
  EXPECT_EQ(process["summary"]["frees"], 6);
  EXPECT_EQ(process["summary"]["leaks"]["definite"]["blocks"], 14);
  EXPECT_EQ(process["leak_scan"]["classified"], true);
}

// issue 12 (9): preloaded by hand, every child dropped its trace in its own working directory;
// HEAPSCOPE_OPTIONS=output_dir=DIR puts them all in DIR.
TEST(StandaloneE2E, OutputDirGathersEveryProcesssTrace) {
  const std::string dir = scratch_directory("heapscope-alone-out");
  const std::string traces = dir + "/traces";
  const std::string elsewhere = dir + "/elsewhere";
  std::filesystem::create_directories(traces);
  std::filesystem::create_directories(elsewhere);
  const RunOutput run = run_preloaded_alone(dir, "output_dir=" + traces,
                                            "sh -c 'cd " + elsewhere + " && " + program("leak_shapes") + "'");
  ASSERT_EQ(run.exit_code, 3) << run.err;
  std::set<std::string> names;
  for (int attempt = 0; attempt < 100 && names.size() < 2; ++attempt) {
    names.clear();
    for (const auto& entry : std::filesystem::directory_iterator(traces)) names.insert(entry.path().filename().string());
    usleep(50 * 1000);
  }
  bool shell = false;
  bool program_trace = false;
  for (const std::string& name : names) {
    shell = shell || name.starts_with("heapscope.sh.");
    program_trace = program_trace || name.starts_with("heapscope.leak_shapes.");
  }
  EXPECT_TRUE(shell && program_trace) << run.err;
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere)) << "a trace went to the child's working directory";
}

// issue 12 (9): programs that close stderr before they exit (every coreutils one) lost the
// summary line. Where stderr is a file or a terminal, the agent opens it again for that line.
TEST(StandaloneE2E, TheSummaryReachesAStderrTheProgramClosed) {
  const std::string dir = scratch_directory("heapscope-alone-closed");
  const std::string err_file = dir + "/stderr.txt";
  const RunOutput run = run_preloaded_alone(dir, "", "ls " + dir + " > /dev/null 2> " + err_file);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(err_file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("heapscope: pid "), std::string::npos) << text;
  EXPECT_NE(text.find("full report: heapscope report " + dir + "/heapscope.ls."), std::string::npos) << text;
}

// issue 15: the collector the agent starts inherited the program's descriptors, so a shell's
// $(...) around a program that leaves a daemon behind waited for the collector (2 s of grace
// for descendants) instead of returning when the program ended.
TEST(StandaloneE2E, TheCollectorHoldsNoneOfTheProgramsDescriptors) {
  const std::string dir = scratch_directory("heapscope-alone-fds");
  const RunOutput run = run_native(
      {"bash", "-c", "cd " + dir + " && start=$(date +%s%N) && out=$(LD_PRELOAD=" + std::string(AGENT_LIBRARY) +
                         " sh -c 'echo hello; sleep 3 > /dev/null 2>&1 &') && echo \"$out\" "
                         "$(( ($(date +%s%N) - start) / 1000000 ))"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::istringstream fields(run.out);
  std::string word;
  int elapsed_ms = -1;
  fields >> word >> elapsed_ms;
  EXPECT_EQ(word, "hello");
  EXPECT_LT(elapsed_ms, 1000) << "$(...) waited for the collector";
}

TEST(StandaloneE2E, WithoutHeapscopeBesideTheLibraryTheProgramRunsUntraced) {
  // A copy of the agent with no ../bin/heapscope next to it: nothing can collect.
  const std::string dir = testing::TempDir() + "/heapscope-standalone-alone";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir + "/lib " + dir + "/work").c_str());
  std::filesystem::copy_file(AGENT_LIBRARY, dir + "/lib/libheapscope.so");
  const RunOutput run = run_native({"bash", "-c", "cd " + dir + "/work && exec env LD_PRELOAD=" + dir +
                                                      "/lib/libheapscope.so " + program("leak_shapes")});
  EXPECT_EQ(run.exit_code, 3);  // the program's own status, as always
  EXPECT_NE(run.err.find("bin/heapscope is not beside the library to collect; this process is not traced"),
            std::string::npos) << run.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/work"));  // no trace
}

TEST(StandaloneE2E, OptionsComeFromTheEnvironmentAndErrorsAreCounted) {
  const std::string dir = testing::TempDir() + "/heapscope-standalone-options";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const RunOutput errors = run_preloaded_alone(dir, "leak_check=0", program("heap_errors") + " double_free");
  ASSERT_EQ(errors.exit_code, 0) << errors.err;
  EXPECT_NE(errors.err.find("live at exit, 1 heap errors; full report"), std::string::npos) << errors.err;
  // Every C API at its edges behaves as glibc documents, preloaded alone too.
  const RunOutput checked = run_preloaded_alone(dir, "", program("api_edges"));
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  // The program's wait() never sees the collector: a shell that waits for all its children
  // ends at once.
  const RunOutput shell = run_preloaded_alone(dir, "", "bash -c 'true & wait; echo waited'");
  EXPECT_EQ(shell.exit_code, 0) << shell.err;
  EXPECT_EQ(shell.out, "waited\n");
}

// The rings are memory: their session directory goes to /dev/shm (a ring on a disk file system
// pays block allocation and writeback for every page), unless HEAPSCOPE_RING_DIR says where.
// The program sees its session in HEAPSCOPE_SESSION; preloaded alone, the agent's session is
// visible as a directory while the program runs.
TEST(RingDirectoryE2E, RingsGoToDevShmOrWhereHeapscopeRingDirSays) {
  const std::string print_session = "printf '%s' \"$HEAPSCOPE_SESSION\"";
  const RunOutput plain = run_heapscope({}, {"sh", "-c", print_session});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const bool shm_usable = access("/dev/shm", W_OK | X_OK) == 0;
  EXPECT_EQ(plain.out.rfind(shm_usable ? "/dev/shm/heapscope." : "/", 0), 0u) << plain.out;

  const std::string chosen = testing::TempDir() + "heapscope-rings";
  std::filesystem::create_directories(chosen);
  const RunOutput placed = run_heapscope({}, {"sh", "-c", print_session}, {"HEAPSCOPE_RING_DIR=" + chosen});
  ASSERT_EQ(placed.exit_code, 0) << placed.err;
  EXPECT_EQ(placed.out.rfind(chosen + "/heapscope.", 0), 0u) << placed.out;

  const std::string work = testing::TempDir() + "heapscope-rings-alone";
  const std::string chosen_alone = work + "/rings";
  std::filesystem::create_directories(chosen_alone);
  const RunOutput alone =
      run_native({"bash", "-c", "cd " + work + " && exec env HEAPSCOPE_RING_DIR=" + chosen_alone + " LD_PRELOAD=" +
                                    AGENT_LIBRARY + " sh -c 'ls " + chosen_alone + "'"});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  EXPECT_NE(alone.out.find("heapscope."), std::string::npos) << alone.out;
}

TEST(RunCommandE2E, HelpVersionAndUnknownCommands) {
  const RunOutput help = run_native({heapscope_binary(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("usage: heapscope run"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--sample-ms"), std::string::npos);
  // issue 14: each command's own help, from the same text; the program's --help is its own.
  const RunOutput run_help = run_native({heapscope_binary(), "run", "--json", "x.json", "--help"});
  EXPECT_EQ(run_help.exit_code, 0);
  EXPECT_EQ(run_help.out.rfind("usage: heapscope run", 0), 0u) << run_help.out;
  EXPECT_NE(run_help.out.find("--quarantine-mib"), std::string::npos);
  EXPECT_NE(run_help.out.find("--output DIR"), std::string::npos);
  EXPECT_EQ(run_help.out.find("--for SECONDS"), std::string::npos) << "attach's only";
  EXPECT_EQ(run_help.out.find("usage: heapscope attach"), std::string::npos);
  const RunOutput report_help = run_native({heapscope_binary(), "report", "-h"});
  EXPECT_EQ(report_help.exit_code, 0);
  EXPECT_EQ(report_help.out.rfind("usage: heapscope report", 0), 0u) << report_help.out;
  EXPECT_NE(report_help.out.find("--text"), std::string::npos);
  EXPECT_EQ(report_help.out.find("--quarantine-mib"), std::string::npos) << "no agent in a report";
  const RunOutput attach_help = run_native({heapscope_binary(), "attach", "--help"});
  EXPECT_NE(attach_help.out.find("--for SECONDS"), std::string::npos) << attach_help.out;
  EXPECT_NE(attach_help.out.find("120 no such process"), std::string::npos);
  for (const std::vector<std::string>& program_help :
       {std::vector<std::string>{heapscope_binary(), "run", "printf", "%s\\n", "--help"},
        std::vector<std::string>{heapscope_binary(), "run", "--", "printf", "%s\\n", "--help"}}) {
    const RunOutput passed_on = run_native(program_help);
    EXPECT_EQ(passed_on.exit_code, 0) << passed_on.err;
    EXPECT_EQ(passed_on.out, "--help\n") << "the program's argument";
  }
  const RunOutput version = run_native({heapscope_binary(), "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("heapscope ", 0), 0u) << version.out;
  const RunOutput nothing = run_native({heapscope_binary()});
  EXPECT_EQ(nothing.exit_code, 125);
  EXPECT_NE(nothing.err.find("usage:"), std::string::npos);
  const RunOutput unknown = run_native({heapscope_binary(), "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown.err;
}

TEST(RunCommandE2E, TextReportGoesToStderrOrLogFile) {
  const RunOutput to_stderr = run_heapscope({}, {program("leak_shapes")});
  EXPECT_NE(to_stderr.err.find("leak_one_block (/"), std::string::npos) << to_stderr.err;
  EXPECT_NE(to_stderr.err.find("leak_shapes.c:"), std::string::npos);
  EXPECT_TRUE(to_stderr.out.empty());

  std::string log_dir = testing::TempDir() + "/heapscope-log-XXXXXX";
  ASSERT_NE(mkdtemp(log_dir.data()), nullptr);
  const std::string log = log_dir + "/report.txt";
  const RunOutput to_file = run_heapscope({"--log-file", log}, {program("leak_shapes")});
  EXPECT_EQ(to_file.err.find("leak_one_block"), std::string::npos) << to_file.err;
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("leak_one_block"), std::string::npos);
  EXPECT_NE(text.find("5 allocation stacks"), std::string::npos) << text;
}

TEST(RunCommandE2E, ProgramOutputAndStatusPassThrough) {
  const RunOutput run = run_heapscope({}, {"sh", "-c", "echo out; echo err >&2; exit 9"});
  EXPECT_EQ(run.exit_code, 9);
  EXPECT_EQ(run.out, "out\n");
  EXPECT_EQ(run.err.rfind("err\n", 0), 0u) << run.err;  // program's stderr first, report after
}

TEST(RunCommandE2E, SignalDeathIs128PlusSignal) {
  const RunOutput run = run_heapscope({}, {"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(run.exit_code, 128 + 15);
  EXPECT_EQ(run.report["processes"][0]["exit"]["signal"], 15);
  EXPECT_TRUE(run.report["processes"][0]["exit"]["code"].is_null());
}

TEST(RunCommandE2E, ErrorExitcodeOnlyWhenSomethingWasFound) {
  EXPECT_EQ(run_heapscope({"--error-exitcode", "42"}, {program("leak_shapes")}).exit_code, 42);
  EXPECT_EQ(run_heapscope({"--error-exitcode", "42"}, {program("heap_errors"), "overflow"}).exit_code, 42);
  EXPECT_EQ(run_heapscope({"--error-exitcode", "42"}, {program("api_edges")}).exit_code, 0);
}

TEST(RunCommandE2E, BadInvocationsGetAClearMessageAndDocumentedStatus) {
  const RunOutput missing = run_heapscope({}, {"/nonexistent/program"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("command not found"), std::string::npos) << missing.err;

  const RunOutput not_executable = run_heapscope({}, {E2E_PROGRAMS_SOURCE_DIR "/leak_shapes.c"});
  EXPECT_EQ(not_executable.exit_code, 126);
  EXPECT_NE(not_executable.err.find("cannot execute"), std::string::npos) << not_executable.err;

  const RunOutput unknown = run_heapscope({"--no-such-option"}, {program("leak_shapes")});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_NE(unknown.err.find("unknown option '--no-such-option'"), std::string::npos) << unknown.err;

  const RunOutput bad_value = run_heapscope({"--max-frames", "many"}, {program("leak_shapes")});
  EXPECT_EQ(bad_value.exit_code, 125);

  const RunOutput unwritable = run_native({heapscope_binary(), "run", "--json", "/nonexistent/dir/r.json", "--",
                                           program("leak_shapes")});
  EXPECT_EQ(unwritable.exit_code, 125);
  EXPECT_NE(unwritable.err.find("cannot write the JSON report"), std::string::npos) << unwritable.err;
}

TEST(RunCommandE2E, AgentOptionsReachTheAgent) {
  const RunOutput run = run_heapscope({"--max-frames", "2"}, {program("leak_shapes")});
  for (const json& leak : run.report["processes"][0]["leaks"])
    EXPECT_LE(leak["stack"].size(), 2u + 2u);  // two frames, each may expand into inlined ones
  const RunOutput by_env = run_heapscope({}, {program("leak_shapes")}, {"HEAPSCOPE_OPTIONS=max_frames=1"});
  EXPECT_EQ(by_env.report["processes"][0]["leaks"][3]["stack"].size(), 1u);
}

}  // namespace
}  // namespace heapscope::test
