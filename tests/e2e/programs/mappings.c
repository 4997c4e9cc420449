/* The program's own mmap family (issue 12, point 11): known sizes from known functions.
 *   map_scratch:   3 anonymous private regions of 64 KiB; one unmapped, one cut in two by an
 *                  munmap of its middle page (16 + 44 KiB stay), one kept
 *   map_table:     a 1 MiB anonymous region grown by mremap to 2 MiB (kept)
 *   map_file:      this program's own file, mapped shared read-only, then unmapped
 * At exit: 64 + 60 KiB from map_scratch in 3 regions, 2 MiB from grow_table: 2,224,128 bytes.
 * Peak: those, and the file's one page while it is mapped: 2,228,224 bytes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void* keep[4];

static char* map_scratch(void) {
  return mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* mappings:scratch */
}

static char* map_table(void) {
  return mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* mappings:table */
}

static char* grow_table(char* table) {
  return mremap(table, 1 << 20, 2 << 20, MREMAP_MAYMOVE); /* mappings:grow */
}

static int map_file(const char* path) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  char* mapped = mmap(NULL, 100, PROT_READ, MAP_SHARED, fd, 0); /* mappings:file */
  close(fd);
  if (mapped == MAP_FAILED) return -1;
  const int elf = memcmp(mapped + 1, "ELF", 3) == 0;
  munmap(mapped, 100);
  return elf ? 0 : -1;
}

int main(int argc, char** argv) {
  (void)argc;
  char* a = map_scratch();
  char* b = map_scratch();
  char* c = map_scratch();
  char* table = map_table();
  if (a == MAP_FAILED || b == MAP_FAILED || c == MAP_FAILED || table == MAP_FAILED) return 1;
  memset(a, 1, 64 << 10);
  memset(table, 2, 1 << 20);
  munmap(b, 64 << 10);
  munmap(c + (16 << 10), 4096); /* c: 16 KiB before the hole, 44 KiB after it */
  table = grow_table(table);
  if (table == MAP_FAILED || table[(1 << 20) - 1] != 2) return 2;
  if (map_file(argv[0]) != 0) return 3;
  if (munmap(a + 1, 4096) == 0) return 4; /* unaligned: EINVAL, and nothing recorded */
  keep[0] = a;
  keep[1] = c;
  keep[2] = table;
  puts("mapped");
  return 0;
}
