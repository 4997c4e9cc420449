// How many bytes heapscope adds around each block it tracks under `heapscope run`: the agent
// lays blocks out by these (preload/heap/block_header.h draws the layout), and the analyzer
// counts, from the same functions, the bytes the headers and canaries of live blocks take in
// the heap (heapscope's share of the RSS). Plain constexpr arithmetic, usable on the hot path.
#pragma once
#include <cstdint>

namespace heapscope::layout {

inline constexpr uint64_t kHeaderBytes = 32;   // block::BlockHeader, right before the user bytes
inline constexpr uint64_t kMinTailBytes = 16;  // tail canary, at least

// Bytes before the user pointer for a given alignment (0 or <= 16: the default).
constexpr uint64_t front_bytes(uint64_t alignment) noexcept {
  return alignment <= kHeaderBytes ? kHeaderBytes : alignment;
}
// Bytes after the user bytes: the tail canary, rounded so the whole block stays 16-aligned.
constexpr uint64_t tail_bytes(uint64_t size) noexcept { return ((16 - (size & 15)) & 15) + kMinTailBytes; }

}  // namespace heapscope::layout
