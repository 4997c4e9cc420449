// The allocator underneath us (glibc, jemalloc, tcmalloc, ...), found with dlsym(RTLD_NEXT).
// dlsym itself may call calloc before the lookup is done; those calls are served from a static
// bump buffer whose blocks are never released (free() recognizes and ignores them).
#pragma once
#include <cstddef>

namespace heapscope::preload::real {

// Resolves every entry point. Safe to call repeatedly; returns false if malloc/free are missing.
bool resolve() noexcept;
// The attach agent's resolution: the definitions the program itself reaches, looked up by
// `lookup` (got::default_definition) before any slot is redirected. RTLD_NEXT means nothing
// for a library the program did not preload.
bool resolve_with(void* (*lookup)(const char* name)) noexcept;

void* malloc(size_t size) noexcept;
void* calloc(size_t count, size_t size) noexcept;
void* realloc(void* pointer, size_t size) noexcept;
void free(void* pointer) noexcept;
// posix_memalign semantics: 0 or an errno value.
int posix_memalign(void** out, size_t alignment, size_t size) noexcept;
size_t usable_size(void* pointer) noexcept;

// True when the allocator underneath is glibc's (its arenas and mmapped chunks have a known
// shape: leak_scan.cpp). Set by resolve.
bool is_glibc() noexcept;

// True for pointers handed out by the bootstrap buffer.
bool is_bootstrap(const void* pointer) noexcept;

}  // namespace heapscope::preload::real
