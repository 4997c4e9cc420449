// Decides where an interposed call goes, shared by interpose_malloc.cpp and interpose_new.cpp.
// Nested calls (the thread is already inside the agent: signal handler, unwinder, our own init)
// go to the nested arena; everything passes through to the real allocator when the agent is
// disabled; otherwise the call takes the tracked path.
#pragma once
#include <cerrno>
#include <cstddef>

#include "agent.h"
#include "build_mode.h"
#include "heap_ops.h"
#include "reentrancy_guard.h"
#include "stack_capture.h"
#include "sys.h"

namespace heapscope::preload {

enum class Route { kNested, kRaw, kTracked };

// In the attach agent a kTracked answer has entered the agent's gate: a TrackedCall must follow,
// whose end leaves it (client_api.cpp, which does not, is not linked into that agent).
HEAPSCOPE_HOT inline Route route() noexcept {
  if (ReentrancyGuard::active()) return Route::kNested;
  if (kAttachBuild) return agent::attach_gate::enter() ? Route::kTracked : Route::kRaw;
  return agent::ready() ? Route::kTracked : Route::kRaw;
}

// route() for a call that releases (free, delete, realloc): the attach agent still records
// frees while its session ends, so that the leak scan's verdicts stay true of the live set.
HEAPSCOPE_HOT inline Route route_release() noexcept {
  if (ReentrancyGuard::active()) return Route::kNested;
  if (kAttachBuild) return agent::attach_gate::enter_release() ? Route::kTracked : Route::kRaw;
  return agent::ready() ? Route::kTracked : Route::kRaw;
}

// A tracked call, for its duration: inside the agent, and stacks start at the interposer's
// caller (ProgramFrame). Declare it in the interposer's body or in a function always inlined
// into it, so that rbp is the interposer's frame.
class TrackedCall {
 public:
  __attribute__((always_inline)) TrackedCall() noexcept { ProgramFrame::set_here(); }
  ~TrackedCall() {
    ProgramFrame::clear();
    if (kAttachBuild) agent::attach_gate::leave();
  }
  TrackedCall(const TrackedCall&) = delete;
  TrackedCall& operator=(const TrackedCall&) = delete;

 private:
  ReentrancyGuard guard_;
};

// Allocates through the route; sets errno = ENOMEM on failure of the tracked path.
HEAPSCOPE_HOT __attribute__((always_inline)) inline void* routed_allocate(size_t size, size_t alignment, format::Api api,
                                           format::Family family, bool zeroed) noexcept {
  switch (route()) {
    case Route::kNested: return heap::passthrough_allocate(size, alignment, zeroed, true);
    case Route::kRaw: return heap::passthrough_allocate(size, alignment, zeroed, false);
    case Route::kTracked: break;
  }
  void* block = nullptr;
  {
    TrackedCall call;
    block = heap::allocate(size, alignment, api, family, zeroed);
  }
  if (block == nullptr) errno = ENOMEM;
  return block;
}

HEAPSCOPE_HOT __attribute__((always_inline)) inline void routed_release(void* pointer, format::Api api) noexcept {
  if (pointer == nullptr) return;
  switch (route_release()) {
    case Route::kNested: return heap::passthrough_release(pointer, true);
    case Route::kRaw: return heap::passthrough_release(pointer, false);
    case Route::kTracked: break;
  }
  TrackedCall call;
  heap::release(pointer, api);
}

}  // namespace heapscope::preload
