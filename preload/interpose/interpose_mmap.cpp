// mmap, mmap64, munmap and mremap, interposed to record the memory a program maps itself: its
// own family in the reports, beside the heap (bytehound and memray show it; no checker does).
// The C library's own mappings (malloc's arenas and big blocks, thread stacks) and the
// loader's are made by internal calls that never come here, and the agent's own go through
// raw system calls (sys::map_memory), so what is recorded is the program's and its
// libraries'.
//
// Each call is the system call glibc 2.36 makes (sysdeps/unix/sysv/linux/mmap64.c: an offset
// that is not page-aligned is EINVAL, then the call itself), made here rather than through
// dlsym(RTLD_NEXT): a lookup that allocates cannot run inside the first mmap of a program
// whose allocator maps its memory. Recording never initializes the agent: a mapping made
// before it is ready, or from inside it, is not recorded.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>

#include "interpose_route.h"

namespace agent = heapscope::preload::agent;
using heapscope::preload::ReentrancyGuard;
using heapscope::preload::TrackedCall;

namespace {

constexpr uint64_t kPageMask = 4095;

// The program's call, to be recorded: the agent recording, the option on, not from inside it.
bool recorded() noexcept {
  return !ReentrancyGuard::active() && agent::allocations_tracked() && agent::options().track_mmap;
}

void* system_mmap(void* address, size_t length, int protection, int flags, int fd, off_t offset) noexcept {
  if ((static_cast<uint64_t>(offset) & kPageMask) != 0) {
    errno = EINVAL;
    return MAP_FAILED;
  }
  // syscall() sets errno and returns -1 on failure, which is MAP_FAILED.
  return reinterpret_cast<void*>(syscall(SYS_mmap, address, length, protection, flags, fd, offset));
}

// Always inlined into each interposer, so that TrackedCall marks the interposer's frame and
// the stack starts at the program's call.
__attribute__((always_inline)) inline void* recorded_mmap(void* address, size_t length, int protection, int flags,
                                                          int fd, off_t offset) noexcept {
  void* mapped = system_mmap(address, length, protection, flags, fd, offset);
  if (mapped == MAP_FAILED || !recorded()) return mapped;
  const int saved_errno = errno;
  {
    TrackedCall call;
    agent::emit_map(reinterpret_cast<uint64_t>(mapped), length, agent::capture_stack_id(), protection, flags, 0);
  }
  errno = saved_errno;
  return mapped;
}

}  // namespace

extern "C" {

HEAPSCOPE_EXPORT void* mmap(void* address, size_t length, int protection, int flags, int fd, off_t offset) noexcept {
  return recorded_mmap(address, length, protection, flags, fd, offset);
}

HEAPSCOPE_EXPORT void* mmap64(void* address, size_t length, int protection, int flags, int fd, off_t offset) noexcept {
  return recorded_mmap(address, length, protection, flags, fd, offset);
}

HEAPSCOPE_EXPORT int munmap(void* address, size_t length) noexcept {
  // Recorded before the call (event_format.h says why), and only when the kernel will accept
  // it: an aligned address and a length (unmapping what is not mapped succeeds).
  if ((reinterpret_cast<uint64_t>(address) & kPageMask) == 0 && length != 0 && recorded()) {
    TrackedCall call;
    agent::emit_unmap(reinterpret_cast<uint64_t>(address), length);
  }
  return static_cast<int>(syscall(SYS_munmap, address, length));
}

HEAPSCOPE_EXPORT void* mremap(void* old_address, size_t old_length, size_t new_length, int flags, ...) noexcept {
  void* new_address = nullptr;
  if ((flags & MREMAP_FIXED) != 0) {
    va_list arguments;
    va_start(arguments, flags);
    new_address = va_arg(arguments, void*);
    va_end(arguments);
  }
  void* moved = reinterpret_cast<void*>(syscall(SYS_mremap, old_address, old_length, new_length, flags, new_address));
  if (moved == MAP_FAILED || !recorded()) return moved;
  const int saved_errno = errno;
  {
    TrackedCall call;
    // After the call: until it succeeds the old range stays. A thread that maps the old
    // addresses between the call and these records is taken for part of this range (rare:
    // a race the program would have to win against its own mremap).
    agent::emit_unmap(reinterpret_cast<uint64_t>(old_address), old_length, heapscope::format::kUnmapByRemap);
    agent::emit_map(reinterpret_cast<uint64_t>(moved), new_length, agent::capture_stack_id(), 0, 0,
                    heapscope::format::kMapByRemap);
  }
  errno = saved_errno;
  return moved;
}

}  // extern "C"
