/* One leaked block per allocation API, with known requested sizes: the report must show what
 * the program asked for (pvalloc: its page-rounded size, which is what it promises). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>

void* keep[8];

int main(void) {
  keep[0] = malloc(0);
  keep[1] = calloc(3, 5);                /* 15 */
  keep[2] = reallocarray(NULL, 4, 6);    /* 24 */
  keep[3] = aligned_alloc(64, 100);      /* 100 */
  keep[4] = memalign(256, 33);           /* 33 */
  posix_memalign(&keep[5], 1024, 7);     /* 7 */
  keep[6] = valloc(100);                 /* 100 */
  keep[7] = pvalloc(100);                /* one page */
  return 0;
}
