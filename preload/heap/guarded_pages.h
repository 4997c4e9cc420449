// --guard-pages (Electric Fence's idea): each block gets pages of its own, its last byte right
// before an inaccessible page, so a read or write past its end faults at the instruction that
// made it, and a freed block's pages become inaccessible while it sits in the quarantine, so a
// use after free faults too. agent.cpp's SIGSEGV watcher names the block and reports the access
// with its stack (heap_ops.h: describe_fault). The cost: two system calls and a mapping per
// block, and two of the kernel's vm.max_map_count areas (65530 by default) per block, live or
// quarantined. Guarding stops 8192 areas short of that limit (past it every mmap fails, the
// allocator's and the agent's too): further blocks get the ordinary layout until guarded ones
// are released, and one warning says so.
//
//   mapping ──► [ slack | BlockHeader | user bytes | tail (0..15) ][ guard page, PROT_NONE ]
//                                     ▲ user pointer (its alignment kept)  ▲ a page boundary
// The tail is what alignment leaves between the user bytes and the guard page, filled with
// the tail canary (checked at free, as usual); an access past it faults.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload::guarded {

// The user pointer of a fresh guarded block of `size` bytes aligned to `alignment` (<= 16:
// default), and in `front` its distance from the mapping's start; nullptr when the block
// cannot be guarded (an alignment above a page, or no mapping to be had): the caller uses the
// ordinary layout. The bytes are zero.
void* map_block(size_t size, size_t alignment, size_t& front) noexcept;

// Canary bytes between a guarded block's end and its guard page (at most 32 of them: a wider
// gap, left by an alignment above 32, is checked over its first 32 bytes).
size_t tail_bytes(uint64_t user, uint64_t size) noexcept;

// A freed block: its pages become inaccessible and their memory goes back to the kernel (the
// addresses stay reserved, so an access faults instead of reaching whatever came next).
void retire(uint64_t user, uint64_t size, uint64_t front) noexcept;

// Gives a block's addresses back (a retired block leaving the quarantine, or one released at
// once with the quarantine off).
void unmap_block(uint64_t user, uint64_t size, uint64_t front) noexcept;

// The mapping [begin, end) of a block, its guard page included: where a fault belongs to it.
struct Span {
  uint64_t begin, end;
};
Span span_of(uint64_t user, uint64_t size, uint64_t front) noexcept;

}  // namespace heapscope::preload::guarded
