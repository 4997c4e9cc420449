// Stack capture for allocation and free events (see stack_capture.h). Hot path.
#define UNW_LOCAL_ONLY
#include "stack_capture.h"

#include "build_mode.h"
#include "fast_unwind.h"
#include "rule_cache.h"
#include "sys.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>

#include <cerrno>
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
    unwind::mark_code(own_code_start, own_code_end);
  }
  return 1;
}

}  // namespace

void init_stack_capture(bool fast_unwind) noexcept {
  fast_walker = fast_unwind && unwind::init_rule_cache();
  // Per-thread caching makes unw_backtrace's frame-info lookups lock-free after warm-up. Not
  // touched unless it is the unwinder asked for: see capture_stack.
  if (!kAttachBuild && !fast_walker) unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&init_stack_capture), &self) != 0)
    dl_iterate_phdr(find_own_module, self.dli_fbase);
}

namespace {

// Keeps at most `max_frames` of `frames[0, count)`, dropping the agent's own (main's wrapper
// from interpose_exit.cpp, further out, is the only one once the walk starts at the program).
// Frames before `first_own` are known not to be ours.
size_t without_own_frames(uint64_t* frames, size_t count, size_t max_frames, size_t first_own = 0) noexcept {
  const uint64_t own_bytes = own_code_end - own_code_start;
  const size_t scanned = count < max_frames ? count : max_frames;
  size_t kept = first_own < scanned ? first_own : scanned;
  while (kept < scanned && frames[kept] - own_code_start >= own_bytes) ++kept;
  if (kept == scanned) return scanned;
  for (size_t i = kept + 1; i < count && kept < max_frames; ++i) {
    if (frames[i] - own_code_start < own_bytes) continue;
    frames[kept++] = frames[i];
  }
  return kept;
}

// libunwind validates the addresses it reads by writing them to a pipe: write() is a
// cancellation point (a thread cancelled there would die inside malloc, holding what the agent
// holds) and it may leave errno changed. Neither may reach the program.
HEAPSCOPE_COLD int libunwind_backtrace(uint64_t* frames, size_t wanted) noexcept {
  const int saved_errno = errno;
  int cancel_state = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  const int got = unw_backtrace(reinterpret_cast<void**>(frames), static_cast<int>(wanted));
  pthread_setcancelstate(cancel_state, nullptr);
  errno = saved_errno;
  return got;
}

}  // namespace

void end_thread_captures() noexcept { unwind::release_thread_walks(); }

HEAPSCOPE_HOT size_t capture_stack(uint64_t* frames, size_t max_frames, unwind::WalkMemo* memo) noexcept {
  const uint64_t* program_frame = fast_walker ? ProgramFrame::current() : nullptr;
  if (program_frame != nullptr) {
    // From the program's frame: one frame more than kept, for main's wrapper further out.
    // The walker reports where our first frame is: most stacks have none within max_frames,
    // or only main's wrapper near their end, and a scan of every frame cost more than the rest.
    size_t first_own = unwind::kNoneMarked;
    const int got = unwind::fast_backtrace_from(program_frame[1], reinterpret_cast<uint64_t>(program_frame + 2),
                                                program_frame[0], frames, max_frames + 1, &first_own, memo);
    if (got >= 0) {
      const auto walked = static_cast<size_t>(got);
      if (first_own >= walked) return walked < max_frames ? walked : max_frames;
      return without_own_frames(frames, walked, max_frames, first_own);
    }
  }
  if (memo != nullptr) *memo = unwind::WalkMemo{};
  if (kAttachBuild || fast_walker) {
    // libunwind is called only when asked for (--fast-unwind=no): its memory validation keeps
    // a pipe open on two of the program's descriptors (the program's first open() would no
    // longer get 3), and after a daemon's close_range it writes into whatever file took those
    // numbers. A stack our walker cannot walk at all (no table, no mapping around its stack
    // pointer) is cut to the program's call site; others it ends where it must.
    const size_t wanted = max_frames + kCaptureSlack;
    const int got = program_frame == nullptr && fast_walker ? unwind::fast_backtrace(frames, wanted) : -1;
    if (got > 0) return without_own_frames(frames, static_cast<size_t>(got), max_frames);
    if (program_frame == nullptr || max_frames == 0) return 0;
    frames[0] = program_frame[1];
    return 1;
  }
  // --fast-unwind=no: libunwind for every stack, the agent's own frames first.
  const size_t wanted = max_frames + kCaptureSlack;
  const int got = libunwind_backtrace(frames, wanted);
  return got > 0 ? without_own_frames(frames, static_cast<size_t>(got), max_frames) : 0;
}

size_t capture_stack_at(uint64_t pc, uint64_t sp, uint64_t fp, uint64_t* frames, size_t max_frames) noexcept {
  if (max_frames == 0) return 0;
  // The walker and the symbolizer take frames for return addresses and look one byte before
  // them: pc + 1 makes both look at the instruction itself.
  const int got = unwind::fast_backtrace_from(pc + 1, sp, fp, frames, max_frames + kCaptureSlack);
  if (got > 0) return without_own_frames(frames, static_cast<size_t>(got), max_frames);
  frames[0] = pc + 1;
  return 1;
}

}  // namespace heapscope::preload
