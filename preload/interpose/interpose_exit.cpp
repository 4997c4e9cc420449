// exit() and the return from main, interposed to mark where the program's own frames end on
// the thread that ends the process. The exit leak scan then reads that thread's stack from
// there up, not from the agent's destructor: between the two lie exit's own frames, whose
// unused slots still hold what the program's last calls (the agent's malloc among them) left
// there, stale pointers that would make lost blocks look reachable.
#include <dlfcn.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "agent.h"
#include "leak_scan.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;

namespace {

using ExitFn = void (*)(int);
using MainFn = int (*)(int, char**, char**);
using StartMainFn = int (*)(MainFn, int, char**, void (*)(), void (*)(), void (*)(), void*);

MainFn program_main = nullptr;

// main's wrapper: once main has returned, nothing below this frame is the program's.
int main_then_mark(int argc, char** argv, char** envp) {
  const int result = program_main(argc, argv, envp);
  ucontext_t registers;
  getcontext(&registers);
  agent::note_exit_point(heapscope::preload::program_frames_from(__builtin_frame_address(0)), registers, result);
  return result;
}

}  // namespace

extern "C" {

HEAPSCOPE_EXPORT __attribute__((noreturn)) void exit(int status) {
  ucontext_t registers;
  getcontext(&registers);  // first: the caller's callee-saved registers, untouched
  agent::note_exit_point(heapscope::preload::program_frames_from(__builtin_frame_address(0)), registers, status);
  static const auto real = reinterpret_cast<ExitFn>(dlsym(RTLD_NEXT, "exit"));
  real(status);
  __builtin_unreachable();
}

// _exit and _Exit end the process at once: no atexit handler, no destructor, so no exit leak
// scan unless it runs here (every `sh -c` ends this way: dash calls _exit). The real _exit is
// the exit_group system call.
[[noreturn]] void exit_now(int status) noexcept {
  ucontext_t registers;
  getcontext(&registers);
  agent::finish_before_immediate_exit(status, heapscope::preload::program_frames_from(__builtin_frame_address(0)),
                                      registers);
  for (;;) syscall(SYS_exit_group, status);
}

HEAPSCOPE_EXPORT __attribute__((noreturn)) void _exit(int status) { exit_now(status); }
HEAPSCOPE_EXPORT __attribute__((noreturn)) void _Exit(int status) { exit_now(status); }

HEAPSCOPE_EXPORT int __libc_start_main(MainFn main, int argc, char** argv, void (*init)(), void (*fini)(),
                                       void (*rtld_fini)(), void* stack_end) {
  static const auto real = reinterpret_cast<StartMainFn>(dlsym(RTLD_NEXT, "__libc_start_main"));
  program_main = main;
  return real(main_then_mark, argc, argv, init, fini, rtld_fini, stack_end);
}

}  // extern "C"
