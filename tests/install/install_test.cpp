// heapscope as a user gets it (issue 14): `cmake --install` into a scratch prefix, the
// installed CLI and agent at work, a project outside the tree built against the installed
// CMake package and tested with heapscope_add_test(), the man page, and the Debian package.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

// One install for the whole suite: cmake --install of this build tree into a scratch prefix.
class InstalledHeapscope : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    prefix_ = new std::string(scratch_directory("prefix"));
    install_ = new RunOutput(run_native({CMAKE_COMMAND, "--install", HEAPSCOPE_BUILD_DIR, "--prefix", *prefix_}, seconds(120)));
  }
  static void TearDownTestSuite() {
    delete prefix_;
    delete install_;
  }
  void SetUp() override { ASSERT_EQ(install_->exit_code, 0) << install_->out << install_->err; }
  static const std::string& prefix() { return *prefix_; }

 private:
  static std::string* prefix_;
  static RunOutput* install_;
};
std::string* InstalledHeapscope::prefix_ = nullptr;
RunOutput* InstalledHeapscope::install_ = nullptr;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_F(InstalledHeapscope, HoldsTheToolTheHeaderTheManPageAndThePackageButNoTests) {
  for (const char* file : {"bin/heapscope", "lib/heapscope/libheapscope.so", "lib/heapscope/libheapscope-attach.so",
                           "lib/libheapscope_gtest_main.a",
                           "include/heapscope/heapscope.h", "share/man/man1/heapscope.1",
                           "lib/cmake/heapscope/heapscopeConfig.cmake", "lib/cmake/heapscope/heapscopeConfigVersion.cmake",
                           "lib/cmake/heapscope/heapscopeTargets.cmake", "lib/cmake/heapscope/HeapscopeTesting.cmake"})
    EXPECT_TRUE(fs::exists(prefix() + "/" + file)) << file;
  for (const auto& entry : fs::recursive_directory_iterator(prefix())) {
    const std::string name = entry.path().filename();
    EXPECT_EQ(name.find("_test"), std::string::npos) << entry.path();
    EXPECT_NE(name, "leaky") << entry.path();
    EXPECT_NE(name, "alloc_workload") << entry.path();
  }
}

// The installed CLI finds the installed agent (no HEAPSCOPE_AGENT), and the agent preloaded by
// hand finds the installed collector.
TEST_F(InstalledHeapscope, RunsProgramsFromWhereverItWasInstalled) {
  const std::string json = scratch_directory("run") + "/report.json";
  const RunOutput run = run_native({prefix() + "/bin/heapscope", "run", "--json", json, "--", LEAKY_PROGRAM});
  EXPECT_NE(run.err.find("1 process traced, 2 heap errors, 496 bytes leaked"), std::string::npos) << run.err;
  EXPECT_TRUE(fs::exists(json));

  const std::string directory = scratch_directory("preloaded");
  const RunOutput preloaded = run_native(
      {"env", "LD_PRELOAD=" + prefix() + "/lib/heapscope/libheapscope.so", "HEAPSCOPE_OPTIONS=output_dir=" + directory,
       LEAKY_PROGRAM});
  EXPECT_NE(preloaded.err.find("496 bytes in 4 blocks live at exit"), std::string::npos) << preloaded.err;
  EXPECT_NE(preloaded.err.find("full report: heapscope report " + directory), std::string::npos) << preloaded.err;
}

// A project outside the tree, built against the install: heapscope_add_test() fails the
// leaking program's test with the leak's function in its output, passes the clean one and the
// one under a threshold; the client API links nothing and does nothing without heapscope.
TEST_F(InstalledHeapscope, AConsumerProjectTestsItsProgramsUnderHeapscope) {
  const std::string build = scratch_directory("consumer");
  const RunOutput configure = run_native({CMAKE_COMMAND, "-S", INSTALL_CONSUMER_DIR, "-B", build,
                                          "-DCMAKE_PREFIX_PATH=" + prefix()}, seconds(120));
  ASSERT_EQ(configure.exit_code, 0) << configure.out << configure.err;
  const RunOutput compile = run_native({CMAKE_COMMAND, "--build", build}, seconds(120));
  ASSERT_EQ(compile.exit_code, 0) << compile.out << compile.err;
  const RunOutput tests = run_native({CTEST_COMMAND, "--test-dir", build, "--output-on-failure"}, seconds(120));
  EXPECT_NE(tests.exit_code, 0);
  EXPECT_NE(tests.out.find("60% tests passed, 2 tests failed out of 5"), std::string::npos) << tests.out;
  EXPECT_TRUE(fs::exists(build + "/heapscope/reads_input.json")) << "WORKING_DIRECTORY: the program found its input";
  EXPECT_NE(tests.out.find("(Failed)"), std::string::npos);
  const std::regex failed_leaks(R"(\d+ - leaks \(Failed\))");
  EXPECT_TRUE(std::regex_search(tests.out, failed_leaks)) << tests.out;
  // The failing test's output is heapscope's report: the leak, its size and its function.
  EXPECT_NE(tests.out.find("definitely lost: 100 bytes in 1 block"), std::string::npos) << tests.out;
  EXPECT_NE(tests.out.find("forget_buffer"), std::string::npos) << tests.out;
  EXPECT_NE(tests.out.find("under heapscope: 1"), std::string::npos) << tests.out;
  // Reports in the build tree.
  const nlohmann::json report = nlohmann::json::parse(read_file(build + "/heapscope/leaks.json"));
  EXPECT_EQ(report["processes"][0]["summary"]["leaks"]["definite"]["bytes"], 100);
  EXPECT_TRUE(fs::exists(build + "/heapscope/leaks.html"));
  EXPECT_TRUE(fs::exists(build + "/heapscope/clean.json"));
  // heapscope::gtest_main: the test that leaks and the one that overflows fail on their own,
  // with heapscope's word in the failure; their sibling passes; the report names the function.
  EXPECT_NE(tests.out.find("[  FAILED  ] Consumer.LeaksABlock"), std::string::npos) << tests.out;
  EXPECT_NE(tests.out.find("heapscope: Consumer.LeaksABlock leaked 1 block(s)"), std::string::npos);
  // The failure itself names the leak's site, the test's own (static) function first.
  EXPECT_NE(tests.out.find("48 bytes in 1 block(s) allocated at\n    (anonymous namespace)::remember_forever() (in unit_tests)"),
            std::string::npos) << tests.out;
  EXPECT_NE(tests.out.find("[  FAILED  ] Consumer.WritesPastABlock"), std::string::npos);
  EXPECT_NE(tests.out.find("heapscope: 1 heap error(s) during Consumer.WritesPastABlock"), std::string::npos);
  EXPECT_NE(tests.out.find("[       OK ] Consumer.FreesWhatItTakes"), std::string::npos);
  EXPECT_NE(tests.out.find("(phase Consumer.LeaksABlock): 48 bytes in 1 block newly lost"), std::string::npos);
  EXPECT_NE(tests.out.find("remember_forever"), std::string::npos);
  // Without heapscope the programs are just themselves.
  const RunOutput alone = run_native({build + "/leaking_program"});
  EXPECT_EQ(alone.exit_code, 0);
  EXPECT_EQ(alone.out, "under heapscope: 0\n");
  const RunOutput unit_tests = run_native({build + "/unit_tests"});
  EXPECT_EQ(unit_tests.exit_code, 0) << unit_tests.out;
  EXPECT_NE(unit_tests.out.find("[  PASSED  ] 3 tests."), std::string::npos) << unit_tests.out;
}

// man heapscope renders, from docs/cli.md, and names every option `heapscope --help` lists.
TEST_F(InstalledHeapscope, TheManPageRendersAndNamesEveryOption) {
  if (!program_exists("man")) GTEST_SKIP() << "man is not installed";
  const RunOutput page = run_native({"env", "MANWIDTH=200", "man", "-l", prefix() + "/share/man/man1/heapscope.1"});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_NE(page.out.find("heapscope - memory debugger and leak profiler"), std::string::npos) << page.out.substr(0, 500);
  for (const char* section : {"SYNOPSIS", "HEAPSCOPE RUN", "HEAPSCOPE ATTACH", "HEAPSCOPE REPORT", "Exit status",
                              "Environment", "HEAPSCOPE_OPTIONS"})
    EXPECT_NE(page.out.find(section), std::string::npos) << section;
  const RunOutput help = run_native({prefix() + "/bin/heapscope", "--help"});
  std::set<std::string> options;
  const std::regex option(R"(--[a-z][a-z-]+[a-z])");
  for (auto it = std::sregex_iterator(help.out.begin(), help.out.end(), option); it != std::sregex_iterator(); ++it)
    options.insert(it->str());
  EXPECT_GT(options.size(), 30u) << help.out;
  for (const std::string& name : options) EXPECT_NE(page.out.find(name), std::string::npos) << name << " is not in the man page";
}

// cpack -G DEB: a package with the dependencies of what it installs, which unpacked into a
// scratch root runs a program under heapscope.
TEST(DebianPackage, InstallsAndRunsFromItsRoot) {
  if (!program_exists("dpkg-deb") || !program_exists("dpkg-shlibdeps")) GTEST_SKIP() << "dpkg-dev is not installed";
  const std::string out = scratch_directory("deb");
  const RunOutput pack = run_native({CPACK_COMMAND, "-G", "DEB", "--config", std::string(HEAPSCOPE_BUILD_DIR) + "/CPackConfig.cmake",
                                     "-B", out}, seconds(300));
  ASSERT_EQ(pack.exit_code, 0) << pack.out << pack.err;
  std::string package;
  for (const auto& entry : fs::directory_iterator(out))
    if (entry.path().extension() == ".deb") package = entry.path();
  ASSERT_FALSE(package.empty()) << pack.out;
  const RunOutput depends = run_native({"dpkg-deb", "-f", package, "Depends"});
  for (const char* library : {"libunwind8", "libdw1", "libzstd1", "libc6", "libstdc++6"})
    EXPECT_NE(depends.out.find(library), std::string::npos) << library << " not in: " << depends.out;
  const RunOutput contents = run_native({"dpkg-deb", "-c", package});
  EXPECT_NE(contents.out.find("./usr/bin/heapscope"), std::string::npos) << contents.out;
  EXPECT_NE(contents.out.find("/heapscope/libheapscope.so"), std::string::npos);
  EXPECT_NE(contents.out.find("./usr/share/man/man1/heapscope.1"), std::string::npos);
  EXPECT_NE(contents.out.find("./usr/include/heapscope/heapscope.h"), std::string::npos);

  const std::string root = scratch_directory("root");
  ASSERT_EQ(run_native({"dpkg-deb", "-x", package, root}).exit_code, 0);
  const RunOutput run = run_native({root + "/usr/bin/heapscope", "run", "--error-exitcode", "9", "--", LEAKY_PROGRAM});
  EXPECT_EQ(run.exit_code, 9) << run.err;
  EXPECT_NE(run.err.find("496 bytes leaked"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace heapscope::test
