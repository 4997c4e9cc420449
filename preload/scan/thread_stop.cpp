// Thread listing shared by both stops, and the signal-based stop (see thread_stop.h).
#include "thread_stop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "sys.h"

namespace heapscope::preload {
namespace {

// The scan in progress, shared with the handlers. One scan at a time (the caller holds every
// index lock), so plain globals suffice.
constinit std::atomic<StoppedThread*> active_slots{nullptr};
constinit std::atomic<size_t> active_count{0};
constinit std::atomic<uint32_t> release_generation{0};
constinit int stop_signal = 0;

long futex(std::atomic<uint32_t>* word, int op, uint32_t value) noexcept {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, nullptr, nullptr, 0);
}

// Calls visit(tid) for each thread listed in /proc/<pid>/task (raw getdents64: no malloc).
template <typename Visit>
void for_each_task(int pid, Visit visit) noexcept {
  char path[32] = "/proc/";
  char digits[12];
  size_t length = 0;
  for (unsigned value = static_cast<unsigned>(pid); length == 0 || value > 0; value /= 10)
    digits[length++] = static_cast<char>('0' + value % 10);
  size_t at = 6;
  while (length > 0) path[at++] = digits[--length];
  for (const char* tail = "/task"; *tail != '\0'; ++tail) path[at++] = *tail;
  path[at] = '\0';
  const int fd = sys::open_file(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char buffer[4096];
  for (;;) {
    const long got = syscall(SYS_getdents64, fd, buffer, sizeof(buffer));
    if (got <= 0) break;
    for (long offset = 0; offset < got;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buffer + offset);
      offset += entry->d_reclen;
      uint32_t tid = 0;
      const char* name = entry->d_name;
      if (*name < '0' || *name > '9') continue;
      for (; *name >= '0' && *name <= '9'; ++name) tid = tid * 10 + static_cast<uint32_t>(*name - '0');
      visit(tid);
    }
  }
  sys::close_file(fd);
}

void save_registers(StoppedThread& slot, const ucontext_t* context) noexcept {
#if defined(__x86_64__)
  const greg_t* registers = context->uc_mcontext.gregs;
  const size_t count = NGREG < kSavedRegisters ? NGREG : kSavedRegisters;
  for (size_t i = 0; i < count; ++i) slot.registers[i] = static_cast<uint64_t>(registers[i]);
  slot.register_count = static_cast<uint32_t>(count);
  slot.stack_pointer = static_cast<uint64_t>(registers[REG_RSP]);
#elif defined(__aarch64__)
  for (size_t i = 0; i < 31; ++i) slot.registers[i] = context->uc_mcontext.regs[i];
  slot.register_count = 31;
  slot.stack_pointer = context->uc_mcontext.sp;
#else
#error "leak scans need the register layout of this architecture"
#endif
}

// Runs on each stopped thread. A signal that arrives late (after its scan gave up on this
// thread, or when none is running) finds no slot and returns at once: the handler stays
// installed for good, so a late signal never falls back to the default action (terminate).
void on_stop_signal(int, siginfo_t*, void* context) noexcept {
  const int saved_errno = errno;
  StoppedThread* slots = active_slots.load(std::memory_order_acquire);
  const size_t count = active_count.load(std::memory_order_acquire);
  const uint32_t generation = release_generation.load(std::memory_order_acquire);
  const uint32_t tid = own_thread_id();
  for (size_t i = 0; slots != nullptr && i < count; ++i) {
    if (slots[i].tid != tid) continue;
    save_registers(slots[i], static_cast<const ucontext_t*>(context));
    slots[i].stopped.store(kThreadStopped, std::memory_order_release);
    while (release_generation.load(std::memory_order_acquire) == generation)
      futex(&release_generation, FUTEX_WAIT_PRIVATE, generation);
    break;
  }
  errno = saved_errno;
}

// The highest real-time signal the program left at its default action: RT signals have no
// standard meaning, and one the program handles itself is never taken over.
bool install_handler() noexcept {
  if (stop_signal != 0) return true;
  for (int candidate = SIGRTMAX; candidate > SIGRTMIN + 2; --candidate) {
    struct sigaction current {};
    if (sigaction(candidate, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
    struct sigaction handler {};
    handler.sa_sigaction = on_stop_signal;
    handler.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&handler.sa_mask);  // nothing else runs on a stopped thread
    if (sigaction(candidate, &handler, nullptr) != 0) continue;
    stop_signal = candidate;
    return true;
  }
  return false;
}

}  // namespace

uint32_t own_thread_id() noexcept { return static_cast<uint32_t>(syscall(SYS_gettid)); }

size_t count_threads() noexcept {
  size_t count = 0;
  for_each_task(getpid(), [&count](uint32_t) { ++count; });
  return count > 0 ? count : 1;
}

size_t list_new_threads(int pid, StoppedThread* slots, size_t capacity, uint32_t self,
                        StopResult& result) noexcept {
  size_t added = 0;
  for_each_task(pid, [&](uint32_t tid) {
    if (tid == self) return;
    for (size_t i = 0; i < result.slots_used; ++i)
      if (slots[i].tid == tid) return;
    if (result.slots_used == capacity) {
      ++result.unstopped;
      return;
    }
    StoppedThread& slot = slots[result.slots_used++];
    slot.tid = tid;
    slot.stopped.store(kThreadRunning, std::memory_order_relaxed);
    slot.register_count = 0;
    slot.stack_pointer = 0;
    ++added;
  });
  return added;
}

void count_outcome(const StoppedThread* slots, StopResult& result) noexcept {
  for (size_t i = 0; i < result.slots_used; ++i) {
    const uint32_t state = slots[i].stopped.load(std::memory_order_acquire);
    if (state == kThreadStopped) ++result.stopped;
    if (state == kThreadRunning) ++result.unstopped;
  }
}

bool SignalStop::stop_others(StoppedThread* slots, size_t capacity, StopResult& result) noexcept {
  if (!install_handler()) return false;
  const uint32_t self = own_thread_id();
  const int pid = getpid();
  // Threads started while we signal are found by the next listing; stop when one adds nobody.
  for (int round = 0; round < 16; ++round) {
    const size_t before = result.slots_used;
    if (list_new_threads(pid, slots, capacity, self, result) == 0) break;
    active_slots.store(slots, std::memory_order_release);
    active_count.store(result.slots_used, std::memory_order_release);
    for (size_t i = before; i < result.slots_used; ++i) {
      // ESRCH: the thread ended meanwhile; nothing to wait for.
      if (syscall(SYS_tgkill, pid, slots[i].tid, stop_signal) != 0 && errno == ESRCH)
        slots[i].stopped.store(kThreadGone, std::memory_order_relaxed);
    }
    // Wait for this round's threads before listing again: a stopped thread starts nobody. One
    // that did not answer in time is not waited for again.
    const uint64_t deadline = sys::now_ns() + 1000000000ull;
    for (;;) {
      size_t answered = 0;
      for (size_t i = before; i < result.slots_used; ++i)
        answered += slots[i].stopped.load(std::memory_order_acquire) != kThreadRunning ? 1 : 0;
      if (answered == result.slots_used - before || sys::now_ns() > deadline) break;
      sys::sleep_ns(50000);
    }
  }
  count_outcome(slots, result);
  return true;
}

void SignalStop::resume_others() noexcept {
  // Late handlers must not find these slots: they are unmapped after the scan.
  active_count.store(0, std::memory_order_release);
  active_slots.store(nullptr, std::memory_order_release);
  release_generation.fetch_add(1, std::memory_order_acq_rel);
  futex(&release_generation, FUTEX_WAKE_PRIVATE, 0x7fffffff);
}

}  // namespace heapscope::preload
