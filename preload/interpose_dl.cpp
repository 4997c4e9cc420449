// dlopen and dlclose, interposed so the trace says when modules come and go (kModule at load,
// kModuleUnload at unload), not only when a stack first needs a module.
#include <dlfcn.h>

#include "agent.h"
#include "rule_cache.h"
#include "reentrancy_guard.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;
using heapscope::preload::ReentrancyGuard;

namespace {
using OpenFn = void* (*)(const char*, int);
using CloseFn = int (*)(void*);
}  // namespace

extern "C" {

HEAPSCOPE_EXPORT void* dlopen(const char* file, int mode) {
  static const auto real = reinterpret_cast<OpenFn>(dlsym(RTLD_NEXT, "dlopen"));
  void* handle = real(file, mode);
  if (handle != nullptr && !ReentrancyGuard::active()) {
    ReentrancyGuard guard;
    agent::modules_changed();
  }
  return handle;
}

HEAPSCOPE_EXPORT int dlclose(void* handle) {
  static const auto real = reinterpret_cast<CloseFn>(dlsym(RTLD_NEXT, "dlclose"));
  const int result = real(handle);
  // The unloaded module's addresses may be reused by the next dlopen: cached rules must go.
  if (result == 0) heapscope::preload::unwind::forget_rules();
  if (result == 0 && !ReentrancyGuard::active()) {
    ReentrancyGuard guard;
    agent::modules_changed();
  }
  return result;
}

}  // extern "C"
