// Every C++ operator new/delete form (plain, array, nothrow, sized, aligned), interposed.
// operator new keeps its contract -- new-handler loop, std::bad_alloc -- without linking
// libstdc++: the agent must not load libstdc++ (and its 72 KiB emergency pool) into C programs.
// Only a C++ program calls these, and its libstdc++ is then loaded, so the rare failure path
// borrows std::get_new_handler and std::__throw_bad_alloc from it through dlsym. The throw
// starts in this frame (built with unwind tables, no landing pads), never in a C entry point.
#include <dlfcn.h>

#include <cstddef>
#include <cstdlib>
#include <new>

#include "interpose_route.h"
#include "raw_log.h"

using heapscope::format::Api;
using heapscope::format::Family;
using heapscope::preload::routed_allocate;
using heapscope::preload::routed_release;

namespace {

using GetHandlerFn = std::new_handler (*)() noexcept;
using ThrowFn = void (*)();

std::new_handler current_new_handler() {
  static const auto get = reinterpret_cast<GetHandlerFn>(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv"));
  return get != nullptr ? get() : nullptr;
}

[[noreturn]] void throw_bad_alloc() {
  static const auto raise = reinterpret_cast<ThrowFn>(dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv"));
  if (raise != nullptr) raise();
  heapscope::preload::fatal("operator new failed and std::bad_alloc cannot be thrown (no libstdc++)");
}

void* new_or_throw(std::size_t size, std::size_t alignment, Api api, Family family) {
  for (;;) {
    if (void* block = routed_allocate(size, alignment, api, family, false)) return block;
    std::new_handler handler = current_new_handler();
    if (handler == nullptr) throw_bad_alloc();
    handler();
  }
}

// nothrow forms: the fast path is ours; when allocation fails and a new-handler is installed,
// libstdc++'s own nothrow operator runs the handler loop and catches what it throws. It calls
// the replaceable throwing operator -- ours -- so a block it returns is still tracked.
template <typename... Args>
void* new_or_null(const char* libstdcxx_symbol, std::size_t size, std::size_t alignment, Api api,
                  Family family, Args... args) noexcept {
  if (void* block = routed_allocate(size, alignment, api, family, false)) return block;
  if (current_new_handler() == nullptr) return nullptr;
  using NothrowFn = void* (*)(std::size_t, Args..., const std::nothrow_t&) noexcept;
  const auto next = reinterpret_cast<NothrowFn>(dlsym(RTLD_NEXT, libstdcxx_symbol));
  const std::nothrow_t tag{};  // not std::nothrow: that object lives in libstdc++
  return next != nullptr ? next(size, args..., tag) : nullptr;
}

constexpr std::size_t as_size(std::align_val_t alignment) {
  return static_cast<std::size_t>(alignment);
}

}  // namespace

HEAPSCOPE_EXPORT void* operator new(std::size_t size) {
  return new_or_throw(size, 0, Api::kNew, Family::kNew);
}
HEAPSCOPE_EXPORT void* operator new[](std::size_t size) {
  return new_or_throw(size, 0, Api::kNewArray, Family::kNewArray);
}
HEAPSCOPE_EXPORT void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return new_or_null("_ZnwmRKSt9nothrow_t", size, 0, Api::kNew, Family::kNew);
}
HEAPSCOPE_EXPORT void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return new_or_null("_ZnamRKSt9nothrow_t", size, 0, Api::kNewArray, Family::kNewArray);
}
HEAPSCOPE_EXPORT void* operator new(std::size_t size, std::align_val_t alignment) {
  return new_or_throw(size, as_size(alignment), Api::kNew, Family::kNew);
}
HEAPSCOPE_EXPORT void* operator new[](std::size_t size, std::align_val_t alignment) {
  return new_or_throw(size, as_size(alignment), Api::kNewArray, Family::kNewArray);
}
HEAPSCOPE_EXPORT void* operator new(std::size_t size, std::align_val_t alignment,
                                    const std::nothrow_t&) noexcept {
  return new_or_null("_ZnwmSt11align_val_tRKSt9nothrow_t", size, as_size(alignment), Api::kNew,
                     Family::kNew, alignment);
}
HEAPSCOPE_EXPORT void* operator new[](std::size_t size, std::align_val_t alignment,
                                      const std::nothrow_t&) noexcept {
  return new_or_null("_ZnamSt11align_val_tRKSt9nothrow_t", size, as_size(alignment),
                     Api::kNewArray, Family::kNewArray, alignment);
}

HEAPSCOPE_EXPORT void operator delete(void* p) noexcept { routed_release(p, Api::kDelete); }
HEAPSCOPE_EXPORT void operator delete[](void* p) noexcept { routed_release(p, Api::kDeleteArray); }
HEAPSCOPE_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept {
  routed_release(p, Api::kDelete);
}
HEAPSCOPE_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept {
  routed_release(p, Api::kDeleteArray);
}
HEAPSCOPE_EXPORT void operator delete(void* p, std::size_t) noexcept {
  routed_release(p, Api::kDelete);
}
HEAPSCOPE_EXPORT void operator delete[](void* p, std::size_t) noexcept {
  routed_release(p, Api::kDeleteArray);
}
HEAPSCOPE_EXPORT void operator delete(void* p, std::align_val_t) noexcept {
  routed_release(p, Api::kDelete);
}
HEAPSCOPE_EXPORT void operator delete[](void* p, std::align_val_t) noexcept {
  routed_release(p, Api::kDeleteArray);
}
HEAPSCOPE_EXPORT void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  routed_release(p, Api::kDelete);
}
HEAPSCOPE_EXPORT void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  routed_release(p, Api::kDeleteArray);
}
HEAPSCOPE_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  routed_release(p, Api::kDelete);
}
HEAPSCOPE_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  routed_release(p, Api::kDeleteArray);
}
