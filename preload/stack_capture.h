// Captures the calling thread's stack with libunwind's cached fast path (unw_backtrace with a
// per-thread cache), dropping the agent's own frames so frame 0 is the program's call site.
// Hot path: no malloc (libunwind's own allocations arrive nested and take the pass-through path).
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

// Remembers the address range of the agent's own code. Call once at init.
void init_stack_capture() noexcept;

// Fills `frames` with at most `max_frames` return addresses, innermost first. Returns the count.
size_t capture_stack(uint64_t* frames, size_t max_frames) noexcept;

}  // namespace heapscope::preload
