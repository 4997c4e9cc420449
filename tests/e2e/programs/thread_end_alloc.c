/* Allocates while a thread ends, after heapscope's own end-of-thread hook has run: the agent's
 * thread-specific key is made at the first tracked pthread_create, so a key the program makes
 * afterwards has a higher index and glibc runs its destructor later. That destructor keeps 99
 * bytes (reachable from a global) from late_alloc. */
#include <pthread.h>
#include <stdlib.h>

static pthread_key_t late_key;
void* kept;

__attribute__((noinline)) void late_alloc(void) {
  kept = malloc(99);
  __asm__ volatile("" ::: "memory");
}

static void on_late_key(void* value) {
  (void)value;
  late_alloc();
}

static void* first(void* unused) { return unused; }

static void* second(void* unused) {
  pthread_setspecific(late_key, &late_key);
  return unused;
}

int main(void) {
  pthread_t thread;
  pthread_create(&thread, NULL, first, NULL);  /* the agent's key exists from here */
  pthread_join(thread, NULL);
  pthread_key_create(&late_key, on_late_key);
  pthread_create(&thread, NULL, second, NULL);
  pthread_join(thread, NULL);
  return kept != NULL ? 0 : 1;
}
