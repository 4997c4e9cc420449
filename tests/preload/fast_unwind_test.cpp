// The cached unwinder against libunwind, on real frames of every kind the compilers emit.
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fast_unwind.h"
#include "rule_cache.h"
#include "unwind_rules.h"

extern "C" {
typedef void (*leaf_fn)(void* context);
int shape_optimized(int depth, leaf_fn leaf, void* context);
int shape_unoptimized(int depth, leaf_fn leaf, void* context);
int shape_alloca(int bytes, leaf_fn leaf, void* context);
int shape_realigned(int a, int b, int c, int d, int e, int f, int g, int h, leaf_fn leaf, void* context);
int shape_through_libc(leaf_fn leaf, void* context);
int shape_caller_a(leaf_fn leaf, void* context);
int shape_caller_b(leaf_fn leaf, void* context);
}

namespace heapscope::preload::unwind {
namespace {

struct Walks {
  int fast_count = 0;
  uint64_t fast[64] = {};
  int slow_count = 0;
  void* slow[64] = {};
};

// Both walkers from one frame; the frames above it must agree one for one.
extern "C" __attribute__((noinline)) void walk_both(void* context) {
  auto* walks = static_cast<Walks*>(context);
  walks->fast_count = fast_backtrace(walks->fast, 64);
  walks->slow_count = unw_backtrace(walks->slow, 64);
  asm volatile("" ::: "memory");  // keep the calls out of tail position
}

// The frames above walk_both: the return addresses into its caller onwards.
std::vector<uint64_t> fast_callers(const Walks& walks) {
  // fast[0] is inside fast_backtrace, fast[1] in walk_both.
  return {walks.fast + 2, walks.fast + walks.fast_count};
}

std::vector<uint64_t> slow_callers(const Walks& walks, uint64_t first_caller) {
  std::vector<uint64_t> all;
  for (int i = 0; i < walks.slow_count; ++i) all.push_back(reinterpret_cast<uint64_t>(walks.slow[i]));
  auto at = std::find(all.begin(), all.end(), first_caller);
  return {at, all.end()};
}

void expect_same_stack(const Walks& walks, size_t at_least) {
  ASSERT_GT(walks.fast_count, 2) << "the fast walker declined a stack it should handle";
  const std::vector<uint64_t> fast = fast_callers(walks);
  const std::vector<uint64_t> slow = slow_callers(walks, fast.front());
  EXPECT_EQ(fast, slow);
  EXPECT_GE(fast.size(), at_least);
}

TEST(FastUnwind, OptimizedRecursionMatchesLibunwind) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  shape_optimized(20, walk_both, &walks);
  expect_same_stack(walks, 21);
}

TEST(FastUnwind, FramePointerFramesMatchLibunwind) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  shape_unoptimized(20, walk_both, &walks);
  expect_same_stack(walks, 21);
}

TEST(FastUnwind, AllocaFrameMatchesLibunwind) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  shape_alloca(4000, walk_both, &walks);
  expect_same_stack(walks, 2);
}

TEST(FastUnwind, RealignedFrameMatchesLibunwind) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  shape_realigned(1, 2, 3, 4, 5, 6, 7, 8, walk_both, &walks);
  expect_same_stack(walks, 2);
}

TEST(FastUnwind, LibcFramesAroundACallbackMatchLibunwind) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  shape_through_libc(walk_both, &walks);
  expect_same_stack(walks, 3);
}

TEST(FastUnwind, ThreadStackEndsWhereLibunwindsDoes) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  pthread_t thread;
  auto body = [](void* context) -> void* {
    shape_optimized(5, walk_both, context);
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, nullptr, body, &walks), 0);
  pthread_join(thread, nullptr);
  expect_same_stack(walks, 6);
}

// A thread's caches and remembered walks are unmapped when it ends; walks after that (from other
// destructors) are declined, so capture_stack hands them to libunwind.
// The thread-end hook keeps the thread's table: TLS destructors that run after it still
// allocate, and their stacks are walked whole. The table goes once the thread is gone.
TEST(FastUnwind, WalksAfterTheThreadEndHookAreWholeAndTheTableIsReapedLater) {
  ASSERT_TRUE(init_rule_cache());
  Walks before;
  Walks after;
  struct Context {
    Walks* before;
    Walks* after;
  } context{&before, &after};
  pthread_t thread;
  auto body = [](void* raw) -> void* {
    auto* walks = static_cast<Context*>(raw);
    shape_optimized(5, walk_both, walks->before);
    release_thread_walks();
    shape_optimized(5, walk_both, walks->after);
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, nullptr, body, &context), 0);
  pthread_join(thread, nullptr);
  expect_same_stack(before, 6);
  expect_same_stack(after, 6);
  EXPECT_GE(reap_thread_walks(false), 1u);  // the ended thread's table
}

TEST(FastUnwind, CachedWalksRepeatTheFirst) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks[3];
  for (int i = 0; i < 3; ++i) {
    if (i == 2) forget_rules();
    shape_optimized(10, walk_both, &walks[i]);
  }
  // The 11 frames of the recursion; further out, each loop iteration may be its own call site.
  auto recursion = [](const Walks& w) {
    std::vector<uint64_t> frames = fast_callers(w);
    frames.resize(std::min<size_t>(frames.size(), 11));
    return frames;
  };
  ASSERT_EQ(recursion(walks[0]).size(), 11u);
  EXPECT_EQ(recursion(walks[0]), recursion(walks[1]));
  EXPECT_EQ(recursion(walks[0]), recursion(walks[2]));
}

// Each walk may reuse the outer part of the thread's previous one, after checking it still
// holds. Alternating depths and frame kinds put every kind of partial overlap in front of it:
// the same frames at other stack addresses, other frames at the same addresses, rbp-based
// frames whose saved rbp differs.
TEST(FastUnwind, WalksThatReuseThePreviousOneStillMatchLibunwind) {
  ASSERT_TRUE(init_rule_cache());
  const int depths[] = {5, 9, 5, 2, 12, 12, 3, 7, 1, 7, 20, 4};
  for (int round = 0; round < 3; ++round) {
    for (int depth : depths) {
      SCOPED_TRACE(depth);
      Walks walks;
      if ((depth + round) % 3 == 0) shape_unoptimized(depth, walk_both, &walks);
      else if ((depth + round) % 3 == 1) shape_optimized(depth, walk_both, &walks);
      else shape_alloca(64 * depth, walk_both, &walks);
      expect_same_stack(walks, 2);
    }
  }
}

// The previous walk's frames sit at the same stack addresses with the same return addresses up
// to one frame: reusing them must stop there.
TEST(FastUnwind, ReuseStopsWhereTheStackDiffers) {
  ASSERT_TRUE(init_rule_cache());
  Walks first;
  Walks second;
  shape_caller_a(walk_both, &first);
  shape_caller_b(walk_both, &second);
  expect_same_stack(first, 3);
  expect_same_stack(second, 3);
  EXPECT_NE(fast_callers(first), fast_callers(second));
}

struct FromCallerWalk {
  Walks walks;
  int from_count = 0;
  uint64_t from[64] = {};
};

// As an interposer does (preload/stacks/stack_capture.h): a frame-pointer frame hands its return
// address, its caller's stack pointer and the caller's rbp to fast_backtrace_from.
extern "C" __attribute__((noinline, optimize("no-omit-frame-pointer"))) void walk_from_caller(void* context) {
  auto* walk = static_cast<FromCallerWalk*>(context);
  const auto* frame = static_cast<const uint64_t*>(__builtin_frame_address(0));
  walk->from_count = fast_backtrace_from(frame[1], reinterpret_cast<uint64_t>(frame + 2), frame[0], walk->from, 64);
  walk_both(&walk->walks);
  asm volatile("" ::: "memory");
}

TEST(FastUnwind, WalkFromACallersFrameSkipsOnlyTheFramesBelowIt) {
  ASSERT_TRUE(init_rule_cache());
  FromCallerWalk walk;
  shape_unoptimized(6, walk_from_caller, &walk);
  shape_optimized(6, walk_from_caller, &walk);
  // walk_both's callers start with the return address into walk_from_caller; the walk from
  // walk_from_caller's frame starts one frame further out.
  const std::vector<uint64_t> full = fast_callers(walk.walks);
  ASSERT_GT(walk.from_count, 7);
  const std::vector<uint64_t> from(walk.from, walk.from + walk.from_count);
  ASSERT_EQ(full.size(), from.size() + 1);
  EXPECT_TRUE(std::equal(from.begin(), from.end(), full.begin() + 1));
}

struct MarkedWalk {
  int count = 0;
  uint64_t frames[64] = {};
  size_t first_marked = 0;
};

extern "C" __attribute__((noinline, optimize("no-omit-frame-pointer"))) void walk_marked(void* context) {
  auto* walk = static_cast<MarkedWalk*>(context);
  const auto* frame = static_cast<const uint64_t*>(__builtin_frame_address(0));
  walk->count = fast_backtrace_from(frame[1], reinterpret_cast<uint64_t>(frame + 2), frame[0], walk->frames, 64,
                                    &walk->first_marked);
  asm volatile("" ::: "memory");
}

// The agent drops its own frames (main's wrapper, dlopen's) by the index the walker reports, on
// a fresh walk and on walks that take the marked frame from the previous one.
TEST(FastUnwind, ReportsTheFirstFrameInMarkedCodeOnFreshAndReusedWalks) {
  ASSERT_TRUE(init_rule_cache());
  MarkedWalk unmarked;
  shape_optimized(6, walk_marked, &unmarked);
  ASSERT_GT(unmarked.count, 10);
  EXPECT_EQ(unmarked.first_marked, kNoneMarked);
  // A return address that occurs once, past the recursion (whose frames share one address).
  int chosen = -1;
  for (int i = unmarked.count - 2; i >= 3 && chosen < 0; --i) {
    if (std::count(unmarked.frames, unmarked.frames + unmarked.count, unmarked.frames[i]) == 1) chosen = i;
  }
  ASSERT_GE(chosen, 3);
  const uint64_t target = unmarked.frames[chosen];
  mark_code(target - 1, target);  // a return address is looked up one byte before it
  for (int round = 0; round < 3; ++round) {
    MarkedWalk marked;
    shape_optimized(6, walk_marked, &marked);
    ASSERT_EQ(marked.count, unmarked.count);
    EXPECT_EQ(marked.first_marked, static_cast<size_t>(chosen)) << "round " << round;
  }
  mark_code(0, 0);
  MarkedWalk after;
  shape_optimized(6, walk_marked, &after);
  EXPECT_EQ(after.first_marked, kNoneMarked);
}

struct MemoWalk {
  int count = 0;
  uint64_t frames[64] = {};
  WalkMemo memo;
};

extern "C" __attribute__((noinline, optimize("no-omit-frame-pointer"))) void walk_with_memo(void* context) {
  auto* walk = static_cast<MemoWalk*>(context);
  const auto* frame = static_cast<const uint64_t*>(__builtin_frame_address(0));
  walk->count = fast_backtrace_from(frame[1], reinterpret_cast<uint64_t>(frame + 2), frame[0], walk->frames, 64,
                                    nullptr, &walk->memo);
  asm volatile("" ::: "memory");
}

// The agent skips the stack depot when a walk repeats the last one from the same start, taking
// the stack id it left in the memo. Repeated must mean the very same frames.
TEST(FastUnwind, MemoIsRepeatedOnlyForTheSameFramesAndForgottenOnRequest) {
  ASSERT_TRUE(init_rule_cache());
  MemoWalk walks[2];
  for (MemoWalk& walk : walks) {  // one call site: the same frames twice
    shape_caller_a(walk_with_memo, &walk);
    if (&walk == &walks[0]) {
      ASSERT_NE(walk.memo.stack_id, nullptr);
      EXPECT_FALSE(walk.memo.repeated);
      EXPECT_EQ(*walk.memo.stack_id, 0u);
      *walk.memo.stack_id = 42;
    }
  }
  const MemoWalk& first = walks[0];
  const MemoWalk& again = walks[1];
  ASSERT_EQ(again.count, first.count);
  EXPECT_TRUE(std::equal(first.frames, first.frames + first.count, again.frames));
  EXPECT_TRUE(again.memo.repeated);
  ASSERT_NE(again.memo.stack_id, nullptr);
  EXPECT_EQ(*again.memo.stack_id, 42u);
  // The same start (walk_with_memo's frame at the same depth), another caller further out; then
  // those frames again, once the memos were forgotten.
  MemoWalk others[2];
  for (MemoWalk& walk : others) {
    shape_caller_b(walk_with_memo, &walk);
    EXPECT_FALSE(walk.memo.repeated);
    ASSERT_NE(walk.memo.stack_id, nullptr);
    EXPECT_EQ(*walk.memo.stack_id, 0u);
    *walk.memo.stack_id = 43;
    forget_walk_memos();
  }
  EXPECT_TRUE(std::equal(others[0].frames, others[0].frames + others[0].count, others[1].frames));
}

Walks* signal_walks = nullptr;
void capture_in_handler(int) { walk_both(signal_walks); }

// Through the kernel's signal frame to the interrupted code and on, as libunwind does: the
// agent no longer hands such stacks to libunwind (issue 15: its pipe took two descriptors).
TEST(FastUnwind, WalksThroughSignalFramesAsLibunwindDoes) {
  ASSERT_TRUE(init_rule_cache());
  Walks walks;
  signal_walks = &walks;
  struct sigaction action {};
  action.sa_handler = capture_in_handler;
  struct sigaction previous {};
  ASSERT_EQ(sigaction(SIGUSR1, &action, &previous), 0);
  raise(SIGUSR1);
  sigaction(SIGUSR1, &previous, nullptr);
  expect_same_stack(walks, 5);  // handler, trampoline, raise's frames, this test
}

TEST(UnwindRules, EncodingKeepsEveryField) {
  Rule rule;
  rule.kind = RuleKind::kFrame;
  rule.cfa_base = CfaBase::kDerefRbp;
  rule.rbp_saved = RbpSaved::kAtRbp;
  rule.cfa_offset = -(1 << 27);
  rule.rbp_offset = (1 << 27) + 5;
  const Rule back = Rule::decode(rule.encode());
  EXPECT_EQ(back.kind, rule.kind);
  EXPECT_EQ(back.cfa_base, rule.cfa_base);
  EXPECT_EQ(back.rbp_saved, rule.rbp_saved);
  EXPECT_EQ(back.cfa_offset, rule.cfa_offset);
  EXPECT_EQ(back.rbp_offset, rule.rbp_offset);
}

TEST(UnwindRules, AddressOutsideAnyModuleIsUnsupported) {
  EXPECT_EQ(find_rule(0x1000).kind, RuleKind::kUnsupported);
}

}  // namespace
}  // namespace heapscope::preload::unwind
