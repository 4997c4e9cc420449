// The cached stack walker (see fast_unwind.h).
#include "fast_unwind.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>

#include "build_mode.h"
#include "heapscope/event_format.h"
#include "rule_cache.h"
#include "self_maps.h"
#include "sys.h"  // HEAPSCOPE_HOT
#include "unwind_rules.h"

namespace heapscope::preload::unwind {
namespace {

// Each thread's own cache in front of the shared one, indexed by the frame's stack address.
// The walk is a chain of dependent loads, so where each rule comes from sets its speed: the
// shared table is indexed by the return address, which must first be loaded from the stack;
// this one by the stack pointer, which is known as soon as the previous frame's rule is. The
// return address is still loaded and compared, but that comparison is a predicted branch,
// off the chain. Programs allocate from the same paths again and again, and the same path puts
// the same return address at the same stack address, so most lookups hit; 256 slots of 16
// bytes map each 4 KiB of stack one to one. Safe without atomics: only this thread touches it,
// and walks never nest (a signal handler's malloc inside the agent takes the nested path,
// which captures no stack). It lives in the thread's mapped table (ThreadWalker), not in TLS.
constexpr size_t kThreadSlots = 256;
// Behind it, a two-way table indexed by the address itself, for the frames whose stack address
// moves from call to call while their code does not: the agent's own frames and the program's
// innermost ones, whenever the program allocates from varying depths.
constexpr size_t kThreadSets = 64;

// A rule already decoded, so the next stack pointer is one add away from the slot's load.
struct StepRule {
  int32_t cfa_offset;
  int16_t rbp_offset;
  RuleKind kind;
  uint8_t cfa_base : 2;   // CfaBase
  uint8_t rbp_saved : 2;  // RbpSaved
  uint8_t needs_fp : 1;   // in a remembered walk: the frames further out read this frame's rbp
  uint8_t marked : 1;     // the address is in the code set by mark_code
};
static_assert(sizeof(StepRule) == 8);
struct ThreadEntry {
  uint64_t address;
  StepRule rule;
};

// The code set by mark_code. A thread entry carries the mark of its address, so a walk learns it
// with the rule it loads anyway.
uint64_t marked_begin = 0;
uint64_t marked_bytes = 0;
inline bool is_marked(uint64_t address) noexcept { return address - marked_begin < marked_bytes; }

// The entry for `address`, or false when its rule does not fit one (a huge rbp offset).
inline bool thread_entry(uint64_t address, const Rule& rule, ThreadEntry& entry) noexcept {
  if (rule.rbp_offset != static_cast<int16_t>(rule.rbp_offset)) return false;
  entry = ThreadEntry{address, StepRule{rule.cfa_offset, static_cast<int16_t>(rule.rbp_offset), rule.kind,
                                        static_cast<uint8_t>(rule.cfa_base), static_cast<uint8_t>(rule.rbp_saved), 0,
                                        is_marked(address)}};
  return true;
}

// One frame of a walk: where execution is in it, its stack and frame pointers, and the rule
// that leads from it to its caller.
struct FrameState {
  uint64_t ip;
  uint64_t sp;
  uint64_t fp;
  StepRule rule;
};

// The thread's previous walk. The next walk stops as soon as it reaches a frame this one also
// had (same code address, same stack address, same rbp where it matters) and takes the frames
// further out from here, after checking, transition by transition, that the stack still holds
// the same return addresses (and saved rbp values) at the same places. Each check is an
// independent load, where a walk is a chain of dependent ones, so a frame costs a fraction.
// Frames are kept outermost first: the outer part of a stack is what repeats, so a walk that
// reuses it only rewrites its own inner frames. One array per field: checking a frame reads
// its ip and sp and its rule's flags, so they are packed densely, not 32-byte records apart.
constexpr size_t kRememberedFrames = 48;
struct PreviousWalk {
  uint32_t count;  // frames remembered; 0: none
  bool complete;   // frame 0 is the outermost frame (else the walk stopped at max_frames)
  uint64_t ip[kRememberedFrames];
  uint64_t sp[kRememberedFrames];
  uint64_t fp[kRememberedFrames];
  StepRule rule[kRememberedFrames];
  // For frame i > 0: checking the step to its caller takes more than its return address (see
  // needs_more_checks). Kept up to date with the rules, so the common check reads one byte.
  bool more_checks[kRememberedFrames];
  uint64_t marked;  // bit i: frame i is in the marked code (mark_code)
  uint32_t output_count;  // frames the last walk from this start gave its caller
  uint32_t stack_id;      // the caller's word for them (WalkMemo); 0: not filled

  void set(size_t i, const FrameState& frame) noexcept {
    ip[i] = frame.ip;
    sp[i] = frame.sp;
    fp[i] = frame.fp;
    rule[i] = frame.rule;
    marked = (marked & ~(uint64_t{1} << i)) | (uint64_t{frame.rule.marked} << i);
  }
};
static_assert(kRememberedFrames <= 64, "PreviousWalk::marked holds a bit per frame");


// Remembering walks costs a little on every frame (recording it, looking for a match), and
// pays only when walks share their outer part. A thread whose walks reuse less than a third of
// their frames (random call paths) stops remembering for a while, then measures again.
struct ReuseBudget {
  static constexpr uint32_t kWindow = 64;    // walks measured
  static constexpr uint32_t kPause = 1024;   // walks without remembering after a poor window
  uint32_t paused = 0;                       // walks left without remembering
  uint32_t walks = 0;
  uint32_t frames_walked = 0;                // stepped through with rules
  uint32_t frames_reused = 0;                // taken from the previous walk
};

// Each thread remembers its last walk from each of several starting points (the innermost
// frame's stack and code address), in a direct-mapped table. A program allocates from a set of
// call sites at a set of depths again and again: a walk that starts where an earlier one did
// usually repeats it whole, and one that starts elsewhere still meets that walk's outer frames
// (a single remembered walk, the previous one, made every change of call site or depth walk its
// inner frames afresh: 6 of 29 frames on the benchmark's workload, and 361 against 296 million
// instructions for 10^5 allocations).
constexpr size_t kWalkSlots = 64;

inline size_t walk_slot(uint64_t sp, uint64_t ip) noexcept {
  return static_cast<size_t>((((sp >> 4) * 0x9e3779b97f4a7c15ull) ^ (ip * 0xc2b2ae3d27d4eb4full)) >> 58);
}
static_assert(kWalkSlots == 64, "walk_slot keeps the top 6 bits");

// Bumped by forget_walk_memos; each thread compares it with the value it last saw.
std::atomic<uint32_t> memo_generation{0};

// Everything a thread's walks keep: mapped (zeroed) at its first walk, 110 KiB of address space of
// which only what is used is touched, and unmapped at its end (release_thread_walks). Not in
// TLS: the agent's static TLS stays a pointer, as loading it with dlopen (attach) needs, and the
// caches can be as large as they pay. A thread whose table cannot be mapped, or whose table is
// gone, is walked by libunwind.
struct ThreadWalker {
  // The thread's stack, [stack_low, stack_high): every frame and every word a walk reads lies
  // in it. A clobbered frame pointer (code using rbp as a general register) or a corrupt saved
  // one then ends the walk instead of faulting inside malloc. Both 0 while unknown.
  uint64_t stack_low;
  uint64_t stack_high;
  // Other stacks this thread ran on lately (coroutines, an alternate signal stack): the mapping
  // that holds each, learned from /proc/self/maps once, replaced round-robin.
  struct Range {
    uint64_t low;
    uint64_t high;
  };
  static constexpr size_t kForeignStacks = 8;
  Range foreign[kForeignStacks];
  uint32_t foreign_next;
  uint32_t generation;       // rules_generation() the caches were filled under
  uint32_t memo_generation;  // memo_generation the walks' stack_id words were filled under
  ReuseBudget budget;
  ThreadEntry slots[kThreadSlots];
  ThreadEntry sets[kThreadSets][2];  // [0] most recently filled
  PreviousWalk walks[kWalkSlots];
};

struct ThreadState {
  ThreadWalker* walker;  // nullptr until the first walk
  bool unavailable;      // mapping failed, or the thread is ending
  uint32_t session;      // attach agent: walker_session when `walker` was mapped (same 16 bytes)
};

// The attach agent keeps every thread's table in a registry: it sees no thread end (nothing of
// the program's is interposed but the allocation API), so its own thread unmaps the tables of
// threads that are gone (reap_thread_walks), and at detach all of them. A thread's table from
// an earlier session is then stale: walker_session tells it to map a new one.
struct RegisteredWalker {
  std::atomic<ThreadWalker*> walker;
  std::atomic<uint32_t> tid;
};
constexpr size_t kRegisteredWalkers = 4096;
RegisteredWalker registered_walkers[kRegisteredWalkers];
std::atomic<uint32_t> walker_session{1};

// Registers a fresh table; false when the registry is full (the thread is then walked as one
// without a table).
bool register_walker(ThreadWalker* walker) noexcept {
  for (RegisteredWalker& entry : registered_walkers) {
    ThreadWalker* empty = nullptr;
    if (entry.walker.load(std::memory_order_relaxed) != nullptr) continue;
    entry.tid.store(static_cast<uint32_t>(syscall(SYS_gettid)), std::memory_order_relaxed);
    if (entry.walker.compare_exchange_strong(empty, walker, std::memory_order_acq_rel)) return true;
  }
  return false;
}

// Counts one remembering walk; after a window that reused too little, pauses remembering.
// Walks remembered before the pause stay: a later reuse checks every frame it takes anyway.
inline void account(ThreadWalker& mine, size_t walked, size_t reused) noexcept {
  ReuseBudget& budget = mine.budget;
  budget.frames_walked += static_cast<uint32_t>(walked);
  budget.frames_reused += static_cast<uint32_t>(reused);
  if (++budget.walks < ReuseBudget::kWindow) return;
  if (budget.frames_reused * 2 < budget.frames_walked) budget.paused = ReuseBudget::kPause;
  budget.walks = budget.frames_walked = budget.frames_reused = 0;
}

[[gnu::tls_model("initial-exec")]] thread_local ThreadState thread_state;

// The mapping `sp` lies in, from /proc/self/maps; the main thread's stack grows down to its
// rlimit, so its bottom is placed there. False if none holds it.
HEAPSCOPE_COLD bool stack_mapping(uint64_t sp, uint64_t& low, uint64_t& high) noexcept {
  constexpr size_t kMapsBuffer = 64 * 1024;
  char* buffer = static_cast<char*>(sys::map_anonymous(kMapsBuffer));
  if (buffer == nullptr) return false;
  Mapping found;
  bool main_stack = false;
  for_each_mapping(buffer, kMapsBuffer, [&](const Mapping& mapping) {
    if (sp < mapping.begin || sp >= mapping.end) return;
    found = mapping;
    main_stack = mapping.path_length == 7 && sys::string_equal(mapping.path, "[stack]", 7);
  });
  sys::unmap(buffer, kMapsBuffer);
  if (found.end == 0 || !found.readable) return false;
  low = found.begin;
  high = found.end;
  if (main_stack) {
    rlimit limit{};
    const uint64_t most = uint64_t{1} << 30;  // an unlimited stack: as far as a frame may be
    uint64_t size = syscall(SYS_prlimit64, 0, RLIMIT_STACK, nullptr, &limit) == 0 && limit.rlim_cur < most
                        ? limit.rlim_cur : most;
    if (size < high - low) size = high - low;
    low = high - size;
  }
  return true;
}

// The bounds of the stack `sp` is on: the thread's own, or one of the others it ran on lately
// (learned once each). False when no mapping holds sp: the walk cannot be checked.
// Whether every page of [from, to) is mapped: a stack learned earlier may have been unmapped
// (a coroutine's, freed) and something smaller mapped where it was.
bool all_mapped(uint64_t from, uint64_t to) noexcept {
  unsigned char present[256];
  for (uint64_t page = from & ~uint64_t{4095}; page < to;) {
    const uint64_t pages = (to - page + 4095) / 4096 < 256 ? (to - page + 4095) / 4096 : 256;
    if (syscall(SYS_mincore, page, pages * 4096, present) != 0) return false;
    page += pages * 4096;
  }
  return true;
}

HEAPSCOPE_COLD bool foreign_stack(ThreadWalker& walker, uint64_t sp, uint64_t& low, uint64_t& high) noexcept {
  const int saved_errno = errno;
  for (ThreadWalker::Range& range : walker.foreign) {
    if (sp - range.low >= range.high - range.low) continue;
    if (all_mapped(sp, range.high)) {
      errno = saved_errno;
      low = range.low;
      high = range.high;
      return true;
    }
    range = {0, 0};  // gone: learned again below
  }
  const bool found = stack_mapping(sp, low, high);
  errno = saved_errno;
  if (!found) return false;
  walker.foreign[walker.foreign_next++ % ThreadWalker::kForeignStacks] = {low, high};
  return true;
}

// The thread's walker, mapped (zeroed: empty caches, no walk remembered) at its first walk, or
// by set_thread_stack. `sp` is where the thread's stack is now (0: learn nothing).
HEAPSCOPE_COLD ThreadWalker* map_walker(uint64_t sp) noexcept {
  ThreadState& state = thread_state;
  if (kAttachBuild) {
    const uint32_t session = walker_session.load(std::memory_order_acquire);
    if (state.session != session) {  // a table of an earlier session: released at its detach
      state.session = session;
      state.walker = nullptr;
      state.unavailable = false;
    }
    if (state.walker != nullptr) return state.walker;
  }
  if (state.unavailable) return nullptr;
  const int saved_errno = errno;  // a failed mmap sets it: the program's call succeeds all the same
  // Not in the agent's mapping list: the registry lists every table (for_each_thread_table).
  auto* walker = static_cast<ThreadWalker*>(sys::map_unlisted(sizeof(ThreadWalker)));
  if (walker == nullptr) state.unavailable = true;
  // Every table is registered, to be unmapped once its thread is gone (reap_thread_walks):
  // the thread-end hook cannot be the end of it, since TLS destructors that run after it
  // still allocate. The registry is reaped as it fills, and every 64 tables.
  static std::atomic<uint32_t> registrations{0};
  if (!kAttachBuild && walker != nullptr && registrations.fetch_add(1, std::memory_order_relaxed) % 64 == 63)
    reap_thread_walks(false);
  if (walker != nullptr && !register_walker(walker) &&
      (kAttachBuild || reap_thread_walks(false) == 0 || !register_walker(walker))) {
    // More live threads than the registry holds: this one's stacks are cut to the call site.
    sys::unmap_unlisted(walker, sizeof(ThreadWalker));
    walker = nullptr;
    state.unavailable = true;
  }
  if (walker != nullptr && sp != 0) stack_mapping(sp, walker->stack_low, walker->stack_high);
  errno = saved_errno;
  state.walker = walker;
  return walker;
}

inline uint64_t load_word(uint64_t address) noexcept { return *reinterpret_cast<const uint64_t*>(address); }

// Words a rule reads around rbp lie within this many bytes above it (saved rbp, realigned
// stack pointer; the offsets are small, unwind_rules.cpp).
constexpr uint64_t kFrameWords = 64;

// Applies `rule` to a frame: its caller's stack pointer (the CFA) and rbp. false: not a frame.
// `high` is the top of the thread's stack: nothing at or above it is read.
HEAPSCOPE_HOT inline bool step(const StepRule& rule, uint64_t sp, uint64_t high, uint64_t& fp, uint64_t& cfa) noexcept {
  const uint64_t room = high - sp;  // sp < high: the walk checks it of every frame
  const auto base = static_cast<CfaBase>(rule.cfa_base);
  if (base == CfaBase::kRsp) {
    cfa = sp + static_cast<int64_t>(rule.cfa_offset);
  } else {
    // fp < sp wraps around to a huge distance: one comparison for both bounds.
    if (fp - sp >= room || high - fp < kFrameWords) return false;
    cfa = fp + static_cast<int64_t>(rule.cfa_offset);
    if (base == CfaBase::kDerefRbp) cfa = load_word(cfa);
  }
  // The caller's frame lies above this one and below the top: cfa <= sp wraps, as above.
  if (cfa - sp - 1 >= room - 1 || (cfa & 7) != 0) return false;
  const auto rbp_saved = static_cast<RbpSaved>(rule.rbp_saved);
  if (rbp_saved == RbpSaved::kAtCfa) fp = load_word(cfa + rule.rbp_offset);
  else if (rbp_saved == RbpSaved::kAtRbp) fp = load_word(fp + rule.rbp_offset);
  return true;
}

inline bool reads_fp(const StepRule& rule) noexcept {
  return static_cast<CfaBase>(rule.cfa_base) != CfaBase::kRsp ||
         static_cast<RbpSaved>(rule.rbp_saved) == RbpSaved::kAtRbp;
}

// Marks which remembered frames' rbp the frames further out depend on, from `first` inwards.
// `any_reads`: some frame from `first` on reads rbp; if none does and the frame outside does
// not need its rbp, no frame does, and their rules already say so (the caches' rules carry 0).
void mark_needed_fp(PreviousWalk& previous, size_t first, bool any_reads) noexcept {
  if (!any_reads && (first == 0 || !previous.rule[first - 1].needs_fp)) return;
  for (size_t i = first; i < previous.count; ++i) {
    StepRule& rule = previous.rule[i];
    const bool passes = static_cast<RbpSaved>(rule.rbp_saved) == RbpSaved::kNo;
    rule.needs_fp = reads_fp(rule) || (i > 0 && passes && previous.rule[i - 1].needs_fp);
  }
}

// Whether checking the step from remembered frame i to its caller (i - 1) takes more than its
// return address: a realigned frame's saved stack pointer, or a saved rbp that frames further
// out read.
inline bool needs_more_checks(const PreviousWalk& previous, size_t i) noexcept {
  const StepRule& from = previous.rule[i];
  return static_cast<CfaBase>(from.cfa_base) == CfaBase::kDerefRbp ||
         (static_cast<RbpSaved>(from.rbp_saved) != RbpSaved::kNo && previous.rule[i - 1].needs_fp);
}

// Updates more_checks from frame `first` inwards, after their rules or needs_fp changed.
void mark_more_checks(PreviousWalk& previous, size_t first) noexcept {
  for (size_t i = first == 0 ? 1 : first; i < previous.count; ++i)
    previous.more_checks[i] = needs_more_checks(previous, i);
}

// The checks beyond the return address for the step from remembered frame i, each a read a walk
// would make from the frames checked so far: a realigned caller's stack pointer before anything
// at it. The saved rbp lies beside the return address, at the same verified stack pointer.
__attribute__((noinline)) bool more_checks_hold(const PreviousWalk& previous, size_t i) noexcept {
  const StepRule from = previous.rule[i];
  const size_t to = i - 1;
  if (static_cast<CfaBase>(from.cfa_base) == CfaBase::kDerefRbp &&
      load_word(previous.fp[i] + from.cfa_offset) != previous.sp[to])
    return false;
  const auto rbp_saved = static_cast<RbpSaved>(from.rbp_saved);
  if (rbp_saved != RbpSaved::kNo && previous.rule[to].needs_fp) {
    const uint64_t saved_at = (rbp_saved == RbpSaved::kAtCfa ? previous.sp[to] : previous.fp[i]) + from.rbp_offset;
    if (load_word(saved_at) != previous.fp[to]) return false;
  }
  return true;
}

// Remembers a walk that found no help in the previous one; `inner` is innermost first.
void remember_walk(PreviousWalk& previous, const FrameState* inner, size_t count, bool complete,
                   bool any_reads) noexcept {
  if (count > kRememberedFrames) {
    previous.count = 0;
    return;
  }
  for (size_t i = 0; i < count; ++i) previous.set(i, inner[count - 1 - i]);
  previous.count = static_cast<uint32_t>(count);
  previous.complete = complete;
  if (count > 0) previous.rule[0].needs_fp = 0;
  mark_needed_fp(previous, 1, any_reads);
  mark_more_checks(previous, 1);
}

// This walk reached remembered frame `match` as its frame `count` (< max_frames; the state fp is
// this walk's). Checks that the remembered frames further out that `frames` still needs hold
// and, if so, completes `frames` from them and remembers this walk's inner frames in place of
// the old ones. Returns the number of frames in `frames`, or -1 (walk on as usual).
HEAPSCOPE_HOT int reuse_previous(PreviousWalk& previous, size_t match, uint64_t fp, const FrameState* inner,
                                 size_t count, bool any_reads, uint64_t* frames, size_t max_frames,
                                 size_t& first_marked) noexcept {
  const size_t wanted = max_frames - count - 1;  // frames after this one
  if (!previous.complete && match < wanted) return -1;  // it stopped short of what this walk needs
  const size_t taken = match < wanted ? match : wanted;
  // A step is a pure function of the frame it starts from and the words it reads, and the
  // recorded frames are what those steps gave: where the words read are still the same, so are
  // the steps. The loads do not depend on each other, unlike a walk's. Frames are written out as
  // they are checked; on a mismatch the walk goes on and overwrites them.
  uint64_t* out = frames + count;
  *out++ = previous.ip[match];
  for (size_t i = match; i > match - taken; --i) {
    const size_t to = i - 1;
    const uint64_t ip = previous.ip[to];
    *out++ = ip;
    if (__builtin_expect(previous.more_checks[i], 0) && !more_checks_hold(previous, i)) return -1;
    if (load_word(previous.sp[to] - 8) != ip) return -1;
  }
  // Frames match, match - 1, ..., match - taken became count, count + 1, ...: the first marked
  // one in that order is the highest marked bit of the range.
  const uint64_t range = ((uint64_t{2} << match) - 1) & ~((uint64_t{1} << (match - taken)) - 1);
  const uint64_t marked_taken = previous.marked & range;
  if (marked_taken != 0 && first_marked == kNoneMarked)
    first_marked = count + match - static_cast<size_t>(63 - __builtin_clzll(marked_taken));
  if (match + 1 + count > kRememberedFrames) {
    previous.count = 0;
  } else {
    previous.fp[match] = fp;
    for (size_t i = 0; i < count; ++i) previous.set(match + 1 + i, inner[count - 1 - i]);
    previous.count = static_cast<uint32_t>(match + 1 + count);
    mark_needed_fp(previous, match + 1, any_reads);
    mark_more_checks(previous, match + 1);
  }
  return static_cast<int>(count + 1 + taken);
}

// Hands the caller the remembered walk's word for this walk's `output` (see WalkMemo).
inline void give_memo(PreviousWalk* slot, int output, bool repeated, WalkMemo* memo) noexcept {
  if (memo == nullptr) return;
  if (slot == nullptr || output < 0) {
    *memo = WalkMemo{};
    return;
  }
  if (!repeated) {
    slot->stack_id = 0;
    slot->output_count = static_cast<uint32_t>(output);
  }
  *memo = WalkMemo{&slot->stack_id, repeated};
}

// Steps through the kernel's signal frame at `sp` (the ucontext_t rt_sigreturn restores) to the
// interrupted state. The context must lie in the current stack, and the interrupted stack
// pointer in the thread's own stack or the current one (a handler on an alternate stack
// interrupted code on the thread's stack). False: the stack ends here.
HEAPSCOPE_COLD bool signal_step(const ThreadWalker& mine, uint64_t& sp, uint64_t& low, uint64_t& high, uint64_t& ip,
                                uint64_t& fp) noexcept {
  if (high - sp < sizeof(ucontext_t) || (sp & 7) != 0) return false;
  const greg_t* registers = reinterpret_cast<const ucontext_t*>(sp)->uc_mcontext.gregs;
  const auto interrupted_sp = static_cast<uint64_t>(registers[REG_RSP]);
  if (interrupted_sp - mine.stack_low < mine.stack_high - mine.stack_low) {
    low = mine.stack_low;
    high = mine.stack_high;
  } else if (interrupted_sp - low >= high - low) {
    return false;
  }
  ip = static_cast<uint64_t>(registers[REG_RIP]);
  fp = static_cast<uint64_t>(registers[REG_RBP]);
  sp = interrupted_sp;
  return ip != 0;
}

// Walks from the state (ip, sp, fp). `lookup` is the address whose rule describes that state:
// ip itself where execution is, ip - 1 for a return address, so a call that ends its function
// finds that function's rule, not the next one's.
HEAPSCOPE_HOT inline int walk(uint64_t ip, uint64_t sp, uint64_t fp, uint64_t lookup, uint64_t* frames,
                              size_t max_frames, size_t& first_marked, WalkMemo* memo) noexcept {
  first_marked = kNoneMarked;  // `memo`, if any, arrives cleared (fast_backtrace_from)
  if (!rule_cache_ready()) return -1;
  ThreadWalker* walker = thread_state.walker;
  if (__builtin_expect(walker == nullptr || (kAttachBuild && thread_state.session !=
                                                                 walker_session.load(std::memory_order_relaxed)), 0)) {
    walker = map_walker(sp);
    if (walker == nullptr) return -1;  // libunwind walks it
  }
  ThreadWalker& mine = *walker;
  // Every frame lies in the stack the walk started on: the thread's own, or one it runs on
  // for a while (a coroutine's, an alternate signal stack), whose bounds are learned once.
  uint64_t low = mine.stack_low;
  uint64_t high = mine.stack_high;
  if (__builtin_expect(sp - low >= high - low, 0) && !foreign_stack(mine, sp, low, high)) return -1;
  PreviousWalk* walks = mine.walks;
  const uint32_t generation = rules_generation();
  const uint32_t memos = memo_generation.load(std::memory_order_acquire);
  if (__builtin_expect(mine.memo_generation != memos, 0)) {
    for (size_t i = 0; i < kWalkSlots; ++i) walks[i].stack_id = 0;
    mine.memo_generation = memos;
  }
  if (mine.generation != generation) {
    for (ThreadEntry& entry : mine.slots) entry.address = 0;
    for (auto& set : mine.sets) set[0].address = set[1].address = 0;
    for (size_t i = 0; i < kWalkSlots; ++i) walks[i].count = 0;
    mine.generation = generation;
  }
  FrameState inner[format::kMaxFrames + 8];  // this walk's frames until it meets the previous one
  constexpr size_t kInnerCapacity = sizeof(inner) / sizeof(inner[0]);
  static_assert(kRememberedFrames <= kInnerCapacity);
  if (max_frames > kInnerCapacity) max_frames = kInnerCapacity;
  bool remembering = mine.budget.paused == 0;  // until the walk crosses a signal frame
  if (mine.budget.paused != 0) --mine.budget.paused;
  PreviousWalk* previous = remembering ? &walks[walk_slot(sp, ip)] : nullptr;
  // The remembered frame to compare with next: stack addresses grow outwards in both walks.
  int64_t candidate = remembering ? static_cast<int64_t>(previous->count) - 1 : -1;
  bool any_reads = false;  // some walked frame's rule reads rbp (see mark_needed_fp)
  size_t count = 0;
  while (count < max_frames) {
    while (candidate >= 0 && previous->sp[candidate] < sp) --candidate;
    if (candidate >= 0 && previous->sp[candidate] == sp) {
      if (previous->ip[candidate] == ip && (!previous->rule[candidate].needs_fp || previous->fp[candidate] == fp)) {
        // From its first frame on, this walk meets the last walk from the same start.
        const bool same_start = count == 0 && static_cast<size_t>(candidate) + 1 == previous->count;
        const int reused =
            reuse_previous(*previous, static_cast<size_t>(candidate), fp, inner, count, any_reads, frames, max_frames,
                           first_marked);
        if (reused >= 0) {
          account(mine, count, static_cast<size_t>(reused) - count);
          give_memo(previous, reused,
                    same_start && static_cast<uint32_t>(reused) == previous->output_count && previous->stack_id != 0,
                    memo);
          return reused;
        }
        --candidate;  // it no longer holds further out: walk on, and try the frames beyond
      }
    }
    ThreadEntry* entry = &mine.slots[(sp >> 4) % kThreadSlots];
    ThreadEntry missed;
    if (__builtin_expect(entry->address != lookup, 0)) {
      ThreadEntry* set = mine.sets[(lookup ^ (lookup >> 4) ^ (lookup >> 8)) % kThreadSets];
      if (set[0].address == lookup) {
        *entry = set[0];
      } else if (set[1].address == lookup) {
        *entry = set[1];
      } else {
        const Rule rule = Rule::decode(shared_rule(lookup));
        if (!thread_entry(lookup, rule, *entry)) {
          // Offsets too large to keep (never seen in compiled code): the stack ends here.
          missed = ThreadEntry{lookup, StepRule{0, 0, RuleKind::kUnsupported, 0, 0, 0, is_marked(lookup)}};
          entry = &missed;
        } else {
          set[1] = set[0];
          set[0] = *entry;
        }
      }
    }
    frames[count] = ip;
    if (__builtin_expect(entry->rule.marked, 0) && first_marked == kNoneMarked) first_marked = count;
    if (remembering) {
      inner[count] = FrameState{ip, sp, fp, entry->rule};
      any_reads |= reads_fp(entry->rule);
    }
    ++count;
    if (entry->rule.kind == RuleKind::kOutermost) {
      if (remembering) {
        remember_walk(*previous, inner, count, /*complete=*/true, any_reads);
        account(mine, count, 0);
        give_memo(previous, static_cast<int>(count), false, memo);
      }
      return static_cast<int>(count);
    }
    uint64_t cfa;
    if (entry->rule.kind == RuleKind::kSignalReturn) {
      // The kernel's frame: the interrupted context is in the ucontext_t at sp. The walk goes
      // on there, at the interrupted instruction itself (not a return address), and is not
      // remembered: what a signal interrupted does not repeat.
      if (remembering) previous->count = 0;
      remembering = false;
      candidate = -1;
      if (!signal_step(mine, sp, low, high, ip, fp)) return static_cast<int>(count);
      lookup = ip;
      continue;
    }
    if (entry->rule.kind != RuleKind::kFrame) {
      // No rule for this code (no unwind information, or one we do not evaluate): the stack
      // ends here. Nothing else is asked: libunwind, the other unwinder at hand, keeps a pipe
      // open on two of the program's descriptors (it is used only with --fast-unwind=no).
      if (remembering) previous->count = 0;
      return static_cast<int>(count);
    }
    if (!step(entry->rule, sp, high, fp, cfa)) {
      // The frame's rule leads off the thread's stack: its frame pointer was clobbered (code
      // using rbp as a general register without saying so), or the stack is corrupt. The stack
      // ends here: an unwinder that followed it further would fault (libunwind does).
      if (remembering) previous->count = 0;
      return static_cast<int>(count);
    }
    ip = load_word(cfa - 8);
    sp = cfa;
    if (ip == 0) {  // an end without an outermost rule: not remembered
      if (remembering) previous->count = 0;
      return static_cast<int>(count);
    }
    lookup = ip - 1;
  }
  if (remembering) {
    remember_walk(*previous, inner, count, /*complete=*/false, any_reads);
    account(mine, count, 0);
    give_memo(previous, static_cast<int>(count), false, memo);
  }
  return static_cast<int>(count);
}

}  // namespace

HEAPSCOPE_HOT __attribute__((noinline)) int fast_backtrace(uint64_t* frames, size_t max_frames) noexcept {
  uint64_t ip;
  uint64_t sp;
  uint64_t fp;
  // The three registers at one instruction: the rule for `ip` then describes `sp` exactly.
  asm volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(ip), "=r"(sp), "=r"(fp));
  size_t first_marked;
  return walk(ip, sp, fp, ip, frames, max_frames, first_marked, nullptr);
}

HEAPSCOPE_HOT int fast_backtrace_from(uint64_t return_address, uint64_t stack_pointer, uint64_t frame_pointer,
                                      uint64_t* frames, size_t max_frames, size_t* first_marked,
                                      WalkMemo* memo) noexcept {
  if (memo != nullptr) *memo = WalkMemo{};
  if (return_address == 0) return -1;
  size_t first;
  const int got =
      walk(return_address, stack_pointer, frame_pointer, return_address - 1, frames, max_frames, first, memo);
  if (first_marked != nullptr) *first_marked = first;
  return got;
}

void forget_walk_memos() noexcept { memo_generation.fetch_add(1, std::memory_order_acq_rel); }

void set_thread_stack(uint64_t low, uint64_t high) noexcept {
  ThreadWalker* walker = thread_state.walker != nullptr ? thread_state.walker : map_walker(0);
  if (walker == nullptr) return;
  walker->stack_low = low;
  walker->stack_high = high;
}

void release_thread_walks() noexcept {
  // Registered: reaped once the thread is gone (TLS destructors that run after this hook still
  // allocate and are walked).
}

size_t thread_table_count() noexcept {
  size_t count = 0;
  for (const RegisteredWalker& entry : registered_walkers)
    count += entry.walker.load(std::memory_order_relaxed) != nullptr ? 1 : 0;
  return count;
}

void for_each_thread_table(void (*visit)(uint64_t begin, uint64_t end, void*), void* context) noexcept {
  for (const RegisteredWalker& entry : registered_walkers) {
    const auto begin = reinterpret_cast<uint64_t>(entry.walker.load(std::memory_order_acquire));
    if (begin != 0) visit(begin, begin + sizeof(ThreadWalker), context);
  }
}

bool thread_stack(uint32_t tid, uint64_t& low, uint64_t& high) noexcept {
  for (const RegisteredWalker& entry : registered_walkers) {
    const ThreadWalker* walker = entry.walker.load(std::memory_order_acquire);
    if (walker == nullptr || entry.tid.load(std::memory_order_relaxed) != tid || walker->stack_high == 0) continue;
    low = walker->stack_low;
    high = walker->stack_high;
    return true;
  }
  return false;
}

void adopt_thread_walks_in_fork_child() noexcept {
  ThreadWalker* walker = thread_state.walker;
  if (walker == nullptr) return;
  const auto tid = static_cast<uint32_t>(syscall(SYS_gettid));
  for (RegisteredWalker& entry : registered_walkers)
    if (entry.walker.load(std::memory_order_relaxed) == walker) entry.tid.store(tid, std::memory_order_relaxed);
}

size_t reap_thread_walks(bool everything) noexcept {
  if (everything) walker_session.fetch_add(1, std::memory_order_acq_rel);
  const int pid = getpid();
  size_t reaped = 0;
  for (RegisteredWalker& entry : registered_walkers) {
    ThreadWalker* walker = entry.walker.load(std::memory_order_acquire);
    if (walker == nullptr) continue;
    const uint32_t tid = entry.tid.load(std::memory_order_relaxed);
    // tgkill with signal 0 only asks whether the thread exists in this process.
    if (!everything && !(syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH)) continue;
    entry.walker.store(nullptr, std::memory_order_release);
    sys::unmap_unlisted(walker, sizeof(ThreadWalker));
    ++reaped;
  }
  return reaped;
}

void mark_code(uint64_t begin, uint64_t end) noexcept {
  marked_begin = begin;
  marked_bytes = end > begin ? end - begin : 0;
  forget_rules();  // per-thread cache entries carry the old marks
}

}  // namespace heapscope::preload::unwind
