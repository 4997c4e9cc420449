/* Leaks 100 bytes from forget_buffer(); prints whether heapscope is there (client API). */
#include <heapscope/heapscope.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char* kept;

__attribute__((noinline)) static void forget_buffer(void) {
  char* buffer = malloc(100);
  memset(buffer, 'x', 100);
  kept = buffer;
  kept = NULL; /* the only pointer is gone */
}

int main(void) {
  heapscope_mark_phase("forgetting");
  forget_buffer();
  printf("under heapscope: %d\n", heapscope_running());
  return 0;
}
