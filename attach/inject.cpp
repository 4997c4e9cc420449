// The injection sequence (see inject.h). research/attach.md explains each choice; the numbers
// in comments (E1..E4, 5.x) refer to it.
#include "inject.h"

#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "attach_error.h"
#include "elf_symbols.h"
#include "heapscope/attach_protocol.h"
#include "proc_target.h"
#include "ptrace_session.h"
#include "remote_call.h"
#include "remote_unwind.h"

namespace heapscope::attach {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint64_t kScratchStackBytes = 256 * 1024;

// Functions a borrowed thread must not be inside: the allocator (its arena lock is not
// recursive, 5.5), the loader's entry points and dl_iterate_phdr (the loader's locks, 5.4),
// fork and pthread_create (they hold the allocator's or the thread list's locks).
const char* const kUnsafeLibcFunctions[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign", "aligned_alloc",
    "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallinfo", "mallinfo2", "malloc_stats",
    "malloc_info", "mallopt", "cfree", "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
    "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "fork", "_Fork", "vfork", "pthread_create",
    "dl_iterate_phdr", "dlopen", "dlclose", "dlsym", "dlvsym", "dlmopen", "dladdr", "dladdr1", "dlinfo",
    "dlerror", "_dl_find_object", "exit", "__cxa_finalize"};

// System calls a thread may be borrowed from and put back into transparently: restoring its
// registers restarts them (E1).
const std::set<long> kRestartableWaits = {
    SYS_read, SYS_pread64, SYS_readv, SYS_preadv, SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6,
    SYS_nanosleep, SYS_clock_nanosleep, SYS_pause, SYS_wait4, SYS_waitid, SYS_rt_sigsuspend, SYS_msgrcv};
// Waits that also restart, but where the thread may be inside the allocator or the loader
// (a futex is how a contended lock waits): a stack check decides.
const std::set<long> kLockWaits = {SYS_futex};
// Waits that return EINTR to the program after any ptrace stop (E3, signal(7)); the session
// rewinds them (ptrace_session.cpp), but a thread blocked elsewhere is preferred.
const std::set<long> kEintrWaits = {SYS_epoll_wait, SYS_epoll_pwait, 441 /* epoll_pwait2 */, SYS_semop,
                                    SYS_semtimedop, SYS_rt_sigtimedwait};

struct Candidate {
  int tid = 0;
  int tier = 0;  // lower is better
  std::string state;
};

struct Target {
  int pid = 0;
  std::vector<Mapping> maps;
  LoadedObject libc;
  uint64_t libc_bias = 0;
  ElfFile libc_file;
  std::optional<LoadedObject> loader;
  std::vector<std::pair<uint64_t, uint64_t>> unsafe_ranges;  // sorted [begin, end)
};

std::string root_path(int pid, const std::string& path) { return fmt::format("/proc/{}/root{}", pid, path); }

uint64_t libc_function(const Target& target, const char* name) {
  const auto found = target.libc_file.functions.find(name);
  if (found == target.libc_file.functions.end())
    throw AttachError(Refusal::kUnsuitable,
                      fmt::format("the target's C library {} has no {}(): heapscope attach needs glibc 2.34 or later",
                                  target.libc.path, name));
  return target.libc_bias + found->second.value;
}

Target inspect(int pid, const std::string& agent_path) {
  Target target;
  target.pid = pid;
  ProcessStatus status;
  try {
    status = read_status(pid);
    target.maps = read_maps(pid);
  } catch (const std::system_error& error) {
    if (error.code().value() == ENOENT || error.code().value() == ESRCH)
      throw AttachError(Refusal::kNoSuchProcess, fmt::format("no such process: {}", pid));
    throw AttachError(Refusal::kNotPermitted, permission_message(pid, error.code().value()));
  }
  if (status.state == 'Z' || status.state == 'X')
    throw AttachError(Refusal::kUnsuitable, fmt::format("process {} ({}) has ended (a zombie)", pid, status.name));
  if (status.state == 'T' || status.state == 't') {
    if (status.tracer_pid == 0)
      throw AttachError(Refusal::kUnsuitable,
                        fmt::format("process {} ({}) is stopped; resume it first (kill -CONT {}) and attach again",
                                    pid, status.name, pid));
  }
  if (status.tracer_pid != 0) {
    std::string tracer = std::to_string(status.tracer_pid);
    try {
      tracer += " (" + read_status(status.tracer_pid).name + ")";
    } catch (const std::system_error&) {
    }
    throw AttachError(Refusal::kUnsuitable,
                      fmt::format("process {} ({}) is already traced by process {}; detach that tracer first", pid,
                                  status.name, tracer));
  }
  for (const Mapping& mapping : target.maps) {
    if (mapping.path.ends_with("/libheapscope.so"))
      throw AttachError(Refusal::kUnsuitable,
                        fmt::format("process {} ({}) already runs under heapscope (libheapscope.so is preloaded); "
                                    "its report comes from that run",
                                    pid, status.name));
  }
  std::string exe;
  {
    char buffer[4096];
    const ssize_t length = readlink(fmt::format("/proc/{}/exe", pid).c_str(), buffer, sizeof(buffer) - 1);
    if (length <= 0)
      throw AttachError(Refusal::kNotPermitted, fmt::format("cannot read /proc/{}/exe: {}", pid, strerror(errno)));
    exe.assign(buffer, static_cast<size_t>(length));
  }
  ElfFile program;
  try {
    program = read_elf(root_path(pid, exe));
  } catch (const std::exception& error) {
    throw AttachError(Refusal::kUnsuitable, fmt::format("cannot read the program {}: {}", exe, error.what()));
  }
  if (!program.is_64bit_x86)
    throw AttachError(Refusal::kUnsuitable, fmt::format("{} is not an x86-64 program; heapscope attach supports x86-64 only", exe));
  const auto libc = find_object(target.maps, "libc.so.");
  if (!program.has_interpreter || !libc) {
    if (!program.has_interpreter)
      throw AttachError(Refusal::kUnsuitable,
                        fmt::format("{} is statically linked: there is no allocator call heapscope could redirect", exe));
    throw AttachError(Refusal::kUnsuitable,
                      fmt::format("process {} does not use glibc (musl or no C library?); heapscope attach needs glibc", pid));
  }
  target.libc = *libc;
  try {
    target.libc_file = read_elf(root_path(pid, libc->path));
  } catch (const std::exception& error) {
    throw AttachError(Refusal::kUnsuitable, fmt::format("cannot read the target's C library: {}", error.what()));
  }
  target.libc_bias = libc->base - target.libc_file.first_load_vaddr;
  target.loader = find_object(target.maps, "ld-linux");
  if (access(root_path(pid, agent_path).c_str(), R_OK) != 0)
    throw AttachError(Refusal::kUnsuitable,
                      fmt::format("the agent {} is not visible to process {} (another mount namespace or container?); "
                                  "install heapscope inside it",
                                  agent_path, pid));
  for (const char* name : kUnsafeLibcFunctions) {
    const auto found = target.libc_file.functions.find(name);
    if (found == target.libc_file.functions.end() || found->second.size == 0) continue;
    const uint64_t begin = target.libc_bias + found->second.value;
    target.unsafe_ranges.emplace_back(begin, begin + found->second.size);
  }
  if (target.loader) target.unsafe_ranges.emplace_back(target.loader->text_begin, target.loader->text_end);
  std::sort(target.unsafe_ranges.begin(), target.unsafe_ranges.end());
  return target;
}

bool is_unsafe_address(const Target& target, uint64_t address) {
  auto after = std::upper_bound(target.unsafe_ranges.begin(), target.unsafe_ranges.end(),
                                std::make_pair(address, ~uint64_t{0}));
  if (after == target.unsafe_ranges.begin()) return false;
  --after;
  return address >= after->first && address < after->second;
}

// Why the thread must not be borrowed now, from its unwound call chain: a frame in an unsafe
// function, or in the loader. Where unwinding fails, conservatively from the words in the top
// 4 KiB of its stack: any that looks like a return address into an unsafe function rejects
// it (another thread, or the same one a moment later, is tried instead). The allocator calls
// nothing of the program's, and its deepest chain (free -> _int_free -> malloc_consolidate, or
// a lock wait) takes well under 4 KiB.
std::optional<std::string> unsafe_reason(const Target& target, const PtraceSession& thread, RemoteUnwinder& unwinder) {
  const regs::Registers& registers = thread.saved().registers;
  if (is_unsafe_address(target, regs::pc(registers))) return "it is inside the allocator or the dynamic loader";
  if (const auto chain = unwinder.frames(thread.tid())) {
    for (size_t i = 1; i < chain->size(); ++i)
      if (is_unsafe_address(target, (*chain)[i] - 1)) return "it is inside the allocator or the dynamic loader";
    return std::nullopt;
  }
  const uint64_t sp = regs::stack_pointer(registers);
  const Mapping* stack = mapping_of(target.maps, sp);
  if (stack == nullptr) return "its stack pointer is not in a mapping";
  const uint64_t end = std::min(stack->end, sp + 4096);
  std::vector<uint64_t> words((end - (sp & ~uint64_t{7})) / 8);
  try {
    thread.read_memory(sp & ~uint64_t{7}, words.data(), words.size() * 8);
  } catch (const AttachError&) {
    return "its stack cannot be read";
  }
  for (uint64_t word : words)
    if (is_unsafe_address(target, word)) return "a call into the allocator or the dynamic loader may be on its stack";
  return std::nullopt;
}

std::vector<Candidate> rank_threads(int pid) {
  std::vector<Candidate> candidates;
  std::vector<int> tids;
  try {
    tids = list_threads(pid);
  } catch (const std::system_error&) {
    throw AttachError(Refusal::kNoSuchProcess, fmt::format("no such process: {}", pid));
  }
  for (int tid : tids) {
    const auto syscall = read_thread_syscall(pid, tid);
    if (!syscall) continue;
    Candidate candidate{tid, 2, "running"};
    if (!syscall->running && syscall->number >= 0) {
      candidate.state = fmt::format("blocked in system call {}", syscall->number);
      if (kRestartableWaits.contains(syscall->number)) candidate.tier = 0;
      else if (kLockWaits.contains(syscall->number)) candidate.tier = 1;
      else if (kEintrWaits.contains(syscall->number)) candidate.tier = 3;
      else candidate.tier = 1;
    }
    candidates.push_back(candidate);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.tier < b.tier; });
  return candidates;
}

// Calls into the target, on the borrowed thread, to load and start the agent.
void start_agent(const Target& target, PtraceSession& thread, const InjectRequest& request) {
  thread.block_signals();
  // A stack of our own for dlopen: the thread's may be small (a coroutine's, kubo #31) or end
  // close below its stack pointer. mmap itself needs a few bytes: below the red zone.
  const uint64_t own_stack_top = regs::stack_pointer(thread.saved().registers) - regs::kRedZone - 256;
  const uint64_t scratch = remote_call(
      thread, libc_function(target, "mmap"),
      {0, kScratchStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, static_cast<uint64_t>(-1), 0},
      own_stack_top, milliseconds(5000), "mmap");
  if (scratch >= static_cast<uint64_t>(-4095))
    throw AttachError(Refusal::kInjectionFailed, fmt::format("the target could not map a stack: {}",
                                                             strerror(static_cast<int>(-static_cast<int64_t>(scratch)))));
  struct Unmap {
    PtraceSession& thread;
    uint64_t munmap, scratch, stack_top;
    ~Unmap() {
      try {
        remote_call(thread, munmap, {scratch, kScratchStackBytes}, stack_top, milliseconds(5000), "munmap");
      } catch (const AttachError&) {
        // The mapping stays: 256 KiB of the target's address space, nothing else.
      }
    }
  } unmap{thread, libc_function(target, "munmap"), scratch, own_stack_top};

  // Strings at the bottom of the scratch mapping, the stack grows down from its top.
  uint64_t cursor = scratch;
  auto put_string = [&](const std::string& text) {
    const uint64_t at = cursor;
    thread.write_memory(at, text.c_str(), text.size() + 1);
    cursor += (text.size() + 16) & ~size_t{7};
    return at;
  };
  const uint64_t path = put_string(request.agent_path);
  const uint64_t session = put_string(request.session_dir);
  const uint64_t options = put_string(request.agent_options);
  const uint64_t entry_name = put_string(format::kAttachEntry);
  const uint64_t stack_top = scratch + kScratchStackBytes;

  // RTLD_LOCAL: the agent's own malloc must not interpose on the program's lookups; its
  // entry points are reached only through the slots it redirects itself.
  const uint64_t handle = remote_call(thread, libc_function(target, "dlopen"), {path, RTLD_NOW | RTLD_LOCAL},
                                      stack_top, request.call_timeout, "dlopen of the agent");
  if (handle == 0) {
    const uint64_t message = remote_call(thread, libc_function(target, "dlerror"), {}, stack_top, milliseconds(5000), "dlerror");
    const std::string reason = message != 0 ? read_remote_string(thread, message) : "no reason given";
    std::string hint;
    if (reason.find("static TLS") != std::string::npos)
      hint = " (the process has used up glibc's static TLS surplus; start it with "
             "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096 to attach later)";
    throw AttachError(Refusal::kInjectionFailed, fmt::format("the target could not load the agent: {}{}", reason, hint));
  }
  const uint64_t entry = remote_call(thread, libc_function(target, "dlsym"), {handle, entry_name}, stack_top,
                                     milliseconds(5000), "dlsym");
  if (entry == 0)
    throw AttachError(Refusal::kInjectionFailed, fmt::format("{} has no {}: is it heapscope's attach agent?",
                                                             request.agent_path, format::kAttachEntry));
  const auto status = static_cast<format::AttachStatus>(static_cast<int32_t>(remote_call(
      thread, entry, {session, static_cast<uint64_t>(request.collector_pid), options}, stack_top,
      request.call_timeout, "the agent's start")));
  switch (status) {
    case format::AttachStatus::kOk: return;
    case format::AttachStatus::kAlreadyAttached:
      throw AttachError(Refusal::kUnsuitable, fmt::format("another heapscope is attached to process {} now", target.pid));
    case format::AttachStatus::kNoAllocator:
      throw AttachError(Refusal::kUnsuitable, "the agent could not find the target's allocator");
    case format::AttachStatus::kNotRedirected:
      throw AttachError(Refusal::kUnsuitable,
                        "no module of the target calls malloc through a slot heapscope can redirect "
                        "(an allocator linked statically into the program?); nothing would be recorded");
    case format::AttachStatus::kNoRing:
      throw AttachError(Refusal::kInjectionFailed, fmt::format("the agent could not create its ring in {}", request.session_dir));
    case format::AttachStatus::kNoMemory:
      throw AttachError(Refusal::kInjectionFailed, "the agent could not map its tables in the target");
    case format::AttachStatus::kNoThread:
      throw AttachError(Refusal::kInjectionFailed, "the agent could not start its thread in the target");
  }
  throw AttachError(Refusal::kInjectionFailed, fmt::format("the agent's start returned {}", static_cast<int>(status)));
}

}  // namespace

void check_attachable(int pid, const std::string& agent_path) { inspect(pid, agent_path); }

InjectResult inject_agent(const InjectRequest& request) {
  const Target target = inspect(request.pid, request.agent_path);
  InjectResult result;
  RemoteUnwinder unwinder(request.pid);  // modules read now: the thread is held only for the walk
  // Threads that are running or in a lock wait may be inside the allocator at the moment we
  // stop them; they are tried again a few times before giving up.
  const Clock::time_point deadline = Clock::now() + milliseconds(5000);
  std::string last_reason = "it has no threads";
  for (int round = 0; Clock::now() < deadline; ++round) {
    for (const Candidate& candidate : rank_threads(request.pid)) {
      const Clock::time_point seized_at = Clock::now();
      std::optional<PtraceSession> thread;
      try {
        thread.emplace(request.pid, candidate.tid, milliseconds(2000));
      } catch (const AttachError& error) {
        // A thread that ended between the listing and the seize: try the next one.
        if (error.refusal() == Refusal::kNoSuchProcess && access(fmt::format("/proc/{}", request.pid).c_str(), F_OK) == 0)
          continue;
        throw;
      }
      if (const auto reason = unsafe_reason(target, *thread, unwinder)) {
        last_reason = fmt::format("thread {}: {}", candidate.tid, *reason);
        if (round == 0) result.notes.push_back(fmt::format("skipped {}", last_reason));
        continue;  // the destructor puts it back
      }
      start_agent(target, *thread, request);
      thread->detach();
      result.tid = candidate.tid;
      result.thread_state = candidate.state;
      result.held = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - seized_at);
      return result;
    }
    std::this_thread::sleep_for(milliseconds(round < 10 ? 1 : 20));
  }
  throw AttachError(Refusal::kInjectionFailed,
                    fmt::format("no thread of process {} reached a safe point within 5 s (last: {})", request.pid, last_reason));
}

}  // namespace heapscope::attach
