/* A statically linked program (built -static) that says "ready" and waits on stdin: what
 * `heapscope attach` must refuse, with no allocation call it could redirect. */
#include <unistd.h>

int main(void) {
  (void)!write(1, "ready\n", 6);
  char buffer[64];
  while (read(0, buffer, sizeof(buffer)) > 0) {
  }
  return 0;
}
