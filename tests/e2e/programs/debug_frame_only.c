/* Built with -g -O1 -fno-asynchronous-unwind-tables -fomit-frame-pointer: its functions have
 * call frame information only in .debug_frame, which the loader does not map. Leaks 99 bytes
 * from inner(), called by middle(), called by main(): the report must name all three. */
#include <stdlib.h>

void* volatile kept;

__attribute__((noinline)) void inner(void) {
  void* volatile lost = malloc(99);
  (void)lost;
}

__attribute__((noinline)) void middle(void) {
  inner();
  kept = 0;
}

int main(void) {
  middle();
  return 0;
}
