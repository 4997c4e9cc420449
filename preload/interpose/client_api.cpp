// The agent's side of include/heapscope/heapscope.h: the heapscope_agent_* entry points that
// the header's inline functions call through weak references. C ABI, noexcept; each is a no-op
// when the call arrives nested (from a signal handler inside the agent) or untracked.
#include <ucontext.h>

#include <cstdint>

#include "heapscope/heapscope.h"
#include "interpose_route.h"
#include "leak_scan.h"

using heapscope::preload::ReentrancyGuard;
using heapscope::preload::Route;
using heapscope::preload::route;
namespace agent = heapscope::preload::agent;
namespace heap = heapscope::preload::heap;

extern "C" {

HEAPSCOPE_EXPORT int heapscope_agent_verify_heap(void) {
  if (route() != Route::kTracked) return 0;
  ReentrancyGuard guard;
  return heap::verify_all();
}

HEAPSCOPE_EXPORT int heapscope_agent_ignore_object(const void* pointer) {
  if (pointer == nullptr || route() != Route::kTracked) return 0;
  ReentrancyGuard guard;
  const auto address = reinterpret_cast<uint64_t>(pointer);
  if (!agent::index().add_live_flags(address, heapscope::preload::kBlockIgnored)) return 0;
  agent::emit_ignore(address);
  return 1;
}

HEAPSCOPE_EXPORT int heapscope_agent_leak_check(void) {
  if (route() != Route::kTracked) return 0;
  ReentrancyGuard guard;
  ucontext_t state;
  getcontext(&state);  // the caller's registers; its frames lie above ours
  const auto outcome = heapscope::preload::run_leak_scan(
      {heapscope::format::kScanOnDemand,
       heapscope::preload::program_frames_from(__builtin_frame_address(0)), &state});
  return static_cast<int>(outcome.newly_lost_blocks);
}

HEAPSCOPE_EXPORT unsigned long long heapscope_agent_error_count(void) {
  return agent::ready() ? agent::errors_reported() : 0;
}

HEAPSCOPE_EXPORT void heapscope_agent_mark_phase(const char* label) {
  if (route() != Route::kTracked) return;
  ReentrancyGuard guard;
  agent::emit_phase(label);
}

}  // extern "C"
