/* A long-running, multi-threaded daemon for `heapscope attach` tests (built PIE, full RELRO,
 * -fno-plt). Threads: two churn malloc/calloc/realloc/free and check every block they made;
 * one leaks a block every 5 ms (leak_periodically); one keeps a block every 5 ms in a global
 * list (keep_in_list); one waits in epoll_wait and treats EINTR as fatal; the main thread
 * reads commands from stdin with read() and treats EINTR as fatal:
 *   old      free half of the 2000 blocks made before any attach, realloc a quarter, size the rest
 *   hold     allocate blocks of every API and keep them (to free after a detach)
 *   dlopen P load the shared library P (found through the daemon's RUNPATH if P has no '/')
 *   plugin   call plugin_leak() of the library loaded last
 *   threads  start 300 short-lived threads one after another, each allocating and freeing
 *   quit     stop, free what `hold` kept, check every block, exit 0 (1 if a check failed)
 * It prints "ready" once set up and "ok CMD" after each command. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { kOld = 2000, kHeld = 5 };
static void* old_blocks[kOld];
static size_t old_sizes[kOld];
static void* held[kHeld];
static volatile int stopping;
static volatile int failures;

struct node {
  struct node* next;
  char payload[40];
};
static struct node* kept_list;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char* text) {
  (void)!write(1, text, strlen(text));
}

static void fail(const char* what) {
  char line[256];
  snprintf(line, sizeof(line), "FAIL %s (errno %d)\n", what, errno);
  (void)!write(2, line, strlen(line));
  failures++;
}

static void fill(unsigned char* block, size_t size, unsigned char seed) {
  for (size_t i = 0; i < size; i++) block[i] = (unsigned char)(seed + i);
}

static int intact(const unsigned char* block, size_t size, unsigned char seed) {
  for (size_t i = 0; i < size; i++)
    if (block[i] != (unsigned char)(seed + i)) return 0;
  return 1;
}

static void* churn(void* argument) {
  unsigned seed = (unsigned)(uintptr_t)argument;
  void* slots[64] = {0};
  size_t sizes[64] = {0};
  while (!stopping) {
    const int i = rand_r(&seed) % 64;
    if (slots[i] != NULL) {
      if (!intact(slots[i], sizes[i], (unsigned char)i)) fail("churn block damaged");
      if (rand_r(&seed) % 3 == 0) {
        const size_t grown = sizes[i] * 2 + 1;
        unsigned char* moved = realloc(slots[i], grown);
        if (moved == NULL) fail("realloc");
        if (!intact(moved, sizes[i], (unsigned char)i)) fail("realloc lost bytes");
        slots[i] = moved;
        sizes[i] = grown;
        fill(slots[i], sizes[i], (unsigned char)i);
        continue;
      }
      free(slots[i]);
      slots[i] = NULL;
      continue;
    }
    sizes[i] = 1 + (size_t)(rand_r(&seed) % 2000);
    slots[i] = (rand_r(&seed) % 2) ? malloc(sizes[i]) : calloc(1, sizes[i]);
    if (slots[i] == NULL) fail("malloc");
    fill(slots[i], sizes[i], (unsigned char)i);
  }
  for (int i = 0; i < 64; i++) free(slots[i]);
  return NULL;
}

static void* last_leak;
/* Zeroed: a block whose first word still held its allocator's free-list link to the next
 * leaked block would chain them all to last_leak (tcmalloc and mimalloc keep such links). */
__attribute__((noinline)) static void leak_periodically(void) {
  last_leak = malloc(100);
  memset(last_leak, 0, 100);
}

static void* leaker(void* unused) {
  (void)unused;
  while (!stopping) {
    leak_periodically();
    usleep(5000);
  }
  return NULL;
}

__attribute__((noinline)) static void keep_in_list(void) {
  struct node* fresh = malloc(sizeof(*fresh));
  memset(fresh->payload, 7, sizeof(fresh->payload));
  pthread_mutex_lock(&kept_lock);
  fresh->next = kept_list;
  kept_list = fresh;
  pthread_mutex_unlock(&kept_lock);
}

static void* keeper(void* unused) {
  (void)unused;
  while (!stopping) {
    keep_in_list();
    usleep(5000);
  }
  return NULL;
}

static int wake_fd;
static int epoll;  /* made before "ready": tests compare the descriptors open from then on */
static void* poller(void* unused) {
  (void)unused;
  for (;;) {
    struct epoll_event got;
    const int ready = epoll_wait(epoll, &got, 1, -1);
    if (ready < 0) {
      fail("epoll_wait returned an error");  // EINTR included: nothing here sends signals
      return NULL;
    }
    if (stopping) return NULL;
  }
}

static void old_command(void) {
  for (int i = 0; i < kOld; i++) {
    if (!intact(old_blocks[i], old_sizes[i], (unsigned char)i)) fail("pre-attach block damaged");
    if (i % 2 == 0) {
      free(old_blocks[i]);
      old_blocks[i] = NULL;
    } else if (i % 4 == 1) {
      unsigned char* moved = realloc(old_blocks[i], old_sizes[i] + 64);
      if (moved == NULL || !intact(moved, old_sizes[i], (unsigned char)i)) fail("realloc of a pre-attach block");
      old_blocks[i] = moved;
    } else if (malloc_usable_size(old_blocks[i]) < old_sizes[i]) {
      fail("malloc_usable_size of a pre-attach block");
    }
  }
}

static void hold_command(void) {
  held[0] = malloc(300);
  held[1] = calloc(10, 30);
  held[2] = aligned_alloc(64, 640);
  if (posix_memalign(&held[3], 128, 1280) != 0) fail("posix_memalign");
  held[4] = realloc(malloc(10), 5000);
  for (int i = 0; i < kHeld; i++) {
    if (held[i] == NULL) fail("hold allocation");
    else memset(held[i], 0x5a, malloc_usable_size(held[i]));  // every usable byte is the program's
  }
}

static void* short_lived(void* unused) {
  (void)unused;
  for (int i = 0; i < 10; i++) free(malloc(64 + (size_t)i));
  return NULL;
}

static void threads_command(void) {
  for (int i = 0; i < 300; i++) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, short_lived, NULL) != 0) {
      fail("pthread_create");
      return;
    }
    pthread_join(thread, NULL);
  }
}

static void* library;
static void dlopen_command(const char* path) {
  library = dlopen(path, RTLD_NOW);
  if (library == NULL) fail(dlerror());
}

static void plugin_command(void) {
  void (*plugin_leak)(void) = library != NULL ? (void (*)(void))dlsym(library, "plugin_leak") : NULL;
  if (plugin_leak == NULL) fail("plugin_leak missing");
  else plugin_leak();
}

int main(void) {
  for (int i = 0; i < kOld; i++) {
    old_sizes[i] = 16 + (size_t)(i % 300);
    old_blocks[i] = malloc(old_sizes[i]);
    fill(old_blocks[i], old_sizes[i], (unsigned char)i);
  }
  wake_fd = eventfd(0, 0);
  epoll = epoll_create1(0);
  struct epoll_event wanted = {.events = EPOLLIN};
  epoll_ctl(epoll, EPOLL_CTL_ADD, wake_fd, &wanted);
  pthread_t threads[5];
  pthread_create(&threads[0], NULL, churn, (void*)1);
  pthread_create(&threads[1], NULL, churn, (void*)2);
  pthread_create(&threads[2], NULL, leaker, NULL);
  pthread_create(&threads[3], NULL, keeper, NULL);
  pthread_create(&threads[4], NULL, poller, NULL);
  say("ready\n");
  char line[4096];
  size_t used = 0;
  for (;;) {
    const ssize_t got = read(0, line + used, sizeof(line) - 1 - used);
    if (got < 0) {
      fail("read returned an error");  // EINTR included
      break;
    }
    if (got == 0) break;
    used += (size_t)got;
    line[used] = '\0';
    char* end;
    while ((end = strchr(line, '\n')) != NULL) {
      *end = '\0';
      if (strcmp(line, "old") == 0) old_command();
      else if (strcmp(line, "hold") == 0) hold_command();
      else if (strncmp(line, "dlopen ", 7) == 0) dlopen_command(line + 7);
      else if (strcmp(line, "plugin") == 0) plugin_command();
      else if (strcmp(line, "threads") == 0) threads_command();
      else if (strcmp(line, "quit") == 0) goto quit;
      say("ok ");
      say(line);
      say("\n");
      used -= (size_t)(end + 1 - line);
      memmove(line, end + 1, used + 1);
    }
  }
quit:
  stopping = 1;
  const uint64_t one = 1;
  (void)!write(wake_fd, &one, sizeof(one));
  for (int i = 0; i < 5; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < kHeld; i++) {
    if (held[i] != NULL && malloc_usable_size(held[i]) < 300) fail("held block too small after detach");
    free(held[i]);  // blocks made while attached, freed without heapscope
  }
  for (int i = 0; i < kOld; i++) free(old_blocks[i]);
  say(failures == 0 ? "clean\n" : "FAILED\n");
  return failures == 0 ? 0 : 1;
}
