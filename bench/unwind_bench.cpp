// Stack walking alone: heapscope's cached walker (preload/stacks/fast_unwind.h) against libunwind's
// cached unw_backtrace, from the same 30-frame stack, 10^6 walks each. Prints ns per walk and
// per frame, and the ratio. The stack repeats from walk to walk, so heapscope's walker reuses
// its previous walk after checking it: its best case. usage: unwind_bench [DEPTH]
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fast_unwind.h"
#include "rule_cache.h"

extern "C" int shape_optimized(int depth, void (*leaf)(void*), void* context);

namespace {

constexpr int kWalksPerLeaf = 1000;
constexpr int kLeaves = 1000;

struct Measure {
  bool own;
  long frames = 0;
};

extern "C" void walk_many(void* context) {
  auto* measure = static_cast<Measure*>(context);
  uint64_t frames[64];
  for (int i = 0; i < kWalksPerLeaf; ++i) {
    measure->frames += measure->own ? heapscope::preload::unwind::fast_backtrace(frames, 64)
                                    : unw_backtrace(reinterpret_cast<void**>(frames), 64);
  }
}

double nanoseconds_per_walk(Measure& measure, int depth) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kLeaves; ++i) shape_optimized(depth, walk_many, &measure);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return std::chrono::duration<double, std::nano>(elapsed).count() / (kWalksPerLeaf * kLeaves);
}

}  // namespace

int main(int argc, char** argv) {
  const int depth = argc > 1 ? std::atoi(argv[1]) : 28;
  if (!heapscope::preload::unwind::init_rule_cache()) return 1;
  unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
  Measure own{true};
  Measure libunwind{false};
  const double own_ns = nanoseconds_per_walk(own, depth);
  const double libunwind_ns = nanoseconds_per_walk(libunwind, depth);
  const double own_frames = static_cast<double>(own.frames) / (kWalksPerLeaf * kLeaves);
  const double libunwind_frames = static_cast<double>(libunwind.frames) / (kWalksPerLeaf * kLeaves);
  std::printf("| walker | frames | ns per walk | ns per frame |\n|---|---:|---:|---:|\n");
  std::printf("| heapscope fast_backtrace | %.0f | %.1f | %.2f |\n", own_frames, own_ns, own_ns / own_frames);
  std::printf("| libunwind unw_backtrace | %.0f | %.1f | %.2f |\n", libunwind_frames, libunwind_ns,
              libunwind_ns / libunwind_frames);
  std::printf("libunwind / heapscope per frame: %.2fx\n",
              (libunwind_ns / libunwind_frames) / (own_ns / own_frames));
  return 0;
}
