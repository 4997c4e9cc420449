// Periodic samples of the process for the heap-over-time view: resident set size and, when the
// allocator underneath is glibc's, its mallinfo2 statistics. Triggered from the tracked
// allocation path by whichever thread first notices that sample_ms has passed (one CAS), so no
// thread of ours runs inside the program. Never called from nested (signal) context.
#pragma once
#include <cstdint>

namespace heapscope::preload {

class RingWriter;

// Looks up mallinfo2 and decides whether it describes the allocator in use. Call once at init.
// `quarantine_bytes` reports the quarantine's hold for heapscope's share of the RSS
// (agent_memory.h); nullptr: none.
void init_sampler(uint32_t interval_ms, uint64_t (*quarantine_bytes)() noexcept) noexcept;
// Cheap check on every allocation: samples when the interval has passed since the last one.
void maybe_sample(RingWriter& ring, uint64_t now_ns) noexcept;
// Unconditionally (at start and at the end of recording). Writes a kSample record, then a
// kAgentMemory record with heapscope's share of the memory it measured.
void sample_now(RingWriter& ring) noexcept;

}  // namespace heapscope::preload
