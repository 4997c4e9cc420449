// Layout of a tracked block and its canaries. Hot path; no allocation, no locks.
//
//   real ──► [ slack (alignment) | BlockHeader (32 bytes) | user bytes ... | tail canary ]
//                                                          ▲ user pointer
// The header's last 16 bytes and the tail (kTailBytes, at least, up to the next 16-byte
// boundary plus 16) hold canary bytes derived from `secret ^ user address`, so a block filled
// with a constant or copied from another block never looks intact by accident.
// The header is never trusted to find a block: ownership comes from the BlockIndex, which also
// holds the authoritative size, so an underflow that smashes the header cannot mislead free().
#pragma once
#include <cstddef>
#include <cstdint>

#include "heapscope/block_layout.h"

namespace heapscope::preload::block {

struct BlockHeader {
  uint64_t size;             // requested size (mirror of the index entry, for debuggers)
  uint32_t alloc_stack_id;   // mirror, for debuggers
  uint32_t front_offset;     // user - real
  uint8_t front_canary[16];  // immediately before the user bytes
};
static_assert(sizeof(BlockHeader) == layout::kHeaderBytes);

inline constexpr size_t kDefaultAlignment = 16;
inline constexpr size_t kMinTailBytes = layout::kMinTailBytes;
inline constexpr uint8_t kFreedFill = 0xfd;   // freed user bytes while in the quarantine
inline constexpr uint8_t kFreshFill = 0xbe;   // fresh malloc bytes (never relied on by programs)

// Per-process random secret mixed into every canary; set once at init.
void set_secret(uint64_t secret) noexcept;

// Bytes before the user pointer for a given alignment (>= sizeof(BlockHeader)).
inline size_t front_bytes(size_t alignment) noexcept { return layout::front_bytes(alignment); }
// Bytes after the user bytes: the tail canary, rounded so the whole block stays 16-aligned.
inline size_t tail_bytes(size_t size) noexcept { return layout::tail_bytes(size); }
// Total bytes to reserve from the real allocator; false on overflow.
bool total_bytes(size_t size, size_t alignment, size_t& total) noexcept;

// Writes header and both canaries around `user`.
void arm(void* user, size_t size, size_t front, uint32_t stack_id) noexcept;
// The same with a tail canary of `tail_length` bytes (at most 32): a guarded block's tail ends
// at its guard page (guarded_pages.h).
void arm_with_tail(void* user, size_t size, size_t front, uint32_t stack_id, size_t tail_length) noexcept;

// Checks both canaries. Returns 0 if intact; otherwise sets `bad_offset` to the first damaged
// byte relative to `user` (negative = underflow) and returns 1 (overflow) or -1 (underflow).
int check(const void* user, size_t size, int64_t& bad_offset) noexcept;
int check_with_tail(const void* user, size_t size, size_t tail_length, int64_t& bad_offset) noexcept;

// Fills freed user bytes, and later checks that the fill is intact. check_fill returns the
// offset of the first changed byte, or -1.
void fill_freed(void* user, size_t size) noexcept;
int64_t check_fill(const void* user, size_t size) noexcept;

}  // namespace heapscope::preload::block
