// One heap error per run, chosen by argv[1]; the program then carries on and exits 0, proving
// that heapscope kept it alive. No stdio: counts stay exact.
#include <stdlib.h>
#include <string.h>

#include <string_view>

static char global_buffer[64];

__attribute__((noinline)) char* make_block(size_t size) { return static_cast<char*>(malloc(size)); }

__attribute__((noinline)) void overflow() {
  char* block = make_block(32);
  block[32] = 'x';  // one past the end
  free(block);
}

__attribute__((noinline)) void underflow() {
  char* block = make_block(32);
  block[-1] = 'x';
  free(block);
}

__attribute__((noinline)) void double_free() {
  char* block = make_block(48);
  free(block);
  free(block);
}

__attribute__((noinline)) void invalid_free_stack() {
  char local[16];
  free(local + (reinterpret_cast<uintptr_t>(local) & 0));  // hide from -Wfree-nonheap-object
}

__attribute__((noinline)) void invalid_free_global() { free(global_buffer + (global_buffer[0] & 0)); }

__attribute__((noinline)) void invalid_free_interior() {
  char* block = make_block(40);
  free(block + 8);
  free(block);  // the real free, so only the interior one is an error
}

__attribute__((noinline)) void malloc_then_delete() {
  int* block = static_cast<int*>(malloc(sizeof(int)));
  delete block;
}

__attribute__((noinline)) void new_then_free() {
  int* block = new int(7);
  free(block);
}

__attribute__((noinline)) void new_array_then_delete() {
  int* block = new int[8];
  delete block;
}

__attribute__((noinline)) void write_after_free() {
  char* block = make_block(56);
  free(block);
  block[5] = 'x';  // found when the quarantine is checked at exit
}

__attribute__((noinline)) void write_after_free_evicted() {
  char* block = make_block(56);
  free(block);
  block[0] = 'x';
  // Push enough freed bytes through the quarantine (1 MiB budget in the test) to evict it.
  for (int i = 0; i < 64; ++i) free(make_block(64 * 1024));
}

int main(int argc, char** argv) {
  const std::string_view which = argc > 1 ? argv[1] : "";
  if (which == "overflow") overflow();
  else if (which == "underflow") underflow();
  else if (which == "double_free") double_free();
  else if (which == "invalid_free_stack") invalid_free_stack();
  else if (which == "invalid_free_global") invalid_free_global();
  else if (which == "invalid_free_interior") invalid_free_interior();
  else if (which == "malloc_delete") malloc_then_delete();
  else if (which == "new_free") new_then_free();
  else if (which == "new_array_delete") new_array_then_delete();
  else if (which == "use_after_free") write_after_free();
  else if (which == "use_after_free_evicted") write_after_free_evicted();
  else return 2;
  return 0;
}
