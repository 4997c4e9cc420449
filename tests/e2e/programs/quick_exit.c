/* Ends with _exit(7) or _Exit(7) (argv[1]: "_exit", "_Exit"), which run no exit handler: one
 * block kept in a global (still reachable), one lost (the only pointer overwritten, 48 bytes). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void* kept;

__attribute__((noinline)) static void lose_one(void) {
  void* volatile lost = malloc(48);
  memset((void*)lost, 0, 48);
  lost = NULL;
}

int main(int argc, char** argv) {
  kept = malloc(96);
  lose_one();
  if (argc > 1 && strcmp(argv[1], "_Exit") == 0) _Exit(7);
  _exit(7);
}
