/* A heap for the leak scan benchmark: BLOCKS blocks of SIZE bytes (default 10^7 x 100 bytes,
 * about 1 GiB asked for), nine in ten chained in a list from a global (reachable), one in ten
 * chained in a list nobody points to (one definite head, the rest indirect). Every block's
 * other words are filled with non-pointer data, as a real heap mostly is.
 * usage: scan_workload [BLOCKS] [SIZE] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
  struct node* next;
};

struct node* kept;

int main(int argc, char** argv) {
  const long blocks = argc > 1 ? atol(argv[1]) : 10000000L;
  const size_t size = argc > 2 ? (size_t)atol(argv[2]) : 100;
  if (blocks <= 0 || size < sizeof(struct node)) {
    fprintf(stderr, "usage: scan_workload [BLOCKS > 0] [SIZE >= 8]\n");
    return 2;
  }
  struct node* lost = NULL;
  for (long i = 0; i < blocks; ++i) {
    struct node* block = malloc(size);
    if (block == NULL) {
      perror("malloc");
      return 1;
    }
    memset(block, 0x11, size);
    if (i % 10 == 9) {
      block->next = lost;
      lost = block;
    } else {
      block->next = kept;
      kept = block;
    }
  }
  lost = NULL;
  printf("%ld blocks of %zu bytes\n", blocks, size);
  return 0;
}
