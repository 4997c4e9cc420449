// The ptrace-based stop (see thread_stop.h). A thread cannot ptrace its own siblings, so a
// helper task is cloned with our address space (CLONE_VM, not a thread of ours): it attaches to
// every thread but the caller, reads their registers into the slots, reports, and detaches
// when told. The caller scans meanwhile. The helper only makes raw system calls: it shares the
// caller's TLS, and everything else in the process is stopped.
#include <errno.h>
#include <elf.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"
#include "thread_stop.h"

namespace heapscope::preload {
namespace {

enum Phase : uint32_t {
  kStarting,  // helper waits for the caller to allow it to trace us (Yama's PR_SET_PTRACER)
  kGo,        // helper attaches
  kStopped,   // every thread it could is stopped; the caller scans
  kRefused,   // ptrace is not allowed here: nothing was stopped
  kRelease,   // the caller is done: detach
  kDone,      // detached; the helper exits
};

struct Helper {
  StoppedThread* slots = nullptr;
  size_t capacity = 0;
  StopResult* result = nullptr;
  int pid = 0;
  uint32_t caller = 0;
  std::atomic<uint32_t> phase{kStarting};
};

// One scan at a time (the caller holds every index lock).
constinit Helper helper;
constinit pid_t helper_pid = 0;
constinit void* helper_stack = nullptr;
constexpr size_t kHelperStack = 128 * 1024;

// Shared (not private) futex operations: the helper is another process sharing our memory.
void set_phase(Phase phase) noexcept {
  helper.phase.store(phase, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&helper.phase), FUTEX_WAKE, 0x7fffffff, nullptr, nullptr, 0);
}

// The helper's wait. Bounded, and ended if the process that made us is gone: killed during the
// scan, nothing else would end us, and we share (so keep alive) its whole address space
// (issue 15). Its death reparents us, which getppid() shows.
void wait_while(Phase phase) noexcept {
  const timespec tick{0, 50 * 1000 * 1000};
  while (helper.phase.load(std::memory_order_acquire) == phase) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&helper.phase), FUTEX_WAIT, phase, &tick, nullptr, 0);
    if (syscall(SYS_getppid) != helper.pid) syscall(SYS_exit, 0);
  }
}

// The caller's wait: also ends if the helper died without a word (a seccomp filter that kills
// on ptrace, say), which returns false. A tracer's death detaches its tracees, so nothing
// stays stopped.
bool caller_wait_while(Phase phase) noexcept {
  const timespec tick{0, 10 * 1000 * 1000};
  while (helper.phase.load(std::memory_order_acquire) == phase) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&helper.phase), FUTEX_WAIT, phase, &tick, nullptr, 0);
    int status = 0;
    if (helper.phase.load(std::memory_order_acquire) == phase &&
        syscall(SYS_wait4, helper_pid, &status, __WALL | WNOHANG, nullptr) == helper_pid) {
      helper_pid = 0;  // reaped
      return false;
    }
  }
  return true;
}

long trace(long request, uint32_t tid, long address, long data) noexcept {
  return syscall(SYS_ptrace, request, tid, address, data);
}

void save_registers(StoppedThread& slot) noexcept {
  user_regs_struct registers{};
  iovec vector{&registers, sizeof(registers)};
  if (trace(PTRACE_GETREGSET, slot.tid, NT_PRSTATUS, reinterpret_cast<long>(&vector)) != 0) return;
  const auto* words = reinterpret_cast<const uint64_t*>(&registers);
  size_t count = vector.iov_len / 8;
  if (count > kSavedRegisters) count = kSavedRegisters;
  for (size_t i = 0; i < count; ++i) slot.registers[i] = words[i];
  slot.register_count = static_cast<uint32_t>(count);
#if defined(__x86_64__)
  slot.stack_pointer = registers.rsp;
#elif defined(__aarch64__)
  slot.stack_pointer = registers.sp;
#endif
}

// Attaches to one thread and waits until it is stopped. Returns false with errno EPERM when
// ptrace is refused.
bool stop_thread(StoppedThread& slot) noexcept {
  if (trace(PTRACE_SEIZE, slot.tid, 0, 0) != 0) {
    if (errno != EPERM) slot.stopped.store(kThreadGone, std::memory_order_relaxed);
    return errno != EPERM;
  }
  trace(PTRACE_INTERRUPT, slot.tid, 0, 0);
  for (;;) {
    int status = 0;
    if (syscall(SYS_wait4, slot.tid, &status, __WALL, nullptr) < 0) {
      if (errno == EINTR) continue;
      slot.stopped.store(kThreadGone, std::memory_order_relaxed);
      return true;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      slot.stopped.store(kThreadGone, std::memory_order_relaxed);
      return true;
    }
    if (!WIFSTOPPED(status)) continue;
    if ((status >> 16) == PTRACE_EVENT_STOP) break;
    // A signal was about to be delivered: let it be (the program's handler runs), then the
    // pending interrupt stops the thread.
    trace(PTRACE_CONT, slot.tid, 0, WSTOPSIG(status));
  }
  save_registers(slot);
  slot.stopped.store(kThreadStopped, std::memory_order_release);
  return true;
}

// Lets a stopped thread go. epoll_wait and its kin are never restarted by the kernel: the
// interrupt stop alone makes them return EINTR (research/attach.md E3), which an event loop may
// treat as fatal. A thread stopped there is put back on its `syscall` instruction with the call
// number in rax, as the kernel does for restartable calls, so it waits again. The attacher
// does the same for the thread it borrows (attach/ptrace_session.cpp).
void release_thread(uint32_t tid) noexcept {
#if defined(__x86_64__)
  user_regs_struct registers{};
  iovec vector{&registers, sizeof(registers)};
  if (trace(PTRACE_GETREGSET, tid, NT_PRSTATUS, reinterpret_cast<long>(&vector)) == 0) {
    const long number = static_cast<long>(registers.orig_rax);
    const bool never_restarted = number == SYS_epoll_wait || number == SYS_epoll_pwait || number == 441;
    if (never_restarted && static_cast<long>(registers.rax) == -EINTR) {
      // The raw system call stores the word at `data` (glibc's ptrace() wrapper hides that).
      long text = 0;
      const long peeked = trace(PTRACE_PEEKTEXT, tid, static_cast<long>(registers.rip - 2), reinterpret_cast<long>(&text));
      if (peeked == 0 && (text & 0xffff) == 0x050f) {  // `syscall` (0f 05), little-endian
        registers.rax = registers.orig_rax;
        registers.rip -= 2;
        trace(PTRACE_SETREGSET, tid, NT_PRSTATUS, reinterpret_cast<long>(&vector));
      }
    }
  }
#endif
  trace(PTRACE_DETACH, tid, 0, 0);
}

int helper_main(void*) {
  wait_while(kStarting);
  Helper& h = helper;
  bool refused = false;
  // Threads started meanwhile are found by the next listing; stop when one adds nobody.
  for (int round = 0; round < 16 && !refused; ++round) {
    const size_t before = h.result->slots_used;
    if (list_new_threads(h.pid, h.slots, h.capacity, h.caller, *h.result) == 0) break;
    for (size_t i = before; i < h.result->slots_used; ++i) {
      if (stop_thread(h.slots[i])) continue;
      refused = true;
      break;
    }
  }
  if (refused) {
    // All or nothing: detach from any thread stopped before the refusal.
    for (size_t i = 0; i < h.result->slots_used; ++i)
      if (h.slots[i].stopped.load(std::memory_order_relaxed) == kThreadStopped) release_thread(h.slots[i].tid);
    set_phase(kRefused);
    return 0;
  }
  set_phase(kStopped);
  wait_while(kStopped);
  for (size_t i = 0; i < h.result->slots_used; ++i)
    if (h.slots[i].stopped.load(std::memory_order_relaxed) == kThreadStopped) release_thread(h.slots[i].tid);
  set_phase(kDone);
  return 0;
}

void reap_helper() noexcept {
  int status = 0;
  while (helper_pid > 0 && syscall(SYS_wait4, helper_pid, &status, __WALL, nullptr) < 0 && errno == EINTR) {
  }
  prctl(PR_SET_PTRACER, 0, 0, 0, 0);
  sys::unmap(helper_stack, kHelperStack);
  helper_stack = nullptr;
  helper_pid = 0;
}

}  // namespace

bool PtraceStop::stop_others(StoppedThread* slots, size_t capacity, StopResult& result) noexcept {
  const int saved_errno = errno;  // the helper's system calls set the caller's errno (shared TLS)
  helper.slots = slots;
  helper.capacity = capacity;
  helper.result = &result;
  helper.pid = getpid();
  helper.caller = own_thread_id();
  helper.phase.store(kStarting, std::memory_order_release);
  helper_stack = sys::map_anonymous(kHelperStack);
  if (helper_stack == nullptr) return false;
  // Exit signal 0: the program's waitpid(-1) never sees the helper; we reap it with __WALL.
  helper_pid = clone(helper_main, static_cast<char*>(helper_stack) + kHelperStack,
                     CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED, nullptr);
  if (helper_pid <= 0) {
    sys::unmap(helper_stack, kHelperStack);
    errno = saved_errno;
    return false;
  }
  prctl(PR_SET_PTRACER, helper_pid, 0, 0, 0);  // under Yama's ptrace_scope 1; EINVAL without
  set_phase(kGo);
  if (!caller_wait_while(kGo) || helper.phase.load(std::memory_order_acquire) == kRefused) {
    reap_helper();
    result = StopResult{};
    errno = saved_errno;
    return false;
  }
  count_outcome(slots, result);
  errno = saved_errno;
  return true;
}

void PtraceStop::resume_others() noexcept {
  const int saved_errno = errno;
  set_phase(kRelease);
  caller_wait_while(kRelease);
  reap_helper();
  errno = saved_errno;
}

}  // namespace heapscope::preload
