// The agent's side of include/heapscope/heapscope.h: the heapscope_agent_* entry points that
// the header's inline functions call through weak references. C ABI, noexcept; each is a no-op
// when the call arrives nested (from a signal handler inside the agent) or untracked.
#include <ucontext.h>

#include <algorithm>
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

HEAPSCOPE_EXPORT int heapscope_agent_leak_check_sites(heapscope_lost_site* sites, int capacity, int* filled) {
  using LostBlock = heapscope::preload::LeakScanRequest::LostBlock;
  if (filled != nullptr) *filled = 0;
  if (route() != Route::kTracked) return 0;
  ReentrancyGuard guard;
  // Room for the newly lost blocks the sites are made from: a test's leaks, not a heap's.
  constexpr size_t kMaxBlocks = 65536;
  auto* lost = static_cast<LostBlock*>(heapscope::preload::sys::map_anonymous(kMaxBlocks * sizeof(LostBlock)));
  size_t lost_count = 0;
  ucontext_t state;
  getcontext(&state);
  heapscope::preload::LeakScanRequest request{heapscope::format::kScanOnDemand,
                                              heapscope::preload::program_frames_from(__builtin_frame_address(0)),
                                              &state};
  if (lost != nullptr) {
    request.newly_lost = lost;
    request.newly_lost_capacity = kMaxBlocks;
    request.newly_lost_count = &lost_count;
  }
  const auto outcome = heapscope::preload::run_leak_scan(request);
  // Sites: the blocks grouped by stack, most bytes first, as many as the caller has room for.
  std::sort(lost, lost + lost_count, [](const LostBlock& a, const LostBlock& b) { return a.stack_id < b.stack_id; });
  int count = 0;
  for (size_t i = 0; i < lost_count && capacity > 0;) {
    heapscope_lost_site site{};
    const uint32_t stack_id = lost[i].stack_id;
    for (; i < lost_count && lost[i].stack_id == stack_id; ++i) {
      site.bytes += lost[i].size;
      ++site.blocks;
    }
    uint64_t frames[agent::kStackHeadFrames] = {};
    if (agent::stack_head(stack_id, frames))
      for (size_t f = 0; f < agent::kStackHeadFrames; ++f) site.frames[f] = reinterpret_cast<void*>(frames[f]);
    // Insertion by bytes into the caller's array; the smallest falls off when it is full.
    int at = count < capacity ? count++ : capacity;
    if (at == capacity) {
      if (site.bytes <= sites[capacity - 1].bytes) continue;
      at = capacity - 1;
    }
    while (at > 0 && sites[at - 1].bytes < site.bytes) {
      sites[at] = sites[at - 1];
      --at;
    }
    sites[at] = site;
  }
  if (lost != nullptr) heapscope::preload::sys::unmap(lost, kMaxBlocks * sizeof(LostBlock));
  if (filled != nullptr) *filled = count;
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
