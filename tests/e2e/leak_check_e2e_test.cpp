// Leak classification end to end: real programs under `heapscope run`, the kinds read back from
// the JSON report (and the text), for every rule of the scan: roots in globals, TLS, another
// thread's stack and registers; chains, cycles, interior and hidden pointers; runtime blocks;
// checks on demand; threads that cannot be stopped; no ptrace; no scan at all.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

using nlohmann::json;

// The kind of the leak record whose innermost frame is `function` ("" if none).
std::string kind_of(const json& process, const std::string& function) {
  for (const json& leak : process["leaks"])
    if (!leak["stack"].empty() && function_is(leak["stack"][0], function)) return leak["kind"];
  return "";
}

const json& only_process(const RunOutput& run) {
  EXPECT_EQ(run.report["processes"].size(), 1u) << run.err;
  return run.report["processes"][0];
}

TEST(LeakCheckE2E, ClassifiesEveryShapeAsMemcheckDefinesIt) {
  const RunOutput run = run_heapscope({}, {program("leak_kinds")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  const json& scan = process["leak_scan"];
  EXPECT_EQ(scan["classified"], true) << scan.dump();
  EXPECT_EQ(scan["stop_method"], "ptrace");
  EXPECT_EQ(scan["threads_not_stopped"], 0);
  EXPECT_TRUE(scan["not_covered"].is_null());
  EXPECT_GE(scan["threads"], 2);
  const std::map<std::string, std::string> expected = {
      {"definite_block", "definite"},    {"chain_head", "definite"},     {"chain_middle", "indirect"},
      {"data_block", "reachable"},
      {"chain_tail", "indirect"},        {"interior_block", "possible"}, {"global_block", "reachable"},
      {"hidden_block", "definite"},      {"tls_block", "reachable"},     {"thread_tls_block", "reachable"},
      {"stack_block", "reachable"},      {"early_lost", "definite"},
#if defined(__x86_64__)
      {"register_block", "reachable"},
#endif
  };
  for (const auto& [function, kind] : expected) EXPECT_EQ(kind_of(process, function), kind) << function;
  // A lost cycle: one definite (the lower address), the other indirect.
  const std::string a = kind_of(process, "cycle_a");
  const std::string b = kind_of(process, "cycle_b");
  EXPECT_TRUE((a == "definite" && b == "indirect") || (a == "indirect" && b == "definite")) << a << " " << b;
  // Totals: 5 definite (definite_block, chain_head, hidden_block, early_lost, one of the cycle).
  const json& totals = process["summary"]["leaks"];
  EXPECT_EQ(totals["definite"]["blocks"], 5);
  EXPECT_EQ(totals["definite"]["bytes"], 100 + 32 + 56 + 24 + 32);
  EXPECT_EQ(totals["indirect"]["blocks"], 3);
  EXPECT_EQ(totals["possible"]["blocks"], 1);  // the thread TLS vectors are not among them
  EXPECT_EQ(totals["unclassified"]["blocks"], 0);
}

TEST(LeakCheckE2E, StaleCopiesBelowTheProgramsFramesDoNotHideALostList) {
  // Built with -O2: the last block of the lost list was in a register of main and in the
  // agent's malloc frames, whose dead slots exit's frames later reuse. Memcheck: 1 definite,
  // 99 indirect, 900 reachable (valgrind --leak-check=full on the same binary).
  const RunOutput run = run_heapscope({}, {SCAN_WORKLOAD, "1000", "100"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& totals = only_process(run)["summary"]["leaks"];
  EXPECT_EQ(totals["definite"]["blocks"], 1);
  EXPECT_EQ(totals["indirect"]["blocks"], 99);
  EXPECT_GE(totals["reachable"]["blocks"], 900);  // and stdout's buffer
}

TEST(LeakCheckE2E, ChecksOnDemandListWhatLeakedSinceTheLastCheck) {
  const RunOutput run = run_heapscope({}, {program("leak_kinds")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("first check: 1\nsecond check: 0\n"), std::string::npos) << run.out;
  const json& checks = only_process(run)["leak_checks"];
  ASSERT_EQ(checks.size(), 2u);
  ASSERT_EQ(checks[0]["leaks"].size(), 1u) << checks.dump(1);
  EXPECT_EQ(checks[0]["leaks"][0]["kind"], "definite");
  EXPECT_TRUE(function_is(checks[0]["leaks"][0]["stack"][0], "early_lost"));
  EXPECT_EQ(checks[0]["new_leaks"]["definite"]["bytes"], 24);
  EXPECT_EQ(checks[0]["scan"]["classified"], true);
  EXPECT_TRUE(checks[1]["leaks"].empty());
}

TEST(LeakCheckE2E, PtraceStopsEvenAThreadThatBlocksEverySignal) {
  const RunOutput run = run_heapscope({}, {program("leak_kinds"), "blocked"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& scan = only_process(run)["leak_scan"];
  EXPECT_EQ(scan["stop_method"], "ptrace");
  EXPECT_EQ(scan["threads_not_stopped"], 0);
  EXPECT_TRUE(scan["not_covered"].is_null());
}

TEST(LeakCheckE2E, WithoutPtraceThreadsAreStoppedBySignalAndTheReportSaysWhatWasMissed) {
  const RunOutput plain = run_heapscope({}, {program("leak_kinds"), "noptrace"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const json& process = only_process(plain);
  EXPECT_EQ(process["leak_scan"]["stop_method"], "signal");
  EXPECT_EQ(process["leak_scan"]["threads_not_stopped"], 0);
  EXPECT_EQ(kind_of(process, "stack_block"), "reachable");
  EXPECT_EQ(kind_of(process, "chain_middle"), "indirect");
  // process_vm_readv is refused too: module data (.data) is then read in place.
  EXPECT_EQ(kind_of(process, "data_block"), "reachable");
  EXPECT_NE(plain.err.find("ptrace was not allowed"), std::string::npos) << plain.err;

  const RunOutput blocked = run_heapscope({}, {program("leak_kinds"), "noptrace", "blocked"});
  ASSERT_EQ(blocked.exit_code, 0) << blocked.err;
  const json& scan = only_process(blocked)["leak_scan"];
  EXPECT_EQ(scan["classified"], true);
  EXPECT_EQ(scan["threads_not_stopped"], 1);
  EXPECT_TRUE(scan["not_covered"].get<std::string>().find("registers were not read") != std::string::npos)
      << scan.dump();
  EXPECT_NE(blocked.err.find("scan incomplete"), std::string::npos) << blocked.err;
}

TEST(LeakCheckE2E, AHelperKilledByASeccompFilterFallsBackToSignals) {
  const RunOutput run = run_heapscope({}, {program("leak_kinds"), "killptrace"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  EXPECT_EQ(process["leak_scan"]["stop_method"], "signal");
  EXPECT_EQ(process["summary"]["leaks"]["definite"]["blocks"], 5);
  EXPECT_EQ(kind_of(process, "stack_block"), "reachable");
}

TEST(LeakCheckE2E, ContainersInGlobalsAndTheRuntimesOwnBlocksAreNotLost) {
  const RunOutput run = run_heapscope({}, {program("leak_kinds_cxx")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json& process = only_process(run);
  for (const json& leak : process["leaks"]) {
    if (function_is(leak["stack"][0], "lost_array")) {
      EXPECT_EQ(leak["kind"], "definite");
      EXPECT_EQ(leak["allocator"], "new[]");
    } else {
      // libstdc++'s emergency exception pool, stdout's buffer, thread TLS vectors.
      EXPECT_EQ(leak["kind"], "reachable") << leak.dump(1);
    }
  }
  EXPECT_EQ(process["summary"]["leaks"]["definite"]["blocks"], 1);
}

TEST(LeakCheckE2E, TextShowsMemchecksSummaryAndTheKindsAskedFor) {
  const RunOutput normal = run_heapscope({}, {program("leak_kinds")});
  for (const char* line : {"LEAK SUMMARY:", "definitely lost: 244 bytes in 5 blocks",
                           "indirectly lost: 96 bytes in 3 blocks", "possibly lost: 64 bytes in 1 block",
                           "leak check 1 at"})
    EXPECT_NE(normal.err.find(line), std::string::npos) << line << "\n" << normal.err;
  // Default records: definite and possible only.
  EXPECT_NE(normal.err.find("(possible)"), std::string::npos);
  EXPECT_EQ(normal.err.find("(reachable)"), std::string::npos);
  EXPECT_EQ(normal.err.find("(indirect)"), std::string::npos);
  EXPECT_NE(normal.err.find("--show-leak-kinds=all lists them"), std::string::npos);

  const RunOutput all = run_heapscope({"--show-leak-kinds=all"}, {program("leak_kinds")});
  EXPECT_NE(all.err.find("(reachable)"), std::string::npos);
  EXPECT_NE(all.err.find("(indirect)"), std::string::npos);
  const RunOutput some = run_heapscope({"--show-leak-kinds", "reachable"}, {program("leak_kinds")});
  EXPECT_NE(some.err.find("(reachable)"), std::string::npos);
  EXPECT_EQ(some.err.find("(definite)"), std::string::npos);

  const RunOutput bad = run_heapscope({"--show-leak-kinds=lost"}, {program("leak_kinds")});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("--show-leak-kinds takes definite, indirect, possible, reachable, all or none"),
            std::string::npos) << bad.err;
}

TEST(LeakCheckE2E, ErrorExitcodeCountsTheKindsAskedFor) {
  // leak_kinds_cxx: one definite block, the rest reachable, no indirect.
  EXPECT_EQ(run_heapscope({"--error-exitcode", "9"}, {program("leak_kinds_cxx")}).exit_code, 9);
  EXPECT_EQ(run_heapscope({"--error-exitcode", "9", "--errors-for-leak-kinds=indirect"},
                          {program("leak_kinds_cxx")}).exit_code, 0);
  EXPECT_EQ(run_heapscope({"--error-exitcode", "9", "--errors-for-leak-kinds=reachable"},
                          {program("leak_kinds_cxx")}).exit_code, 9);
  // Thresholds weigh the same kinds: 40 definite bytes.
  EXPECT_EQ(run_heapscope({"--fail-on-leak-bytes", "39"}, {program("leak_kinds_cxx")}).exit_code, 23);
  EXPECT_EQ(run_heapscope({"--fail-on-leak-bytes", "40"}, {program("leak_kinds_cxx")}).exit_code, 0);
}

TEST(LeakCheckE2E, WithoutAScanLeaksStayUnclassifiedAndTheReportSaysWhy) {
  const RunOutput off = run_heapscope({"--leak-check=no"}, {program("leak_kinds_cxx")});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  const json& process = only_process(off);
  EXPECT_EQ(process["leak_scan"]["classified"], false);
  EXPECT_NE(process["leak_scan"]["reason"].get<std::string>().find("--leak-check=no"), std::string::npos);
  for (const json& leak : process["leaks"]) EXPECT_EQ(leak["kind"], "unclassified");
  EXPECT_NE(off.err.find("leaks not classified: leak checking was turned off"), std::string::npos) << off.err;
  // Unclassified leaks count for the exit status: nothing excuses them.
  EXPECT_EQ(run_heapscope({"--leak-check=no", "--error-exitcode", "9"}, {program("leak_kinds_cxx")}).exit_code, 9);

  const RunOutput killed = run_heapscope({}, {program("crash"), "kill"});
  ASSERT_EQ(killed.exit_code, 128 + 9) << killed.err;
  const json& scan = only_process(killed)["leak_scan"];
  EXPECT_EQ(scan["classified"], false);
  EXPECT_NE(scan["reason"].get<std::string>().find("killed by signal 9"), std::string::npos) << scan.dump();
}

TEST(LeakCheckE2E, TracesReproduceTheClassification) {
  const std::string dir = testing::TempDir() + "/heapscope-leak-check-traces";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const RunOutput run = run_heapscope({"--output", dir}, {program("leak_kinds")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string json_path = dir + "/again.json";
  const std::string command = heapscope_binary() + " report --json " + json_path + " " + dir + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(json_path);
  const json again = json::parse(in);
  EXPECT_EQ(again["processes"][0]["leaks"], run.report["processes"][0]["leaks"]);
  EXPECT_EQ(again["processes"][0]["leak_scan"], run.report["processes"][0]["leak_scan"]);
  EXPECT_EQ(again["processes"][0]["leak_checks"], run.report["processes"][0]["leak_checks"]);
}

// issue 12: a process ending with _exit() or _Exit() ran no exit scan: every live block stayed
// "unclassified" and counted as leaked, so every `sh -c` (dash ends with _exit) tripped the gate
// where valgrind calls the same blocks still reachable.
TEST(LeakCheckE2E, AProcessEndingWithUnderscoreExitIsScanned) {
  for (const char* how : {"_exit", "_Exit"}) {
    const RunOutput run = run_heapscope({"--error-exitcode", "9"}, {program("quick_exit"), how});
    const json& process = run.report["processes"][0];
    EXPECT_EQ(run.exit_code, 9) << how << ": the lost block trips the gate";
    EXPECT_EQ(process["exit"]["code"], 7) << how;
    EXPECT_TRUE(process["leak_scan"]["classified"].get<bool>()) << how << process["leak_scan"].dump();
    const auto leaks = leaks_from(process, "/quick_exit");
    ASSERT_EQ(leaks.size(), 2u) << process["leaks"].dump(1);
    for (const json& leak : leaks) {
      if (leak["bytes"] == 48) EXPECT_EQ(leak["kind"], "definite") << how;
      else EXPECT_EQ(leak["kind"], "reachable") << how;
    }
  }
}

TEST(LeakCheckE2E, AShellCommandPassesTheGateAsUnderValgrind) {
  const RunOutput run = run_heapscope({"--error-exitcode", "9"}, {"sh", "-c", "echo hi"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "hi\n");
  const json& process = run.report["processes"][0];
  EXPECT_TRUE(process["leak_scan"]["classified"].get<bool>());
  EXPECT_EQ(process["summary"]["leaks"]["unclassified"]["blocks"], 0);
  EXPECT_GT(process["summary"]["leaks"]["reachable"]["blocks"].get<int>(), 0);
}

// issue 12: glibc's loader keeps a table for _dl_find_object from the first dlopen on, reached
// only by an interior pointer: "possibly lost" in every process that calls dlopen, tripping the
// default gate. It is in heapscope's built-in suppressions, as in memcheck's.
TEST(LeakCheckE2E, TheLoadersOwnBlockIsSuppressedByDefaultAndCanBeShown) {
  auto loader_records = [](const json& process) {
    int found = 0;
    for (const json& leak : process["leaks"])
      if (find_frame(leak["stack"], "_dl_find_object_update") != nullptr) ++found;
    return found;
  };
  const RunOutput run = run_heapscope({"--error-exitcode", "9"}, {program("origin_host")});
  EXPECT_EQ(run.exit_code, 0) << run.err;  // the plugin's block is still reachable from its global
  EXPECT_EQ(loader_records(run.report["processes"][0]), 0);
  ASSERT_EQ(run.report["suppressions"].size(), 1u);
  EXPECT_EQ(run.report["suppressions"][0]["origin"], "built-in");
  EXPECT_EQ(run.report["suppressions"][0]["hits"], 1);

  const RunOutput without = run_heapscope({"--default-suppressions=no", "--error-exitcode", "9"}, {program("origin_host")});
  EXPECT_EQ(without.exit_code, 9);
  EXPECT_EQ(loader_records(without.report["processes"][0]), 1) << without.report["processes"][0]["leaks"].dump(1);
  EXPECT_TRUE(without.report["suppressions"].empty());

  const RunOutput list = run_native({heapscope_binary(), "default-suppressions"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("\nleak:_dl_find_object_update\n"), std::string::npos) << list.out;
}

// The agent's watchers of terminating signals are invisible: a program asking for a watched
// signal's handler learns SIG_DFL and decides as it would natively (CPython installs its
// KeyboardInterrupt handler only over SIG_DFL).
TEST(LeakCheckE2E, WatchedSignalsStillLookDefaultToTheProgram) {
  if (!program_exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 is not installed";
  const std::string script =
      "import os, signal, time\n"
      "try:\n"
      "    os.kill(os.getpid(), signal.SIGINT)\n"
      "    time.sleep(2)\n"
      "except KeyboardInterrupt:\n"
      "    print('KeyboardInterrupt')\n"
      "print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, signal.getsignal(signal.SIGPIPE))\n";
  const RunOutput native = run_native({"/usr/bin/python3", "-c", script});
  const RunOutput run = run_heapscope({}, {"/usr/bin/python3", "-c", script});
  EXPECT_EQ(run.exit_code, native.exit_code) << run.err;
  EXPECT_EQ(run.out, native.out);
  EXPECT_EQ(run.out.rfind("KeyboardInterrupt\nTrue", 0), 0u) << run.out;
}

// issue 15: a process killed during its leak scan left the scan's ptrace helper behind,
// reparented to init and holding the whole address space. It notices and ends.
TEST(LeakCheckE2E, AProcessKilledDuringItsScanLeavesNoHelperBehind) {
  const pid_t heapscope = fork();
  if (heapscope == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    exec_or_exit({heapscope_binary(), "run", "--", SCAN_WORKLOAD, "2000000", "64"});
  }
  // The workload is heapscope's child; its scan's helper is the workload's child, a clone of it.
  auto children_of = [](int parent) {
    std::vector<int> found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const size_t close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream fields(line.substr(close + 2));
      char state = 0;
      int ppid = 0;
      fields >> state >> ppid;
      if (ppid == parent && state != 'Z') found.push_back(std::stoi(name));
    }
    return found;
  };
  int workload = 0;
  int helper = 0;
  for (int i = 0; i < 6000 && helper == 0; ++i) {  // up to 60 s: building the heap takes a while
    if (workload == 0) {
      const auto children = children_of(heapscope);
      if (!children.empty()) workload = children[0];
    } else {
      const auto children = children_of(workload);
      if (!children.empty()) helper = children[0];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(helper, 0) << "the scan's helper never appeared";
  kill(workload, SIGKILL);
  int status = 0;
  waitpid(heapscope, &status, 0);
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {  // it looks every 50 ms
    std::ifstream stat("/proc/" + std::to_string(helper) + "/stat");
    std::string line;
    gone = !std::getline(stat, line) || line.find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "helper " << helper << " outlived the process it was scanning";
  if (!gone) kill(helper, SIGKILL);
}

// issue 12 (6): memcheck's default leak heuristics. Each block of interior_heuristics.cpp is
// held only by an interior pointer: memcheck 3.19 on this machine calls the stdstring (65
// bytes), length64 (108), newarray (48) and multipleinheritance (40) ones still reachable, and
// the plain one (64) possibly lost. So must heapscope.
TEST(LeakCheckE2E, CxxInteriorPointersAreReachableByMemchecksHeuristics) {
  const RunOutput run = run_heapscope({}, {program("interior_heuristics")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::map<long, std::string> kinds;
  for (const json& record : leaks_from(only_process(run), "/interior_heuristics"))
    kinds[record["bytes"].get<long>()] = record["kind"];
  EXPECT_EQ(kinds[65], "reachable") << "stdstring";
  EXPECT_EQ(kinds[108], "reachable") << "length64";
  EXPECT_EQ(kinds[48], "reachable") << "newarray";
  EXPECT_EQ(kinds[40], "reachable") << "multipleinheritance";
  EXPECT_EQ(kinds[64], "possible") << "no heuristic applies";
}

}  // namespace
}  // namespace heapscope::test
