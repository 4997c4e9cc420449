/* heapscope client API: calls a program can make about its own heap. C and C++.
 *
 * Every call is a harmless no-op (returning 0) when the program runs without heapscope, and
 * using it adds no link dependency: the agent's entry points are weak references that stay null
 * unless libheapscope.so is loaded (heapscope run, or LD_PRELOAD). A non-PIE executable
 * resolves an undefined weak reference to 0 when it is linked, so there each call looks its
 * entry point up with dlsym() instead (in libc since glibc 2.34; link with -ldl before that).
 *
 *   #include <heapscope/heapscope.h>
 *   heapscope_mark_phase("load config");
 *   ...
 *   if (heapscope_verify_heap() != 0) { ... }   // damaged blocks were just reported
 */
#ifndef HEAPSCOPE_HEAPSCOPE_H
#define HEAPSCOPE_HEAPSCOPE_H

#include <dlfcn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported by the agent (preload/interpose/client_api.cpp). Do not call these directly: a program that
 * runs without heapscope has them null. */
extern int heapscope_agent_verify_heap(void) __attribute__((weak));
extern int heapscope_agent_ignore_object(const void* pointer) __attribute__((weak));
extern void heapscope_agent_mark_phase(const char* label) __attribute__((weak));
extern int heapscope_agent_leak_check(void) __attribute__((weak));
extern unsigned long long heapscope_agent_error_count(void) __attribute__((weak));
struct heapscope_lost_site;
extern int heapscope_agent_leak_check_sites(struct heapscope_lost_site* sites, int capacity, int* filled)
    __attribute__((weak));

/* Not part of the API: the agent's entry point `name`, the weak reference when the linker kept
 * it, else looked up now. (void*)0 is RTLD_DEFAULT, which <dlfcn.h> names only under
 * _GNU_SOURCE. */
static inline void* heapscope_entry_point_(void* weak_reference, const char* name) {
  return weak_reference != 0 ? weak_reference : dlsym((void*)0, name);
}
#define HEAPSCOPE_ENTRY_POINT_(type, name) ((type)heapscope_entry_point_((void*)(name), #name))

/* 1 when the program runs under heapscope, else 0. */
static inline int heapscope_running(void) {
  return HEAPSCOPE_ENTRY_POINT_(int (*)(void), heapscope_agent_verify_heap) != 0;
}

/* Checks the canaries of every live block and the fill of every block in the quarantine now.
 * Each damaged block is reported once (as an overflow, underflow or use_after_free error, with
 * this call's stack) and not again later. Returns the number of damaged blocks found. */
static inline int heapscope_verify_heap(void) {
  int (*verify)(void) = HEAPSCOPE_ENTRY_POINT_(int (*)(void), heapscope_agent_verify_heap);
  return verify ? verify() : 0;
}

/* Declares a live block as intentionally kept: it is never reported as a leak (counted as
 * "ignored" instead). `pointer` is what an allocation function returned. Returns 1 if it was a
 * live block of the agent's, else 0. */
static inline int heapscope_ignore_object(const void* pointer) {
  int (*ignore)(const void*) = HEAPSCOPE_ENTRY_POINT_(int (*)(const void*), heapscope_agent_ignore_object);
  return ignore ? ignore(pointer) : 0;
}

/* Classifies every live block by reachability now (as at exit: definite, indirect, possible,
 * reachable), with the program's other threads paused meanwhile. The report lists, per check,
 * the lost blocks (definite, indirect, possible) no earlier check had found lost. Returns the
 * number of those blocks. */
static inline int heapscope_leak_check(void) {
  int (*check)(void) = HEAPSCOPE_ENTRY_POINT_(int (*)(void), heapscope_agent_leak_check);
  return check ? check() : 0;
}

/* One allocation stack of blocks a leak check newly found lost (heapscope_leak_check_sites). */
typedef struct heapscope_lost_site {
  unsigned long long bytes;   /* of the site's newly lost blocks */
  unsigned long long blocks;
  void* frames[4];            /* its innermost frames, return addresses (0 past the stack's end or
                                 when not kept); name them with dladdr() or addr2line */
} heapscope_lost_site;

/* heapscope_leak_check(), and the allocation stacks of the blocks it newly found lost, most
 * bytes first: up to `capacity` of them in `sites`, their number in *filled (0 without
 * heapscope). Returns what heapscope_leak_check() returns. */
static inline int heapscope_leak_check_sites(heapscope_lost_site* sites, int capacity, int* filled) {
  int (*check)(heapscope_lost_site*, int, int*) =
      HEAPSCOPE_ENTRY_POINT_(int (*)(heapscope_lost_site*, int, int*), heapscope_agent_leak_check_sites);
  if (filled) *filled = 0;
  return check ? check(sites, capacity, filled) : 0;
}

/* Heap errors heapscope has reported in this process so far (every kind: overflows, uses after
 * free, invalid, double and mismatched frees), whenever they were found: compare two readings
 * to learn whether the code between them made one. 0 without heapscope (or with an agent too
 * old to count). */
static inline unsigned long long heapscope_error_count(void) {
  unsigned long long (*count)(void) = HEAPSCOPE_ENTRY_POINT_(unsigned long long (*)(void), heapscope_agent_error_count);
  return count ? count() : 0;
}

/* Names the phase of the program that starts now (up to 63 bytes are kept); the report lists
 * phases with the heap's size and the allocation count when each began. */
static inline void heapscope_mark_phase(const char* label) {
  void (*mark)(const char*) = HEAPSCOPE_ENTRY_POINT_(void (*)(const char*), heapscope_agent_mark_phase);
  if (mark) mark(label);
}

#ifdef __cplusplus
}
#endif

#endif /* HEAPSCOPE_HEAPSCOPE_H */
