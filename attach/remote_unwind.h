// The call chain of a thread of another process that heapscope holds stopped with ptrace,
// unwound with elfutils (libdwfl, from .eh_frame/.debug_frame) rather than guessed from stack
// words: a busy allocating thread's stack is full of stale return addresses into malloc, so a
// scan for such words would reject it forever. The attacher decides from this chain whether the
// thread is at a safe point.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

struct Dwfl;

namespace heapscope::attach {

class RemoteUnwinder {
 public:
  // Reads the process's modules (from /proc/PID/maps). No ptrace here.
  explicit RemoteUnwinder(int pid);
  ~RemoteUnwinder();
  RemoteUnwinder(const RemoteUnwinder&) = delete;
  RemoteUnwinder& operator=(const RemoteUnwinder&) = delete;

  // The pcs of `tid`'s frames, innermost first (the first is the thread's pc; the others are
  // return addresses), at most `limit`. The thread must be ptrace-stopped by us. nullopt when
  // nothing could be unwound; a chain cut short (an unknown frame) is returned as far as it got.
  std::optional<std::vector<uint64_t>> frames(int tid, size_t limit = 256);

 private:
  int pid_;
  Dwfl* dwfl_ = nullptr;
  bool attached_ = false;
};

}  // namespace heapscope::attach
