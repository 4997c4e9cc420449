// One thread of another process held with ptrace for a few milliseconds: seized (never
// PTRACE_ATTACH, whose SIGSTOP could leave the process stopped if we died), interrupted, its
// whole state saved (general registers, the FPU/SIMD area, the signal mask), then restored and
// detached. The other threads of the process keep running throughout: stopping them could
// leave one holding the allocator's or the loader's lock that the borrowed thread then needs
// (research/attach.md, E2: 20 of 30 runs hung).
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "regs_x86_64.h"

namespace heapscope::attach {

struct SavedThreadState {
  regs::Registers registers{};
  std::vector<uint8_t> xstate;  // NT_X86_XSTATE, exactly as the kernel gave it
  uint64_t signal_mask = 0;
};

// How a resumed thread stopped again.
struct ThreadStop {
  bool exited = false;  // the thread (or the whole process) is gone
  int signal = 0;       // the signal of a signal-delivery stop; 0 for other stops
  uint64_t pc = 0;
};

// The one-line refusal for a process we may not trace, naming the rule that refuses (Yama's
// ptrace_scope, another user, a security module or container) and what to do about it.
std::string permission_message(int pid, int error);

class PtraceSession {
 public:
  // Seizes `tid` of process `pid` and waits (up to `timeout`) until it is stopped. Throws
  // AttachError (kNoSuchProcess, kNotPermitted with the reason, kInjectionFailed on timeout).
  PtraceSession(int pid, int tid, std::chrono::milliseconds timeout);
  // Restores the saved state if it was changed and detaches; never throws.
  ~PtraceSession();
  PtraceSession(const PtraceSession&) = delete;
  PtraceSession& operator=(const PtraceSession&) = delete;

  int tid() const noexcept { return tid_; }
  const SavedThreadState& saved() const noexcept { return saved_; }

  regs::Registers registers() const;
  void set_registers(const regs::Registers& registers);
  void read_memory(uint64_t address, void* out, size_t size) const;
  void write_memory(uint64_t address, const void* data, size_t size);

  // Blocks every signal in the thread until restore(): no handler may run on top of a remote
  // call (a siglongjmp out of it would strand the call with the loader's lock held). Pending
  // and new signals wait, and are delivered once the mask is restored.
  void block_signals();

  // Resumes the thread and waits for its next stop of interest: a signal-delivery stop or its
  // end. Interrupt and group stops on the way are resumed through. nullopt on timeout.
  std::optional<ThreadStop> resume_until_signal(std::chrono::milliseconds timeout);

  // Puts back the registers, FPU/SIMD state and signal mask saved at the seize.
  void restore();
  // Restores and detaches now; false if the thread was gone or refused.
  bool detach() noexcept;

 private:
  void rewind_interrupted_wait();
  std::optional<int> wait_status(std::chrono::steady_clock::time_point deadline) const;
  int pid_;
  int tid_;
  int memory_fd_ = -1;
  bool attached_ = false;
  bool changed_ = false;  // registers or mask differ from the saved state
  int pending_signal_ = 0;  // a stop signal that arrived while we held the thread
  SavedThreadState saved_;
};

}  // namespace heapscope::attach
