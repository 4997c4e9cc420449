/* Allocation-heavy workload for the slowdown benchmark: ~10^7 malloc/free calls (by default)
 * made from deep and varied call stacks, with mixed sizes and a sliding window of live blocks,
 * so stack capture, deduplication and the real allocator all do real work.
 * usage: alloc_workload [pairs [few]]   (default 5000000 malloc/free pairs)
 *   few: every call takes the same path at a random depth (29 distinct stacks, 12..40 deep)
 *        instead of random paths (tens of thousands of distinct stacks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { kWindow = 4096 };

static void* window[kWindow];
static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static int few_stacks = 0;

static uint64_t next_random(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Mixed sizes: mostly small, some medium, a few large. */
static size_t pick_size(uint64_t r) {
  const unsigned bucket = (unsigned)(r % 100);
  if (bucket < 70) return 8 + (r >> 8) % 120;
  if (bucket < 95) return 128 + (r >> 8) % 4000;
  return 4096 + (r >> 8) % 60000;
}

static void churn(uint64_t r) {
  const size_t slot = (r >> 20) % kWindow;
  free(window[slot]);
  const size_t size = pick_size(r);
  char* block = malloc(size);
  block[0] = (char)r;
  block[size - 1] = (char)(r >> 8);
  window[slot] = block;
}

/* A chain of distinct functions gives distinct call stacks of depth 12..40. */
#define LEVEL(n, next)                                          \
  __attribute__((noinline)) static void level##n(unsigned depth, uint64_t r) { \
    if (depth == 0) { churn(r); return; }                       \
    next(depth - 1, r);                                         \
    __asm__ volatile("" ::: "memory");                          \
  }
static void level0(unsigned depth, uint64_t r);
LEVEL(7, level0)
LEVEL(6, level7)
LEVEL(5, level6)
LEVEL(4, level5)
LEVEL(3, level4)
LEVEL(2, level3)
LEVEL(1, level2)
__attribute__((noinline)) static void level0(unsigned depth, uint64_t r) {
  if (depth == 0) {
    churn(r);
    return;
  }
  /* Branch on the random value so several paths (stacks) interleave. */
  switch (few_stacks ? 0 : r % 3) {
    case 0: level1(depth - 1, r >> 2); break;
    case 1: level3(depth - 1, r >> 2); break;
    default: level5(depth - 1, r >> 2); break;
  }
  __asm__ volatile("" ::: "memory");
}

int main(int argc, char** argv) {
  const long pairs = argc > 1 ? atol(argv[1]) : 5000000;
  few_stacks = argc > 2 && strcmp(argv[2], "few") == 0;
  for (long i = 0; i < pairs; ++i) {
    const uint64_t r = next_random();
    level0(12 + (unsigned)(r % 29), r);
  }
  for (int i = 0; i < kWindow; ++i) free(window[i]);
  return 0;
}
