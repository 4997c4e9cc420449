// Helpers for end-to-end tests: run real programs under `heapscope run`, capture their output
// and exit status, and load the JSON report. Paths come from CMake as compile definitions.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace heapscope::test {

struct RunOutput {
  int exit_code = -1;       // exit status, or 128 + signal
  std::string out;          // the child's stdout
  std::string err;          // the child's stderr
  nlohmann::json report;    // parsed --json output (null if none was written)
};

// Runs `heapscope run [options] --json F -- command...` with extra environment entries. Past
// `timeout` the whole run (heapscope, the program, its children) is killed and the test fails
// with "timed out": a hang costs a test its timeout, not the suite ctest's.
RunOutput run_heapscope(const std::vector<std::string>& options, const std::vector<std::string>& command,
                        const std::vector<std::string>& environment = {},
                        std::chrono::seconds timeout = std::chrono::seconds(300));

// In a forked child: executes argv (PATH searched), or exits 127.
[[noreturn]] void exec_or_exit(const std::vector<std::string>& argv);

// Runs `heapscope attach --json F [options] PID` and loads the report.
RunOutput run_attach(const std::vector<std::string>& options, int pid);

// Runs a command directly (no heapscope) for comparison.
RunOutput run_native(const std::vector<std::string>& command,
                     std::chrono::seconds timeout = std::chrono::seconds(300));

std::string program(const std::string& name);  // path of a tests/e2e/programs binary
// A fresh private directory under the test's scratch root, named NAME-XXXXXX, as an absolute
// path without `..` or `//` (the form programs and the loader report paths in). Throws if it
// cannot be made.
std::string scratch_directory(const std::string& name);
std::string heapscope_binary();
// 1-based line of the first line in `source` (under tests/e2e/programs) containing `marker`.
int line_of(const std::string& source, const std::string& marker);

// True if the frame's function is `name`, or a C++ function `name(...)`.
bool function_is(const nlohmann::json& frame, const std::string& name);
// The first frame of `stack` whose function is `function` (see function_is), or null.
const nlohmann::json* find_frame(const nlohmann::json& stack, const std::string& function);
// Leak records allocated directly by a module whose path ends with `module_suffix` (innermost
// frame), so tests can ignore what the runtime keeps for itself: libstdc++'s emergency pool,
// glibc's per-thread TLS vectors.
std::vector<nlohmann::json> leaks_from(const nlohmann::json& process, const std::string& module_suffix);
bool program_exists(const std::string& name);

}  // namespace heapscope::test
