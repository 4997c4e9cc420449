// heapscope's own share of the process's resident memory, measured at each RSS sample (the
// heap-over-time view shows the program's RSS apart from the agent's). Not hot-path code:
// called from the sampler, at most once per sample_ms, never from nested (signal) context.
#pragma once
#include <cstdint>

#include "heapscope/event_format.h"

namespace heapscope::preload {

class RingWriter;

// Finds the agent's own loaded segments. Init path (walks the loader's list once).
void init_agent_memory() noexcept;

// Resident bytes of the agent's mappings (tables, ring, own image) from /proc/self/pagemap.
// `quarantine_bytes` is the quarantine's current hold, passed in by the caller that owns it.
format::AgentMemoryEvent measure_agent_memory(const RingWriter& ring, uint64_t quarantine_bytes) noexcept;

}  // namespace heapscope::preload
