/* Uses include/heapscope/heapscope.h as a C program would. argv[1] says what to expect:
 * "traced" (under heapscope) or "native" (no agent: every call a no-op returning 0). Exits 0
 * when every call returned what it should (heapscope_error_count included). Under heapscope it also leaves: one damaged live
 * block (reported once, by verify), one ignored leak of 4321 bytes and one real leak of 99. */
#include <heapscope/heapscope.h>
#include <stdlib.h>
#include <string.h>

static void* keep[3];

int main(int argc, char** argv) {
  const int traced = argc > 1 && strcmp(argv[1], "traced") == 0;
  int failures = 0;
  if (heapscope_running() != traced) ++failures;
  heapscope_mark_phase("setup");
  keep[0] = malloc(4321);
  keep[1] = malloc(99);
  heapscope_mark_phase("work");
  char* damaged = malloc(16);
  keep[2] = damaged;
  damaged[16] = 'x'; /* one past the end, never freed */
  if (heapscope_error_count() != 0) ++failures;
  if (heapscope_verify_heap() != (traced ? 1 : 0)) ++failures;
  if (heapscope_verify_heap() != 0) ++failures; /* reported once */
  if (heapscope_error_count() != (traced ? 1u : 0u)) ++failures; /* the one verify reported */
  if (heapscope_ignore_object(keep[0]) != (traced ? 1 : 0)) ++failures;
  int on_stack = 0;
  if (heapscope_ignore_object(&on_stack) != 0) ++failures; /* not a heap block */
  return failures;
}
