// Call shapes for the unwinder tests (fast_unwind_test.cpp), in C and with per-function
// optimization so each kind of frame the compilers emit is present: rsp-based -O2 frames,
// rbp-based -O0 frames, alloca frames and realigned (DRAP) frames, plus libc's own frames
// around a qsort callback.
#include <alloca.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef void (*leaf_fn)(void* context);

// Recursion through a volatile pointer: the compiler cannot turn it into a loop.
typedef int (*recursion_fn)(int depth, leaf_fn leaf, void* context);
int shape_optimized(int depth, leaf_fn leaf, void* context);
int shape_unoptimized(int depth, leaf_fn leaf, void* context);
static recursion_fn volatile optimized_self = shape_optimized;
static recursion_fn volatile unoptimized_self = shape_unoptimized;

__attribute__((noinline)) int shape_optimized(int depth, leaf_fn leaf, void* context) {
  if (depth == 0) {
    leaf(context);
    return 1;
  }
  return optimized_self(depth - 1, leaf, context) + depth;  // not a tail call
}

__attribute__((noinline, optimize("O0"))) int shape_unoptimized(int depth, leaf_fn leaf, void* context) {
  if (depth == 0) {
    leaf(context);
    return 1;
  }
  return unoptimized_self(depth - 1, leaf, context) + depth;
}

__attribute__((noinline)) int shape_alloca(int bytes, leaf_fn leaf, void* context) {
  volatile char* buffer = (volatile char*)alloca((size_t)bytes);
  buffer[0] = 1;
  leaf(context);
  return buffer[0];
}

// Incoming arguments on the stack plus an over-aligned local: GCC realigns with a DRAP
// register, and the CFA becomes an expression over rbp.
__attribute__((noinline)) int shape_realigned(int a, int b, int c, int d, int e, int f, int g, int h,
                                              leaf_fn leaf, void* context) {
  _Alignas(64) volatile int local[16];
  local[0] = a + b + c + d + e + f + g + h;
  leaf(context);
  return local[0];
}

struct sort_call {
  leaf_fn leaf;
  void* context;
  int called;
};
static struct sort_call* current_sort;

static int compare_and_capture(const void* a, const void* b) {
  if (!current_sort->called) {
    current_sort->called = 1;
    current_sort->leaf(current_sort->context);
  }
  return memcmp(a, b, sizeof(int));
}

__attribute__((noinline)) int shape_through_libc(leaf_fn leaf, void* context) {
  struct sort_call call = {leaf, context, 0};
  current_sort = &call;
  int values[8] = {5, 3, 7, 1, 8, 2, 6, 4};
  qsort(values, 8, sizeof(int), compare_and_capture);
  return values[0];
}

// Two callers with the same frame size reaching one function: the second walk meets the first
// walk's frames at the same stack addresses with the same return addresses up to `shape_middle`,
// and only the return address into the caller differs.
__attribute__((noinline)) int shape_middle(int tag, leaf_fn leaf, void* context) {
  volatile int local = tag;
  leaf(context);
  return local;
}

__attribute__((noinline)) int shape_caller_a(leaf_fn leaf, void* context) {
  volatile int local = 1;
  return shape_middle(local, leaf, context) + 1;
}

__attribute__((noinline)) int shape_caller_b(leaf_fn leaf, void* context) {
  volatile int local = 2;
  return shape_middle(local, leaf, context) + 2;
}
