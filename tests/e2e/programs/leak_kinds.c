/* Every reachability case of the leak scan, each allocated by its own function so the test can
 * find it by name in the report:
 *   definite_block   lost outright                         -> definite
 *   chain_head/_middle/_tail  a lost list                  -> head definite, the rest indirect
 *   cycle_a/cycle_b  two lost blocks pointing at each other -> one definite, one indirect
 *   interior_block   only a pointer 16 bytes in survives   -> possible
 *   global_block     pointed to from a global (.bss)       -> reachable
 *   data_block       pointed to from an initialized global (.data, file-backed) -> reachable
 *   hidden_block     its address kept XORed in a global    -> definite
 *   tls_block        from the main thread's TLS            -> reachable
 *   thread_tls_block from a live thread's TLS               -> reachable
 *   stack_block      from a live thread's stack            -> reachable
 *   register_block   only in a live thread's register (x86-64) -> reachable
 *   early_lost       lost before heapscope_leak_check()    -> listed by the first check only
 * With the argument "blocked", one more thread blocks every signal: under the signal fallback
 * the scan cannot stop it, and the report must say so. With "noptrace", a seccomp filter makes
 * ptrace fail with EPERM, as in a container that forbids it: the scan must fall back to
 * stopping threads with a signal (the filter also refuses process_vm_readv, as some container
 * profiles do). "noptrace blocked" combines both. With "killptrace", the
 * filter kills the task that calls ptrace instead: the scan must survive the loss of its
 * helper and fall back the same way. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heapscope/heapscope.h"

#define KEY ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

struct node { struct node* next; char payload[24]; };

static void* global_root;
static void* data_root = &data_root;  /* initialized: in .data, a file-backed mapping */
static char* interior_root;
static uintptr_t hidden_root;
static __thread void* tls_root;
static sem_t threads_ready;

__attribute__((noinline)) void* definite_block(void) { return malloc(100); }
__attribute__((noinline)) struct node* chain_tail(void) { return calloc(1, sizeof(struct node)); }
__attribute__((noinline)) struct node* chain_middle(void) { return calloc(1, sizeof(struct node)); }
__attribute__((noinline)) struct node* chain_head(void) { return calloc(1, sizeof(struct node)); }
__attribute__((noinline)) struct node* cycle_a(void) { return calloc(1, sizeof(struct node)); }
__attribute__((noinline)) struct node* cycle_b(void) { return calloc(1, sizeof(struct node)); }
__attribute__((noinline)) void* interior_block(void) { return malloc(64); }
__attribute__((noinline)) void* global_block(void) { return malloc(48); }
__attribute__((noinline)) void* hidden_block(void) { return malloc(56); }
__attribute__((noinline)) void* data_block(void) { return malloc(44); }
__attribute__((noinline)) void* tls_block(void) { return malloc(40); }
__attribute__((noinline)) void* thread_tls_block(void) { return malloc(72); }
__attribute__((noinline)) void* stack_block(void) { return malloc(80); }
__attribute__((noinline)) void* register_block(void) { return malloc(88); }
__attribute__((noinline)) void* early_lost(void) { return malloc(24); }

static void* stack_holder(void* unused) {
  (void)unused;
  void* volatile on_stack = stack_block();
  tls_root = thread_tls_block();
  sem_post(&threads_ready);
  for (;;) pause();
  return on_stack;
}

#if defined(__x86_64__)
/* Set by register_holder once r12 holds the block: posting a semaphore before the asm let the
 * exit scan, on a busy machine, stop the thread before r12 held anything (a flaky "definite"). */
static volatile int register_ready = 0;

static void* register_holder(void* unused) {
  (void)unused;
  /* Only the XORed value is in memory; the asm loop decodes it into r12, says so, and spins. */
  volatile uintptr_t disguised = (uintptr_t)register_block() ^ KEY;
  __asm__ volatile("mov %1, %%r12\n\txor %2, %%r12\n\tmovl $1, %0\n1:\tpause\n\tjmp 1b"
                   : "=m"(register_ready) : "r"(disguised), "r"(KEY) : "r12");
  return NULL;
}
#endif

static void* signal_blocker(void* unused) {
  (void)unused;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  sem_post(&threads_ready);
  for (;;) pause();
  return NULL;
}

static void forbid_ptrace(unsigned action) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ptrace, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, action),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = {sizeof(filter) / sizeof(filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    perror("seccomp");
    exit(2);
  }
}

static int has_argument(int argc, char** argv, const char* word) {
  for (int i = 1; i < argc; ++i)
    if (strcmp(argv[i], word) == 0) return 1;
  return 0;
}

static void lose_things(void) {
  (void)definite_block();
  struct node* head = chain_head();
  head->next = chain_middle();
  head->next->next = chain_tail();
  struct node* a = cycle_a();
  struct node* b = cycle_b();
  a->next = b;
  b->next = a;
  /* Overwrite the locals' stack slots: this frame is dead after return, but be explicit. */
  head = a = b = NULL;
}

int main(int argc, char** argv) {
  if (has_argument(argc, argv, "noptrace")) forbid_ptrace(SECCOMP_RET_ERRNO | EPERM);
  if (has_argument(argc, argv, "killptrace")) forbid_ptrace(SECCOMP_RET_KILL_THREAD);
  (void)early_lost();
  printf("first check: %d\n", heapscope_leak_check());
  printf("second check: %d\n", heapscope_leak_check());

  sem_init(&threads_ready, 0, 0);
  pthread_t thread;
  int threads = 0;
  pthread_create(&thread, NULL, stack_holder, NULL);
  ++threads;
#if defined(__x86_64__)
  pthread_create(&thread, NULL, register_holder, NULL);
#endif
  if (has_argument(argc, argv, "blocked")) {
    pthread_create(&thread, NULL, signal_blocker, NULL);
    ++threads;
  }
  for (int i = 0; i < threads; ++i) sem_wait(&threads_ready);
#if defined(__x86_64__)
  while (!register_ready) sched_yield();
#endif

  lose_things();
  interior_root = (char*)interior_block() + 16;
  global_root = global_block();
  data_root = data_block();
  hidden_root = (uintptr_t)hidden_block() ^ KEY;
  tls_root = tls_block();
  puts("done");
  return 0;  /* exit() with the helper threads still running */
}
