// Stores each distinct stack once and names it with a small id (LSan's StackDepot idea).
// Lock-free. A stack is keyed by a 128-bit hash of its frames (two independent 64-bit mixes):
// a lookup touches one slot and never the frames, which matters because the depot sits on
// every allocation and free (a sparse table plus a frame arena cost two cache misses per call).
// For a million distinct stacks the chance of any collision is about 1e-27.
//
// The table grows by levels, each four times larger than the last (64K slots first, 1.5 MiB),
// mapped when the newest is 60% full; lookups probe the oldest (hottest) level first, inserts
// go to the newest. When every level is full put() returns 0 and the event has no stack.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

class StackDepot {
 public:
  bool init() noexcept;     // maps the first level; false on failure
  void release() noexcept;  // unmaps everything (a fork child starts a fresh depot)

  // Returns the id of `frames` (> 0), or 0 when the depot is full or count is 0. The one caller
  // that inserts a stack gets on_new(id, ...) before the id is published, so its definition
  // reaches the ring before any event can name it.
  uint32_t put(const uint64_t* frames, size_t count,
               void (*on_new)(uint32_t id, const uint64_t* frames, size_t count, void* context),
               void* context) noexcept;


 private:
  struct Slot {
    std::atomic<uint64_t> key;  // first hash, never 0; 0 = empty
    uint64_t check;             // second hash, written before id is published
    std::atomic<uint32_t> id;   // 0 = being published
    uint32_t count;             // frames, part of the identity
  };
  static_assert(sizeof(Slot) == 24);
  static constexpr size_t kLevels = 5;            // 64K, 256K, 1M, 4M, 16M slots
  static constexpr size_t kFirstLevelShift = 16;
  static constexpr size_t kMaxProbe = 64;

  static size_t level_slots(size_t level) noexcept { return size_t{1} << (kFirstLevelShift + 2 * level); }
  Slot* level(size_t index) noexcept;  // maps it on first use; nullptr past the last or on failure
  enum class Outcome { kFound, kAbsent, kInserted, kCongested };
  struct Probe {
    Outcome outcome;
    Slot* slot;   // the claimed slot, for kInserted
    uint32_t id;  // for kFound and kInserted
  };
  Probe probe(Slot* slots, size_t level, uint64_t key, uint64_t check, uint32_t count,
              bool may_insert) noexcept;
  bool open_next_level(uint32_t after) noexcept;

  std::atomic<Slot*> levels_[kLevels] = {};
  std::atomic<uint32_t> newest_{0};
  std::atomic<uint64_t> used_[kLevels] = {};
  std::atomic<uint32_t> next_id_{1};
};

}  // namespace heapscope::preload
