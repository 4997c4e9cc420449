// `.debug_frame`: the call frame information of code built with -g but without unwind tables
// (-fno-asynchronous-unwind-tables, common in embedded builds and some distributions), which
// the loader does not map: read from the module's file once, when a frame first needs it,
// indexed by address, and kept (valgrind and libunwind read it too). Not hot-path code: the
// walker reaches it only through the rule cache's misses.
#pragma once
#include <cstddef>
#include <cstdint>

struct dl_find_object;

namespace heapscope::preload::unwind {

struct DebugFrameEntry {
  const uint8_t* fde;      // the FDE covering the address
  const uint8_t* section;  // the section's start: CIE pointers are offsets from it
  const uint8_t* section_end;
  uint64_t bias;           // the module's load bias: FDE addresses are link-time ones
};

// The `.debug_frame` FDE covering `address` in the module `found` describes; false if the
// module has no such section or no FDE covers the address. Waits while another thread reads
// the same module's section for the first time.
bool find_debug_frame(const dl_find_object& found, uint64_t address, DebugFrameEntry& out) noexcept;

// After dlclose: a module loaded later at the same address is another file.
void forget_debug_frames() noexcept;
// A fork child: a thread that was reading a section at the fork does not exist in the child.
void reset_debug_frames_in_fork_child() noexcept;

}  // namespace heapscope::preload::unwind
