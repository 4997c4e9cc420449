/* Every C allocation entry point at its documented edges. Checks its own results (exit 1 and a
 * message on the first failure) and frees everything, so heapscope must report no leak and no
 * error, with exact counts (see the e2e test). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

static void check(int ok, const char* what) {
  if (ok) return;
  ++failures;
  write(2, "FAILED: ", 8);
  write(2, what, strlen(what));
  write(2, "\n", 1);
}

static int aligned(const void* p, size_t alignment) { return ((uintptr_t)p % alignment) == 0; }

int main(void) {
  /* malloc(0) returns a unique pointer that free() accepts. */
  void* zero = malloc(0);
  check(zero != NULL, "malloc(0) returns a pointer");
  free(zero);
  free(NULL);

  /* realloc(NULL, n) is malloc; realloc(p, 0) frees and returns NULL (glibc). */
  char* grown = realloc(NULL, 16);
  check(grown != NULL, "realloc(NULL, 16)");
  memset(grown, 'a', 16);
  grown = realloc(grown, 4096);
  check(grown != NULL && grown[15] == 'a', "realloc keeps contents");
  grown = realloc(grown, 8);
  check(grown != NULL && grown[7] == 'a', "realloc shrinks");
  check(realloc(grown, 0) == NULL, "realloc(p, 0) returns NULL");

  /* calloc zeroes, and fails cleanly on overflow. */
  unsigned char* zeroed = calloc(100, 3);
  int all_zero = zeroed != NULL;
  for (int i = 0; zeroed && i < 300; ++i) all_zero &= zeroed[i] == 0;
  check(all_zero, "calloc zeroes");
  free(zeroed);
  errno = 0;
  check(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "calloc overflow -> NULL, ENOMEM");
  errno = 0;
  check(malloc(SIZE_MAX - 8) == NULL && errno == ENOMEM, "huge malloc -> NULL, ENOMEM");
  errno = 0;
  check(reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "reallocarray overflow");
  void* array = reallocarray(NULL, 10, 10);
  check(array != NULL, "reallocarray(NULL, 10, 10)");
  free(array);

  /* Every aligned API, alignments 16 .. 65536. */
  for (size_t alignment = 16; alignment <= 65536; alignment *= 2) {
    void* a = memalign(alignment, 100);
    check(a != NULL && aligned(a, alignment), "memalign alignment");
    free(a);
    void* b = aligned_alloc(alignment, alignment * 2);
    check(b != NULL && aligned(b, alignment), "aligned_alloc alignment");
    free(b);
    void* c = NULL;
    check(posix_memalign(&c, alignment, 77) == 0 && aligned(c, alignment), "posix_memalign alignment");
    free(c);
  }
  void* untouched = (void*)0x1;
  check(posix_memalign(&untouched, 24, 10) == EINVAL && untouched == (void*)0x1,
        "posix_memalign rejects a non-power-of-two alignment, leaves *out alone");
  check(posix_memalign(&untouched, 4, 10) == EINVAL, "posix_memalign rejects alignment < sizeof(void*)");

  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void* v = valloc(10);
  check(v != NULL && aligned(v, page), "valloc is page aligned");
  free(v);
  void* pv = pvalloc(100);
  check(pv != NULL && aligned(pv, page) && malloc_usable_size(pv) >= page, "pvalloc rounds to a page");
  free(pv);

  /* malloc_usable_size covers at least the request. */
  void* sized = malloc(33);
  check(malloc_usable_size(sized) >= 33, "malloc_usable_size >= request");
  check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0");
  free(sized);
  return failures == 0 ? 0 : 1;
}
