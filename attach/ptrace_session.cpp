// Seize, save, restore and detach one thread (see ptrace_session.h).
#include "ptrace_session.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "attach_error.h"
#include "proc_target.h"

namespace heapscope::attach {
namespace {

using Clock = std::chrono::steady_clock;

std::string yama_hint() {
  std::ifstream in("/proc/sys/kernel/yama/ptrace_scope");
  int scope = -1;
  if (!(in >> scope)) return "";
  switch (scope) {
    case 1:
      return " (kernel.yama.ptrace_scope is 1: only a parent may trace its children; run heapscope as root, "
             "give it CAP_SYS_PTRACE, or set `sysctl kernel.yama.ptrace_scope=0`)";
    case 2:
      return " (kernel.yama.ptrace_scope is 2: only processes with CAP_SYS_PTRACE may attach; run heapscope as "
             "root or with that capability)";
    case 3:
      return " (kernel.yama.ptrace_scope is 3: ptrace is disabled on this machine until reboot)";
    default:
      return "";
  }
}

}  // namespace

std::string permission_message(int pid, int error) {
  std::string text = "not permitted to attach to process " + std::to_string(pid) + ": " + strerror(error);
  const std::string hint = yama_hint();
  if (!hint.empty()) return text + hint;
  int owner = -1;
  try {
    owner = read_status(pid).uid;
  } catch (const std::exception&) {
  }
  if (geteuid() != 0 && owner >= 0 && static_cast<uid_t>(owner) != geteuid())
    return text + " (it belongs to user " + std::to_string(owner) + " and heapscope runs as user " +
           std::to_string(geteuid()) + ": run heapscope as that user or as root)";
  if (geteuid() != 0)
    return text + " (run heapscope as root or give it CAP_SYS_PTRACE; in a container, the container needs "
                  "CAP_SYS_PTRACE)";
  return text + " (a security module or the container's seccomp profile refuses ptrace; in a container, "
                "add CAP_SYS_PTRACE)";
}


PtraceSession::PtraceSession(int pid, int tid, std::chrono::milliseconds timeout) : pid_(pid), tid_(tid) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    const int error = errno;
    if (error == ESRCH) throw AttachError(Refusal::kNoSuchProcess, "no such process: " + std::to_string(pid));
    throw AttachError(Refusal::kNotPermitted, permission_message(pid, error));
  }
  attached_ = true;
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot interrupt the thread: ") + strerror(errno));
  const auto status = wait_status(Clock::now() + timeout);
  if (!status) throw AttachError(Refusal::kInjectionFailed, "thread " + std::to_string(tid) + " did not stop in time");
  if (!WIFSTOPPED(*status)) {
    attached_ = false;
    throw AttachError(Refusal::kNoSuchProcess, "process " + std::to_string(pid) + " ended while heapscope attached");
  }
  // A signal-delivery stop may come before the interrupt's: the signal is then put back at
  // detach, and the interrupt stop is resumed through later.
  if ((*status >> 16) == 0 && WSTOPSIG(*status) != SIGTRAP) pending_signal_ = WSTOPSIG(*status);

  if (ptrace(PTRACE_GETREGS, tid, nullptr, &saved_.registers) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot read the registers: ") + strerror(errno));
  saved_.xstate.resize(16 * 1024);
  iovec area{saved_.xstate.data(), saved_.xstate.size()};
  if (ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE), &area) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot read the FPU/SIMD state: ") + strerror(errno));
  saved_.xstate.resize(area.iov_len);
  if (ptrace(PTRACE_GETSIGMASK, tid, reinterpret_cast<void*>(sizeof(saved_.signal_mask)), &saved_.signal_mask) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot read the signal mask: ") + strerror(errno));
  const std::string memory = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/mem";
  memory_fd_ = open(memory.c_str(), O_RDWR | O_CLOEXEC);
  if (memory_fd_ < 0)
    throw AttachError(Refusal::kInjectionFailed, "cannot open " + memory + ": " + strerror(errno));
  rewind_interrupted_wait();
}

void PtraceSession::rewind_interrupted_wait() {
  // epoll_wait and its kin are never restarted by the kernel: the interrupt stop alone makes
  // them return EINTR (research/attach.md E3), which event loops may take for a real signal
  // or treat as fatal. Put the thread back on its `syscall` instruction with the call number
  // in rax, as the kernel does for restartable calls: it waits again (its timeout starts
  // afresh) instead.
  const long number = regs::interrupted_syscall(saved_.registers);
  const bool never_restarted = number == SYS_epoll_wait || number == SYS_epoll_pwait || number == 441 /* epoll_pwait2 */;
  if (!never_restarted || static_cast<int64_t>(saved_.registers.rax) != -EINTR) return;
  uint8_t instruction[2] = {};
  try {
    read_memory(saved_.registers.rip - 2, instruction, sizeof(instruction));
  } catch (const AttachError&) {
    return;
  }
  if (instruction[0] != 0x0f || instruction[1] != 0x05) return;  // not `syscall`: leave it
  saved_.registers.rax = saved_.registers.orig_rax;
  saved_.registers.rip -= 2;
  changed_ = true;
}

PtraceSession::~PtraceSession() {
  detach();
  if (memory_fd_ >= 0) close(memory_fd_);
}

std::optional<int> PtraceSession::wait_status(Clock::time_point deadline) const {
  // waitpid has no timeout: poll, briefly at first (a stop usually comes within microseconds).
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(tid_, &status, __WALL | WNOHANG);
    if (done == tid_) return status;
    if (done < 0 && errno != EINTR) return W_EXITCODE(0, 0);  // not ours any more: gone
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

regs::Registers PtraceSession::registers() const {
  regs::Registers registers{};
  if (ptrace(PTRACE_GETREGS, tid_, nullptr, &registers) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot read the registers: ") + strerror(errno));
  return registers;
}

void PtraceSession::set_registers(const regs::Registers& registers) {
  changed_ = true;
  if (ptrace(PTRACE_SETREGS, tid_, nullptr, &registers) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot set the registers: ") + strerror(errno));
}

void PtraceSession::read_memory(uint64_t address, void* out, size_t size) const {
  if (pread(memory_fd_, out, size, static_cast<off_t>(address)) != static_cast<ssize_t>(size))
    throw AttachError(Refusal::kInjectionFailed, "cannot read the target's memory");
}

void PtraceSession::write_memory(uint64_t address, const void* data, size_t size) {
  if (pwrite(memory_fd_, data, size, static_cast<off_t>(address)) != static_cast<ssize_t>(size))
    throw AttachError(Refusal::kInjectionFailed, "cannot write the target's memory");
}

void PtraceSession::block_signals() {
  // Synchronous faults stay deliverable: the kernel forces a blocked fault signal through and
  // resets the program's handler for it to SIG_DFL (force_sig_info_to_task), which would
  // change the program. Left unblocked, a fault stops the thread for us before any handler
  // runs, and we never let it through (a remote call ends with exactly such a fault).
  uint64_t all = ~uint64_t{0};
  for (int synchronous : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS}) all &= ~(uint64_t{1} << (synchronous - 1));
  changed_ = true;
  if (ptrace(PTRACE_SETSIGMASK, tid_, reinterpret_cast<void*>(sizeof(all)), &all) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot block signals: ") + strerror(errno));
}

std::optional<ThreadStop> PtraceSession::resume_until_signal(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    if (ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return ThreadStop{true, 0, 0};
    const auto status = wait_status(deadline);
    if (!status) return std::nullopt;
    if (!WIFSTOPPED(*status)) {
      attached_ = false;
      return ThreadStop{true, 0, 0};
    }
    const int event = *status >> 16;
    const int signal = WSTOPSIG(*status);
    // Interrupt and group stops (PTRACE_EVENT_STOP) are not the call's doing: resume through.
    if (event != 0) continue;
    if (signal == SIGTRAP || signal == SIGSTOP || signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU) {
      // Stop signals cannot be blocked; the process is asked to stop. Delivered at detach.
      pending_signal_ = signal;
      continue;
    }
    return ThreadStop{false, signal, regs::pc(registers())};
  }
}

void PtraceSession::restore() {
  if (!changed_) return;
  if (ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_.registers) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot restore the registers: ") + strerror(errno));
  iovec area{saved_.xstate.data(), saved_.xstate.size()};
  if (ptrace(PTRACE_SETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &area) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot restore the FPU/SIMD state: ") + strerror(errno));
  uint64_t mask = saved_.signal_mask;
  if (ptrace(PTRACE_SETSIGMASK, tid_, reinterpret_cast<void*>(sizeof(mask)), &mask) != 0)
    throw AttachError(Refusal::kInjectionFailed, std::string("cannot restore the signal mask: ") + strerror(errno));
  changed_ = false;
}

bool PtraceSession::detach() noexcept {
  if (!attached_) return false;
  try {
    restore();
  } catch (const AttachError&) {
    // Nothing more can be done from here; detaching at least lets the thread run.
  }
  attached_ = false;
  // Restoring rax and orig_rax as they were at the interrupt makes the kernel restart a system
  // call the thread was blocked in (research/attach.md E1): no EINTR reaches the program.
  return ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(pending_signal_))) == 0;
}

}  // namespace heapscope::attach
