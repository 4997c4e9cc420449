// Raw system services for the agent: thread ids, clocks, sleeping, memory mapping.
// Everything here is async-signal-safe and never allocates: callable from the hot path.
#pragma once
#include <cerrno>
#include <cstddef>
#include <cstdint>

#define HEAPSCOPE_HOT  // marks hot-path functions (see STYLE.md section 7)
#define HEAPSCOPE_EXPORT __attribute__((visibility("default")))
// The tracked path of each operation is one flattened function (every call inside inlined, across
// files thanks to LTO: see preload/CMakeLists.txt for why depth matters). Rare branches (set-up,
// errors, growing a table, a full ring) are HEAPSCOPE_COLD: kept out of line, so the flattened
// code stays the size of its common case.
#define HEAPSCOPE_FLATTEN __attribute__((flatten))
#define HEAPSCOPE_COLD __attribute__((cold, noinline))

namespace heapscope::preload::sys {

// Puts errno back when it goes out of scope: at the agent's entry points that make system
// calls (a leak scan, a heap check), whose failures are the agent's, not the program's.
class KeepErrno {
 public:
  KeepErrno() noexcept : saved_(errno) {}
  ~KeepErrno() { errno = saved_; }
  KeepErrno(const KeepErrno&) = delete;
  KeepErrno& operator=(const KeepErrno&) = delete;

 private:
  int saved_;
};

// Kernel thread id of the caller, cached in initial-exec TLS (reset in a fork child).
uint32_t thread_id() noexcept;
void forget_thread_id() noexcept;

uint64_t now_ns() noexcept;            // CLOCK_MONOTONIC
// CLOCK_MONOTONIC_COARSE: a few ms of resolution for a fraction of the cost; event timestamps
// only need to place events on a heap-over-time chart (order comes from the ring).
uint64_t coarse_now_ns() noexcept;
// Finds the vDSO's clock_gettime so coarse_now_ns calls it directly rather than through glibc's
// wrapper: one call level less under every malloc (see preload/CMakeLists.txt on why depth
// matters). Until then, or without a vDSO, coarse_now_ns goes through glibc. Init path only.
void init_clock() noexcept;
void sleep_ns(uint64_t ns) noexcept;   // nanosleep (not a cancellation point here); EINTR ends it
bool process_alive(int pid) noexcept;  // kill(pid, 0) != ESRCH; errno untouched

// mmap, munmap and mprotect as raw system calls: errno is left alone, and the program's own
// mmap family, which the agent interposes (interpose_mmap.cpp) to record, never sees the
// agent's mappings. map_memory returns nullptr on failure (never MAP_FAILED).
void* map_memory(void* hint, size_t bytes, int protection, int flags, int fd = -1, uint64_t offset = 0) noexcept;
bool unmap_memory(void* address, size_t bytes) noexcept;
bool protect_memory(void* address, size_t bytes, int protection) noexcept;

// Anonymous private mapping for the agent's own tables; MAP_NORESERVE so untouched pages cost
// nothing. nullptr on failure. Every such mapping is listed (for_each_agent_mapping) until
// unmapped: a leak scan must not read them as roots (the index holds every block's address).
void* map_anonymous(size_t bytes) noexcept;
void unmap(void* address, size_t bytes) noexcept;
void for_each_agent_mapping(void (*visit)(uint64_t begin, uint64_t end, void*), void* context) noexcept;
size_t agent_mapping_count() noexcept;
// Mappings map_anonymous made but could not list (the list was full), still mapped. A scan that
// cannot exclude all of the agent's memory would read the index as roots: it says so instead
// (format::ScanStatus::kAgentMemoryUnlisted).
uint64_t unlisted_mappings() noexcept;
// A mapping kept out of the list, for tables that are listed elsewhere (the walker's registry).
void* map_unlisted(size_t bytes) noexcept;
void unmap_unlisted(void* address, size_t bytes) noexcept;

// System calls without libc's wrappers, for every file the agent touches: none of them is a
// cancellation point (a thread cancelled inside the agent would die holding what it holds: a
// lock, a ring record the collector then waits for forever) and none changes errno (the
// program's, which a successful malloc must leave alone). Failures return -1.
int open_file(const char* path, int flags, int mode = 0) noexcept;
long read_some(int fd, void* buffer, size_t bytes) noexcept;  // restarts after EINTR
long pread_some(int fd, void* buffer, size_t bytes, uint64_t offset) noexcept;
void close_file(int fd) noexcept;

// write(2) all of `bytes`, retrying on EINTR/short writes. Best effort.
void write_all(int fd, const char* data, size_t bytes) noexcept;

size_t string_length(const char* text) noexcept;
bool string_equal(const char* a, const char* b, size_t bytes) noexcept;
// Environment lookup that does not depend on libc having finished initializing.
const char* get_env(const char* name) noexcept;

}  // namespace heapscope::preload::sys
