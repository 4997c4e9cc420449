// Stack capture for allocation and free events (see stack_capture.h). Hot path.
#define UNW_LOCAL_ONLY
#include "stack_capture.h"

#include "fast_unwind.h"
#include "sys.h"

#include <dlfcn.h>
#include <link.h>
#include <libunwind.h>

#include "heapscope/event_format.h"

namespace heapscope::preload {
namespace {

uintptr_t own_code_start = 0;
uintptr_t own_code_end = 0;
bool fast_walker = false;

int find_own_module(dl_phdr_info* info, size_t, void* base) {
  if (info->dlpi_addr != reinterpret_cast<uintptr_t>(base)) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD || (segment.p_flags & PF_X) == 0) continue;
    own_code_start = info->dlpi_addr + segment.p_vaddr;
    own_code_end = own_code_start + segment.p_memsz;
  }
  return 1;
}

}  // namespace

void init_stack_capture(bool fast_unwind) noexcept {
  fast_walker = fast_unwind && unwind::init_rule_cache();
  // Per-thread caching makes unw_backtrace's frame-info lookups lock-free after warm-up.
  unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&init_stack_capture), &self) != 0)
    dl_iterate_phdr(find_own_module, self.dli_fbase);
}

HEAPSCOPE_HOT size_t capture_stack(uint64_t* frames, size_t max_frames) noexcept {
  constexpr size_t kOwnFramesBudget = 8;  // interposer + agent frames above the program's
  uint64_t raw[format::kMaxFrames + kOwnFramesBudget];
  const uint64_t* program_frame = fast_walker ? ProgramFrame::current() : nullptr;
  int got = -1;
  if (program_frame != nullptr) {
    // From the program's frame: one frame more than kept, for main's wrapper further out.
    got = unwind::fast_backtrace_from(program_frame[1], reinterpret_cast<uint64_t>(program_frame + 2),
                                      program_frame[0], raw, max_frames + 1);
  } else if (fast_walker) {
    got = unwind::fast_backtrace(raw, max_frames + kOwnFramesBudget);
  }
  if (got < 0) got = unw_backtrace(reinterpret_cast<void**>(raw), static_cast<int>(max_frames + kOwnFramesBudget));
  size_t first = 0;
  while (first < static_cast<size_t>(got > 0 ? got : 0)) {
    const auto ip = reinterpret_cast<uintptr_t>(raw[first]);
    if (ip < own_code_start || ip >= own_code_end) break;
    ++first;
  }
  size_t count = 0;
  for (size_t i = first; i < static_cast<size_t>(got) && count < max_frames; ++i) {
    const auto ip = reinterpret_cast<uintptr_t>(raw[i]);
    // Further out, the agent's only frame is main's wrapper (interpose_exit.cpp): not shown.
    if (ip >= own_code_start && ip < own_code_end) continue;
    frames[count++] = ip;
  }
  return count;
}

}  // namespace heapscope::preload
