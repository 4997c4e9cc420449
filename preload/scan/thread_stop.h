// Stops every other thread of the process for a leak scan, and resumes them, two ways:
//  - PtraceStop (ptrace_stop.cpp), the first choice: a helper task sharing our memory attaches
//    to each thread with ptrace. Nothing runs on the stopped threads, and a system call they
//    were blocked in is restarted afterwards, as after SIGSTOP/SIGCONT.
//  - SignalStop (here), where ptrace is not allowed (a container without it, a debugger
//    already attached): each thread's handler for a real-time signal saves the registers it was
//    interrupted with and waits on a futex until the scan is over. The cost: a blocking call
//    the signal interrupts may return EINTR to the program (pause(), select(), ...). A thread
//    that blocks the signal past the timeout is left running, counted as not stopped.
// Both fill the same slots, in memory the caller maps; neither allocates.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

inline constexpr size_t kSavedRegisters = 32;

struct StoppedThread {
  uint32_t tid;
  std::atomic<uint32_t> stopped;     // 0 not (yet), 1 registers saved, 2 the thread ended
  uint64_t stack_pointer;            // as interrupted
  uint64_t registers[kSavedRegisters];  // general-purpose registers as interrupted
  uint32_t register_count;
  uint32_t reserved;
};

inline constexpr uint32_t kThreadRunning = 0;  // StoppedThread::stopped: not (yet) stopped
inline constexpr uint32_t kThreadStopped = 1;  // stopped, registers saved
inline constexpr uint32_t kThreadGone = 2;     // ended before it could be stopped

// What a stop achieved: slots_used slots filled, of which `stopped` stopped and `unstopped`
// left running (no answer in time, or no slot left).
struct StopResult {
  size_t slots_used = 0;
  size_t stopped = 0;
  size_t unstopped = 0;
};

size_t count_threads() noexcept;  // of this process; at least 1
uint32_t own_thread_id() noexcept;
// Appends to slots[0..slots_used) every thread of process `pid` not listed there yet, except
// `self`, as kThreadRunning; threads beyond `capacity` are counted in result.unstopped.
// Returns how many were added.
size_t list_new_threads(int pid, StoppedThread* slots, size_t capacity, uint32_t self,
                        StopResult& result) noexcept;
// Fills result.stopped and result.unstopped from the slots' states.
void count_outcome(const StoppedThread* slots, StopResult& result) noexcept;

class SignalStop {
 public:
  // Stops every thread but the caller. `slots` has room for `capacity` threads. Returns false
  // if no signal could be installed (nothing was stopped).
  bool stop_others(StoppedThread* slots, size_t capacity, StopResult& result) noexcept;
  void resume_others() noexcept;
};

class PtraceStop {
 public:
  // As SignalStop. Returns false, having stopped nothing, where ptrace is not allowed.
  bool stop_others(StoppedThread* slots, size_t capacity, StopResult& result) noexcept;
  void resume_others() noexcept;
};

}  // namespace heapscope::preload
