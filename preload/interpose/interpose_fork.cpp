// _Fork() and clone() without CLONE_VM make a process without running the atfork handlers:
// interposed so that the agent's run all the same. Otherwise the child would go on recording
// into its parent's ring (shared memory): the parent's report would gain the child's blocks and
// lose its own. A raw clone system call is beyond reach (docs/architecture.md, "Processes").
#include <dlfcn.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/types.h>
#include <unistd.h>

#include "agent.h"
#include "spin_lock.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;

namespace {

using ForkFn = pid_t (*)();
using CloneFn = int (*)(int (*)(void*), void*, int, void*, ...);

// The child's routine and argument, read by the child from its copy of this process's memory:
// one clone at a time, so the copy holds this call's.
struct CloneStart {
  int (*routine)(void*);
  void* argument;
};
CloneStart pending_start;
heapscope::preload::SpinLock clone_lock;

int start_clone_child(void*) {
  const CloneStart start = pending_start;
  clone_lock.unlock();  // the child's copy: its own clones must not wait for it
  agent::fork_child();
  return start.routine(start.argument);
}

}  // namespace

extern "C" {

HEAPSCOPE_EXPORT pid_t _Fork() {
  static const auto real = reinterpret_cast<ForkFn>(dlsym(RTLD_NEXT, "_Fork"));
  agent::fork_prepare();
  const pid_t child = real();
  if (child == 0) {
    agent::fork_child();
  } else {
    agent::fork_parent();
  }
  return child;
}

HEAPSCOPE_EXPORT int clone(int (*routine)(void*), void* stack, int flags, void* argument, ...) {
  static const auto real = reinterpret_cast<CloneFn>(dlsym(RTLD_NEXT, "clone"));
  va_list more;
  va_start(more, argument);
  // glibc reads these three only when the flags ask for them; passing them on always is what
  // its own wrapper does with the registers.
  pid_t* parent_tid = va_arg(more, pid_t*);
  void* tls = va_arg(more, void*);
  pid_t* child_tid = va_arg(more, pid_t*);
  va_end(more);
  if ((flags & CLONE_VM) != 0 || routine == nullptr)  // a thread, or vfork-like: same memory
    return real(routine, stack, flags, argument, parent_tid, tls, child_tid);
  clone_lock.lock();
  pending_start = CloneStart{routine, argument};
  agent::fork_prepare();
  const int child = real(start_clone_child, stack, flags, nullptr, parent_tid, tls, child_tid);
  agent::fork_parent();
  clone_lock.unlock();
  return child;
}

}  // extern "C"
