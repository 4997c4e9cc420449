// End-to-end: the agent on top of other allocators than glibc's -- jemalloc, tcmalloc
// (gperftools) and mimalloc, preloaded after heapscope the way users run them, and jemalloc
// linked into the program. Results must be exactly those over glibc.
#include <gtest/gtest.h>

#include <unistd.h>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

using nlohmann::json;

struct Allocator {
  std::string name;
  std::string library;  // preloaded after the agent
};

void PrintTo(const Allocator& allocator, std::ostream* out) { *out << allocator.name; }

class AllocatorE2E : public ::testing::TestWithParam<Allocator> {
 protected:
  void SetUp() override {
    if (access(GetParam().library.c_str(), R_OK) != 0) GTEST_SKIP() << GetParam().library << " is not installed";
  }
  RunOutput run(const std::vector<std::string>& options, const std::vector<std::string>& command) {
    return run_heapscope(options, command, {"LD_PRELOAD=" + GetParam().library});
  }
};

TEST_P(AllocatorE2E, LeaksAndCountsAreExact) {
  const RunOutput result = run({}, {program("leak_shapes")});
  ASSERT_EQ(result.exit_code, 3) << result.err;
  const json& process = result.report["processes"][0];
  // The allocator really was underneath.
  const std::string library = GetParam().library.substr(GetParam().library.rfind('/'));
  bool loaded = false;
  for (const json& module : process["modules"]) loaded |= module["path"].get<std::string>().ends_with(library);
  EXPECT_TRUE(loaded) << process["modules"].dump(1);
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  // glibc's mallinfo2 would describe arenas this allocator does not use: not reported.
  EXPECT_TRUE(process["statistics"]["allocator"].is_null());
  // The program's own five leak sites, exactly as over glibc; the allocator's libraries may
  // keep blocks of their own (jemalloc and tcmalloc load libstdc++).
  int sites = 0;
  long bytes = 0;
  for (const json& leak : process["leaks"]) {
    for (const char* site : {"leak_one_block", "leak_many_blocks", "leak_after_realloc", "leak_calloc", "leak_strdup"}) {
      if (find_frame(leak["stack"], site) != nullptr) {
        ++sites;
        bytes += leak["bytes"].get<long>();
      }
    }
  }
  EXPECT_EQ(sites, 5) << process["leaks"].dump(1);
  EXPECT_EQ(bytes, 2104);
}

TEST_P(AllocatorE2E, ErrorsAreStillCaught) {
  for (const char* which : {"overflow", "double_free", "invalid_free_stack", "new_array_delete"}) {
    SCOPED_TRACE(which);
    const RunOutput result = run({}, {program("heap_errors"), which});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    ASSERT_EQ(result.report["processes"][0]["errors"].size(), 1u);
  }
}

TEST_P(AllocatorE2E, StressEndsCleanWithTheIntendedLeaks) {
  const RunOutput result = run({"--quarantine-mib", "1"}, {STRESS_PROGRAM, "30000"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json& process = result.report["processes"][0];
  EXPECT_EQ(process["errors"].size(), 0u) << process["errors"].dump(1);
  // The intended leaks are lost. Over another allocator a few may come out "possible" rather
  // than "definite": its free memory is scanned and keeps stale values (docs/leak-check.md).
  int64_t lost_bytes = 0;
  for (const json& leak : leaks_from(process, "/churn_stress")) {
    if (leak["kind"] == "reachable") continue;
    EXPECT_TRUE(leak["kind"] == "definite" || leak["kind"] == "possible") << leak.dump(1);
    EXPECT_EQ(leak["stack"][0]["function"], "(anonymous namespace)::worker(int, long)");
    lost_bytes += leak["bytes"].get<int64_t>();
  }
  EXPECT_EQ(lost_bytes, 8 * 3 * 4321) << process["leaks"].dump(1);
}

INSTANTIATE_TEST_SUITE_P(
    Preloaded, AllocatorE2E,
    ::testing::Values(Allocator{"jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"},
                      Allocator{"tcmalloc", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"},
                      Allocator{"mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"}),
    [](const auto& info) { return info.param.name; });

TEST(AllocatorLinkedE2E, JemallocLinkedIntoTheProgram) {
#ifdef LEAK_SHAPES_JEMALLOC
  const RunOutput result = run_heapscope({}, {LEAK_SHAPES_JEMALLOC});
  ASSERT_EQ(result.exit_code, 3) << result.err;
  const json& process = result.report["processes"][0];
  EXPECT_EQ(process["errors"].size(), 0u);
  EXPECT_EQ(leaks_from(process, "/leak_shapes_jemalloc").size(), 4u) << process["leaks"].dump(1);
#else
  GTEST_SKIP() << "libjemalloc.so.2 was not found at configure time";
#endif
}

}  // namespace
}  // namespace heapscope::test
