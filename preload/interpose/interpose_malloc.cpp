// The C allocation API, interposed: malloc, free, calloc, realloc, reallocarray, memalign,
// posix_memalign, aligned_alloc, valloc, pvalloc, malloc_usable_size. Each follows glibc's
// documented contract (errno, NULL returns, overflow, alignment) and delegates to heap_ops.
// Built with -fno-exceptions; every entry point is noexcept: nothing may unwind through C.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <unistd.h>

#include "interpose_route.h"

using heapscope::format::Api;
using heapscope::format::Family;
using heapscope::preload::ReentrancyGuard;
using heapscope::preload::Route;
using heapscope::preload::TrackedCall;
using heapscope::preload::route;
using heapscope::preload::route_release;
using heapscope::preload::routed_allocate;
using heapscope::preload::routed_release;
namespace heap = heapscope::preload::heap;

namespace {

bool is_power_of_two(size_t value) { return value != 0 && (value & (value - 1)) == 0; }

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

HEAPSCOPE_HOT __attribute__((always_inline)) inline void* tracked_allocate(size_t size, size_t alignment, Api api, bool zeroed) {
  return routed_allocate(size, alignment, api, Family::kMalloc, zeroed);
}

// memalign and aligned_alloc in glibc 2.36 round a non-power-of-two alignment up, and refuse
// (EINVAL) one above 2^63, which no power of two reaches (malloc.c, _mid_memalign).
constexpr size_t kAlignmentRefused = 0;
size_t normalized_alignment(size_t alignment) {
  if (alignment <= 16) return 16;
  if (alignment > SIZE_MAX / 2 + 1) return kAlignmentRefused;
  if (is_power_of_two(alignment)) return alignment;
  size_t power = 32;
  while (power < alignment) power <<= 1;
  return power;
}

void* aligned_allocate(size_t alignment, size_t size, Api api) {
  const size_t normalized = normalized_alignment(alignment);
  if (normalized == kAlignmentRefused) {
    errno = EINVAL;
    return nullptr;
  }
  return tracked_allocate(size, normalized, api, false);
}

}  // namespace

extern "C" {

HEAPSCOPE_EXPORT void* malloc(size_t size) noexcept {
  return tracked_allocate(size, 0, Api::kMalloc, false);
}

HEAPSCOPE_EXPORT void free(void* pointer) noexcept {
  routed_release(pointer, Api::kFree);
}

HEAPSCOPE_EXPORT void* calloc(size_t count, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return tracked_allocate(total, 0, Api::kCalloc, true);
}

HEAPSCOPE_EXPORT void* realloc(void* pointer, size_t size) noexcept {
  switch (route_release()) {
    case Route::kNested: return heap::passthrough_reallocate(pointer, size, true);
    case Route::kRaw: return heap::passthrough_reallocate(pointer, size, false);
    case Route::kTracked: break;
  }
  void* block = nullptr;
  {
    TrackedCall call;
    block = heap::reallocate(pointer, size, Api::kRealloc);
  }
  if (block == nullptr && size != 0) errno = ENOMEM;
  return block;
}

HEAPSCOPE_EXPORT void* reallocarray(void* pointer, size_t count, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (route_release() != Route::kTracked) return realloc(pointer, total);
  void* block = nullptr;
  {
    TrackedCall call;
    block = heap::reallocate(pointer, total, Api::kReallocArray);
  }
  if (block == nullptr && total != 0) errno = ENOMEM;
  return block;
}

HEAPSCOPE_EXPORT void* memalign(size_t alignment, size_t size) noexcept {
  return aligned_allocate(alignment, size, Api::kMemalign);
}

HEAPSCOPE_EXPORT void* aligned_alloc(size_t alignment, size_t size) noexcept {
  return aligned_allocate(alignment, size, Api::kAlignedAlloc);
}

HEAPSCOPE_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  // POSIX: a power of two multiple of sizeof(void*), else EINVAL; *out untouched on failure;
  // errno is not set (the error is the return value).
  if (alignment % sizeof(void*) != 0 || !is_power_of_two(alignment)) return EINVAL;
  const int saved_errno = errno;
  void* block = tracked_allocate(size, alignment, Api::kPosixMemalign, false);
  errno = saved_errno;
  if (block == nullptr) return ENOMEM;
  *out = block;
  return 0;
}

HEAPSCOPE_EXPORT void* valloc(size_t size) noexcept {
  return tracked_allocate(size, page_size(), Api::kValloc, false);
}

HEAPSCOPE_EXPORT void* pvalloc(size_t size) noexcept {
  // pvalloc promises whole pages: the block's size is the page-rounded size.
  const size_t page = page_size();
  size_t rounded = 0;
  if (__builtin_add_overflow(size, page - 1, &rounded)) {
    errno = ENOMEM;
    return nullptr;
  }
  rounded &= ~(page - 1);
  if (rounded == 0) rounded = page;
  return tracked_allocate(rounded, page, Api::kPvalloc, false);
}

HEAPSCOPE_EXPORT size_t malloc_usable_size(void* pointer) noexcept {
  if (pointer == nullptr) return 0;
  switch (route()) {
    case Route::kNested: return 0;
    case Route::kRaw: return heap::passthrough_usable_size(pointer);
    case Route::kTracked: break;
  }
  TrackedCall call;
  return heap::usable_size(pointer);
}

}  // extern "C"
