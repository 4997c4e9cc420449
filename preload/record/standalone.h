// The agent preloaded alone (LD_PRELOAD=libheapscope.so PROGRAM, no `heapscope run`): it makes
// its own private session directory and starts `heapscope collect` (../bin/heapscope beside the
// library) to drain its ring into a trace file, heapscope.PROGRAM.PID.trace.zst in the current
// directory (else TMPDIR); at exit it prints a one-line summary to stderr. The collector is
// detached (a grandchild, reparented at once): the program never sees it in wait() or as
// SIGCHLD. Everything here runs at init or exit, without malloc.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload::standalone {

struct Session {
  const char* directory = nullptr;  // static storage
  const char* trace_path = nullptr;  // static storage
  int collector_pid = 0;
};

// Sets up the session and starts the collector; the trace goes to `output_dir` (`length`
// bytes; none: the working directory, or TMPDIR where that is not writable). False (with a
// message on stderr) if it could not: then the process is not traced.
bool start(Session& session, const char* output_dir, size_t output_dir_length) noexcept;

struct ExitFigures {
  uint64_t live_blocks, live_bytes;
  uint64_t definite_bytes, indirect_bytes, possible_bytes;
  bool classified;
  uint64_t errors;
};
// The summary line: what leaked, how many errors, where the trace is.
void print_summary(const Session& session, const ExitFigures& figures) noexcept;

}  // namespace heapscope::preload::standalone
