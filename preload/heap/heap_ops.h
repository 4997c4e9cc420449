// The semantics of every allocation entry point, on top of the real allocator: debug header and
// canaries, ownership checks, error detection, quarantine, and event recording. The interposers
// (interpose_malloc.cpp, interpose_new.cpp) are thin wrappers over these. Hot path.
#pragma once
#include <cstddef>

#include "block_index.h"
#include "heapscope/event_format.h"

namespace heapscope::preload::heap {

// A tracked block of `size` bytes aligned to `alignment` (a power of two; <= 16 means default).
// nullptr on exhaustion or size overflow; errno is left for the caller to set.
void* allocate(size_t size, size_t alignment, format::Api api, format::Family family,
               bool zeroed) noexcept;

// Releases a block after checking it is ours, live, of the expected family, and intact.
// Invalid and double frees are reported and skipped; a mismatched or damaged block is reported
// and still released.
void release(void* pointer, format::Api api) noexcept;

// realloc semantics (glibc): nullptr pointer = allocate; size 0 = release and return nullptr.
void* reallocate(void* pointer, size_t size, format::Api api) noexcept;

// Checks every live block's canaries and every quarantined block's fill now, reporting each
// damaged block once with the caller's stack. Returns how many were damaged.
int verify_all() noexcept;

// Checks a block's canaries as it is laid out (a guarded block's tail ends at its guard page):
// 0 if intact, else block::check's result and offset.
int check_canaries(const BlockEntry& entry, int64_t& bad_offset) noexcept;

// --guard-pages: a fault at `address` (from a SIGSEGV or SIGBUS) inside a guarded block's pages
// is reported as the overflow or use after free it is, with the stack of the faulting
// instruction (`context`, the signal's ucontext_t), and true is returned; false when the
// address is no guarded block's. `write`: the access was a write.
bool report_guard_fault(uint64_t address, bool write, const void* context) noexcept;

// Requested size of a tracked block; 0 for nullptr or a pointer that is not ours.
size_t usable_size(void* pointer) noexcept;

// Calls that bypass tracking. `nested`: the thread is already inside the agent (signal handler,
// unwinder, init); the block comes from the nested arena, never from the real allocator.
// Otherwise the agent is disabled and the real allocator is used untouched (blocks of the
// nested arena made during init are still recognized).
void* passthrough_allocate(size_t size, size_t alignment, bool zeroed, bool nested) noexcept;
void passthrough_release(void* pointer, bool nested) noexcept;
void* passthrough_reallocate(void* pointer, size_t size, bool nested) noexcept;
size_t passthrough_usable_size(void* pointer) noexcept;

}  // namespace heapscope::preload::heap
