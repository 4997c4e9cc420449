// The collector side of `heapscope run`: makes a private session directory, starts the program
// with the agent preloaded, drains every ring that appears there (one per process image: the
// program, its forked children and whatever they exec), and returns what each image recorded
// once the program and its traced descendants have ended.
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "report.h"

namespace heapscope::analyzer {

struct CollectOptions {
  std::vector<std::string> command;  // program and arguments (PATH is searched)
  std::string agent_path;            // absolute path of libheapscope.so
  std::string agent_options;         // HEAPSCOPE_OPTIONS for the agent
  // How long to keep collecting from descendants after the launched program has ended.
  std::chrono::milliseconds grace{2000};
  // Where to write one trace per process image (`heapscope.<program>.<pid>.trace.zst`); empty:
  // no trace files.
  std::string output_dir;
};

struct CollectResult {
  std::vector<TracedProcess> processes;  // in the order their rings appeared
  std::vector<UntracedProcess> untraced;  // images no agent started in (a static program...)
  std::vector<std::string> trace_paths;  // written with output_dir
  ExitInfo launched_exit;
  int launched_pid = 0;
};

// Exit statuses for a program that could not be started, as a shell uses them.
inline constexpr int kExitNotFound = 127;
inline constexpr int kExitNotExecutable = 126;

// A program that could not be started: `exit_code` is kExitNotFound or kExitNotExecutable.
class LaunchError : public std::runtime_error {
 public:
  LaunchError(const std::string& message, int exit_code)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};

// Runs the program to completion and collects. Throws LaunchError, IoError, FormatError.
CollectResult run_and_collect(const CollectOptions& options);

// Collects from process `pid`, which heapscope did not start (its agent, preloaded alone, made
// the session directory and started us), until it ends; writes its trace to `trace_path`
// (forked children's beside it, named as usual) and removes the session directory. Throws
// IoError, FormatError.
CollectResult collect_existing(const std::string& session, int pid, const std::string& trace_path);

// `heapscope attach`: the process is already running and is not our child.
struct AttachCollectOptions {
  int pid = 0;
  std::chrono::milliseconds duration{0};  // 0: until SIGINT, SIGTERM or SIGHUP
  std::string output_dir;                 // as CollectOptions::output_dir
  // How long the agent may take to scan and detach once asked (a big heap takes longer).
  std::chrono::milliseconds detach_timeout{30000};
};

// How an attach session ended, for the exit status and the report.
enum class AttachEnd { kDetached, kProcessEnded, kDetachTimedOut };

struct AttachCollectResult {
  CollectResult collected;
  AttachEnd end = AttachEnd::kDetached;
  bool interrupted = false;  // a signal, not --for, ended it
};

// Makes a private session directory, calls `inject(session_dir)` (which must return once the
// agent records into a ring there), then drains that ring until `duration` passes, a SIGINT,
// SIGTERM or SIGHUP arrives (they are held meanwhile, injection included, and never kill
// heapscope half-way), or the process ends; then asks the agent to detach and collects until
// it has finished. Whatever `inject` throws passes through, the directory removed. Throws
// IoError, FormatError.
AttachCollectResult attach_and_collect(const AttachCollectOptions& options,
                                       const std::function<void(const std::string& session_dir)>& inject);

// Checks --output: a directory we can write, made (one level, mode 0700) when missing. Throws
// IoError saying what is wrong ("it is not a directory", or the system's reason).
void prepare_output_dir(const std::string& directory);

// Why the agent could not have started in the program at `path`: "statically linked ..." when
// it has no ELF interpreter, else a general reason.
std::string untraced_reason(const std::string& path);

// How an image ended, from what the collector saw and what its agent recorded.
ExitInfo exit_of(const TracedProcess& process, const ExitInfo& launched_exit);

}  // namespace heapscope::analyzer
