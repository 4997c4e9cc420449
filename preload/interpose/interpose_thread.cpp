// pthread_create, interposed to record when each thread starts and ends (kThreadStart,
// kThreadExit): the report can then place a thread's allocations in its lifetime. The start
// routine runs inside a trampoline; the end is seen by a thread-specific key's destructor, which
// glibc runs whether the routine returns or calls pthread_exit.
#include <dlfcn.h>
#include <pthread.h>

#include "agent.h"
#include "fast_unwind.h"
#include "real_alloc.h"
#include "reentrancy_guard.h"
#include "stack_capture.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;
namespace real = heapscope::preload::real;

namespace {

using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
using StartFn = void* (*)(void*);

struct Start {
  StartFn routine;
  void* argument;
  uint32_t parent;
};

pthread_key_t end_key;
pthread_once_t end_key_once = PTHREAD_ONCE_INIT;

void on_thread_end(void*) {
  agent::emit_thread(heapscope::format::EventKind::kThreadExit, 0);
  heapscope::preload::end_thread_captures();
}
void make_end_key() { pthread_key_create(&end_key, on_thread_end); }

// The stack walker reads nothing outside the thread's stack (fast_unwind.h); glibc knows it.
void note_thread_stack() {
  heapscope::preload::ReentrancyGuard guard;  // pthread_getattr_np allocates: the nested arena serves it
  pthread_attr_t attributes;
  if (pthread_getattr_np(pthread_self(), &attributes) != 0) return;
  void* low = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attributes, &low, &size) == 0) {
    const auto begin = reinterpret_cast<uint64_t>(low);
    heapscope::preload::unwind::set_thread_stack(begin, begin + size);
  }
  pthread_attr_destroy(&attributes);
}

void* trampoline(void* raw) {
  const Start start = *static_cast<Start*>(raw);
  real::free(raw);
  note_thread_stack();
  agent::emit_thread(heapscope::format::EventKind::kThreadStart, start.parent);
  pthread_setspecific(end_key, &end_key);  // any non-null value: the destructor runs at exit
  return start.routine(start.argument);
}

}  // namespace

extern "C" HEAPSCOPE_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attributes,
                                               StartFn routine, void* argument) {
  static const auto real_create = reinterpret_cast<CreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
  // Untracked (agent off, or called from inside it): no records, the program's routine as is.
  if (heapscope::preload::ReentrancyGuard::active() || !agent::ready())
    return real_create(thread, attributes, routine, argument);
  pthread_once(&end_key_once, make_end_key);
  // From the real allocator: the block is the agent's, freed by the new thread.
  auto* start = static_cast<Start*>(real::malloc(sizeof(Start)));
  if (start == nullptr) return real_create(thread, attributes, routine, argument);
  *start = Start{routine, argument, heapscope::preload::sys::thread_id()};
  const int result = real_create(thread, attributes, trampoline, start);
  if (result != 0) real::free(start);
  return result;
}
