/* fork: the child leaks 111 bytes and exits 7; the parent waits, leaks 222 bytes.
 * With argument "exec": the child execs this program again with "leaf", which leaks 333 bytes;
 * the pre-exec child image's leak (444 bytes) is not a leak, exec released it. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void* keep[4];

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "leaf") == 0) {
    keep[0] = malloc(333);
    return 0;
  }
  const int do_exec = argc > 1 && strcmp(argv[1], "exec") == 0;
  const pid_t child = fork();
  if (child == 0) {
    if (do_exec) {
      keep[1] = malloc(444);
      execl("/proc/self/exe", argv[0], "leaf", (char*)NULL);
      _exit(99);
    }
    keep[2] = malloc(111);
    exit(7);
  }
  int status = 0;
  waitpid(child, &status, 0);
  keep[3] = malloc(222);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}
