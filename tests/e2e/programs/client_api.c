/* Uses include/heapscope/heapscope.h as a C program would. argv[1] says what to expect:
 * "traced" (under heapscope) or "native" (no agent: every call a no-op returning 0). Exits 0
 * when every call returned what it should (heapscope_error_count and heapscope_leak_check_sites
 * included). Under heapscope it also leaves: one damaged live
 * block (reported once, by verify), one ignored leak of 4321 bytes, one block of 99 kept in a
 * global, and 77 bytes lost by lose_block(). */
#include <heapscope/heapscope.h>
#include <stdlib.h>
#include <string.h>

static void* keep[3];

/* Loses 77 bytes: the one site heapscope_leak_check_sites() must name. */
__attribute__((noinline)) static void lose_block(void) {
  char* block = malloc(77);
  memset(block, 7, 77);
}

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
  /* The sites of what a check newly finds lost: lose_block's 77 bytes, its innermost frame a
   * return address inside lose_block. */
  lose_block();
  heapscope_lost_site sites[2];
  int filled = -1;
  const int lost = heapscope_leak_check_sites(sites, 2, &filled);
  if (traced) {
    const char* frame = (const char*)sites[0].frames[0];
    if (lost != 1 || filled != 1 || sites[0].bytes != 77 || sites[0].blocks != 1) ++failures;
    else if (frame <= (const char*)lose_block || frame > (const char*)lose_block + 256) ++failures;
  } else if (lost != 0 || filled != 0) {
    ++failures;
  }
  return failures;
}
