// The rules of every code address met so far, shared by all threads (see fast_unwind.h for the
// per-thread caches in front of it). Hot path: lock-free reads; a writer takes a try-lock and
// skips caching when it is busy, so a signal handler interrupting a writer never waits.
#pragma once
#include <cstdint>

namespace heapscope::preload::unwind {

// Maps the cache. Call once at init; false when the mapping failed (the walker then declines
// every stack).
bool init_rule_cache() noexcept;
bool rule_cache_ready() noexcept;

// The encoded rule (Rule::encode) at `address`, read from .eh_frame the first time.
uint64_t shared_rule(uint64_t address) noexcept;

// Drops every cached rule: after dlclose the same addresses may hold other code. Per-thread
// caches see the generation change and drop theirs at their next walk.
void forget_rules() noexcept;
uint32_t rules_generation() noexcept;

// A fork child: a writer that was another thread at the fork will never finish, and would
// leave every later forget_rules() spinning. (A writer this thread's fork interrupted writes
// only its own slot, which stays consistent either way.)
void reset_rule_cache_in_fork_child() noexcept;

}  // namespace heapscope::preload::unwind
