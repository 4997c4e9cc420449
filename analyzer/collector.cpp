// Launch, ring discovery and draining for `heapscope run` (see collector.h).
#include "collector.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "errors.h"
#include "heapscope/event_format.h"
#include "ring_reader.h"
#include "trace_writer.h"

extern char** environ;

namespace heapscope::analyzer {
namespace {

using Clock = std::chrono::steady_clock;

// See format::kRingDirEnv. The agent, preloaded alone, makes the same choice without the
// standard library (preload/record/standalone.cpp).
std::string ring_base_directory() {
  const char* chosen = getenv(format::kRingDirEnv);
  if (chosen != nullptr && *chosen != '\0') return chosen;
  if (access(format::kSharedMemoryDir, W_OK | X_OK) == 0) return format::kSharedMemoryDir;
  const char* temporary = getenv("TMPDIR");
  return temporary != nullptr && *temporary != '\0' ? temporary : "/tmp";
}

// Session directories made by `heapscope run` and `attach` are named after heapscope's pid, so
// that the next heapscope can tell the ones whose heapscope was killed (SIGKILL, a CI timeout):
// their ring files would otherwise stay in RAM (/dev/shm) until reboot.
constexpr std::string_view kSessionPrefix = "heapscope.run-";

void remove_directory_and_files(const std::string& path) {
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') unlink(fmt::format("{}/{}", path, entry->d_name).c_str());
    }
    closedir(dir);
  }
  rmdir(path.c_str());
}

// Removes our user's session directories whose heapscope no longer exists. A pid taken again
// by another process only keeps a directory a little longer.
void remove_abandoned_sessions(const std::string& base) {
  DIR* dir = opendir(base.c_str());
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (!name.starts_with(kSessionPrefix)) continue;
    const std::string_view rest = name.substr(kSessionPrefix.size());
    pid_t owner = 0;
    size_t digits = 0;
    for (; digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9'; ++digits) owner = owner * 10 + (rest[digits] - '0');
    if (digits == 0 || digits >= rest.size() || rest[digits] != '.' || owner == getpid()) continue;
    if (kill(owner, 0) == 0 || errno != ESRCH) continue;
    const std::string path = fmt::format("{}/{}", base, name);
    struct stat status {};
    if (lstat(path.c_str(), &status) != 0 || !S_ISDIR(status.st_mode) || status.st_uid != getuid()) continue;
    remove_directory_and_files(path);
  }
  closedir(dir);
}

// A private directory for the rings: mkdtemp creates it 0700, so other users can neither read
// the events nor plant files in it.
class SessionDirectory {
 public:
  // Adopts a directory made by someone else (the agent, preloaded alone): removed at the end.
  explicit SessionDirectory(std::string path) : path_(std::move(path)) {}
  SessionDirectory() {
    const std::string base = ring_base_directory();
    remove_abandoned_sessions(base);
    std::string pattern = fmt::format("{}/{}{}.XXXXXX", base, kSessionPrefix, getpid());
    if (mkdtemp(pattern.data()) == nullptr)
      throw IoError(fmt::format("cannot create a session directory {}: {}", pattern, strerror(errno)));
    path_ = pattern;
  }
  ~SessionDirectory() { remove_directory_and_files(path_); }
  SessionDirectory(const SessionDirectory&) = delete;
  SessionDirectory& operator=(const SessionDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// SIGTERM and SIGHUP sent to `heapscope run` (a CI timeout, a closed terminal, a supervisor)
// go to the program, and heapscope goes on collecting until it ends: the report of what it
// did up to then is written as usual, and heapscope's status is the program's. Killed by
// default, heapscope would have lost everything recorded and left its session behind.
volatile sig_atomic_t forward_target = 0;   // the launched program, once it exists
volatile sig_atomic_t forward_pending = 0;  // a signal that came before it did
void forward_termination(int signal_number) {
  const int saved_errno = errno;
  if (forward_target > 0) {
    kill(forward_target, signal_number);
  } else {
    forward_pending = signal_number;
  }
  errno = saved_errno;
}

class ForwardTermination {
 public:
  ForwardTermination() {
    forward_target = 0;
    forward_pending = 0;
    struct sigaction forward {};
    forward.sa_handler = forward_termination;
    forward.sa_flags = SA_RESTART;
    sigemptyset(&forward.sa_mask);
    for (size_t i = 0; i < 2; ++i) sigaction(kSignals[i], &forward, &saved_[i]);
  }
  ~ForwardTermination() {
    for (size_t i = 0; i < 2; ++i) sigaction(kSignals[i], &saved_[i], nullptr);
    forward_target = 0;
  }
  ForwardTermination(const ForwardTermination&) = delete;
  ForwardTermination& operator=(const ForwardTermination&) = delete;
  void launched(pid_t program) {
    forward_target = program;
    if (forward_pending != 0) kill(program, forward_pending);
  }

 private:
  static constexpr int kSignals[2] = {SIGTERM, SIGHUP};
  struct sigaction saved_[2] {};
};

// Ignores SIGINT/SIGQUIT while the program runs (the terminal sends them to the program too),
// like system(3), so an interrupted program still gets its report.
class IgnoreInterrupts {
 public:
  IgnoreInterrupts() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGINT, &ignore, &saved_int_);
    sigaction(SIGQUIT, &ignore, &saved_quit_);
  }
  ~IgnoreInterrupts() {
    sigaction(SIGINT, &saved_int_, nullptr);
    sigaction(SIGQUIT, &saved_quit_, nullptr);
  }
  const struct sigaction& saved_int() const { return saved_int_; }
  const struct sigaction& saved_quit() const { return saved_quit_; }

 private:
  struct sigaction saved_int_ {};
  struct sigaction saved_quit_ {};
};

struct Ring {
  std::unique_ptr<RingReader> reader;
  std::unique_ptr<TraceWriter> trace;  // with --output, opened at the first record
  size_t process_index = 0;            // into the result's processes
  int pidfd = -1;
  bool closed = false;
};

ExitInfo exit_info(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) info.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) info.signal = WTERMSIG(status);
  return info;
}

// The file name users see: heapscope.<program>.<pid>.trace.zst, numbered for later images.
std::unique_ptr<TraceWriter> open_trace(const std::string& dir, const ProcessModel& model) {
  std::string program = model.argv().empty() ? model.exe() : model.argv()[0];
  program = program.substr(program.rfind('/') + 1);
  for (char& c : program)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  for (int image = 0;; ++image) {
    const std::string path = image == 0 ? fmt::format("{}/heapscope.{}.{}.trace.zst", dir, program, model.pid())
                                        : fmt::format("{}/heapscope.{}.{}.{}.trace.zst", dir, program, model.pid(), image);
    if (access(path.c_str(), F_OK) == 0) continue;  // an earlier image of this pid, or a run before
    return std::make_unique<TraceWriter>(path, model.pid());
  }
}

int open_pidfd(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Without a pidfd (kernels before 5.3, or a seccomp profile that refuses pidfd_open): the
// process has ended when /proc no longer has it, or has it as a zombie (dead, not yet reaped
// by its parent, which may be us). Taking every such process for ended at once, as before,
// closed its ring while it still wrote: events were lost, and a program waiting on a full ring
// nobody drained hung heapscope in waitpid.
bool proc_says_ended(int pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char text[512];
  const ssize_t got = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (got <= 0) return true;
  text[got] = '\0';
  const char* after_name = std::strrchr(text, ')');  // the name may hold spaces and ')'
  if (after_name == nullptr || after_name[1] != ' ') return false;
  const char state = after_name[2];
  return state == 'Z' || state == 'X';
}

bool has_ended(int pidfd, int pid) {
  if (pidfd < 0) return proc_says_ended(pid);
  pollfd poller{pidfd, POLLIN, 0};
  return poll(&poller, 1, 0) > 0;
}

std::vector<std::string> child_environment(const CollectOptions& options, const std::string& session) {
  std::vector<std::string> env;
  std::string preload = options.agent_path;
  std::string agent_options = options.agent_options;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view variable(*entry);
    if (variable.starts_with("LD_PRELOAD=")) {
      preload += " " + std::string(variable.substr(11));
    } else if (variable.starts_with(fmt::format("{}=", format::kOptionsEnv))) {
      // The user's own HEAPSCOPE_OPTIONS first: the command line's, parsed later, win.
      const std::string own(variable.substr(std::strlen(format::kOptionsEnv) + 1));
      agent_options = agent_options.empty() ? own : own + ":" + agent_options;
    } else if (!variable.starts_with(fmt::format("{}=", format::kSessionEnv)) &&
               !variable.starts_with(fmt::format("{}=", format::kCollectorPidEnv))) {
      env.emplace_back(variable);
    }
  }
  env.push_back("LD_PRELOAD=" + preload);
  env.push_back(fmt::format("{}={}", format::kSessionEnv, session));
  env.push_back(fmt::format("{}={}", format::kCollectorPidEnv, getpid()));
  env.push_back(fmt::format("{}={}", format::kOptionsEnv, agent_options));
  return env;
}

// Starts the program; exec failures come back through a close-on-exec pipe.
pid_t launch(const CollectOptions& options, const std::string& session, const IgnoreInterrupts& signals) {
  std::vector<std::string> env_strings = child_environment(options, session);
  std::vector<char*> env;
  for (std::string& variable : env_strings) env.push_back(variable.data());
  env.push_back(nullptr);
  std::vector<std::string> argv_strings = options.command;
  std::vector<char*> argv;
  for (std::string& argument : argv_strings) argv.push_back(argument.data());
  argv.push_back(nullptr);

  int report_pipe[2];
  if (pipe2(report_pipe, O_CLOEXEC) != 0)
    throw IoError(fmt::format("cannot create a pipe: {}", strerror(errno)));
  const pid_t child = fork();
  if (child < 0) throw IoError(fmt::format("cannot fork: {}", strerror(errno)));
  if (child == 0) {
    close(report_pipe[0]);
    sigaction(SIGINT, &signals.saved_int(), nullptr);
    sigaction(SIGQUIT, &signals.saved_quit(), nullptr);
    execvpe(argv[0], argv.data(), env.data());
    const int error = errno;
    (void)!write(report_pipe[1], &error, sizeof(error));
    _exit(kExitNotFound);
  }
  close(report_pipe[1]);
  int error = 0;
  ssize_t got;
  do {
    got = read(report_pipe[0], &error, sizeof(error));
  } while (got < 0 && errno == EINTR);
  close(report_pipe[0]);
  if (got == sizeof(error)) {
    waitpid(child, nullptr, 0);
    const std::string& program = options.command[0];
    if (error == ENOENT || error == ENOTDIR)
      throw LaunchError(fmt::format("{}: command not found", program), kExitNotFound);
    throw LaunchError(fmt::format("{}: cannot execute: {}", program, strerror(error)), kExitNotExecutable);
  }
  return child;
}

class Collector {
 public:
  Collector(const std::string& session, const std::string& output_dir, CollectResult& result)
      : session_(session), output_dir_(output_dir), result_(result) {}

  // The launched process is not our child (the agent preloaded alone started us): its end is
  // seen through a pidfd, and how it ended comes from what its agent recorded.
  void watch_not_a_child(int pid, const std::string& trace_path) {
    launched_pidfd_ = open_pidfd(pid);
    launched_not_a_child_ = true;
    // Already gone (a short program can end before we start): its ring still holds it all.
    if (launched_pidfd_ < 0 && proc_says_ended(pid)) launched_reaped_ = true;
    launched_trace_path_ = trace_path;
  }

  // Collects the launched program's wait status (blocking only when it is known to be over).
  // Returns true once it has been reaped.
  bool reap_launched(bool block) {
    if (launched_reaped_) return true;
    if (launched_not_a_child_) {
      if (!block && !has_ended(launched_pidfd_, result_.launched_pid)) return false;
      if (block && launched_pidfd_ >= 0) {
        pollfd poller{launched_pidfd_, POLLIN, 0};
        poll(&poller, 1, -1);
      }
      while (block && launched_pidfd_ < 0 && !proc_says_ended(result_.launched_pid))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      launched_reaped_ = true;
      return true;
    }
    int status = 0;
    const pid_t done = waitpid(result_.launched_pid, &status, block ? 0 : WNOHANG);
    if (done != result_.launched_pid) return false;
    result_.launched_exit = exit_info(status);
    launched_reaped_ = true;
    return true;
  }
  ~Collector() {
    for (Ring& ring : rings_)
      if (ring.pidfd >= 0) close(ring.pidfd);
    if (launched_pidfd_ >= 0) close(launched_pidfd_);
  }

  // Picks up rings that appeared since the last call. Returns true if any did.
  bool discover(pid_t launched) {
    DIR* dir = opendir(session_.c_str());
    if (dir == nullptr) throw IoError(fmt::format("cannot read {}: {}", session_, strerror(errno)));
    std::vector<std::string> fresh;
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.size() > 5 && name.ends_with(".ring") && !known_.contains(name)) fresh.push_back(name);
    }
    closedir(dir);
    // Rings of one pid in creation order (the name carries the creation time): exec order.
    std::sort(fresh.begin(), fresh.end(), [](const std::string& a, const std::string& b) {
      return std::strtoull(a.c_str() + a.find('-') + 1, nullptr, 10) <
             std::strtoull(b.c_str() + b.find('-') + 1, nullptr, 10);
    });
    bool added = false;
    for (const std::string& name : fresh) {
      auto reader = std::make_unique<RingReader>(fmt::format("{}/{}", session_, name));
      if (!reader->is_ready()) continue;  // header not published yet: next round
      known_.insert(name);
      // Mapped on both sides now: drop the name, so that if heapscope is killed no ring file
      // outlives the processes that write it.
      unlink(reader->path().c_str());
      const int pid = reader->pid();
      // A newer image of the same pid means the older one ended by exec.
      for (Ring& ring : rings_)
        if (!ring.closed && ring.reader->pid() == pid) finish(ring, false, /*writer_gone=*/true);
      Ring ring;
      ring.reader = std::move(reader);
      ring.pidfd = open_pidfd(pid);
      ring.process_index = result_.processes.size();
      result_.processes.emplace_back();
      result_.processes.back().launched = pid == launched;
      rings_.push_back(std::move(ring));
      added = true;
    }
    return added;
  }

  // Drains every open ring; with `check_ends`, closes those whose process has ended. Returns
  // records delivered.
  size_t drain(bool check_ends) {
    size_t delivered = 0;
    for (Ring& ring : rings_) {
      if (ring.closed) continue;
      // Check for the end before draining: whatever was committed before it is then drained.
      const bool ended = check_ends && has_ended(ring.pidfd, ring.reader->pid());
      delivered += drain_one(ring);
      if (ended) {
        finish(ring, true);
      } else if (ring.trace && !traces_failed_) {
        try {
          ring.trace->flush_if_stale();
        } catch (const IoError& error) {
          fmt::print(stderr, "heapscope: {}; no more trace files are written for this run\n", error.what());
          traces_failed_ = true;
        }
      }
    }
    return delivered;
  }

  // Asks every open ring's agent to end its session (attach).
  void request_detach() {
    for (Ring& ring : rings_)
      if (!ring.closed) ring.reader->set_state_bits(format::kRingDetachRequested);
  }

  // Closes the rings whose agent finished its session (attach: the agent unmaps its side).
  void finish_detached() {
    for (Ring& ring : rings_) {
      if (ring.closed || (ring.reader->state() & format::kRingFinished) == 0) continue;
      result_.processes[ring.process_index].still_running = true;  // detached from a live process
      finish(ring, false);
    }
  }

  bool any_ring() const { return !rings_.empty(); }

  bool all_closed() const {
    return std::all_of(rings_.begin(), rings_.end(), [](const Ring& ring) { return ring.closed; });
  }

  void give_up_waiting() {
    for (Ring& ring : rings_) {
      if (ring.closed) continue;
      drain_one(ring);
      result_.processes[ring.process_index].still_running = true;
      finish(ring, false);
    }
  }

 private:
  // `writer_gone`: nothing will write the ring again (see RingReader::drain_abandoned).
  size_t drain_one(Ring& ring, bool writer_gone = false) {
    ProcessModel& model = result_.processes[ring.process_index].model;
    const auto deliver = [&](const RecordView& record) {
      model.apply(record);
      if (output_dir_.empty() || traces_failed_) return;
      try {
        if (!ring.trace) {
          const bool named = !launched_trace_path_.empty() && model.pid() == result_.launched_pid;
          ring.trace = named ? std::make_unique<TraceWriter>(launched_trace_path_, model.pid())
                             : open_trace(output_dir_, model);
          if (named) launched_trace_path_.clear();  // an exec'd image of the pid gets its own name
          result_.trace_paths.push_back(ring.trace->path());
        }
        ring.trace->append(record.bytes);
      } catch (const IoError& error) {
        // A full disk must not cost the run its report: stop writing traces, keep collecting.
        fmt::print(stderr, "heapscope: {}; no more trace files are written for this run\n", error.what());
        traces_failed_ = true;
      }
    };
    return writer_gone ? ring.reader->drain_abandoned(deliver) : ring.reader->drain(deliver);
  }

  // Drains what is left, then gives the ring's memory back at once: a test suite or a build
  // starts thousands of processes, and each ring file holds the pages its process wrote.
  void finish(Ring& ring, bool process_ended, bool writer_gone = false) {
    drain_one(ring, process_ended || writer_gone);
    TracedProcess& process = result_.processes[ring.process_index];
    process.incomplete = (ring.reader->state() & format::kRingIncomplete) != 0;
    process.ring_waits = ring.reader->waits();
    if (process.launched && process_ended) reap_launched(true);
    if (ring.trace && !traces_failed_) {
      format::EndingEvent ending{};
      ending.header.kind = static_cast<uint16_t>(format::EventKind::kEnding);
      ending.header.size = sizeof(ending);
      ending.header.flags = static_cast<uint16_t>((process.launched ? format::kEndingLaunched : 0) |
                                                  (process.still_running ? format::kEndingStillRunning : 0) |
                                                  (process.incomplete ? format::kEndingIncomplete : 0));
      const ExitInfo exit = exit_of(process, result_.launched_exit);
      ending.exit_code = exit.code.value_or(-1);
      ending.signal = exit.signal.value_or(0);
      ending.ring_waits = process.ring_waits;
      try {
        ring.trace->finish(ending);
      } catch (const IoError& error) {
        fmt::print(stderr, "heapscope: {}\n", error.what());
        traces_failed_ = true;
      }
    }
    ring.trace.reset();
    if (ring.pidfd >= 0) close(ring.pidfd);
    ring.pidfd = -1;
    ring.reader.reset();  // unmaps: the file was unlinked when discovered
    ring.closed = true;
  }

  std::string session_;
  std::string output_dir_;
  CollectResult& result_;
  bool launched_reaped_ = false;
  bool launched_not_a_child_ = false;
  int launched_pidfd_ = -1;  // when the launched process is not our child
  std::string launched_trace_path_;  // its trace's name, chosen by its agent
  bool traces_failed_ = false;
  std::vector<Ring> rings_;
  std::set<std::string> known_;
};

}  // namespace

ExitInfo exit_of(const TracedProcess& process, const ExitInfo& launched_exit) {
  // The launched image that ran to the end has the wait status (when we are its parent);
  // others what their agent saw.
  const bool known = launched_exit.code || launched_exit.signal;
  if (process.launched && !process.model.ended_by_exec() && known) return launched_exit;
  ExitInfo exit;
  if (process.model.fatal_signal()) {
    exit.signal = process.model.fatal_signal();
  } else if (process.model.exit_status()) {
    exit.code = process.model.exit_status();
  }
  return exit;
}

namespace {

// Discovers and drains rings until the launched process and its traced descendants have ended
// (or `grace` has passed after the launched one).
void collect_until_done(Collector& collector, pid_t launched, std::chrono::milliseconds grace) {
  bool child_running = true;
  Clock::time_point child_end{};
  Clock::time_point last_scan{};
  Clock::time_point last_end_check{};
  auto idle = std::chrono::microseconds(50);
  for (;;) {
    // Listing the session directory costs a few system calls; while rings are busy, doing it
    // every 2 ms finds new processes soon enough (their rings buffer meanwhile). Asking every
    // process whether it ended is a poll(2) each: every millisecond is soon enough too, where
    // every pass over busy rings made the collector spend more time in the kernel than in
    // decoding.
    bool progress = false;
    const Clock::time_point now = Clock::now();
    if (now - last_scan > std::chrono::milliseconds(2) || !child_running) {
      progress = collector.discover(launched);
      last_scan = now;
    }
    const bool check_ends = now - last_end_check > std::chrono::milliseconds(1) || !child_running;
    if (check_ends) last_end_check = now;
    progress = collector.drain(check_ends) > 0 || progress;
    if (check_ends) {
      if (child_running) {
        if (collector.reap_launched(false)) {
          child_running = false;
          child_end = Clock::now();
          continue;  // one more discovery round for rings made just before the end
        }
      } else if (collector.all_closed()) {
        break;
      } else if (Clock::now() - child_end > grace) {
        collector.give_up_waiting();
        break;
      }
    }
    if (progress) {
      idle = std::chrono::microseconds(50);
    } else {
      std::this_thread::sleep_for(idle);
      idle = std::min(idle * 2, std::chrono::microseconds(2000));
    }
  }
}

}  // namespace

void prepare_output_dir(const std::string& directory) {
  if (directory.empty()) return;
  struct stat status {};
  if (stat(directory.c_str(), &status) != 0) {
    // A missing directory is made (its parent must exist), owner-only like the traces.
    if (errno != ENOENT || mkdir(directory.c_str(), 0700) != 0)
      throw IoError(fmt::format("cannot write traces to {}: {}", directory, strerror(errno)));
  } else if (!S_ISDIR(status.st_mode)) {
    throw IoError(fmt::format("cannot write traces to {}: it is not a directory (--output takes a directory)", directory));
  }
  if (access(directory.c_str(), W_OK | X_OK) != 0)
    throw IoError(fmt::format("cannot write traces to {}: {}", directory, strerror(errno)));
}

std::string untraced_reason(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  bool dynamic = true;
  bool elf = false;
  if (fd >= 0) {
    Elf64_Ehdr header{};
    if (pread(fd, &header, sizeof(header), 0) == sizeof(header) && std::memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 &&
        header.e_ident[EI_CLASS] == ELFCLASS64) {
      elf = true;
      dynamic = false;
      for (int i = 0; i < header.e_phnum && i < 4096; ++i) {
        Elf64_Phdr program{};
        if (pread(fd, &program, sizeof(program), static_cast<off_t>(header.e_phoff + i * sizeof(program))) !=
            sizeof(program))
          break;
        if (program.p_type == PT_INTERP) dynamic = true;
      }
    }
    close(fd);
  }
  if (elf && !dynamic) return "it is statically linked: LD_PRELOAD cannot load heapscope's agent into it";
  return "heapscope's agent did not start in it (not a dynamically linked program, or LD_PRELOAD was removed "
         "from its environment)";
}

namespace {

// Images no agent started in: the launched program when no ring of its pid appeared, and an
// exec'd program when the image that exec'd it has no successor of the same pid.
void find_untraced(CollectResult& result, const std::string& launched_program) {
  bool launched_seen = false;
  for (const TracedProcess& process : result.processes) launched_seen = launched_seen || process.launched;
  if (!launched_seen && result.launched_pid > 0)
    result.untraced.push_back({result.launched_pid, launched_program, untraced_reason(launched_program)});
  for (size_t i = 0; i < result.processes.size(); ++i) {
    const ProcessModel& model = result.processes[i].model;
    if (!model.ended_by_exec() || model.exec_path().empty()) continue;
    bool successor = false;
    for (size_t j = i + 1; j < result.processes.size(); ++j) successor = successor || result.processes[j].model.pid() == model.pid();
    if (!successor) result.untraced.push_back({model.pid(), model.exec_path(), untraced_reason(model.exec_path())});
  }
  // A vfork child's exec may also fail (the child then _exits): only a program that cannot be
  // traced is named, when no ring of the child's pid appeared.
  for (const TracedProcess& parent : result.processes) {
    for (const auto& [pid, path] : parent.model.child_execs()) {
      bool traced = false;
      for (const TracedProcess& process : result.processes) traced = traced || process.model.pid() == pid;
      const std::string reason = untraced_reason(path);
      if (!traced && reason.find("statically linked") != std::string::npos) result.untraced.push_back({pid, path, reason});
    }
  }
}

// The program execvp would run: the first executable PROGRAM on PATH (as given if it has a '/').
std::string resolve_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = getenv("PATH");
  std::string directories = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= directories.size()) {
    size_t end = directories.find(':', start);
    if (end == std::string::npos) end = directories.size();
    const std::string candidate = (end > start ? directories.substr(start, end - start) : ".") + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return program;
}

}  // namespace

CollectResult run_and_collect(const CollectOptions& options) {
  if (options.command.empty()) throw UsageError("no program given to run");
  SessionDirectory session;
  IgnoreInterrupts interrupts;
  ForwardTermination terminations;
  prepare_output_dir(options.output_dir);
  CollectResult result;
  Collector collector(session.path(), options.output_dir, result);
  const pid_t child = launch(options, session.path(), interrupts);
  terminations.launched(child);
  result.launched_pid = child;
  collect_until_done(collector, child, options.grace);
  // The launched image that ran to the end carries the wait status.
  for (TracedProcess& process : result.processes) process.exit = exit_of(process, result.launched_exit);
  find_untraced(result, resolve_program(options.command[0]));
  return result;
}

namespace {

// SIGINT, SIGTERM and SIGHUP end an attach session cleanly instead of killing heapscope: the
// target must never be left with its slots redirected to an agent nobody drains (memray #609).
volatile sig_atomic_t stop_signal = 0;
void note_stop_signal(int signal_number) { stop_signal = signal_number; }

class StopSignals {
 public:
  StopSignals() {
    stop_signal = 0;
    struct sigaction note {};
    note.sa_handler = note_stop_signal;
    sigemptyset(&note.sa_mask);
    for (size_t i = 0; i < 3; ++i) sigaction(kSignals[i], &note, &saved_[i]);
  }
  ~StopSignals() {
    for (size_t i = 0; i < 3; ++i) sigaction(kSignals[i], &saved_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool stopped() const { return stop_signal != 0; }

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction saved_[3] {};
};

}  // namespace

AttachCollectResult attach_and_collect(const AttachCollectOptions& options,
                                       const std::function<void(const std::string& session_dir)>& inject) {
  prepare_output_dir(options.output_dir);
  SessionDirectory session;
  StopSignals signals;
  AttachCollectResult attached;
  CollectResult& result = attached.collected;
  result.launched_pid = options.pid;
  Collector collector(session.path(), options.output_dir, result);
  collector.watch_not_a_child(options.pid, "");
  inject(session.path());
  collector.discover(options.pid);
  if (!collector.any_ring()) throw IoError("the agent started but its ring did not appear");

  const Clock::time_point started = Clock::now();
  auto idle = std::chrono::microseconds(100);
  bool process_ended = false;
  for (;;) {
    const bool progress = collector.drain(true) > 0;
    if (collector.all_closed()) {  // the process ended while attached
      process_ended = true;
      break;
    }
    if (signals.stopped()) {
      attached.interrupted = true;
      break;
    }
    if (options.duration.count() > 0 && Clock::now() - started >= options.duration) break;
    if (progress) {
      idle = std::chrono::microseconds(100);
    } else {
      std::this_thread::sleep_for(idle);
      idle = std::min(idle * 2, std::chrono::microseconds(5000));
    }
  }
  if (process_ended) {
    attached.end = AttachEnd::kProcessEnded;
  } else {
    collector.request_detach();
    const Clock::time_point asked = Clock::now();
    for (;;) {
      collector.drain(true);
      collector.finish_detached();
      if (collector.all_closed()) break;
      if (Clock::now() - asked > options.detach_timeout) {
        attached.end = AttachEnd::kDetachTimedOut;
        collector.give_up_waiting();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (TracedProcess& process : result.processes)
      if (!process.still_running) attached.end = AttachEnd::kProcessEnded;  // it ended while detaching
  }
  for (TracedProcess& process : result.processes) process.exit = exit_of(process, result.launched_exit);
  return attached;
}

CollectResult collect_existing(const std::string& session, int pid, const std::string& trace_path) {
  SessionDirectory adopted(session);
  CollectResult result;
  result.launched_pid = pid;
  const size_t slash = trace_path.rfind('/');
  Collector collector(session, slash == std::string::npos ? "." : trace_path.substr(0, slash), result);
  collector.watch_not_a_child(pid, trace_path);
  collect_until_done(collector, pid, std::chrono::milliseconds(2000));
  for (TracedProcess& process : result.processes) process.exit = exit_of(process, result.launched_exit);
  return result;
}

}  // namespace heapscope::analyzer
