/* Leaks 777 bytes, then dies as argv[1] says: "segv" (a real invalid write), "kill" (SIGKILL
 * to itself, which no handler can see), "abort", "term" (SIGTERM to itself) or "pipe" (a write
 * to a pipe nobody reads: SIGPIPE). The report must still list the leak and say how the process
 * ended. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void* keep;

__attribute__((noinline)) void leak_before_crash(void) { keep = malloc(777); }

int main(int argc, char** argv) {
  leak_before_crash();
  const char* how = argc > 1 ? argv[1] : "";
  if (strcmp(how, "segv") == 0) {
    volatile int* nowhere = (int*)16;
    *nowhere = 1;
  } else if (strcmp(how, "kill") == 0) {
    kill(getpid(), SIGKILL);
  } else if (strcmp(how, "abort") == 0) {
    abort();
  } else if (strcmp(how, "term") == 0) {
    kill(getpid(), SIGTERM);
  } else if (strcmp(how, "pipe") == 0) {
    int ends[2];
    if (pipe(ends) == 0) {
      close(ends[0]);
      (void)!write(ends[1], "x", 1);
    }
  }
  return 0;
}
