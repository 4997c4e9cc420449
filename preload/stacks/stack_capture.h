// Captures the calling thread's stack, dropping the agent's own frames so frame 0 is the
// program's call site. heapscope's cached walker (fast_unwind.h) does the work; stacks it
// declines, and every stack with fast_unwind=no, go to libunwind's cached unw_backtrace.
// Hot path: no malloc (libunwind's own allocations arrive nested and take the pass-through path).
#pragma once
#include <cstddef>
#include <cstdint>

#include "fast_unwind.h"

namespace heapscope::preload {

// Remembers the address range of the agent's own code and which walker to use. Call once at init.
void init_stack_capture(bool fast_unwind) noexcept;

// The agent's own frames a capture may have to walk before the program's.
inline constexpr size_t kCaptureSlack = 8;

// Fills `frames` with at most `max_frames` return addresses, innermost first. Returns the count.
// `frames` must have room for max_frames + kCaptureSlack: the walk writes there directly.
// With `memo`, the walker's word for these frames (fast_unwind.h's WalkMemo): when `repeated`,
// the frames are the ones the word was filled for, and whatever was derived from them holds.
size_t capture_stack(uint64_t* frames, size_t max_frames, unwind::WalkMemo* memo = nullptr) noexcept;

// The stack of a faulting instruction, from a signal's context: `pc` the instruction, `sp` and
// `fp` its stack and frame pointers. Frame 0 is pc + 1 (frames are taken for return addresses,
// looked up one byte before). The agent's own frames (main's wrapper) are dropped. Not hot.
size_t capture_stack_at(uint64_t pc, uint64_t sp, uint64_t fp, uint64_t* frames, size_t max_frames) noexcept;

// The calling thread is ending: frees what its captures kept (the walker's remembered walks).
// Captures later on this thread, from other destructors, still work, only slower.
void end_thread_captures() noexcept;

// Where the program called into the agent, per thread. The interposers are built with -fno-omit-
// frame-pointer -fno-shrink-wrap, so inside one rbp is its frame: saved rbp at [rbp], the return
// address into the program at [rbp + 8], the program's stack pointer at rbp + 16. The walk can then
// start at the program's own frame instead of walking the agent's five or so first: about a sixth
// of a 30-frame walk, and the frames whose stack addresses vary most (see fast_unwind.cpp). Without
// a mark (error paths, the client API), or if that return address is the agent's own, the walk
// starts inside the agent as before.
// rbp is read with asm rather than __builtin_frame_address(0): that builtin makes GCC give the
// exception-enabled operator new (interpose_new.cpp) a reference to libstdc++'s personality
// routine, which would load libstdc++ into C programs. Tracked calls never nest (nested calls take
// the pass-through path), so the mark is cleared, not restored, when the call ends. Interposers
// use it through TrackedCall (interpose_route.h).
class ProgramFrame {
 public:
  // Call only from an interposer's own body, or from a function always inlined into one.
  __attribute__((always_inline)) static void set_here() noexcept {
    const uint64_t* frame;
    asm volatile("mov %%rbp, %0" : "=r"(frame));
    current_ = frame;
  }
  static void clear() noexcept { current_ = nullptr; }
  static const uint64_t* current() noexcept { return current_; }

 private:
  [[gnu::tls_model("initial-exec")]] static inline thread_local const uint64_t* current_ = nullptr;
};

}  // namespace heapscope::preload
