/* Several leak shapes with known sizes and sites, and no other live blocks at exit (no stdio).
 * Expected: 5 leak groups, all definitely lost: main forgets every pointer before it returns. */
#include <stdlib.h>
#include <string.h>

void* keep[64];

__attribute__((noinline)) void leak_one_block(void) { keep[0] = malloc(24); }

__attribute__((noinline)) void leak_many_blocks(void) {
  for (int i = 0; i < 10; ++i) keep[1 + i] = malloc(100);
}

__attribute__((noinline)) void leak_after_realloc(void) {
  char* grown = malloc(10);
  keep[20] = realloc(grown, 1000); /* the leak is attributed to the realloc site */
}

__attribute__((noinline)) void leak_calloc(void) { keep[21] = calloc(7, 9); }

__attribute__((noinline)) void leak_strdup(void) { keep[22] = strdup("seventeen chars!"); }

__attribute__((noinline)) void no_leak(void) {
  for (int i = 0; i < 5; ++i) free(malloc(50 + i));
}

int main(void) {
  leak_one_block();
  leak_many_blocks();
  leak_after_realloc();
  leak_calloc();
  leak_strdup();
  no_leak();
  memset(keep, 0, sizeof(keep));
  return 3; /* the exit status must pass through */
}
