// heapscope's own stack walker for x86-64: per return address, one lookup in per-thread caches
// of unwind rules (unwind_rules.h, backed by a lock-free shared cache) and a load from the
// stack; where a walk meets a frame of the thread's previous walk, the rest of that walk is
// checked word by word and reused. libunwind's cached walk costs about 6.3 ns a frame on our
// bench machine; this one 3.5 without reuse and 1.3 when the whole stack repeats
// (bench/unwind_bench.cpp). That matters with a 30-frame stack on every malloc and free.
// Hot path: no malloc, no locks (see rule_cache.h for the shared cache behind it).
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload::unwind {

// Fills `frames` with up to `max_frames` instruction addresses, innermost (inside this
// function's caller chain, starting with fast_backtrace's own frame) first. Returns the count,
// or -1 when some frame needs an unwinder that understands more (the caller then walks the
// whole stack with libunwind: an unusual frame costs speed, never a wrong stack).
int fast_backtrace(uint64_t* frames, size_t max_frames) noexcept;

// The same walk started at a caller's frame instead of here: `return_address` is the first
// frame, `stack_pointer` the caller's stack pointer at that address (the callee's CFA) and
// `frame_pointer` the caller's rbp. With `first_marked`, also gives the index of the first
// frame inside the code set by mark_code (kNoneMarked if none), at almost no cost: frames
// taken from the previous walk carry their mark with them.
// With `memo`, also hands out a word kept with the remembered walk, for what the caller derives
// from the frames (the agent keeps the stack's depot id there): `repeated` says the frames are
// exactly those of the last walk from this start, whose caller filled the word; otherwise the
// word is 0 for this caller to fill. stack_id is nullptr when the walk is not remembered. The
// word stays valid until this thread's next walk.
constexpr size_t kNoneMarked = ~size_t{0};
struct WalkMemo {
  uint32_t* stack_id = nullptr;
  bool repeated = false;
};
int fast_backtrace_from(uint64_t return_address, uint64_t stack_pointer, uint64_t frame_pointer,
                        uint64_t* frames, size_t max_frames, size_t* first_marked = nullptr,
                        WalkMemo* memo = nullptr) noexcept;

// Makes every thread's WalkMemo words 0 before its next walk: what they held no longer applies
// (a fork child starts its stack ids afresh). Frames stay remembered.
void forget_walk_memos() noexcept;

// The calling thread's stack is [low, high) (pthread_create's trampoline knows it): walks read
// nothing outside it. Threads that never call this have it read from /proc/self/maps at their
// first walk.
void set_thread_stack(uint64_t low, uint64_t high) noexcept;

// At the thread's end: nothing now. Its caches and remembered walks stay (TLS destructors that
// run later still allocate) and are unmapped once the thread is gone (reap_thread_walks).
void release_thread_walks() noexcept;
// Every thread's table, for the leak scan to exclude (they are not in sys's mapping list).
size_t thread_table_count() noexcept;
void for_each_thread_table(void (*visit)(uint64_t begin, uint64_t end, void*), void* context) noexcept;
// The stack of live thread `tid` as its walker knows it (its own, not a coroutine's it may be
// running on now): false if the thread never walked. For the leak scan, which must not take
// the stack of a thread running elsewhere for a dead one.
bool thread_stack(uint32_t tid, uint64_t& low, uint64_t& high) noexcept;

// A fork child's thread: its table is registered under its parent thread's id, which the
// child does not have; without this a reap would unmap the table the thread is using.
void adopt_thread_walks_in_fork_child() noexcept;

// Unmaps the tables of threads that have ended (the attach agent sees no thread end; the
// preload agent reaps as tables are mapped),
// or, with `everything`, all of them, and makes every thread map a new one at its next walk
// (only when no thread can be walking: at detach, once the agent's gate is drained). Returns
// how many it unmapped.
size_t reap_thread_walks(bool everything) noexcept;

// The code whose frames fast_backtrace_from reports in `first_marked`: the agent's own, which
// its callers drop (main's wrapper ends every complete stack). Set once, at init.
void mark_code(uint64_t begin, uint64_t end) noexcept;

}  // namespace heapscope::preload::unwind
