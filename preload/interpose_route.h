// Decides where an interposed call goes, shared by interpose_malloc.cpp and interpose_new.cpp.
// Nested calls (the thread is already inside the agent: signal handler, unwinder, our own init)
// go to the nested arena; everything passes through to the real allocator when the agent is
// disabled; otherwise the call takes the tracked path.
#pragma once
#include <cerrno>
#include <cstddef>

#include "agent.h"
#include "heap_ops.h"
#include "reentrancy_guard.h"
#include "stack_capture.h"
#include "sys.h"

namespace heapscope::preload {

enum class Route { kNested, kRaw, kTracked };

HEAPSCOPE_HOT inline Route route() noexcept {
  if (ReentrancyGuard::active()) return Route::kNested;
  return agent::ready() ? Route::kTracked : Route::kRaw;
}

// Allocates through the route; sets errno = ENOMEM on failure of the tracked path.
HEAPSCOPE_HOT __attribute__((always_inline)) inline void* routed_allocate(size_t size, size_t alignment, format::Api api,
                                           format::Family family, bool zeroed) noexcept {
  switch (route()) {
    case Route::kNested: return heap::passthrough_allocate(size, alignment, zeroed, true);
    case Route::kRaw: return heap::passthrough_allocate(size, alignment, zeroed, false);
    case Route::kTracked: break;
  }
  ReentrancyGuard guard;
  ProgramFrame::set_here();  // always inlined: the interposer's frame
  void* block = heap::allocate(size, alignment, api, family, zeroed);
  ProgramFrame::clear();
  if (block == nullptr) errno = ENOMEM;
  return block;
}

HEAPSCOPE_HOT __attribute__((always_inline)) inline void routed_release(void* pointer, format::Api api) noexcept {
  if (pointer == nullptr) return;
  switch (route()) {
    case Route::kNested: return heap::passthrough_release(pointer, true);
    case Route::kRaw: return heap::passthrough_release(pointer, false);
    case Route::kTracked: break;
  }
  ReentrancyGuard guard;
  ProgramFrame::set_here();
  heap::release(pointer, api);
  ProgramFrame::clear();
}

}  // namespace heapscope::preload
