/* --guard-pages: one access per mode, chosen by argv[1]. The faulting modes make an access a
 * plain run never notices (a read or write just past a block, or of a freed one); under
 * --guard-pages it faults at that instruction. "clean" is a correct program that uses every
 * allocation API, realloc and big alignments with the blocks written end to end: it must run
 * as natively. Each faulting line carries a marker the test looks for. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile char sink;

/* 10 bytes asked, 16 laid out up to the guard page: byte 16 is past the tail. */
static void write_past_end(char* block) {
  block[16] = 'x'; /* guard:write-past-end */
}

static void read_past_end(const char* block) {
  sink = block[24]; /* guard:read-past-end */
}

static void read_after_free(const char* block) {
  sink = block[3]; /* guard:read-after-free */
}

static void write_after_free(char* block) {
  block[40] = 'y'; /* guard:write-after-free */
}

static int clean(void) {
  enum { kBlocks = 3000 };
  static char* blocks[kBlocks];
  for (int i = 0; i < kBlocks; ++i) {
    const size_t size = (size_t)(i % 97) * 13 + 1;
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) return 2;
    memset(blocks[i], i & 0xff, size); /* every byte, the last one included */
  }
  for (int i = 0; i < kBlocks; i += 2) {
    const size_t size = (size_t)(i % 97) * 13 + 1;
    char* bigger = realloc(blocks[i], size * 3);
    if (bigger == NULL || bigger[size - 1] != (char)(i & 0xff)) return 3;
    memset(bigger, 1, size * 3);
    blocks[i] = bigger;
  }
  char* zeros = calloc(1000, 7);
  for (int i = 0; i < 7000; ++i)
    if (zeros[i] != 0) return 4;
  void* aligned = NULL;
  if (posix_memalign(&aligned, 4096, 5000) != 0 || ((uintptr_t)aligned & 4095) != 0) return 5;
  memset(aligned, 2, 5000);
  char* wide = aligned_alloc(64, 100);
  if (((uintptr_t)wide & 63) != 0) return 6;
  memset(wide, 3, 100);
  char* widest = aligned_alloc(65536, 10); /* past a page: laid out as usual */
  if (((uintptr_t)widest & 65535) != 0) return 7;
  widest[9] = 1;
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
  free(zeros);
  free(aligned);
  free(wide);
  free(widest);
  char* empty = malloc(0);
  free(empty);
  puts("clean");
  return 0;
}

/* More live blocks than vm.max_map_count leaves guard pages for (two areas each). */
static int many(void) {
  enum { kBlocks = 40000 };
  static char* blocks[kBlocks];
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i] = malloc(24);
    if (blocks[i] == NULL) return 2;
    blocks[i][23] = 1;
  }
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
  puts("many");
  return 0;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "clean";
  if (strcmp(mode, "clean") == 0) return clean();
  if (strcmp(mode, "many") == 0) return many();
  char* block = malloc(10);
  char* bigger = malloc(100);
  memset(block, 0, 10);
  if (strcmp(mode, "write-past-end") == 0) {
    write_past_end(block);
  } else if (strcmp(mode, "read-past-end") == 0) {
    read_past_end(block);
  } else if (strcmp(mode, "read-after-free") == 0) {
    free(block);
    read_after_free(block);
  } else if (strcmp(mode, "write-after-free") == 0) {
    free(bigger);
    write_after_free(bigger);
  } else if (strcmp(mode, "tail") == 0) {
    block[12] = 'z'; /* guard:tail: inside the 6 bytes before the guard page: the canary's */
    free(block);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  puts("survived");
  return 0;
}
