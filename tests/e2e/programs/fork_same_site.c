/* fork between allocations from one call site at one depth: the parent allocates there twice,
 * the child allocates from 16 other stacks (taking the first stack ids of its own, which start
 * afresh; it keeps the first block, 8 bytes), leaks 77 bytes from another function and then 123
 * bytes from that same site. Each leak must come with its own stack: nothing the parent
 * remembered about that site (its stack id) may carry over. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void* keep[3];

__attribute__((noinline)) static void* make(size_t bytes) {
  void* block = malloc(bytes);
  __asm__ volatile("" ::: "memory");
  return block;
}

__attribute__((noinline)) static void* other(size_t bytes) {
  void* block = malloc(bytes);
  __asm__ volatile("" ::: "memory");
  return block;
}

__attribute__((noinline)) static void* deeper(int depth, size_t bytes) {
  void* block = depth == 0 ? malloc(bytes) : deeper(depth - 1, bytes);
  __asm__ volatile("" ::: "memory");
  return block;
}

__attribute__((noinline)) static void step(int phase) {
  void* block = make(phase == 2 ? 123 : 16);  // the one call site
  if (phase == 2) keep[0] = block;
  else free(block);
  __asm__ volatile("" ::: "memory");
}

int main(void) {
  for (int phase = 0; phase < 3; ++phase) {
    if (phase == 2) {
      const pid_t child = fork();
      if (child != 0) {
        int status = 0;
        waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
      }
      keep[2] = deeper(0, 8);
      for (int depth = 1; depth < 16; ++depth) free(deeper(depth, 8));
      keep[1] = other(77);
    }
    step(phase);
  }
  return 0;
}
