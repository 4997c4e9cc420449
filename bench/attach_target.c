/* Target for bench/run_attach_bench.sh: dlopens every library named on the command line (to
 * give the process many modules, as a big service has), prints "ready", then churns
 * malloc/free from a 16-deep call chain in rounds of ROUND pairs, printing after each round
 * "<CLOCK_REALTIME ms> <ns per pair>", until stdin is closed or says anything.
 * usage: attach_target ROUND [LIBRARY.so...] */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile int stopping;
static void* window[1024];
static uint64_t state = 88172645463325252ull;

static uint64_t now_ns(int clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

__attribute__((noinline)) static void churn(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  const size_t slot = state % 1024;
  free(window[slot]);
  window[slot] = malloc(16 + (state >> 20) % 200);
}

#define LEVEL(n, next) \
  __attribute__((noinline)) static void level##n(void) { next(); __asm__ volatile("" ::: "memory"); }
LEVEL(15, churn) LEVEL(14, level15) LEVEL(13, level14) LEVEL(12, level13) LEVEL(11, level12)
LEVEL(10, level11) LEVEL(9, level10) LEVEL(8, level9) LEVEL(7, level8) LEVEL(6, level7) LEVEL(5, level6)
LEVEL(4, level5) LEVEL(3, level4) LEVEL(2, level3) LEVEL(1, level2) LEVEL(0, level1)

static void* watch_stdin(void* unused) {
  (void)unused;
  char byte;
  (void)!read(0, &byte, 1);
  stopping = 1;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const long round = atol(argv[1]);
  for (int i = 2; i < argc; i++)
    if (dlopen(argv[i], RTLD_NOW) == NULL) fprintf(stderr, "%s\n", dlerror());
  pthread_t watcher;
  pthread_create(&watcher, NULL, watch_stdin, NULL);
  printf("ready\n");
  fflush(stdout);
  while (!stopping) {
    const uint64_t start = now_ns(CLOCK_MONOTONIC);
    for (long i = 0; i < round; i++) level0();
    const uint64_t spent = now_ns(CLOCK_MONOTONIC) - start;
    printf("%llu %.1f\n", (unsigned long long)(now_ns(CLOCK_REALTIME) / 1000000), (double)spent / (double)round);
    fflush(stdout);
  }
  return 0;
}
