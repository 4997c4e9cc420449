/* fork() while other threads allocate and free without pause: the child must not deadlock on
 * a lock a vanished thread held (the agent takes its locks around fork). Each child allocates,
 * frees and exits 0; the parent checks every child's status and exits 0 only if all succeeded. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kThreads = 3, kForks = 40 };

static atomic_int stop = 0;

static void* churn(void* arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    void* blocks[8];
    for (int i = 0; i < 8; ++i) blocks[i] = malloc(16 + (size_t)i * 24);
    for (int i = 0; i < 8; ++i) free(blocks[i]);
  }
  return NULL;
}

int main(void) {
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, churn, NULL);
  int failures = 0;
  for (int i = 0; i < kForks; ++i) {
    const pid_t child = fork();
    if (child == 0) {
      void* block = malloc(100);
      free(block);
      _exit(block != NULL ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  return failures == 0 ? 0 : 1;
}
