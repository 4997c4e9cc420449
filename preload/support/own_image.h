// The agent's own loaded segments: what of the address space is libheapscope.so's code and
// data (the leak scan never reads its data as roots; the RSS share counts its pages). Init
// path only: it walks the loader's list of modules.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

struct ImageSegment {
  uint64_t begin, end;  // page-rounded
};

// Fills `out` with up to `capacity` of the agent's PT_LOAD segments (only the writable ones
// when `writable_only`); returns how many.
size_t find_own_segments(ImageSegment* out, size_t capacity, bool writable_only) noexcept;

}  // namespace heapscope::preload
