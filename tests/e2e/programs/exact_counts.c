/* Four threads make 10^7 allocator calls in all: 5,000,000 mallocs and as many frees, half of
 * the frees on another thread than the allocation (through lock-free handoff slots), so freed
 * addresses are reused across threads all the time. Nothing is leaked on purpose: the report
 * must show exactly 5,000,000 allocations and frees by the program, and no error.
 * usage: exact_counts [calls]   (default 10000000) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

enum { kThreads = 4, kSlots = 256 };

static long per_thread = 0;
static _Atomic(void*) slots[kThreads][kSlots];

static void* worker(void* arg) {
  const long id = (long)arg;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
  for (long i = 0; i < per_thread; ++i) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    void* block = malloc(8 + rng % 120);
    if (rng & 1) {
      free(block); /* freed where it was made */
      continue;
    }
    /* Hand it to a neighbour's slot; whatever was there is freed here, by another thread. */
    void* previous = atomic_exchange(&slots[(id + 1) % kThreads][(rng >> 8) % kSlots], block);
    free(previous); /* free(NULL) the first time: not a counted call */
  }
  return NULL;
}

int main(int argc, char** argv) {
  const long calls = argc > 1 ? atol(argv[1]) : 10000000;
  per_thread = calls / 2 / kThreads;
  pthread_t threads[kThreads];
  for (long i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, worker, (void*)i);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  for (int t = 0; t < kThreads; ++t)
    for (int s = 0; s < kSlots; ++s) free(atomic_exchange(&slots[t][s], NULL));
  return 0;
}
