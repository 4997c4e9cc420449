// End-to-end tests of `heapscope attach PID` on real processes: our own hardened daemon
// (attach_daemon.c: threads churning, leaking, keeping blocks, waiting in read() and
// epoll_wait), python3, and every refusal. Every test checks that the process it attached to
// carried on unharmed: its own integrity checks, no EINTR, its exit status.
// When the kernel refuses ptrace here (Yama, no CAP_SYS_PTRACE), the tests skip and say why.
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "e2e_support.h"

namespace heapscope::test {
namespace {

using namespace std::chrono_literals;

constexpr int kExitTargetEnded = 119;
constexpr int kExitNoSuchProcess = 120;
constexpr int kExitNotPermitted = 121;
constexpr int kExitCannotAttach = 122;
constexpr int kExitUsage = 125;

// A child process with a pipe to its stdin and one from its stdout.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, const std::vector<std::string>& environment = {}) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      for (const std::string& entry : environment) putenv(const_cast<char*>(entry.c_str()));
      exec_or_exit(argv);
    }
    close(in[0]);
    close(out[1]);
    to_child_ = in[1];
    from_child_ = out[0];
  }
  ~Child() {
    if (to_child_ >= 0) close(to_child_);
    if (from_child_ >= 0) close(from_child_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int pid() const { return pid_; }

  // Reads stdout until a line equal to `wanted` arrives (true) or `timeout` passes.
  bool wait_line(const std::string& wanted, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const size_t end = buffer_.find('\n');
      if (end != std::string::npos) {
        const std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        output_ += line + "\n";
        if (line == wanted) return true;
        continue;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
      fd_set readable;
      FD_ZERO(&readable);
      FD_SET(from_child_, &readable);
      timeval tick{0, 20000};
      if (select(from_child_ + 1, &readable, nullptr, nullptr, &tick) <= 0) continue;
      char chunk[4096];
      const ssize_t got = read(from_child_, chunk, sizeof(chunk));
      if (got <= 0) return false;
      buffer_.append(chunk, static_cast<size_t>(got));
    }
  }
  // Sends a command line and waits for the daemon's "ok COMMAND".
  bool command(const std::string& line) {
    const std::string text = line + "\n";
    if (write(to_child_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return false;
    return wait_line("ok " + line);
  }
  // Sends `quit` and returns the exit status (128 + signal when killed).
  int quit(std::chrono::milliseconds timeout = 20s) {
    (void)!write(to_child_, "quit\n", 5);
    wait_line("clean", timeout);
    return wait_exit(timeout);
  }
  int wait_exit(std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(5ms);
    }
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  bool reaped_ = false;
  std::string buffer_;
  std::string output_;
};

// Skips the test when this machine forbids attaching (the reason is heapscope's own message).
#define SKIP_IF_NOT_PERMITTED(run)                                                              \
  if ((run).exit_code == kExitNotPermitted) GTEST_SKIP() << "ptrace is not permitted here: " << (run).err

const nlohmann::json* leak_at(const nlohmann::json& process, const std::string& function) {
  for (const auto& leak : process["leaks"])
    if (!leak["stack"].empty() && function_is(leak["stack"][0], function)) return &leak;
  return nullptr;
}

std::vector<std::string> thread_names_and_fds(int pid) {
  std::vector<std::string> seen;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task"))
    seen.push_back("task " + entry.path().filename().string());
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    seen.push_back("fd " + entry.path().filename().string());
  std::sort(seen.begin(), seen.end());
  return seen;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(AttachE2E, FindsWhatTheDaemonLeaksWhileAttachedAndLeavesItRunning) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  auto attached = std::async(std::launch::async, [&] { return run_attach({"--for", "2.5"}, daemon.pid()); });
  std::this_thread::sleep_for(800ms);  // attached by now (the attach takes milliseconds)
  // Plugins load through the daemon's own RUNPATH ($ORIGIN): dlopen still works while attached.
  ASSERT_TRUE(daemon.command("dlopen plugin.so")) << daemon.output();
  ASSERT_TRUE(daemon.command("old"));
  ASSERT_TRUE(daemon.command("hold"));
  std::this_thread::sleep_for(200ms);  // the agent redirects the plugin's slots within 20 ms
  ASSERT_TRUE(daemon.command("plugin"));
  const RunOutput run = attached.get();
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("attached to process " + std::to_string(daemon.pid())), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("detached from process"), std::string::npos) << run.err;

  ASSERT_EQ(run.report["processes"].size(), 1u);
  const auto& process = run.report["processes"][0];
  EXPECT_EQ(process["pid"], daemon.pid());
  EXPECT_TRUE(process["still_running"].get<bool>());
  const auto& attach = process["attach"];
  ASSERT_TRUE(attach.is_object()) << process.dump(1).substr(0, 2000);
  EXPECT_EQ(attach["ended_by"], "detach");
  EXPECT_GE(attach["duration_seconds"].get<double>(), 2.0);
  EXPECT_GT(attach["program_slots"].get<int>(), 0);  // full RELRO, -fno-plt: GLOB_DAT slots
  EXPECT_EQ(attach["restored_slots"], attach["redirected_slots"]);
  EXPECT_GE(attach["redirect_rounds"].get<int>(), 2);  // the plugin's own round
  // `old` frees 1,000 blocks from before the attach and reallocates 500 more.
  EXPECT_GE(attach["frees_of_older_blocks"].get<int>(), 1500);
  EXPECT_TRUE(process["errors"].empty()) << process["errors"].dump(1);

  // The periodic leak: lost, aged over the session, growing.
  const nlohmann::json* leaked = leak_at(process, "leak_periodically");
  ASSERT_NE(leaked, nullptr) << process["leaks"].dump(1).substr(0, 3000);
  EXPECT_EQ((*leaked)["kind"], "definite");
  EXPECT_EQ((*leaked)["bytes"].get<int>(), 100 * (*leaked)["blocks"].get<int>());
  EXPECT_GE((*leaked)["blocks"].get<int>(), 100);  // one every 5 ms for 2.5 s, on a busy machine
  EXPECT_GT((*leaked)["age_seconds"]["oldest"].get<double>(), 1.5);
  EXPECT_LT((*leaked)["age_seconds"]["youngest"].get<double>(), 0.5);
  EXPECT_GT((*leaked)["bytes_per_second"].get<double>(), 1000.0);
  // Kept in a global list: reachable. Blocks from before the attach are roots, and the list's
  // head node may be one of them: none of the kept blocks may be called lost.
  for (const auto& leak : process["leaks"])
    if (function_is(leak["stack"][0], "keep_in_list")) {
      EXPECT_EQ(leak["kind"], "reachable") << leak.dump();
    }
  // Made after the attach by the plugin loaded after the attach, kept in its global.
  const nlohmann::json* plugin = leak_at(process, "plugin_leak");
  ASSERT_NE(plugin, nullptr) << process["leaks"].dump(1).substr(0, 3000);
  EXPECT_EQ((*plugin)["bytes"], 555);
  // Every API `hold` used, each block the daemon's to free after the detach.
  for (const char* marker : {"held[0] = malloc(300)", "held[1] = calloc(10, 30)", "held[2] = aligned_alloc(64, 640)",
                             "posix_memalign(&held[3], 128, 1280)", "held[4] = realloc(malloc(10), 5000)"}) {
    const int line = line_of("attach_daemon.c", marker);
    bool found = false;
    for (const auto& leak : process["leaks"])
      if (const auto* frame = find_frame(leak["stack"], "hold_command"); frame != nullptr && (*frame)["line"] == line)
        found = true;
    EXPECT_TRUE(found) << "no record for attach_daemon.c:" << line;
  }
  // Blocks allocated before the attach are never reported.
  for (const auto& leak : process["leaks"]) EXPECT_FALSE(function_is(leak["stack"][0], "main")) << leak.dump();

  // The daemon: no EINTR in read() or epoll_wait, every block intact, the blocks made while
  // attached freed by the real allocator after the detach.
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, ReportValidatesAgainstTheSchema) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  std::string dir = testing::TempDir() + "/heapscope-attach-schema-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const RunOutput run = run_native({heapscope_binary(), "attach", "--for", "0.5", "--json", dir + "/a.json",
                                    "--min-age", "0.2", std::to_string(daemon.pid())});
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const RunOutput valid = run_native({"/usr/bin/python3", E2E_SOURCE_DIR "/validate_report.py",
                                      PROJECT_SOURCE_DIR "/docs/report.schema.json", dir + "/a.json"});
  EXPECT_EQ(valid.exit_code, 0) << valid.err;
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, HtmlReportShowsTheSessionAndRendersInChromium) {
  if (!program_exists("chromium")) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  std::string dir = testing::TempDir() + "/heapscope-attach-html-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const RunOutput run = run_attach({"--for", "0.5", "--html", dir + "/a.html"}, daemon.pid());
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const RunOutput dom = run_native({"timeout", "120", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                    "--user-data-dir=" + dir + "/profile", "--dump-dom", "file://" + dir + "/a.html"});
  EXPECT_NE(dom.out.find("data-js-errors=\"0\""), std::string::npos) << dom.out.substr(0, 2000);
  EXPECT_NE(dom.out.find("data-role=\"attach-card\""), std::string::npos);
  EXPECT_NE(dom.out.find("ended by detach"), std::string::npos);
  EXPECT_NE(dom.out.find("leak_periodically"), std::string::npos);
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

// --output: the session's trace rebuilds the same report later with `heapscope report`.
TEST(AttachE2E, TheTraceOfASessionGivesTheSameReport) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  std::string dir = testing::TempDir() + "/heapscope-attach-trace-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const RunOutput live = run_attach({"--for", "0.5", "--output", dir + "/traces"}, daemon.pid());
  SKIP_IF_NOT_PERMITTED(live);
  ASSERT_EQ(live.exit_code, 0) << live.err;
  const RunOutput later = run_native({heapscope_binary(), "report", "--json", dir + "/again.json", dir + "/traces"});
  ASSERT_EQ(later.exit_code, 0) << later.err;
  const nlohmann::json again = nlohmann::json::parse(read_text(dir + "/again.json"));
  const auto& was = live.report["processes"][0];
  const auto& is = again["processes"][0];
  EXPECT_EQ(is["attach"]["ended_by"], "detach");
  EXPECT_EQ(is["attach"]["redirected_slots"], was["attach"]["redirected_slots"]);
  EXPECT_EQ(is["attach"]["frees_of_older_blocks"], was["attach"]["frees_of_older_blocks"]);
  EXPECT_EQ(is["summary"], was["summary"]);
  EXPECT_TRUE(is["still_running"].get<bool>());
  EXPECT_NE(leak_at(is, "leak_periodically"), nullptr);
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, MinAgeLeavesOutBlocksYoungerThanIt) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  const RunOutput run = run_attach({"--for", "1.5", "--min-age", "1"}, daemon.pid());
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto& process = run.report["processes"][0];
  EXPECT_EQ(process["attach"]["min_age_seconds"], 1.0);
  const nlohmann::json* leaked = leak_at(process, "leak_periodically");
  ASSERT_NE(leaked, nullptr);
  EXPECT_GE((*leaked)["age_seconds"]["youngest"].get<double>(), 1.0);
  EXPECT_LT((*leaked)["blocks"].get<int>(), 110);  // about 0.5 s of its 1.5 s
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, TwentyAttachesInARowLeaveOneAgentAndNothingRunning) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  const std::vector<std::string> before = thread_names_and_fds(daemon.pid());
  for (int round = 0; round < 20; ++round) {
    const RunOutput run = run_attach({"--for", "0.05", "--quiet"}, daemon.pid());
    SKIP_IF_NOT_PERMITTED(run);
    ASSERT_EQ(run.exit_code, 0) << "round " << round << ": " << run.err;
    ASSERT_TRUE(run.report["processes"][0]["attach"].is_object());
  }
  std::this_thread::sleep_for(100ms);  // the agent's thread ends within one 20 ms round
  EXPECT_EQ(thread_names_and_fds(daemon.pid()), before);
  std::ifstream maps("/proc/" + std::to_string(daemon.pid()) + "/maps");
  size_t agent_code = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("libheapscope-attach.so") != std::string::npos && line.find(" r-xp ") != std::string::npos)
      ++agent_code;
    EXPECT_EQ(line.find(".ring"), std::string::npos) << "a ring left mapped: " << line;
  }
  EXPECT_EQ(agent_code, 1u) << "the agent is loaded once, however many sessions";
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

// VmSize in KiB: the process's mapped address space (adjacent anonymous mappings merge, so a
// count of mappings would not see a table left per thread).
long mapped_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7));
  return -1;
}

// Threads that start and end while attached leave no mapping of the agent's behind (the agent
// sees no thread end; it finds ended threads' tables itself), and none stays after detach.
TEST(AttachE2E, ThreadsStartingAndEndingWhileAttachedLeaveNoMappingsBehind) {
  // One malloc arena: glibc makes a new 64 MiB one for a new thread as contention dictates,
  // which would drown the measure below.
  Child daemon({program("attach_daemon")}, {"GLIBC_TUNABLES=glibc.malloc.arena_max=1"});
  ASSERT_TRUE(daemon.wait_line("ready"));
  ASSERT_TRUE(daemon.command("threads"));  // glibc caches a thread stack now, not while attached
  const long before = mapped_kib(daemon.pid());
  auto attached = std::async(std::launch::async, [&] { return run_attach({"--for", "2"}, daemon.pid()); });
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(daemon.command("threads"));
  const RunOutput run = attached.get();
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_GE(run.report["processes"][0]["summary"]["allocations"].get<int>(), 3000);  // 300 threads x 10
  std::this_thread::sleep_for(100ms);
  // What stays: the agent (about 1 MiB), the tables it keeps for the next session (slots,
  // modules, mappings: about 3 MiB, untouched) and its thread's 8 MiB stack, which glibc keeps
  // in its cache for the program's next thread: 12.5 MiB measured. Not 110 KiB more per thread
  // that allocated while attached (300 threads: 44.5 MiB measured before the tables were reaped).
  EXPECT_LT(mapped_kib(daemon.pid()) - before, 20 * 1024) << read_text("/proc/" + std::to_string(daemon.pid()) + "/maps");
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, AProcessThatEndsWhileAttachedGivesWhatWasSeen) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  auto attached = std::async(std::launch::async, [&] { return run_attach({"--for", "30"}, daemon.pid()); });
  std::this_thread::sleep_for(1000ms);
  kill(daemon.pid(), SIGKILL);
  const RunOutput run = attached.get();
  SKIP_IF_NOT_PERMITTED(run);
  EXPECT_EQ(run.exit_code, kExitTargetEnded) << run.err;
  EXPECT_NE(run.err.find("ended while attached"), std::string::npos) << run.err;
  const auto& process = run.report["processes"][0];
  EXPECT_EQ(process["attach"]["ended_by"], "process ended");
  EXPECT_NE(leak_at(process, "leak_periodically"), nullptr);
}

TEST(AttachE2E, AProcessThatExitsWhileAttachedKeepsItsStatusAndIsReported) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  std::string dir = testing::TempDir() + "/heapscope-attach-exit-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto attached = std::async(std::launch::async, [&] {
    return run_attach({"--for", "30", "--collapsed", dir + "/stacks.txt", "--cost", "leaked"}, daemon.pid());
  });
  std::this_thread::sleep_for(800ms);
  ASSERT_TRUE(daemon.command("hold"));
  // It exits while attached: its exit handlers run the agent's end of session.
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
  const RunOutput run = attached.get();
  SKIP_IF_NOT_PERMITTED(run);
  EXPECT_EQ(run.exit_code, kExitTargetEnded) << run.err;
  const auto& process = run.report["processes"][0];
  EXPECT_EQ(process["attach"]["ended_by"], "process exit");
  EXPECT_EQ(process["exit"]["code"], 0);
  EXPECT_TRUE(process["leak_scan"]["classified"].get<bool>()) << process["leak_scan"].dump();
  const nlohmann::json* leaked = leak_at(process, "leak_periodically");
  ASSERT_NE(leaked, nullptr);
  EXPECT_EQ((*leaked)["kind"], "definite");
  // What `hold` kept was freed before exit: no record of it.
  for (const auto& leak : process["leaks"]) EXPECT_EQ(find_frame(leak["stack"], "hold_command"), nullptr) << leak.dump();
  const std::string stacks = read_text(dir + "/stacks.txt");
  EXPECT_NE(stacks.find("leak_periodically"), std::string::npos) << stacks.substr(0, 1000);
}

TEST(AttachE2E, SigtermEndsTheSessionCleanly) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  std::string dir = testing::TempDir() + "/heapscope-attach-term-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const pid_t attacher = fork();
  if (attacher == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execl(heapscope_binary().c_str(), "heapscope", "attach", "--json", (dir + "/t.json").c_str(),
          std::to_string(daemon.pid()).c_str(), nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(1000ms);
  kill(attacher, SIGTERM);
  int status = 0;
  waitpid(attacher, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kExitNotPermitted) GTEST_SKIP() << "ptrace is not permitted here";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const nlohmann::json report = nlohmann::json::parse(read_text(dir + "/t.json"));
  EXPECT_EQ(report["processes"][0]["attach"]["ended_by"], "detach");
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, KillingHeapscopeLeavesTheProcessToDetachOnItsOwn) {
  Child daemon({program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  const pid_t attacher = fork();
  if (attacher == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execl(heapscope_binary().c_str(), "heapscope", "attach", std::to_string(daemon.pid()).c_str(), nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(1000ms);
  kill(attacher, SIGKILL);
  int status = 0;
  waitpid(attacher, &status, 0);
  std::this_thread::sleep_for(300ms);  // the agent sees its collector gone within 20 ms, then detaches
  // Detached: a new session can start.
  const RunOutput again = run_attach({"--for", "0.3"}, daemon.pid());
  SKIP_IF_NOT_PERMITTED(again);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, RefusesWhatItCannotAttachToWithoutTouchingIt) {
  // No such process.
  const RunOutput none = run_attach({"--for", "1"}, 999999999);
  EXPECT_EQ(none.exit_code, kExitNoSuchProcess) << none.err;
  EXPECT_NE(none.err.find("no such process: 999999999"), std::string::npos) << none.err;

  // A stopped process stays stopped. (Not the daemon: a stop and a SIGCONT alone make its
  // epoll_wait return EINTR, as signal(7) says.)
  Child stopped({"sleep", "60"});
  std::this_thread::sleep_for(100ms);
  kill(stopped.pid(), SIGSTOP);
  std::this_thread::sleep_for(100ms);
  const RunOutput refused = run_attach({"--for", "1"}, stopped.pid());
  EXPECT_EQ(refused.exit_code, kExitCannotAttach) << refused.err;
  EXPECT_NE(refused.err.find("is stopped; resume it first (kill -CONT"), std::string::npos) << refused.err;
  EXPECT_NE(read_text("/proc/" + std::to_string(stopped.pid()) + "/stat").find(") T "), std::string::npos);

  // A process someone else traces: named, left traced.
  Child traced({program("attach_daemon")});
  ASSERT_TRUE(traced.wait_line("ready"));
  if (ptrace(PTRACE_SEIZE, traced.pid(), nullptr, nullptr) == 0) {
    const RunOutput busy = run_attach({"--for", "1"}, traced.pid());
    EXPECT_EQ(busy.exit_code, kExitCannotAttach) << busy.err;
    EXPECT_NE(busy.err.find("is already traced by process " + std::to_string(getpid())), std::string::npos) << busy.err;
    ptrace(PTRACE_DETACH, traced.pid(), nullptr, nullptr);
  }
  EXPECT_EQ(traced.quit(), 0) << traced.output();

  // Another user's process, for an unprivileged heapscope (possible to arrange only as root).
  if (geteuid() == 0 && program_exists("/usr/bin/setpriv")) {
    Child sleeper({"sleep", "60"});
    const RunOutput other = run_native({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                        heapscope_binary(), "attach", "--for", "1", std::to_string(sleeper.pid())});
    EXPECT_EQ(other.exit_code, kExitNotPermitted) << other.err;
    EXPECT_NE(other.err.find("not permitted to attach to process " + std::to_string(sleeper.pid())), std::string::npos)
        << other.err;
    EXPECT_NE(other.err.find("it belongs to user 0 and heapscope runs as user 65534"), std::string::npos) << other.err;
  }

  // Two heapscopes on one process: the second is refused, the first goes on.
  {
    Child busy({program("attach_daemon")});
    ASSERT_TRUE(busy.wait_line("ready"));
    auto first = std::async(std::launch::async, [&] { return run_attach({"--for", "2"}, busy.pid()); });
    std::this_thread::sleep_for(700ms);
    const RunOutput second = run_attach({"--for", "1"}, busy.pid());
    const RunOutput first_run = first.get();
    SKIP_IF_NOT_PERMITTED(first_run);
    EXPECT_EQ(second.exit_code, kExitCannotAttach) << second.err;
    EXPECT_NE(second.err.find("another heapscope is attached to process"), std::string::npos) << second.err;
    EXPECT_EQ(first_run.exit_code, 0) << first_run.err;
    EXPECT_NE(leak_at(first_run.report["processes"][0], "leak_periodically"), nullptr);
    EXPECT_EQ(busy.quit(), 0) << busy.output();
  }

  // A statically linked program: nothing to redirect.
  Child static_program({program("static_sleeper")});
  ASSERT_TRUE(static_program.wait_line("ready"));
  const RunOutput static_run = run_attach({"--for", "1"}, static_program.pid());
  EXPECT_EQ(static_run.exit_code, kExitCannotAttach) << static_run.err;
  EXPECT_NE(static_run.err.find("is statically linked"), std::string::npos) << static_run.err;

  // A process already running under `heapscope run`.
  Child preloaded({heapscope_binary(), "run", "--quiet", "--", program("attach_daemon")});
  ASSERT_TRUE(preloaded.wait_line("ready"));
  int daemon_pid = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_text(entry.path() / "stat");
    if (stat.find("(attach_daemon)") != std::string::npos &&
        stat.find(" " + std::to_string(preloaded.pid()) + " ") != std::string::npos)
      daemon_pid = std::stoi(name);
  }
  ASSERT_GT(daemon_pid, 0);
  const RunOutput twice = run_attach({"--for", "1"}, daemon_pid);
  EXPECT_EQ(twice.exit_code, kExitCannotAttach) << twice.err;
  EXPECT_NE(twice.err.find("already runs under heapscope"), std::string::npos) << twice.err;
  EXPECT_EQ(preloaded.quit(), 0) << preloaded.output();
}

// A service runs as its own user; root attaches to it. The agent, running as that user, must
// be able to create its ring in the session directory root made.
TEST(AttachE2E, RootAttachesToAnotherUsersProcess) {
  if (geteuid() != 0 || !program_exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs root and setpriv";
  Child daemon({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", program("attach_daemon")});
  ASSERT_TRUE(daemon.wait_line("ready"));
  const RunOutput run = run_attach({"--for", "0.5"}, daemon.pid());
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(leak_at(run.report["processes"][0], "leak_periodically"), nullptr);
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

TEST(AttachE2E, UsageErrorsNameTheProblem) {
  const RunOutput no_pid = run_native({heapscope_binary(), "attach", "--for", "1"});
  EXPECT_EQ(no_pid.exit_code, kExitUsage);
  EXPECT_NE(no_pid.err.find("no process given"), std::string::npos) << no_pid.err;
  const RunOutput bad_pid = run_native({heapscope_binary(), "attach", "abc"});
  EXPECT_EQ(bad_pid.exit_code, kExitUsage);
  EXPECT_NE(bad_pid.err.find("'abc' is not a process id"), std::string::npos) << bad_pid.err;
  const RunOutput canaries = run_native({heapscope_binary(), "attach", "--canaries", "1"});
  EXPECT_EQ(canaries.exit_code, kExitUsage);
  EXPECT_NE(canaries.err.find("--canaries does not apply to attach"), std::string::npos) << canaries.err;
  const RunOutput seconds = run_native({heapscope_binary(), "attach", "--for", "soon", "1"});
  EXPECT_EQ(seconds.exit_code, kExitUsage);
  EXPECT_NE(seconds.err.find("--for needs a number of seconds"), std::string::npos) << seconds.err;
}

TEST(AttachE2E, Python3RunningAScriptCarriesOnAndIsReported) {
  if (!program_exists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 is not installed";
  // A script that builds and drops dicts for a while, keeping some, then prints a checksum.
  const std::string script =
      "import sys, time\n"
      "kept = []\n"
      "print('ready', flush=True)\n"
      "end = time.time() + 3\n"
      "n = 0\n"
      "while time.time() < end:\n"
      "    d = {str(i): [i] * 8 for i in range(200)}\n"
      "    n += len(d)\n"
      "    if n % 20000 == 0: kept.append(d)\n"
      "print('total', n, len(kept) > 0, flush=True)\n"
      "print('clean', flush=True)\n";
  Child python({"/usr/bin/python3", "-c", script});
  ASSERT_TRUE(python.wait_line("ready"));
  const RunOutput run = run_attach({"--for", "1"}, python.pid());
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto& process = run.report["processes"][0];
  EXPECT_GT(process["summary"]["allocations"].get<int>(), 1000);
  EXPECT_GT(process["attach"]["redirected_slots"].get<int>(), 0);
  EXPECT_TRUE(process["errors"].empty());
  EXPECT_TRUE(python.wait_line("clean", 20s)) << python.output();
  EXPECT_NE(python.output().find("total"), std::string::npos);
  EXPECT_EQ(python.wait_exit(), 0);
}

// The daemon over another allocator, preloaded: the agent redirects calls to that allocator,
// passes it the blocks from before the attach, and the daemon frees the others with it after.
class AttachOverAllocator : public ::testing::TestWithParam<const char*> {};

TEST_P(AttachOverAllocator, RecordsAndDetachesOverIt) {
  const std::string library = GetParam();
  if (!program_exists(library)) GTEST_SKIP() << library << " is not installed";
  Child daemon({program("attach_daemon")}, {"LD_PRELOAD=" + library});
  ASSERT_TRUE(daemon.wait_line("ready"));
  auto attached = std::async(std::launch::async, [&] { return run_attach({"--for", "1.5"}, daemon.pid()); });
  std::this_thread::sleep_for(700ms);
  ASSERT_TRUE(daemon.command("old"));
  ASSERT_TRUE(daemon.command("hold"));
  const RunOutput run = attached.get();
  SKIP_IF_NOT_PERMITTED(run);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto& process = run.report["processes"][0];
  EXPECT_TRUE(process["errors"].empty()) << process["errors"].dump(1);
  // Lost, most of them: all but the one the global still points to, and those the allocator's
  // own memory still names. Every byte heapscope did not hand out is a root when attached, and
  // jemalloc's thread caches keep stale addresses of blocks handed out since (from 2 to half of
  // them, from run to run): false "reachable", never false "lost".
  int lost_blocks = 0;
  for (const auto& leak : process["leaks"])
    if (function_is(leak["stack"][0], "leak_periodically") && leak["kind"] == "definite")
      lost_blocks += leak["blocks"].get<int>();
  EXPECT_GE(lost_blocks, 20);
  EXPECT_GE(process["attach"]["frees_of_older_blocks"].get<int>(), 1500);
  EXPECT_EQ(daemon.quit(), 0) << daemon.output();
}

INSTANTIATE_TEST_SUITE_P(Preloaded, AttachOverAllocator,
                         ::testing::Values("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                                           "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                                           "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"));

TEST(AttachE2E, RedisUnderRedisBenchmarkSurvivesAHundredAttaches) {
  for (const char* tool : {"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/redis-benchmark"})
    if (!program_exists(tool)) GTEST_SKIP() << tool << " is not installed";
  std::string dir = testing::TempDir() + "/heapscope-attach-redis-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string port = std::to_string(20000 + getpid() % 20000);
  Child redis({"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--logfile", dir + "/redis.log", "--dir", dir});
  auto cli = [&](std::vector<std::string> words) {
    std::vector<std::string> argv = {"/usr/bin/redis-cli", "-p", port};
    argv.insert(argv.end(), words.begin(), words.end());
    return run_native(argv);
  };
  for (int i = 0; i < 200 && cli({"ping"}).out != "PONG\n"; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(cli({"ping"}).out, "PONG\n");
  std::vector<std::string> keys = {"mset"};
  for (int i = 0; i < 100; ++i) {
    keys.push_back("heapscope:key:" + std::to_string(i));
    keys.push_back("value-" + std::to_string(i * 7));
  }
  ASSERT_EQ(cli(keys).out, "OK\n");

  auto benchmark = std::async(std::launch::async, [&] {
    return run_native({"/usr/bin/redis-benchmark", "-p", port, "-n", "400000", "-c", "20", "-P", "8", "-t",
                       "set,get,incr,lpush,lpop", "-q"});
  });
  int attached = 0;
  for (int round = 0; round < 100; ++round) {
    const RunOutput run = run_attach({"--for", "0.05", "--quiet"}, redis.pid());
    SKIP_IF_NOT_PERMITTED(run);
    ASSERT_EQ(run.exit_code, 0) << "round " << round << ": " << run.err;
    ASSERT_TRUE(run.report["processes"][0]["attach"].is_object());
    EXPECT_TRUE(run.report["processes"][0]["errors"].empty()) << run.report["processes"][0]["errors"].dump(1);
    if (run.report["processes"][0]["summary"]["allocations"].get<int>() > 0) ++attached;
  }
  const RunOutput bench = benchmark.get();
  EXPECT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_EQ(bench.err.find("rror"), std::string::npos) << bench.err;
  EXPECT_NE(bench.out.find("requests per second"), std::string::npos) << bench.out;
  EXPECT_GT(attached, 10) << "the sessions that overlapped the benchmark recorded its allocations";
  // Every key and value is still there; redis answers, logged no crash, and shuts down cleanly.
  std::vector<std::string> get = {"mget"};
  for (int i = 0; i < 100; ++i) get.push_back("heapscope:key:" + std::to_string(i));
  const std::string values = cli(get).out;
  for (int i = 0; i < 100; ++i)
    EXPECT_NE(values.find("value-" + std::to_string(i * 7) + "\n"), std::string::npos) << i;
  EXPECT_NE(cli({"info", "memory"}).out.find("used_memory:"), std::string::npos);
  cli({"shutdown", "nosave"});
  EXPECT_EQ(redis.wait_exit(), 0);
  const std::string log = read_text(dir + "/redis.log");
  EXPECT_EQ(log.find("crashed"), std::string::npos) << log;
  EXPECT_EQ(log.find("Segmentation"), std::string::npos) << log;
}

}  // namespace
}  // namespace heapscope::test
