// Agent lifecycle (init, fork, exit) and event emission (see agent.h).
#include "agent.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/random.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "block_header.h"
#include "build_mode.h"
#include "attach_session.h"
#include "got_patch.h"
#include "heap_ops.h"
#include "leak_scan.h"
#include "module_map.h"
#include "raw_log.h"
#include "real_alloc.h"
#include "reentrancy_guard.h"
#include "ring_writer.h"
#include "rule_cache.h"
#include "sampler.h"
#include "stack_capture.h"
#include "stack_depot.h"
#include "standalone.h"
#include "sys.h"

namespace heapscope::preload::agent {
namespace {

// kDetaching (attach agent only): the session is ending; frees of tracked blocks are still
// recorded (the leak scan's verdicts must stay true of the live set) but allocations are not.
// kForkPending: a fork child whose fork interrupted the agent (see after_fork_child); its
// first call from outside the agent starts its ring.
enum class State : int { kUninitialized, kInitializing, kReady, kDisabled, kDetaching, kForkPending };

struct Agent {
  Options options;
  RingWriter ring;
  StackDepot depot;
  BlockIndex index;
  Quarantine quarantine;
  ModuleMap modules;
  const char* session = nullptr;
  int collector_pid = 0;
  bool standalone = false;  // preloaded alone: our own session and collector (standalone.h)
  standalone::Session own_session;
  std::atomic<uint64_t> errors_reported{0};
  int ring_pid = 0;  // the process whose ring this is
};

// Constant-initialized static storage with a trivial destructor: usable for allocations made
// before any constructor runs and after every destructor, and never needing the heap itself.
constinit std::atomic<State> state{State::kUninitialized};

// Where the thread that ends the process left the program's frames (note_exit_point).
struct ExitPoint {
  std::atomic<uint32_t> thread_id;
  const void* frame_top;
  ucontext_t registers;
};
ExitPoint exit_point;  // zero-initialized static storage
constinit Agent agent_instance;
Agent& the_agent() noexcept { return agent_instance; }

void emit_process(int parent_pid) noexcept {
  char argv[format::kMaxPath];
  size_t argv_length = 0;
  const int fd = sys::open_file("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const long got = sys::read_some(fd, argv, sizeof(argv));
    argv_length = got > 0 ? static_cast<size_t>(got) : 0;
    sys::close_file(fd);
  }
  char exe[format::kMaxPath];
  const ssize_t exe_got = readlink("/proc/self/exe", exe, sizeof(exe));
  const size_t exe_length = exe_got > 0 ? static_cast<size_t>(exe_got) : 0;

  Agent& a = the_agent();
  auto* header = a.ring.reserve(
      format::record_size(sizeof(format::ProcessEvent) + argv_length + exe_length));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::ProcessEvent*>(header);
  record->pid = getpid();
  record->parent_pid = parent_pid;
  record->argv_bytes = static_cast<uint32_t>(argv_length);
  record->exe_bytes = static_cast<uint32_t>(exe_length);
  record->max_frames = a.options.max_frames;
  record->reserved = 0;
  memcpy(reinterpret_cast<char*>(record + 1), argv, argv_length);
  memcpy(reinterpret_cast<char*>(record + 1) + argv_length, exe, exe_length);
  RingWriter::commit(header, format::EventKind::kProcess);
}

// Opens this process's ring and announces the process and its modules: a fork child's are
// its parent's, announced again without asking the loader (ModuleMap::announce_again).
bool start_recording(int parent_pid, bool forked) noexcept {
  Agent& a = the_agent();
  // A process started after heapscope died (or was killed) would write a ring nobody reads,
  // and leave its file behind: with no collector there is nothing to record for.
  if (a.collector_pid > 0 && !sys::process_alive(a.collector_pid)) return false;
  const size_t capacity = size_t{a.options.ring_mib} << 20;  // power of two: MiB * 2^20
  size_t rounded = size_t{1} << 20;
  while (rounded < capacity) rounded <<= 1;
  if (!a.ring.open(a.session, a.collector_pid, rounded)) {
    RawLine().text("heapscope: cannot create the event ring in ").text(a.session)
        .text("; this process is not traced").emit();
    return false;
  }
  a.ring_pid = getpid();
  emit_process(parent_pid);
  if (forked) {
    a.modules.announce_again(a.ring);
  } else {
    a.modules.reset();
    a.modules.refresh(a.ring);
  }
  sample_now(a.ring);
  return true;
}

// fork() from a signal handler that interrupted this thread inside the agent: the interrupted
// frame holds what it held (a lock, a ring record, a depot insert) and finishes after the
// handler returns, in both processes. Set by before_fork, read by the other two handlers (the
// same thread, one fork at a time).
bool fork_interrupted_agent = false;

void before_fork() noexcept {
  if (state.load(std::memory_order_acquire) != State::kReady) return;
  fork_interrupted_agent = ReentrancyGuard::active();
  Agent& a = the_agent();
  // Every lock another thread may hold, so that the child's copies are consistent; not those
  // the interrupted frame holds (waiting for them would wait forever): it releases them itself.
  a.modules.lock_for_fork();
  a.index.lock_all_for_fork();  // index shards before the quarantine: verify_all's order
  a.quarantine.lock_for_fork();
}

void after_fork_parent() noexcept {
  if (state.load(std::memory_order_acquire) != State::kReady) return;
  Agent& a = the_agent();
  a.quarantine.unlock_after_fork();
  a.index.unlock_all_after_fork();
  a.modules.unlock_after_fork();
}

// The child's own ring, with a fresh depot: stack ids already defined in the parent's ring mean
// nothing to the child's, and a depot insert another thread had half-done at the fork would
// never be published. Never called while an agent frame of this thread is below us.
void start_child_recording() noexcept {
  Agent& a = the_agent();
  ReentrancyGuard guard;
  a.ring.close();
  a.depot.release();
  unwind::forget_walk_memos();  // they hold the parent's stack ids
  if (!a.depot.init() || !start_recording(getppid(), /*forked=*/true)) a.ring.abandon();
}

void after_fork_child() noexcept {
  if (state.load(std::memory_order_acquire) != State::kReady) return;
  Agent& a = the_agent();
  a.quarantine.unlock_after_fork();
  a.index.unlock_all_after_fork();
  a.modules.unlock_after_fork();
  sys::forget_thread_id();
  unwind::reset_rule_cache_in_fork_child();
  unwind::adopt_thread_walks_in_fork_child();
  // Nothing the child does may reach the parent's ring: not even a record the interrupted
  // frame reserved before the fork.
  a.ring.stop_in_fork_child();
  // Not traced: keep checking blocks (the child frees inherited ones) but record nothing, and
  // with no ring open, run no exit scan whose verdicts nobody would read.
  if (!a.options.follow_children) {
    if (!fork_interrupted_agent) a.ring.close();  // else the interrupted frame may still write to it
    return;
  }
  if (fork_interrupted_agent) {
    // The depot and the ring may be mid-update below us: start over once that frame is done.
    state.store(State::kForkPending, std::memory_order_release);
    return;
  }
  start_child_recording();
}

// A vfork child that calls exit() runs this in its parent's memory: nothing of it is the
// parent's, so every exit path below asks whether this process owns the ring.
bool is_ring_owner_now() noexcept;

void on_program_exit(int status, void*) noexcept {
  if (state.load(std::memory_order_acquire) != State::kReady || !is_ring_owner_now()) return;
  auto* header = the_agent().ring.reserve(sizeof(format::ExitEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::ExitEvent*>(header);
  record->status = status;
  record->thread_id = sys::thread_id();
  RingWriter::commit(header, format::EventKind::kExit);
}

void finish_image(const void* caller_frame, const ucontext_t* caller_state, bool interrupted = false) noexcept;
// Not a vfork child sharing our memory (getpid() is a system call: glibc caches no pid since 2.25).
bool is_ring_owner_now() noexcept { return getpid() == agent_instance.ring_pid; }

// Signals whose default action ends the process: crashes, and the ones a terminal, a pipe or a
// supervisor sends. Where the program left one at its default, the agent watches it.
constexpr int kWatchedSignals[] = {SIGSEGV, SIGBUS,  SIGILL,  SIGFPE,  SIGABRT, SIGHUP,  SIGINT,
                                   SIGQUIT, SIGTERM, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2};
std::atomic<uint64_t> watched_signals{0};  // bit N-1: our watcher is signal N's handler now
using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
SigactionFn real_sigaction = nullptr;  // looked up at init: never dlsym in a handler

// Records the signal, runs what exit would have (the final sweeps and the exit leak scan, so
// that a process killed by SIGTERM, SIGPIPE or a crash still gets its leaks classified, as
// under memcheck), then lets the signal kill the process exactly as it would have: the default
// action is restored before re-raising, so exit status and core dumps are unchanged. The scan
// is skipped where the signal interrupted the agent itself (its locks may be held below us).
void on_fatal_signal(int signal_number, siginfo_t* info, void* context) noexcept {
  watched_signals.fetch_and(~(uint64_t{1} << (signal_number - 1)), std::memory_order_acq_rel);
  // --guard-pages: an access to a guard page or a freed block's pages is the heap error it is,
  // reported with the faulting instruction's stack, before the process dies of it.
  if ((signal_number == SIGSEGV || signal_number == SIGBUS) && info != nullptr && context != nullptr &&
      the_agent().options.guard_pages && !ReentrancyGuard::active() && is_ring_owner_now() && the_agent().ring.is_open()) {
    ReentrancyGuard guard;
    const auto* state = static_cast<const ucontext_t*>(context);
    const bool write = (state->uc_mcontext.gregs[REG_ERR] & 2) != 0;  // x86 page-fault error code
    heap::report_guard_fault(reinterpret_cast<uint64_t>(info->si_addr), write, context);
  }
  auto* header = is_ring_owner_now() ? the_agent().ring.reserve(sizeof(format::FatalSignalEvent)) : nullptr;
  if (header != nullptr) {
    auto* record = reinterpret_cast<format::FatalSignalEvent*>(header);
    record->signal = signal_number;
    record->thread_id = sys::thread_id();
    RingWriter::commit(header, format::EventKind::kFatalSignal);
  }
  if (!ReentrancyGuard::active() && is_ring_owner_now() && the_agent().ring.is_open())
    finish_image(program_frames_from(__builtin_frame_address(0)), static_cast<const ucontext_t*>(context),
                 /*interrupted=*/true);
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  real_sigaction(signal_number, &fallback, nullptr);
  raise(signal_number);
}

// Only where the program kept the default action: its own handlers stay its own (and a handler
// it installs later replaces ours). The interposed sigaction() and signal() report ours as
// SIG_DFL (interpose_signal.cpp): a program deciding by what it finds (CPython installs its
// KeyboardInterrupt handler only over SIG_DFL) decides as it would without us.
void watch_fatal_signals() noexcept {
  if (real_sigaction == nullptr) real_sigaction = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  if (real_sigaction == nullptr) return;
  for (int signal_number : kWatchedSignals) {
    struct sigaction current {};
    if (real_sigaction(signal_number, nullptr, &current) != 0 || (current.sa_flags & SA_SIGINFO) != 0 ||
        current.sa_handler != SIG_DFL)
      continue;
    struct sigaction watcher {};
    watcher.sa_sigaction = on_fatal_signal;
    watcher.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&watcher.sa_mask);
    if (real_sigaction(signal_number, &watcher, nullptr) == 0)
      watched_signals.fetch_or(uint64_t{1} << (signal_number - 1), std::memory_order_acq_rel);
  }
}

// With follow_children off, children must not load the agent: drop our path from LD_PRELOAD,
// in place (the environment strings are writable and we only shorten them; no allocation).
void stop_following_children() noexcept {
  if (::environ == nullptr) return;
  for (char** entry = ::environ; *entry != nullptr; ++entry) {
    char* value = *entry;
    if (!sys::string_equal(value, "LD_PRELOAD=", 11)) continue;
    char* out = value + 11;
    const char* in = out;
    bool first = true;
    while (*in != '\0') {
      while (*in == ' ' || *in == ':') ++in;
      const char* start = in;
      while (*in != '\0' && *in != ' ' && *in != ':') ++in;
      const size_t length = static_cast<size_t>(in - start);
      const char* kOwnName = "/libheapscope.so";
      const size_t own_length = sys::string_length(kOwnName);
      const bool ours = length >= own_length && sys::string_equal(in - own_length, kOwnName, own_length);
      if (length == 0 || ours) continue;
      if (!first) *out++ = ' ';
      for (size_t i = 0; i < length; ++i) *out++ = start[i];  // out never passes start
      first = false;
    }
    *out = '\0';
  }
}

uint64_t quarantine_hold() noexcept { return the_agent().quarantine.held_bytes(); }

uint64_t random_secret() noexcept {
  uint64_t secret = 0;
  if (getrandom(&secret, sizeof(secret), GRND_NONBLOCK) != sizeof(secret))
    secret = sys::now_ns() ^ (static_cast<uint64_t>(getpid()) << 32);
  return secret;
}

bool initialize() noexcept {
  Agent& a = the_agent();
  if (!real::resolve()) {
    RawLine().text("heapscope: cannot find the real allocator; not tracing").emit();
    return false;
  }
  a.session = sys::get_env(format::kSessionEnv);
  if (const char* collector = sys::get_env(format::kCollectorPidEnv)) {
    for (; *collector >= '0' && *collector <= '9'; ++collector)
      a.collector_pid = a.collector_pid * 10 + (*collector - '0');
  }
  parse_options(sys::get_env(format::kOptionsEnv), a.options);
  if (a.session == nullptr || *a.session == '\0') {
    // Preloaded without `heapscope run`: a session and a collector of our own.
    if (!standalone::start(a.own_session, a.options.output_dir, a.options.output_dir_length)) return false;
    a.standalone = true;
    a.session = a.own_session.directory;
    a.collector_pid = a.own_session.collector_pid;
  }
  block::set_secret(random_secret());
  sys::init_clock();
  if (!a.index.init() || !a.depot.init() ||
      !a.quarantine.init(size_t{a.options.quarantine_mib} << 20)) {
    RawLine().text("heapscope: cannot map the agent's tables; not tracing").emit();
    return false;
  }
  init_stack_capture(a.options.fast_unwind);
  init_sampler(a.options.sample_ms, quarantine_hold);
  init_leak_scan();
  if (!start_recording(getppid(), /*forked=*/false)) return false;
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  on_exit(on_program_exit, nullptr);
  watch_fatal_signals();
  if (!a.options.follow_children) stop_following_children();
  return true;
}

HEAPSCOPE_COLD bool slow_ready() noexcept {
  // The attach agent records only between begin_attached and end_attached.
  if (kAttachBuild) return false;
  State pending = State::kForkPending;
  if (!ReentrancyGuard::active() && state.compare_exchange_strong(pending, State::kInitializing, std::memory_order_acq_rel)) {
    start_child_recording();
    // Blocks are tracked whether or not the ring could be opened: they must be recognized at free.
    state.store(State::kReady, std::memory_order_release);
    return true;
  }
  State expected = State::kUninitialized;
  if (state.compare_exchange_strong(expected, State::kInitializing, std::memory_order_acq_rel)) {
    ReentrancyGuard guard;  // init's own allocations (dlsym, atfork, on_exit) pass through
    const bool ok = initialize();
    state.store(ok ? State::kReady : State::kDisabled, std::memory_order_release);
    return ok;
  }
  while (state.load(std::memory_order_acquire) == State::kInitializing) sched_yield();
  return state.load(std::memory_order_acquire) == State::kReady;
}

// The innermost frames of each stack, by id, for heapscope_leak_check_sites(): the depot keeps
// only hashes, and the frames otherwise go to the ring alone. Written once per distinct stack
// (here, the cold path), mapped at the first one; ids past kFramedStacks have none.
constexpr uint32_t kFramedStacks = uint32_t{1} << 20;
std::atomic<uint64_t*> stack_heads{nullptr};  // kFramedStacks x kStackHeadFrames

void remember_stack_head(uint32_t id, const uint64_t* frames, size_t count) noexcept {
  // The attach agent serves no client API, and must leave nothing mapped behind at detach.
  if (kAttachBuild || id >= kFramedStacks) return;
  uint64_t* table = stack_heads.load(std::memory_order_acquire);
  if (table == nullptr) {
    auto* fresh = static_cast<uint64_t*>(sys::map_anonymous(size_t{kFramedStacks} * kStackHeadFrames * 8));
    if (fresh == nullptr) return;
    if (stack_heads.compare_exchange_strong(table, fresh, std::memory_order_acq_rel)) {
      table = fresh;
    } else {
      sys::unmap(fresh, size_t{kFramedStacks} * kStackHeadFrames * 8);  // another thread's won
    }
  }
  uint64_t* head = table + size_t{id} * kStackHeadFrames;
  for (size_t i = 0; i < kStackHeadFrames; ++i) head[i] = i < count ? frames[i] : 0;
}

HEAPSCOPE_COLD void on_new_stack(uint32_t id, const uint64_t* frames, size_t count, void*) noexcept {
  remember_stack_head(id, frames, count);
  Agent& a = the_agent();
  if (!a.modules.covers(frames, count)) a.modules.refresh(a.ring);
  auto* header = a.ring.reserve(format::record_size(sizeof(format::StackEvent) + count * 8));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::StackEvent*>(header);
  record->stack_id = id;
  record->frame_count = static_cast<uint32_t>(count);
  memcpy(reinterpret_cast<char*>(record + 1), frames, count * 8);
  RingWriter::commit(header, format::EventKind::kStack);
}

struct ExitSweep {
  uint64_t overhead_bytes = 0;
  uint64_t live_blocks = 0;
  uint64_t live_bytes = 0;
};

void check_live_block(const BlockEntry& entry, void* context) noexcept {
  auto& sweep = *static_cast<ExitSweep*>(context);
  if (entry.state != BlockState::kLive) return;  // quarantined ones were checked just before
  sweep.overhead_bytes += front_bytes(entry) + block::tail_bytes(entry.size);
  ++sweep.live_blocks;
  sweep.live_bytes += entry.size;
  if (!the_agent().options.canaries || (entry.flags & kBlockReported) != 0) return;
  int64_t bad_offset = 0;
  const int damage = heap::check_canaries(entry, bad_offset);
  if (damage == 0) return;
  report_error(ErrorReport{damage > 0 ? format::ErrorKind::kOverflow : format::ErrorKind::kUnderflow,
                           entry.address, entry.size, bad_offset, 0, entry.alloc_stack_id, 0,
                           entry.family, 0, format::kDetectedAtExit});
}

void check_quarantine_at_exit() noexcept {
  Agent& a = the_agent();
  uint64_t address = 0;
  uint64_t size = 0;
  while (a.quarantine.pop(address, size, /*everything=*/true)) {
    BlockEntry entry{};
    if (!a.index.find(address, entry)) continue;
    if ((entry.flags & kBlockGuarded) != 0) continue;  // inaccessible: an access faulted already
    const int64_t changed = block::check_fill(reinterpret_cast<void*>(address), entry.size);
    if (changed >= 0 && (entry.flags & kBlockReported) == 0) {
      report_error(ErrorReport{format::ErrorKind::kUseAfterFree, address, entry.size, changed, 0,
                               entry.alloc_stack_id, entry.free_stack_id, entry.family,
                               entry.free_api, format::kDetectedAtExit});
    }
    // The process is ending: the block stays with the allocator's pages; releasing it would
    // race with late frees from other threads for no benefit.
  }
}

// Init normally happens on the first allocation; this also covers programs that never allocate,
// so every traced process appears in the report with its exit status.
__attribute__((constructor)) void start_at_load() {
  if (!kAttachBuild) ready();
}

// The last sweeps and records of a process image: quarantine and canary checks, the exit leak
// scan, kAgentEnd. Once per image: from the destructor after exit(), or from _exit() (which
// runs no destructor); a later call does nothing. `caller_frame` and `caller_state` are the
// calling entry point's (the program's frames lie above the frame); where the program called
// exit() or returned from main on this thread, interpose_exit.cpp marked a better place.
std::atomic<bool> image_finished{false};

void finish_image(const void* caller_frame, const ucontext_t* caller_state, bool interrupted) noexcept {
  if (image_finished.exchange(true, std::memory_order_acq_rel)) return;
  ReentrancyGuard guard;
  Agent& a = the_agent();
  const uint64_t quarantined = a.quarantine.held_bytes();  // before the check empties it
  // The last sample, while the quarantine still says what it holds (its blocks stay resident
  // after the check: the process is ending, they are never released).
  sample_now(a.ring);
  check_quarantine_at_exit();
  ExitSweep sweep;
  a.index.for_each(check_live_block, &sweep);
  LeakScanOutcome scan;
  if (a.options.leak_check) {
    // The registers the program left (callee-saved ones may hold its pointers), and the frame
    // above which the stack is the program's: below it, ours.
    if (exit_point.thread_id.load(std::memory_order_acquire) == sys::thread_id()) {
      scan = run_leak_scan({format::kScanAtExit, exit_point.frame_top, &exit_point.registers});
    } else {
      scan = run_leak_scan({format::kScanAtExit, caller_frame, caller_state, interrupted});
    }
  } else {
    format::LeakScanEndEvent disabled{};
    disabled.status = static_cast<uint32_t>(format::ScanStatus::kDisabled);
    emit_leak_scan_end(disabled, format::kScanAtExit);
  }
  auto* header = a.ring.reserve(sizeof(format::AgentEndEvent));
  if (header != nullptr) {
    auto* record = reinterpret_cast<format::AgentEndEvent*>(header);
    record->quarantine_bytes = quarantined;
    record->overhead_bytes = sweep.overhead_bytes;
    record->ring_waits = a.ring.waits();
    RingWriter::commit(header, format::EventKind::kAgentEnd);
  }
  a.ring.set_state(format::kRingFinished);
  if (a.standalone) {
    using format::LeakKind;
    standalone::print_summary(a.own_session, {sweep.live_blocks, sweep.live_bytes,
                                              scan.bytes_by_kind[static_cast<int>(LeakKind::kDefinite)],
                                              scan.bytes_by_kind[static_cast<int>(LeakKind::kIndirect)],
                                              scan.bytes_by_kind[static_cast<int>(LeakKind::kPossible)],
                                              scan.classified, a.errors_reported.load(std::memory_order_relaxed)});
  }
}

// Runs from _dl_fini, after the program's atexit handlers and static destructors: the last
// chance to sweep for damage the program did not trigger through a call of its own.
__attribute__((destructor)) void finish_recording() {
  if (state.load(std::memory_order_acquire) != State::kReady || ReentrancyGuard::active() || !is_ring_owner_now()) return;
  if (kAttachBuild) {
    // The process is ending while attached: its session ends here.
    attach_session::end_at_exit(__builtin_frame_address(0));
    return;
  }
  ucontext_t registers;
  getcontext(&registers);
  finish_image(program_frames_from(__builtin_frame_address(0)), &registers);
}

}  // namespace

HEAPSCOPE_HOT bool ready() noexcept {
  const State current = state.load(std::memory_order_acquire);
  if (__builtin_expect(current == State::kReady, 1)) return true;
  if (current == State::kDisabled) return false;
  return slow_ready();
}

const Options& options() noexcept { return the_agent().options; }
BlockIndex& index() noexcept { return the_agent().index; }
Quarantine& quarantine() noexcept { return the_agent().quarantine; }

HEAPSCOPE_HOT uint32_t capture_stack_id() noexcept {
  Agent& a = the_agent();
  uint64_t frames[format::kMaxFrames + kCaptureSlack];
  // A walk that repeats the last one from the same call site and depth repeats its stack id:
  // the depot's hash of 30 frames and its probe are skipped.
  unwind::WalkMemo memo;
  const size_t count = capture_stack(frames, a.options.max_frames, &memo);
  if (memo.repeated) return *memo.stack_id;
  const uint32_t id = a.depot.put(frames, count, on_new_stack, nullptr);
  if (memo.stack_id != nullptr) *memo.stack_id = id;
  return id;
}

uint32_t capture_stack_id_at(uint64_t pc, uint64_t sp, uint64_t fp) noexcept {
  Agent& a = the_agent();
  uint64_t frames[format::kMaxFrames + kCaptureSlack];
  const size_t count = capture_stack_at(pc, sp, fp, frames, a.options.max_frames);
  return a.depot.put(frames, count, on_new_stack, nullptr);
}

HEAPSCOPE_HOT void emit_alloc(uint64_t address, uint64_t size, uint32_t stack_id,
                              uint32_t alignment, format::Api api, format::Family family) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::AllocEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::AllocEvent*>(header);
  record->address = address;
  record->size = size;
  record->stack_id = stack_id;
  record->thread_id = sys::thread_id();
  record->alignment = alignment;
  record->api = static_cast<uint8_t>(api);
  record->family = static_cast<uint8_t>(family);
  record->reserved = 0;
  const uint64_t now = header->time_ns;
  RingWriter::commit(header, format::EventKind::kAlloc);
  maybe_sample(the_agent().ring, now);
}

HEAPSCOPE_HOT void emit_free(uint64_t address, format::Api api) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::FreeEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::FreeEvent*>(header);
  record->address = address;
  record->thread_id = sys::thread_id();
  record->api = static_cast<uint8_t>(api);
  memset(record->reserved, 0, sizeof(record->reserved));
  RingWriter::commit(header, format::EventKind::kFree);
}

void emit_map(uint64_t address, uint64_t length, uint32_t stack_id, int protection, int map_flags,
              uint16_t flags) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::MapEvent));
  if (header == nullptr) return;
  header->flags = flags;
  auto* record = reinterpret_cast<format::MapEvent*>(header);
  record->address = address;
  record->length = length;
  record->stack_id = stack_id;
  record->thread_id = sys::thread_id();
  record->protection = protection;
  record->map_flags = map_flags;
  RingWriter::commit(header, format::EventKind::kMap);
}

void emit_unmap(uint64_t address, uint64_t length, uint16_t flags) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::UnmapEvent));
  if (header == nullptr) return;
  header->flags = flags;
  auto* record = reinterpret_cast<format::UnmapEvent*>(header);
  record->address = address;
  record->length = length;
  record->thread_id = sys::thread_id();
  record->reserved = 0;
  RingWriter::commit(header, format::EventKind::kUnmap);
}

bool stack_head(uint32_t id, uint64_t (&frames)[kStackHeadFrames]) noexcept {
  const uint64_t* table = stack_heads.load(std::memory_order_acquire);
  if (table == nullptr || id == 0 || id >= kFramedStacks) return false;
  for (size_t i = 0; i < kStackHeadFrames; ++i) frames[i] = table[size_t{id} * kStackHeadFrames + i];
  return frames[0] != 0;
}

uint64_t errors_reported() noexcept { return the_agent().errors_reported.load(std::memory_order_relaxed); }

HEAPSCOPE_COLD void report_error(const ErrorReport& report) noexcept {
  Agent& a = the_agent();
  a.errors_reported.fetch_add(1, std::memory_order_relaxed);
  auto* header = a.ring.reserve(sizeof(format::CorruptionEvent));
  if (header != nullptr) {
    header->flags = report.flags;
    auto* record = reinterpret_cast<format::CorruptionEvent*>(header);
    record->address = report.address;
    record->block_size = report.block_size;
    record->bad_offset = report.bad_offset;
    record->stack_id = report.stack_id;
    record->alloc_stack_id = report.alloc_stack_id;
    record->free_stack_id = report.free_stack_id;
    record->thread_id = sys::thread_id();
    record->error = static_cast<uint16_t>(report.kind);
    record->alloc_family = report.alloc_family;
    record->free_api = report.free_api;
    record->reserved = 0;
    RingWriter::commit(header, format::EventKind::kCorruption);
  }
  if (a.options.abort_on_error) {
    RawLine().text("heapscope: heap error at ").hex(report.address)
        .text("; aborting (abort_on_error=1)").emit();
    abort();
  }
}

// A vfork child shares our memory, ring included: its exec must not be recorded as the end of
// the parent's image. getpid() is a real system call (glibc stopped caching it in 2.25).
bool is_ring_owner() noexcept { return getpid() == the_agent().ring_pid; }

void emit_phase(const char* label) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::PhaseEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::PhaseEvent*>(header);
  size_t length = 0;
  if (label != nullptr)
    while (length < sizeof(record->label) - 1 && label[length] != '\0') ++length;
  memcpy(record->label, label, length);
  memset(record->label + length, 0, sizeof(record->label) - length);
  RingWriter::commit(header, format::EventKind::kPhase);
}

void emit_leak_kinds(uint32_t scan_id, const format::LeakKindEntry* entries, size_t count) noexcept {
  const size_t bytes = count * sizeof(format::LeakKindEntry);
  auto* header = the_agent().ring.reserve(format::record_size(sizeof(format::LeakKindsEvent) + bytes));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::LeakKindsEvent*>(header);
  record->scan_id = scan_id;
  record->count = static_cast<uint32_t>(count);
  memcpy(reinterpret_cast<char*>(record + 1), entries, bytes);
  RingWriter::commit(header, format::EventKind::kLeakKinds);
}

void emit_leak_scan_end(const format::LeakScanEndEvent& end, uint16_t flags) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::LeakScanEndEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::LeakScanEndEvent*>(header);
  const format::EventHeader kept = *header;  // reserve() filled size and time
  *record = end;
  record->header = kept;
  record->header.flags = flags;
  RingWriter::commit(header, format::EventKind::kLeakScanEnd);
}

void emit_ignore(uint64_t address) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::IgnoreEvent));
  if (header == nullptr) return;
  reinterpret_cast<format::IgnoreEvent*>(header)->address = address;
  RingWriter::commit(header, format::EventKind::kIgnore);
}

void emit_exec(const char* path) noexcept {
  if (!ready()) return;
  // A vfork child's exec does not end our image: it is recorded as the child's, so that the
  // report can name a program that will not be traced (a static one has no agent).
  const bool owner = is_ring_owner();
  const size_t length = path == nullptr ? 0 : sys::string_length(path);
  const size_t kept = length > format::kMaxPath ? format::kMaxPath : length;
  auto* header = the_agent().ring.reserve(format::record_size(sizeof(format::ExecEvent) + kept));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::ExecEvent*>(header);
  record->path_bytes = static_cast<uint32_t>(kept);
  record->vfork_child_pid = owner ? 0 : static_cast<uint32_t>(getpid());
  memcpy(reinterpret_cast<char*>(record + 1), path, kept);
  RingWriter::commit(header, format::EventKind::kExec);
}

// A vfork child that calls exit() runs its parent's exit handlers and library destructors in
// the parent's memory, and glibc marks them done there (and refuses new ones): the parent's own
// exit then runs none of them, ours included, and its leaks would stay unclassified. The child
// leaves this mark (its frames are not the parent's either); the parent, at its own exit, then
// finishes here, which is as late as anything of its own would run.
std::atomic<bool> exit_handlers_taken{false};

void fork_prepare() noexcept { before_fork(); }
void fork_parent() noexcept { after_fork_parent(); }
void fork_child() noexcept { after_fork_child(); }

void note_exit_point(const void* frame_top, const ucontext_t& registers, int status) noexcept {
  if (!is_ring_owner()) {
    exit_handlers_taken.store(true, std::memory_order_release);
    return;
  }
  // The first thread to get here ends the process; another one racing it waits in exit()'s
  // lock, so it must not overwrite the first's frame.
  uint32_t none = 0;
  if (!exit_point.thread_id.compare_exchange_strong(none, ~0u, std::memory_order_acq_rel)) return;
  exit_point.frame_top = frame_top;
  exit_point.registers = registers;
  exit_point.thread_id.store(sys::thread_id(), std::memory_order_release);
  if (exit_handlers_taken.load(std::memory_order_acquire) && !kAttachBuild &&
      state.load(std::memory_order_acquire) == State::kReady && !ReentrancyGuard::active()) {
    on_program_exit(status, nullptr);
    finish_image(frame_top, &exit_point.registers);
  }
}

void modules_changed() noexcept {
  if (!ready() || !is_ring_owner()) return;
  Agent& a = the_agent();
  a.modules.refresh(a.ring);
  a.modules.forget_unloaded(a.ring);
}

void emit_thread(format::EventKind kind, uint32_t parent_thread_id) noexcept {
  if (!ready() || !is_ring_owner()) return;
  auto* header = the_agent().ring.reserve(sizeof(format::ThreadEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::ThreadEvent*>(header);
  record->thread_id = sys::thread_id();
  record->parent_thread_id = parent_thread_id;
  RingWriter::commit(header, kind);
}

void emit_exec_failed() noexcept {
  if (!ready() || !is_ring_owner()) return;
  auto* header = the_agent().ring.reserve(sizeof(format::EventHeader));
  if (header != nullptr) RingWriter::commit(header, format::EventKind::kExecFailed);
}

namespace attach_gate {
namespace {
struct alignas(64) Stripe {
  std::atomic<int64_t> inside{0};
};
constexpr size_t kStripes = 16;
Stripe stripes[kStripes];
Stripe& my_stripe() noexcept { return stripes[sys::thread_id() % kStripes]; }
}  // namespace

HEAPSCOPE_HOT bool enter() noexcept {
  Stripe& stripe = my_stripe();
  // Counted before the state is read (both sequentially consistent): detach flips the state,
  // then waits for the counts; a call either sees the flip or is counted before it is read.
  stripe.inside.fetch_add(1, std::memory_order_seq_cst);
  if (__builtin_expect(state.load(std::memory_order_seq_cst) == State::kReady, 1)) return true;
  stripe.inside.fetch_sub(1, std::memory_order_release);
  return false;
}

HEAPSCOPE_HOT void leave() noexcept { my_stripe().inside.fetch_sub(1, std::memory_order_release); }

// Enters for a release: still allowed while detaching (see State).
bool enter_release() noexcept {
  Stripe& stripe = my_stripe();
  stripe.inside.fetch_add(1, std::memory_order_seq_cst);
  const State now = state.load(std::memory_order_seq_cst);
  if (now == State::kReady || now == State::kDetaching) return true;
  stripe.inside.fetch_sub(1, std::memory_order_release);
  return false;
}

// Waits until no tracked call is inside, up to `timeout_ns`. False on timeout.
bool drain(uint64_t timeout_ns) noexcept {
  const uint64_t deadline = sys::now_ns() + timeout_ns;
  for (;;) {
    int64_t inside = 0;
    for (Stripe& stripe : stripes) inside += stripe.inside.load(std::memory_order_seq_cst);
    if (inside == 0) return true;
    if (sys::now_ns() > deadline) return false;
    sys::sleep_ns(200 * 1000);
  }
}
}  // namespace attach_gate

namespace {
char attached_session_dir[512];
bool attach_hooks_installed = false;  // atfork and the clock, once per process
}  // namespace

bool allocations_tracked() noexcept { return state.load(std::memory_order_acquire) == State::kReady; }

format::AttachStatus begin_attached(const char* session, int collector_pid, const char* options) noexcept {
  State expected = State::kUninitialized;
  if (!state.compare_exchange_strong(expected, State::kInitializing, std::memory_order_acq_rel))
    return format::AttachStatus::kAlreadyAttached;
  ReentrancyGuard guard;  // the agent's own allocations meanwhile (dlsym) take the nested path
  Agent& a = the_agent();
  auto fail = [&](format::AttachStatus status) {
    a.ring.close();
    a.index.release();
    a.depot.release();
    state.store(State::kUninitialized, std::memory_order_release);
    return status;
  };
  const size_t length = sys::string_length(session);
  if (length + 1 > sizeof(attached_session_dir)) return fail(format::AttachStatus::kNoRing);
  memcpy(attached_session_dir, session, length + 1);  // the argument's memory is the attacher's
  a.session = attached_session_dir;
  a.collector_pid = collector_pid;
  a.options = Options{};
  parse_options(options, a.options);
  // The program keeps the pointers the real allocator gave: no header, so no canaries; no
  // quarantine (a block held back would have to be released by us after detach); forked
  // children are not recorded (the collector watches this process only).
  a.options.canaries = false;
  a.options.quarantine_mib = 0;
  a.options.follow_children = false;
  // Our own entry points and the program's allocator, found before any slot is redirected.
  if (!got::prepare(reinterpret_cast<const void*>(&begin_attached)) || !real::resolve_with(got::default_definition))
    return fail(format::AttachStatus::kNoAllocator);
  if (!attach_hooks_installed) {
    block::set_secret(random_secret());
    sys::init_clock();
    init_stack_capture(a.options.fast_unwind);
    init_leak_scan();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    // The exit status, if the process exits while attached (nobody else can tell us: it is
    // not heapscope's child). Registered once, inert while no session records.
    on_exit(on_program_exit, nullptr);
    attach_hooks_installed = true;
  }
  init_sampler(a.options.sample_ms, nullptr);  // no quarantine in an attached process
  if (!a.index.init() || !a.depot.init() || !a.quarantine.init(0)) return fail(format::AttachStatus::kNoMemory);
  unwind::forget_walk_memos();  // stack ids of an earlier session mean nothing in this ring
  if (!start_recording(getppid(), /*forked=*/false)) return fail(format::AttachStatus::kNoRing);
  state.store(State::kReady, std::memory_order_seq_cst);
  return format::AttachStatus::kOk;
}

int attached_collector() noexcept { return the_agent().collector_pid; }

bool detach_requested() noexcept {
  Agent& a = the_agent();
  if ((a.ring.state() & format::kRingDetachRequested) != 0) return true;
  return a.collector_pid > 0 && !sys::process_alive(a.collector_pid);
}

void emit_redirect(const format::RedirectEvent& counts) noexcept {
  auto* header = the_agent().ring.reserve(sizeof(format::RedirectEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::RedirectEvent*>(header);
  record->slots = counts.slots;
  record->modules = counts.modules;
  record->program_slots = counts.program_slots;
  record->skipped = counts.skipped;
  RingWriter::commit(header, format::EventKind::kRedirect);
}

bool begin_detaching() noexcept {
  State expected = State::kReady;
  return state.compare_exchange_strong(expected, State::kDetaching, std::memory_order_seq_cst);
}

void scan_before_detach(const void* caller_frame) noexcept {
  Agent& a = the_agent();
  ReentrancyGuard guard;
  if (a.options.leak_check) {
    run_leak_scan({static_cast<uint16_t>(format::kScanAtExit | format::kScanAtDetach), caller_frame, nullptr});
  } else {
    format::LeakScanEndEvent disabled{};
    disabled.status = static_cast<uint32_t>(format::ScanStatus::kDisabled);
    emit_leak_scan_end(disabled, format::kScanAtExit | format::kScanAtDetach);
  }
}

void end_attached(format::DetachReason reason, uint32_t restored_slots, bool process_exiting) noexcept {
  Agent& a = the_agent();
  ReentrancyGuard guard;
  state.store(State::kUninitialized, std::memory_order_seq_cst);
  // Calls already inside finish before the ring and the index go away; a call that entered
  // before the redirections were undone can still be running (a thread descheduled in it).
  const bool drained = process_exiting || attach_gate::drain(uint64_t{2} * 1000 * 1000 * 1000);
  sample_now(a.ring);
  auto* header = a.ring.reserve(sizeof(format::DetachEvent));
  if (header != nullptr) {
    auto* record = reinterpret_cast<format::DetachEvent*>(header);
    record->reason = static_cast<uint32_t>(reason);
    record->restored_slots = restored_slots;
    record->reserved = 0;
    RingWriter::commit(header, format::EventKind::kDetach);
  }
  header = a.ring.reserve(sizeof(format::AgentEndEvent));
  if (header != nullptr) {
    auto* record = reinterpret_cast<format::AgentEndEvent*>(header);
    record->quarantine_bytes = 0;
    record->overhead_bytes = 0;
    record->ring_waits = a.ring.waits();
    RingWriter::commit(header, format::EventKind::kAgentEnd);
  }
  a.ring.set_state(format::kRingFinished);
  if (process_exiting || !drained) return;  // a late call may still write: leave them mapped
  a.ring.close();
  a.index.release();
  a.depot.release();
  a.modules.release();
  unwind::reap_thread_walks(true);  // every thread's walk tables: no thread is walking now
}

void finish_before_immediate_exit(int status, const void* caller_frame, const ucontext_t& caller_state) noexcept {
  // Not from a signal handler that interrupted the agent (its locks may be held by the frame it
  // interrupted), not in a vfork child (the parent's memory and ring), nothing if not recording.
  if (kAttachBuild || state.load(std::memory_order_acquire) != State::kReady || ReentrancyGuard::active() ||
      !is_ring_owner() || !the_agent().ring.is_open())
    return;
  on_program_exit(status, nullptr);
  finish_image(caller_frame, &caller_state);
}

bool signal_watched(int signal_number) noexcept {
  if (signal_number <= 0 || signal_number > 64) return false;
  return (watched_signals.load(std::memory_order_acquire) & (uint64_t{1} << (signal_number - 1))) != 0;
}

bool is_signal_watcher(const struct sigaction& action) noexcept {
  return (action.sa_flags & SA_SIGINFO) != 0 && action.sa_sigaction == on_fatal_signal;
}

void signal_released(int signal_number) noexcept {
  if (signal_number > 0 && signal_number <= 64)
    watched_signals.fetch_and(~(uint64_t{1} << (signal_number - 1)), std::memory_order_acq_rel);
}

int call_real_sigaction(int signal_number, const struct sigaction* action, struct sigaction* old) noexcept {
  // Resolved at init; a program that calls sigaction before our init (a constructor of its
  // own) gets it resolved here, outside any signal handler in practice.
  if (real_sigaction == nullptr) real_sigaction = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  return real_sigaction(signal_number, action, old);
}

}  // namespace heapscope::preload::agent
