/* Correct programs doing unusual things (issue 15), one per mode (argv[1]). Natively each
 * prints its line and exits 0; under heapscope it must do exactly the same: no hang, no crash,
 * no changed result. Modes that check a result exit 1 with a message when it is wrong. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "heapscope/heapscope.h"

static int fail(const char* what) {
  fprintf(stderr, "torture: %s\n", what);
  return 1;
}

/* --- fork-in-signal: a SIGALRM handler forks (fork is async-signal-safe) while main churns
 * malloc/free, so the fork often interrupts the thread inside malloc. The handler only forks:
 * main reaps the children, so the program moves on however long a child takes. */
static volatile sig_atomic_t forks_done = 0;

static void fork_on_alarm(int signal_number) {
  (void)signal_number;
  if (forks_done >= 100) return;  /* the timer may fire once more before main stops it */
  const int saved = errno;
  pid_t child = fork();
  if (child == 0) _exit(0);
  if (child > 0) ++forks_done;
  errno = saved;
}

static int fork_in_signal(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = fork_on_alarm;
  action.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &action, NULL);
  struct itimerval timer = {{0, 2000}, {0, 2000}};
  setitimer(ITIMER_REAL, &timer, NULL);
  int reaped = 0;
  while (forks_done < 100) {
    for (int i = 0; i < 16; ++i) free(malloc(24 + (size_t)i * 8));
    while (waitpid(-1, NULL, WNOHANG) > 0) ++reaped;
  }
  struct itimerval stop = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &stop, NULL);
  while (reaped < forks_done) {
    int status = 0;
    if (waitpid(-1, &status, 0) < 0) {
      if (errno == EINTR) continue;
      return fail("a child went missing");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("a child did not exit 0");
    ++reaped;
  }
  printf("forks %d\n", (int)forks_done);
  return 0;
}

/* --- cancel-in-malloc: threads churning the heap are cancelled (deferred). glibc's malloc has
 * no cancellation point, so a thread can only die between calls; afterwards the heap still
 * works for everyone. */
static void* churn_forever(void* unused) {
  (void)unused;
  for (;;) {
    void* block = malloc(64);
    free(block);
    pthread_testcancel();
  }
  return NULL;
}

static int cancel_in_malloc(void) {
  for (int round = 0; round < 100; ++round) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, churn_forever, NULL) != 0) return fail("pthread_create");
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
    pthread_cancel(thread);
    pthread_join(thread, NULL);
  }
  /* Enough events to fill a ring whose reader waits on a record that will never be written. */
  for (int i = 0; i < 2000000; ++i) free(malloc(16));
  puts("cancelled 100");
  return 0;
}

/* --- prot-none-block: a coroutine stack carved from the heap with a guard page, reachable from
 * a global at exit; the page after the guard holds the only pointer to another block. */
static char* coroutine_stack;

static int prot_none_block(void) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  coroutine_stack = aligned_alloc(page, 16 * page);
  if (coroutine_stack == NULL) return fail("aligned_alloc");
  memset(coroutine_stack, 0, 16 * page);
  *(void**)(coroutine_stack + 2 * page) = malloc(100);
  if (mprotect(coroutine_stack + page, page, PROT_NONE) != 0) return fail("mprotect");
  puts("guarded");
  return 0;
}

/* --- clobbered-fp: code that uses rbp as a general register (as -fomit-frame-pointer code may)
 * calls malloc with rbp pointing into unmapped memory just above the stack pointer. */
static int clobbered_fp(void) {
  /* An unmapped page: mapped, then unmapped, so nothing else is there. */
  char* hole = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (hole == MAP_FAILED) return fail("mmap");
  munmap(hole, 4096);
  void* blocks[3];
  for (int i = 0; i < 3; ++i) {
    void* fake_frame = i == 0 ? (void*)hole : i == 1 ? (void*)((uintptr_t)&blocks + 4096 * 64) : (void*)1;
    void* result;
    __asm__ volatile(
        "push %%rbp\n\t"
        "sub $8, %%rsp\n\t" /* the call's stack stays 16-byte aligned, as the ABI wants */
        "mov %[frame], %%rbp\n\t"
        "mov $48, %%edi\n\t"
        "call malloc@PLT\n\t"
        "add $8, %%rsp\n\t"
        "pop %%rbp\n\t"
        : "=a"(result)
        : [frame] "r"(fake_frame)
        : "rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11", "memory", "cc");
    blocks[i] = result;
  }
  for (int i = 0; i < 3; ++i) free(blocks[i]);
  puts("survived");
  return 0;
}

/* --- huge-alignment: alignments of 4 GiB and more keep every bit; impossible alignments are
 * refused as glibc refuses them. */
static int huge_alignment(void) {
  const size_t four_gib = (size_t)1 << 32;
  char* aligned = aligned_alloc(four_gib, 64);
  if (aligned == NULL) return fail("aligned_alloc(4 GiB) returned NULL");
  if ((uintptr_t)aligned % four_gib != 0) return fail("aligned_alloc(4 GiB) is misaligned");
  memset(aligned, 1, 64);
  free(aligned);
  void* posix = NULL;
  if (posix_memalign(&posix, four_gib * 2, 64) != 0) return fail("posix_memalign(8 GiB) failed");
  if ((uintptr_t)posix % (four_gib * 2) != 0) return fail("posix_memalign(8 GiB) is misaligned");
  free(posix);
  errno = 0;
  void* impossible = memalign(((size_t)1 << 63) + 1, 16);
  if (impossible != NULL || errno != EINVAL) return fail("memalign(2^63 + 1) did not fail with EINVAL");
  errno = 0;
  impossible = aligned_alloc(((size_t)1 << 63) + 3, 16);
  if (impossible != NULL || errno != EINVAL) return fail("aligned_alloc(2^63 + 3) did not fail with EINVAL");
  puts("aligned");
  return 0;
}

/* --- errno: a successful call leaves errno alone (glibc >= 2.33 promises it for free), from
 * ordinary code and from a signal handler (whose stack crosses the kernel's signal frame). */
static volatile int errno_changed_in_handler = 0;

static void allocate_keeping_errno(int signal_number) {
  (void)signal_number;
  const int saved = errno;
  errno = 4141;
  void* block = malloc(40);
  if (errno != 4141) errno_changed_in_handler = 1;
  free(block);
  errno = saved;
}

static int errno_kept(void) {
  signal(SIGUSR2, allocate_keeping_errno);
  for (int i = 0; i < 200; ++i) raise(SIGUSR2);
  if (errno_changed_in_handler) return fail("a successful malloc in a signal handler changed errno");
  void* blocks[256];
  for (int i = 0; i < 256; ++i) {
    errno = 4242;
    blocks[i] = i % 3 == 0 ? malloc((size_t)i + 1) : i % 3 == 1 ? calloc(1, (size_t)i + 1) : aligned_alloc(64, 64);
    if (blocks[i] == NULL) return fail("allocation failed");
    if (errno != 4242) return fail("a successful allocation changed errno");
    blocks[i] = realloc(blocks[i], (size_t)i + 100);
    if (errno != 4242) return fail("a successful realloc changed errno");
  }
  for (int i = 0; i < 256; ++i) {
    errno = 4343;
    free(blocks[i]);
    if (errno != 4343) return fail("free changed errno");
  }
  puts("errno kept");
  return 0;
}

/* --- fork-during-dl-iterate: another thread walks the module list (holding the loader's lock)
 * while main forks; the children only _exit, as after a failed exec. */
static volatile int stop_walking = 0;

static int count_module(struct dl_phdr_info* info, size_t size, void* data) {
  (void)info;
  (void)size;
  ++*(int*)data;
  for (volatile int spin = 0; spin < 2000; ++spin) {
  }
  return 0;
}

static void* walk_modules(void* unused) {
  (void)unused;
  while (!stop_walking) {
    int modules = 0;
    dl_iterate_phdr(count_module, &modules);
  }
  return NULL;
}

static int fork_during_dl_iterate(void) {
  pthread_t walker;
  if (pthread_create(&walker, NULL, walk_modules, NULL) != 0) return fail("pthread_create");
  for (int i = 0; i < 200; ++i) {
    free(malloc(32));
    pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return fail("fork");
  }
  stop_walking = 1;
  pthread_join(walker, NULL);
  puts("forked 200");
  return 0;
}

/* --- dlopen-dlclose: two threads load and unload the same library at once, allocating in
 * between. dlclose frees the library's loader data holding the loader's lock. */
static const char* plugin_path;

static void* load_unload(void* unused) {
  (void)unused;
  for (int i = 0; i < 3000; ++i) {
    void* handle = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) return (void*)1;
    free(malloc(40));
    dlclose(handle);
  }
  return NULL;
}

static int dlopen_dlclose(const char* path) {
  plugin_path = path;
  pthread_t threads[2];
  for (int i = 0; i < 2; ++i) pthread_create(&threads[i], NULL, load_unload, NULL);
  void* results[2];
  for (int i = 0; i < 2; ++i) pthread_join(threads[i], &results[i]);
  if (results[0] != NULL || results[1] != NULL) return fail(dlerror());
  puts("loaded 6000");
  return 0;
}

/* --- signal-under-ulimit: under `ulimit -v`, allocations in a signal handler that interrupts
 * malloc still succeed. */
static volatile sig_atomic_t handler_failures = 0;
static volatile sig_atomic_t handler_calls = 0;

static void allocate_on_alarm(int signal_number) {
  (void)signal_number;
  void* block = malloc(200);
  if (block == NULL) ++handler_failures;
  free(block);
  ++handler_calls;
}

static int signal_under_ulimit(void) {
  struct rlimit limit = {(rlim_t)3 << 30, (rlim_t)3 << 30};
  if (setrlimit(RLIMIT_AS, &limit) != 0) return fail("setrlimit");
  allocate_on_alarm(0);  /* warm the handler's size class, as signal_alloc.c explains */
  handler_calls = 0;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = allocate_on_alarm;
  sigaction(SIGALRM, &action, NULL);
  struct itimerval timer = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &timer, NULL);
  while (handler_calls < 500) free(malloc(48));
  struct itimerval stop = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &stop, NULL);
  if (handler_failures != 0) return fail("malloc in a signal handler returned NULL");
  puts("handled 500");
  return 0;
}

/* --- vfork-exit: a vfork child that calls exit() (not _exit) runs the exit handlers in its
 * parent's memory; the parent's own leak, made after the child is gone (4242 bytes, lost),
 * must still be found definite. */
static void* lost_by_parent;

static __attribute__((noinline)) void lose_a_block(void) {
  lost_by_parent = malloc(4242);
  lost_by_parent = NULL;
}

static int vfork_exit(void) {
  pid_t child = vfork();
  if (child == 0) exit(0);
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return fail("vfork");
  lose_a_block();
  puts("vforked");
  return 0;
}

/* --- fork-without-handlers: clone() without CLONE_VM and _Fork() make processes without
 * running atfork handlers. Each child loses 777 bytes and ends with _exit; the parent keeps
 * 555 bytes in a global. */
static void* kept_by_parent;
static void* lost_in_child;

static __attribute__((noinline)) void lose_in_child(void) {
  lost_in_child = malloc(777);
  lost_in_child = NULL;
}

static int cloned_child(void* unused) {
  (void)unused;
  lose_in_child();
  _exit(0);
}

static int fork_without_handlers(void) {
  kept_by_parent = malloc(555);
  static char child_stack[256 * 1024] __attribute__((aligned(16)));
  pid_t child = clone(cloned_child, child_stack + sizeof child_stack, SIGCHLD, NULL);
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return fail("clone");
  child = _Fork();
  if (child == 0) {
    lose_in_child();
    _exit(0);
  }
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return fail("_Fork");
  free(malloc(10));  /* the parent still records into its own ring */
  puts("cloned and _Forked");
  return 0;
}

/* --- lose-then-exit: a forked child allocates 333 bytes and calls exit() with the block's
 * address left only in caller-saved registers, which are dead at the call (memcheck: definitely
 * lost). */
static __attribute__((noinline)) void lose_then_exit(void) {
  __asm__ volatile(
      "mov $333, %%edi\n\t"
      "call malloc@PLT\n\t"
      "mov %%rax, %%rcx\n\t"
      "mov %%rax, %%rdx\n\t"
      "mov %%rax, %%rsi\n\t"
      "mov %%rax, %%r8\n\t"
      "mov %%rax, %%r9\n\t"
      "mov %%rax, %%r10\n\t"
      "mov %%rax, %%r11\n\t"
      "xor %%edi, %%edi\n\t"
      "call exit@PLT"
      ::: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
}

static int lose_before_exit(void) {
  pid_t child = fork();
  if (child == 0) lose_then_exit();
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return fail("fork");
  puts("lost");
  return 0;
}

/* --- dlopen-relative: from DIR, loads plugins/libplugin.so by a path relative to the working
 * directory and calls its leak: the report must name the plugin's function. */
static int dlopen_relative(const char* directory) {
  if (chdir(directory) != 0) return fail("chdir");
  void* plugin = dlopen("plugins/libplugin.so", RTLD_NOW);
  if (plugin == NULL) return fail(dlerror());
  void (*plugin_leak)(void) = (void (*)(void))dlsym(plugin, "plugin_leak");
  if (plugin_leak == NULL) return fail("no plugin_leak");
  plugin_leak();
  puts("loaded");
  return 0;
}

/* --- verify-while-freeing: heapscope_verify_heap() runs while other threads free large blocks:
 * a correct program has no damaged block, however the calls interleave. */
static volatile int freeing_done = 0;

static void* free_large_blocks(void* unused) {
  (void)unused;
  for (int i = 0; i < 4000; ++i) {
    char* block = malloc(64 * 1024 + (size_t)(i % 7) * 4096);
    if (block == NULL) return (void*)1;
    memset(block, 7, 64 * 1024);
    free(block);
  }
  return NULL;
}

static int verify_while_freeing(void) {
  pthread_t threads[2];
  for (int i = 0; i < 2; ++i) pthread_create(&threads[i], NULL, free_large_blocks, NULL);
  int damaged = 0;
  for (int round = 0; round < 300; ++round) damaged += heapscope_verify_heap();
  for (int i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  if (damaged != 0) return fail("heapscope_verify_heap() found damage in a correct program");
  puts("verified");
  return 0;
}

/* --- descriptors: the program owns every descriptor. It prints the number its first open()
 * gets, closes everything above stderr as daemons do, then writes a file while allocating
 * (stacks through a signal handler too) and checks every byte it wrote. */
static volatile sig_atomic_t in_handler_allocations = 0;

static void allocate_in_handler(int signal_number) {
  (void)signal_number;
  free(malloc(72));
  ++in_handler_allocations;
}

static int descriptors(void) {
  const int first = open("/dev/null", O_RDONLY);
  printf("first descriptor %d\n", first);
  fflush(stdout);
  syscall(SYS_close_range, 3u, ~0u, 0u);
  char path[] = "/tmp/heapscope-torture-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return fail("mkstemp");
  unlink(path);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = allocate_in_handler;
  sigaction(SIGUSR1, &action, NULL);
  char line[64];
  for (int i = 0; i < 2000; ++i) {
    char* scratch = malloc(32 + (size_t)(i % 50));
    if (i % 100 == 0) raise(SIGUSR1);
    const int length = snprintf(line, sizeof line, "line %d\n", i);
    if (write(fd, line, (size_t)length) != length) return fail("a write failed");
    free(scratch);
  }
  if (lseek(fd, 0, SEEK_SET) != 0) return fail("lseek");
  FILE* back = fdopen(fd, "r");
  for (int i = 0; i < 2000; ++i) {
    int number = -1;
    if (fscanf(back, "line %d\n", &number) != 1 || number != i) return fail("the file lost what was written");
  }
  fclose(back);
  puts("descriptors intact");
  return 0;
}

/* --- unusual-roots: the only pointers to two blocks lie in memory memcheck reads as roots and
 * heapscope did not: a mapping of the program's that the kernel merged with the large blocks
 * glibc mmapped around it (100 bytes), and a table sealed with mprotect(PROT_READ) (200). */
static void* large_blocks[2];

static int unusual_roots(void) {
  const size_t page = 4096;
  large_blocks[0] = malloc(256 * 1024);  /* above the mmap threshold: a mapping of its own */
  void** between = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  large_blocks[1] = malloc(256 * 1024);
  if (between == MAP_FAILED || large_blocks[0] == NULL || large_blocks[1] == NULL) return fail("allocation");
  between[8 * page / sizeof(void*)] = malloc(100);
  void** sealed = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (sealed == MAP_FAILED) return fail("mmap");
  sealed[7] = malloc(200);
  if (mprotect(sealed, page, PROT_READ) != 0) return fail("mprotect");
  puts("roots");
  return 0;
}

/* --- coroutine-stack: a thread switches to a coroutine (swapcontext onto a heap stack) and is
 * still running it when main exits. The only pointer to a 300-byte block lies in the thread's
 * own stack, in the frame suspended in swapcontext: live, though no stack pointer is there. */
static ucontext_t thread_context;
static ucontext_t coroutine_context;
static volatile int in_coroutine = 0;

static void coroutine_body(void) {
  in_coroutine = 1;
  for (;;) pause();
}

static void* start_coroutine(void* unused) {
  (void)unused;
  void* volatile kept_on_own_stack = malloc(300);
  getcontext(&coroutine_context);
  coroutine_context.uc_stack.ss_size = 256 * 1024;
  coroutine_context.uc_stack.ss_sp = malloc(coroutine_context.uc_stack.ss_size);
  coroutine_context.uc_link = NULL;
  makecontext(&coroutine_context, coroutine_body, 0);
  swapcontext(&thread_context, &coroutine_context);
  return kept_on_own_stack;  /* never reached */
}

static int run_on_coroutine(void) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, start_coroutine, NULL) != 0) return fail("pthread_create");
  while (!in_coroutine) sched_yield();
  puts("switched");
  return 0;
}

/* --- timer-threads: 3000 expirations of a SIGEV_THREAD timer, each run on a thread glibc
 * starts for it (not through pthread_create), each allocating; then 4242 bytes are lost. The
 * exit scan must still classify (the agent's per-thread tables must not pile up). */
static volatile int expirations = 0;

static void on_expiration(union sigval unused) {
  (void)unused;
  free(malloc(48));
  __atomic_add_fetch(&expirations, 1, __ATOMIC_RELAXED);
}

static int timer_threads(void) {
  struct sigevent event;
  memset(&event, 0, sizeof event);
  event.sigev_notify = SIGEV_THREAD;
  event.sigev_notify_function = on_expiration;
  timer_t timer;
  if (timer_create(CLOCK_MONOTONIC, &event, &timer) != 0) return fail("timer_create");
  struct itimerspec every = {{0, 100 * 1000}, {0, 100 * 1000}};
  timer_settime(timer, 0, &every, NULL);
  while (__atomic_load_n(&expirations, __ATOMIC_RELAXED) < 3000) usleep(1000);
  timer_delete(timer);
  lose_a_block();
  puts("expired");
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return fail("usage: torture MODE");
  const char* mode = argv[1];
  if (strcmp(mode, "fork-in-signal") == 0) return fork_in_signal();
  if (strcmp(mode, "cancel-in-malloc") == 0) return cancel_in_malloc();
  if (strcmp(mode, "prot-none-block") == 0) return prot_none_block();
  if (strcmp(mode, "clobbered-fp") == 0) return clobbered_fp();
  if (strcmp(mode, "huge-alignment") == 0) return huge_alignment();
  if (strcmp(mode, "errno") == 0) return errno_kept();
  if (strcmp(mode, "fork-during-dl-iterate") == 0) return fork_during_dl_iterate();
  if (strcmp(mode, "dlopen-dlclose") == 0 && argc > 2) return dlopen_dlclose(argv[2]);
  if (strcmp(mode, "signal-under-ulimit") == 0) return signal_under_ulimit();
  if (strcmp(mode, "vfork-exit") == 0) return vfork_exit();
  if (strcmp(mode, "fork-without-handlers") == 0) return fork_without_handlers();
  if (strcmp(mode, "lose-before-exit") == 0) return lose_before_exit();
  if (strcmp(mode, "verify-while-freeing") == 0) return verify_while_freeing();
  if (strcmp(mode, "descriptors") == 0) return descriptors();
  if (strcmp(mode, "unusual-roots") == 0) return unusual_roots();
  if (strcmp(mode, "coroutine-stack") == 0) return run_on_coroutine();
  if (strcmp(mode, "timer-threads") == 0) return timer_threads();
  if (strcmp(mode, "dlopen-relative") == 0 && argc > 2) return dlopen_relative(argv[2]);
  return fail("unknown mode");
}
