// dlclose, interposed so the trace says when modules go (kModuleUnload) and cached unwind rules
// for their code are dropped. dlopen is not interposed: glibc's dlopen searches its caller's
// RUNPATH and expands $ORIGIN for its caller, found by return address, so an interposer would
// become that caller and the program's own plugins would not load (issue 15). A module loaded
// is announced when a stack first reaches it (agent.cpp, on_new_stack), or at the next dlclose.
#include <dlfcn.h>

#include "agent.h"
#include "rule_cache.h"
#include "reentrancy_guard.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;
using heapscope::preload::ReentrancyGuard;

namespace {
using CloseFn = int (*)(void*);
}  // namespace

extern "C" {

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
