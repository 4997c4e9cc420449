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

inline uint64_t rotate(uint64_t x, unsigned bits) noexcept { return (x << bits) | (x >> (64 - bits)); }

// Two 64-bit hashes of the frames. Four lanes take every fourth frame, so their chains of
// multiplies overlap in the CPU instead of running one after the other (30 frames: about 40
// cycles instead of 180); each step is a bijection of the lane given the frame, so stacks that
// differ leave some lane different, and the two final mixes of all four lanes then differ
// independently.
inline void hash_frames(const uint64_t* frames, size_t count, uint64_t& key, uint64_t& check) noexcept {
  constexpr uint64_t k0 = 0x9e3779b97f4a7c15ull;
  constexpr uint64_t k1 = 0xc2b2ae3d27d4eb4full;
  constexpr uint64_t k2 = 0x165667b19e3779f9ull;
  constexpr uint64_t k3 = 0xd6e8feb86659fd93ull;
  uint64_t lane0 = k0 ^ count;
  uint64_t lane1 = k1 + count;
  uint64_t lane2 = k2;
  uint64_t lane3 = k3;
  size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    lane0 = rotate((lane0 ^ frames[i]) * k0, 29);
    lane1 = rotate((lane1 ^ frames[i + 1]) * k1, 31);
    lane2 = rotate((lane2 ^ frames[i + 2]) * k2, 27);
    lane3 = rotate((lane3 ^ frames[i + 3]) * k3, 33);
  }
  if (i < count) lane0 = rotate((lane0 ^ frames[i]) * k0, 29);
  if (i + 1 < count) lane1 = rotate((lane1 ^ frames[i + 1]) * k1, 31);
  if (i + 2 < count) lane2 = rotate((lane2 ^ frames[i + 2]) * k2, 27);
  key = mix(lane0 ^ rotate(lane1, 16) ^ rotate(lane2, 32) ^ rotate(lane3, 48));
  check = mix((lane0 * k3) ^ (lane1 * k2) ^ (lane2 * k1) ^ (lane3 * k0) ^ 0x85ebca6b0b7ad3a5ull);
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

HEAPSCOPE_COLD StackDepot::Slot* StackDepot::level(size_t index) noexcept {
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

HEAPSCOPE_COLD bool StackDepot::open_next_level(uint32_t after) noexcept {
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
