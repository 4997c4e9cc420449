// End-to-end test helpers (see e2e_support.h).
#include "e2e_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace heapscope::test {
namespace {

// The scratch files tests make under testing::TempDir() (traces, reports, logs) go into one
// private directory per test process, removed when the process's tests are done: gtest's
// TempDir() follows TEST_TMPDIR. Without it every run left some 45 directories in /tmp.
class ScratchRoot : public ::testing::Environment {
 public:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "heapscope-e2e-scratch.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    setenv("TEST_TMPDIR", root_.c_str(), 1);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

 private:
  std::string root_;
};
[[maybe_unused]] ::testing::Environment* const scratch_root = ::testing::AddGlobalTestEnvironment(new ScratchRoot);

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string temp_directory() {
  std::string pattern = (std::filesystem::temp_directory_path() / "heapscope-e2e.XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

// Runs argv with stdout/stderr captured to files; kills it after `timeout`.
RunOutput run_process(const std::vector<std::string>& argv, const std::vector<std::string>& environment,
                      std::chrono::seconds timeout = std::chrono::seconds(300)) {
  const std::string dir = temp_directory();
  const std::string out_path = dir + "/out";
  const std::string err_path = dir + "/err";
  const pid_t child = fork();
  if (child == 0) {
    setpgid(0, 0);  // its own group: a timeout kills everything it started
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int null_in = open("/dev/null", O_RDONLY);
    dup2(null_in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (const std::string& entry : environment) putenv(const_cast<char*>(entry.c_str()));
    exec_or_exit(argv);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-child, SIGKILL);
      waitpid(child, &status, 0);
      throw std::runtime_error("timed out: " + argv[0]);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  RunOutput output;
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  output.out = read_file(out_path);
  output.err = read_file(err_path);
  std::filesystem::remove_all(dir);
  return output;
}

}  // namespace

void exec_or_exit(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& argument : argv) args.push_back(const_cast<char*>(argument.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  _exit(127);
}

std::string heapscope_binary() { return HEAPSCOPE_BIN; }

std::string scratch_directory(const std::string& name) {
  std::string pattern = testing::TempDir() + "/" + name + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + pattern);
  return std::filesystem::canonical(pattern).string();
}
std::string program(const std::string& name) { return std::string(E2E_PROGRAMS_DIR) + "/" + name; }

RunOutput run_heapscope(const std::vector<std::string>& options, const std::vector<std::string>& command,
                        const std::vector<std::string>& environment, std::chrono::seconds timeout) {
  const std::string dir = temp_directory();
  const std::string json_path = dir + "/report.json";
  std::vector<std::string> argv = {heapscope_binary(), "run", "--json", json_path};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  RunOutput output = run_process(argv, environment, timeout);
  const std::string json_text = read_file(json_path);
  if (!json_text.empty()) output.report = nlohmann::json::parse(json_text);
  std::filesystem::remove_all(dir);
  return output;
}

RunOutput run_attach(const std::vector<std::string>& options, int pid) {
  const std::string dir = temp_directory();
  const std::string json_path = dir + "/report.json";
  std::vector<std::string> argv = {heapscope_binary(), "attach", "--json", json_path};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(std::to_string(pid));
  RunOutput output = run_process(argv, {}, std::chrono::seconds(120));
  const std::string json_text = read_file(json_path);
  if (!json_text.empty()) output.report = nlohmann::json::parse(json_text);
  std::filesystem::remove_all(dir);
  return output;
}

RunOutput run_native(const std::vector<std::string>& command, std::chrono::seconds timeout) {
  return run_process(command, {}, timeout);
}

int line_of(const std::string& source, const std::string& marker) {
  std::ifstream in(std::string(E2E_PROGRAMS_SOURCE_DIR) + "/" + source);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number)
    if (line.find(marker) != std::string::npos) return number;
  return -1;
}

bool function_is(const nlohmann::json& frame, const std::string& name) {
  if (!frame.is_object() || !frame["function"].is_string()) return false;
  const std::string function = frame["function"];
  return function == name || function.starts_with(name + "(");
}

const nlohmann::json* find_frame(const nlohmann::json& stack, const std::string& function) {
  if (!stack.is_array()) return nullptr;
  for (const auto& frame : stack)
    if (function_is(frame, function)) return &frame;
  return nullptr;
}

std::vector<nlohmann::json> leaks_from(const nlohmann::json& process, const std::string& module_suffix) {
  std::vector<nlohmann::json> found;
  for (const auto& leak : process["leaks"]) {
    if (leak["stack"].empty()) continue;
    const auto& innermost = leak["stack"][0];
    if (innermost["module"].is_string() && innermost["module"].get<std::string>().ends_with(module_suffix))
      found.push_back(leak);
  }
  return found;
}

bool program_exists(const std::string& name) {
  return std::system(("command -v " + name + " > /dev/null 2>&1").c_str()) == 0;
}

}  // namespace heapscope::test
