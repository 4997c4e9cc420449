// Captures the calling thread's stack, dropping the agent's own frames so frame 0 is the
// program's call site. heapscope's cached walker (fast_unwind.h) does the work; stacks it
// declines, and every stack with fast_unwind=no, go to libunwind's cached unw_backtrace.
// Hot path: no malloc (libunwind's own allocations arrive nested and take the pass-through path).
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

// Remembers the address range of the agent's own code and which walker to use. Call once at init.
void init_stack_capture(bool fast_unwind) noexcept;

// Fills `frames` with at most `max_frames` return addresses, innermost first. Returns the count.
size_t capture_stack(uint64_t* frames, size_t max_frames) noexcept;

}  // namespace heapscope::preload
