/* A signal handler that allocates and frees while the main thread is itself allocating: the
 * handler's calls may arrive while the thread is inside the agent (nested path). Must finish
 * with no error and no leak. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks = 0;

static void on_alarm(int signal_number) {
  (void)signal_number;
  char* scratch = malloc(128);
  if (scratch) memset(scratch, 1, 128);
  free(scratch);
  ++ticks;
}

int main(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_alarm;
  sigaction(SIGALRM, &action, NULL);
  /* Prime the allocator's per-thread cache for the handler's size, as a careful program would:
   * glibc malloc is not async-signal-safe, natively or under heapscope. */
  on_alarm(0);
  ticks = 0;
  struct itimerval timer = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &timer, NULL);
  while (ticks < 200) {
    for (int i = 0; i < 8; ++i) free(malloc(32 + (size_t)i * 16));
  }
  struct itimerval stop = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &stop, NULL);
  return 0;
}
