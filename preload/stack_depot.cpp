// Lock-free stack deduplication (see stack_depot.h). Hot path: one hash, one probe on a hit.
#include "stack_depot.h"

#include <sched.h>

#include "sys.h"

namespace heapscope::preload {
namespace {

inline uint64_t mix(uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// Two independent 64-bit hashes of the frames. Each lane costs one multiply per frame and the
// lanes do not depend on each other, so the CPU overlaps them; a full mix finishes each lane.
inline void hash_frames(const uint64_t* frames, size_t count, uint64_t& key, uint64_t& check) noexcept {
  uint64_t a = 0x9e3779b97f4a7c15ull ^ count;
  uint64_t b = 0xc2b2ae3d27d4eb4full + count;
  for (size_t i = 0; i < count; ++i) {
    a = (a ^ frames[i]) * 0x9e3779b97f4a7c15ull;
    a ^= a >> 29;
    b = (b + frames[i]) * 0xc2b2ae3d27d4eb4full;
    b = (b << 31) | (b >> 33);
  }
  key = mix(a);
  check = mix(b ^ 0x165667b19e3779f9ull);
  if (key == 0) key = 1;
}

}  // namespace

bool StackDepot::init() noexcept {
  for (auto& level : levels_) level.store(nullptr, std::memory_order_relaxed);
  for (auto& used : used_) used.store(0, std::memory_order_relaxed);
  newest_.store(0, std::memory_order_relaxed);
  next_id_.store(1, std::memory_order_relaxed);
  return level(0) != nullptr;
}

void StackDepot::release() noexcept {
  for (size_t i = 0; i < kLevels; ++i) {
    sys::unmap(levels_[i].load(std::memory_order_relaxed), level_slots(i) * sizeof(Slot));
    levels_[i].store(nullptr, std::memory_order_relaxed);
  }
}

StackDepot::Slot* StackDepot::level(size_t index) noexcept {
  if (index >= kLevels) return nullptr;
  Slot* slots = levels_[index].load(std::memory_order_acquire);
  if (slots != nullptr) return slots;
  auto* fresh = static_cast<Slot*>(sys::map_anonymous(level_slots(index) * sizeof(Slot)));
  if (fresh == nullptr) return nullptr;
  if (!levels_[index].compare_exchange_strong(slots, fresh, std::memory_order_acq_rel)) {
    sys::unmap(fresh, level_slots(index) * sizeof(Slot));  // another thread mapped it first
    return slots;
  }
  return fresh;
}

HEAPSCOPE_HOT StackDepot::Probe StackDepot::probe(Slot* slots, size_t level, uint64_t key,
                                                  uint64_t check, uint32_t count,
                                                  bool may_insert) noexcept {
  const size_t mask = level_slots(level) - 1;
  for (size_t step = 0, i = key & mask; step < kMaxProbe; ++step, i = (i + 1) & mask) {
    Slot& slot = slots[i];
    uint64_t seen = slot.key.load(std::memory_order_acquire);
    if (seen == 0) {
      if (!may_insert) return {Outcome::kAbsent, nullptr, 0};
      if (slot.key.compare_exchange_strong(seen, key, std::memory_order_acq_rel)) {
        slot.check = check;
        slot.count = count;
        return {Outcome::kInserted, &slot, next_id_.fetch_add(1, std::memory_order_relaxed)};
      }
      // Lost the slot to another insert: `seen` is its key; fall through and compare.
    }
    if (seen != key) continue;
    uint32_t published;
    // Another thread is publishing this slot: it is a few stores away from done.
    while ((published = slot.id.load(std::memory_order_acquire)) == 0) sched_yield();
    if (slot.check == check && slot.count == count) return {Outcome::kFound, nullptr, published};
  }
  return {Outcome::kCongested, nullptr, 0};
}

bool StackDepot::open_next_level(uint32_t after) noexcept {
  if (after + 1 >= kLevels || level(after + 1) == nullptr) return false;
  newest_.compare_exchange_strong(after, after + 1, std::memory_order_acq_rel);
  return true;
}

HEAPSCOPE_HOT uint32_t StackDepot::put(
    const uint64_t* frames, size_t count,
    void (*on_new)(uint32_t, const uint64_t*, size_t, void*), void* context) noexcept {
  if (count == 0) return 0;
  uint64_t key = 0;
  uint64_t check = 0;
  hash_frames(frames, count, key, check);
  // Oldest (hottest) level first; only the newest takes inserts. Two threads racing to insert
  // one stack across a level switch may give it two ids: harmless, the analyzer merges stacks
  // with identical frames.
  for (uint32_t index = 0; index < kLevels; ++index) {
    Slot* slots = levels_[index].load(std::memory_order_acquire);
    if (slots == nullptr) return 0;
    const uint32_t newest = newest_.load(std::memory_order_acquire);
    const bool may_insert = index >= newest;
    const Probe found = probe(slots, index, key, check, static_cast<uint32_t>(count), may_insert);
    switch (found.outcome) {
      case Outcome::kFound:
        return found.id;
      case Outcome::kAbsent:
        continue;
      case Outcome::kCongested:
        if (may_insert && !open_next_level(index)) return 0;  // every level is full
        continue;
      case Outcome::kInserted:
        on_new(found.id, frames, count, context);
        found.slot->id.store(found.id, std::memory_order_release);
        // Open the next level before this one gets crowded (60% full).
        if ((used_[index].fetch_add(1, std::memory_order_relaxed) + 1) * 10 > level_slots(index) * 6)
          open_next_level(index);
        return found.id;
    }
  }
  return 0;
}

}  // namespace heapscope::preload
