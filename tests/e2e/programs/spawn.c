/* Children started without fork: posix_spawn and system(). The spawned child is this program
 * with argument "child", which leaks 321 bytes and exits 4; system() runs it again through
 * /bin/sh. The parent leaks nothing of its own and exits 0 if both children exited 4. */
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;
static void* keep;

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    keep = malloc(321);
    return 4;
  }
  char* child_argv[] = {argv[0], "child", NULL};
  pid_t child = 0;
  if (posix_spawn(&child, "/proc/self/exe", NULL, NULL, child_argv, environ) != 0) return 1;
  int status = 0;
  waitpid(child, &status, 0);
  const int spawned_ok = WIFEXITED(status) && WEXITSTATUS(status) == 4;
  char command[4200] = "exec ";
  char self[4096] = {0};
  if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0) return 1;
  strcat(command, self);
  strcat(command, " child");
  const int result = system(command);
  const int system_ok = WIFEXITED(result) && WEXITSTATUS(result) == 4;
  return spawned_ok && system_ok ? 0 : 1;
}
