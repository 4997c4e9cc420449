/* fork: the child leaks 111 bytes and exits 7; the parent waits, leaks 222 bytes.
 * With argument "exec": the child execs this program again with "leaf", which leaks 333 bytes;
 * the pre-exec child image's leak (444 bytes) is not a leak, exec released it.
 * With argument "execle": the same through execle() with an environment of its own; the leaf
 * exits 0 only if that environment arrived (it carries the agent's variables along). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

static void* keep[4];

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "leaf") == 0) {
    keep[0] = malloc(333);
    const char* marker = getenv("FORK_EXEC_MARKER");
    return argc > 2 && strcmp(argv[2], "execle") == 0 ? !(marker && strcmp(marker, "passed") == 0) : 0;
  }
  const int use_execle = argc > 1 && strcmp(argv[1], "execle") == 0;
  const int do_exec = (argc > 1 && strcmp(argv[1], "exec") == 0) || use_execle;
  const pid_t child = fork();
  if (child == 0) {
    if (do_exec) {
      keep[1] = malloc(444);
      if (use_execle) {
        /* The environment of our own, plus what tracing needs (the agent and its session). */
        static char marker[] = "FORK_EXEC_MARKER=passed";
        char* env[8] = {marker};
        int n = 1;
        const char* keep_vars[] = {"LD_PRELOAD", "HEAPSCOPE_SESSION", "HEAPSCOPE_COLLECTOR", "HEAPSCOPE_OPTIONS"};
        for (int i = 0; i < 4; ++i) {
          const size_t length = strlen(keep_vars[i]);
          for (char** e = environ; *e; ++e)
            if (strncmp(*e, keep_vars[i], length) == 0 && (*e)[length] == '=') env[n++] = *e;
        }
        env[n] = NULL;
        execle("/proc/self/exe", argv[0], "leaf", "execle", (char*)NULL, env);
      } else {
        execl("/proc/self/exe", argv[0], "leaf", (char*)NULL);
      }
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
