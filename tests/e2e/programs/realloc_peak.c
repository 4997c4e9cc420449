/* The realloc shape of issue 12: a 128 KiB block grown to 256 KiB, then freed. The program never
 * holds more than 256 KiB: massif and heaptrack report that peak. No other allocation (no stdio). */
#include <stdlib.h>
#include <string.h>

int main(void) {
  char* block = malloc(128 << 10);
  memset(block, 1, 128 << 10);
  block = realloc(block, 256 << 10);
  memset(block, 2, 256 << 10);
  free(block);
  return 0;
}
