/* Threads that allocate and free, including blocks allocated on one thread and freed on
 * another, then exit() from a worker thread while others still run. Exactly
 * kThreads * kRounds allocations and as many frees, plus one deliberate leak. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

enum { kThreads = 4, kRounds = 20000 };

static void* handoff[kThreads];
static pthread_barrier_t barrier;

static void* worker(void* arg) {
  const long id = (long)arg;
  void* mine[16] = {0};
  for (int round = 0; round < kRounds; ++round) {
    const int slot = round % 16;
    free(mine[slot]);
    mine[slot] = malloc(16 + (size_t)(round % 200));
  }
  for (int i = 0; i < 16; ++i) free(mine[i]);
  /* Cross-thread: give one block to the next thread, which frees it. */
  handoff[id] = malloc(64);
  pthread_barrier_wait(&barrier);
  free(handoff[(id + 1) % kThreads]);
  return NULL;
}

static void* exiter(void* arg) {
  (void)arg;
  malloc(77); /* the deliberate leak */
  exit(5);    /* exit from a non-main thread; main is still blocked below */
}

int main(void) {
  pthread_t threads[kThreads];
  pthread_barrier_init(&barrier, NULL, kThreads);
  for (long i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, worker, (void*)i);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  pthread_t last;
  pthread_create(&last, NULL, exiter, NULL);
  pause();
  return 0;
}
