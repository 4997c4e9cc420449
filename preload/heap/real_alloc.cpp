// Resolution of the underlying allocator, and the bootstrap buffer for dlsym (see real_alloc.h).
#include "real_alloc.h"

#include <dlfcn.h>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace heapscope::preload::real {
namespace {

using MallocFn = void* (*)(size_t);
using CallocFn = void* (*)(size_t, size_t);
using ReallocFn = void* (*)(void*, size_t);
using FreeFn = void (*)(void*);
using PosixMemalignFn = int (*)(void**, size_t, size_t);
using UsableSizeFn = size_t (*)(void*);

MallocFn real_malloc = nullptr;
CallocFn real_calloc = nullptr;
ReallocFn real_realloc = nullptr;
FreeFn real_free = nullptr;
PosixMemalignFn real_posix_memalign = nullptr;
UsableSizeFn real_usable_size = nullptr;
std::atomic<bool> resolving{false};
bool glibc_underneath = false;

// dlsym's own needs (a few hundred bytes for its error buffer); 64 KiB is ample.
alignas(64) char bootstrap_buffer[64 * 1024];
std::atomic<size_t> bootstrap_used{0};

void* bootstrap_alloc(size_t size) noexcept {
  const size_t rounded = (size + 15) & ~size_t{15};
  const size_t offset = bootstrap_used.fetch_add(rounded, std::memory_order_relaxed);
  if (offset + rounded > sizeof(bootstrap_buffer)) return nullptr;
  return bootstrap_buffer + offset;  // static storage is zero-filled: calloc semantics hold
}

}  // namespace

bool is_glibc() noexcept { return glibc_underneath; }

bool is_bootstrap(const void* pointer) noexcept {
  const auto* p = static_cast<const char*>(pointer);
  return p >= bootstrap_buffer && p < bootstrap_buffer + sizeof(bootstrap_buffer);
}

template <typename Lookup>
static bool resolve_by(Lookup lookup) noexcept {
  resolving.store(true, std::memory_order_relaxed);
  real_calloc = reinterpret_cast<CallocFn>(lookup("calloc"));
  real_malloc = reinterpret_cast<MallocFn>(lookup("malloc"));
  real_realloc = reinterpret_cast<ReallocFn>(lookup("realloc"));
  real_posix_memalign = reinterpret_cast<PosixMemalignFn>(lookup("posix_memalign"));
  real_usable_size = reinterpret_cast<UsableSizeFn>(lookup("malloc_usable_size"));
  real_free = reinterpret_cast<FreeFn>(lookup("free"));
  resolving.store(false, std::memory_order_relaxed);
  // Which allocator: at init, where dladdr may take the loader's lock (never in a scan, which
  // may have stopped the thread holding it).
  Dl_info where{};
  if (real_malloc != nullptr && dladdr(reinterpret_cast<void*>(real_malloc), &where) != 0 && where.dli_fname != nullptr) {
    const char* name = where.dli_fname;
    size_t length = 0;
    while (name[length] != '\0') ++length;
    constexpr char kLibc[] = "/libc.so.6";
    constexpr size_t kLibcLength = sizeof(kLibc) - 1;
    glibc_underneath = length >= kLibcLength && __builtin_memcmp(name + length - kLibcLength, kLibc, kLibcLength) == 0;
  }
  return real_malloc != nullptr && real_free != nullptr && real_calloc != nullptr &&
         real_realloc != nullptr && real_posix_memalign != nullptr;
}

bool resolve() noexcept {
  if (real_malloc != nullptr && real_free != nullptr) return true;
  return resolve_by([](const char* name) { return dlsym(RTLD_NEXT, name); });
}

bool resolve_with(void* (*lookup)(const char* name)) noexcept { return resolve_by(lookup); }

void* malloc(size_t size) noexcept {
  if (real_malloc == nullptr) return bootstrap_alloc(size);
  return real_malloc(size);
}

void* calloc(size_t count, size_t size) noexcept {
  if (real_calloc == nullptr) {
    size_t total = 0;
    if (__builtin_mul_overflow(count, size, &total)) return nullptr;
    return bootstrap_alloc(total);
  }
  return real_calloc(count, size);
}

void* realloc(void* pointer, size_t size) noexcept {
  if (real_realloc == nullptr || is_bootstrap(pointer)) {
    void* fresh = real_malloc != nullptr ? real_malloc(size) : bootstrap_alloc(size);
    // A bootstrap block's size is unknown; copying `size` bytes stays inside the buffer's
    // remaining space only if we clamp to it.
    if (fresh != nullptr && pointer != nullptr) {
      const size_t available =
          static_cast<size_t>(bootstrap_buffer + sizeof(bootstrap_buffer) - static_cast<char*>(pointer));
      memcpy(fresh, pointer, size < available ? size : available);
    }
    return fresh;
  }
  return real_realloc(pointer, size);
}

void free(void* pointer) noexcept {
  if (pointer == nullptr || is_bootstrap(pointer) || real_free == nullptr) return;
  real_free(pointer);
}

int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  if (real_posix_memalign == nullptr) {
    const uintptr_t raw = reinterpret_cast<uintptr_t>(bootstrap_alloc(size + alignment));
    if (raw == 0) return ENOMEM;
    *out = reinterpret_cast<void*>((raw + alignment - 1) & ~(uintptr_t{alignment} - 1));
    return 0;
  }
  return real_posix_memalign(out, alignment, size);
}

size_t usable_size(void* pointer) noexcept {
  if (real_usable_size == nullptr || is_bootstrap(pointer)) return 0;
  return real_usable_size(pointer);
}

}  // namespace heapscope::preload::real
