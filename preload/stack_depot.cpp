// Lock-free stack deduplication (see stack_depot.h). Hot path: hashing and one probe on a hit.
#include "stack_depot.h"

#include <sched.h>

#include "sys.h"

namespace heapscope::preload {
namespace {

uint64_t hash_frames(const uint64_t* frames, size_t count) noexcept {
  uint64_t h = 0xcbf29ce484222325ull ^ count;
  for (size_t i = 0; i < count; ++i) {
    h ^= frames[i];
    h *= 0x100000001b3ull;
    h ^= h >> 31;
  }
  return h == 0 ? 1 : h;
}

bool same_frames(const uint64_t* a, const uint64_t* b, size_t count) noexcept {
  for (size_t i = 0; i < count; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

}  // namespace

bool StackDepot::init() noexcept {
  slots_ = static_cast<Slot*>(sys::map_anonymous(kSlots * sizeof(Slot)));
  arena_ = static_cast<uint64_t*>(sys::map_anonymous(kArenaFrames * sizeof(uint64_t)));
  arena_used_.store(0, std::memory_order_relaxed);
  next_id_.store(1, std::memory_order_relaxed);
  return slots_ != nullptr && arena_ != nullptr;
}

void StackDepot::release() noexcept {
  sys::unmap(slots_, kSlots * sizeof(Slot));
  sys::unmap(arena_, kArenaFrames * sizeof(uint64_t));
  slots_ = nullptr;
  arena_ = nullptr;
}

HEAPSCOPE_HOT uint32_t StackDepot::put(
    const uint64_t* frames, size_t count,
    void (*on_new)(uint32_t, const uint64_t*, size_t, void*), void* context) noexcept {
  if (count == 0 || slots_ == nullptr) return 0;
  const uint64_t hash = hash_frames(frames, count);
  constexpr size_t kMask = kSlots - 1;
  for (size_t probe = 0, i = hash & kMask; probe < kSlots / 2; ++probe, i = (i + 1) & kMask) {
    Slot& slot = slots_[i];
    uint64_t seen = slot.hash.load(std::memory_order_acquire);
    if (seen == 0) {
      if (!slot.hash.compare_exchange_strong(seen, hash, std::memory_order_acq_rel)) {
        if (seen != hash) continue;  // another stack took the slot: keep probing
      } else {
        // We own the slot: copy the frames, let the caller emit the definition, then publish.
        const uint64_t offset = arena_used_.fetch_add(count, std::memory_order_relaxed);
        if (offset + count > kArenaFrames) {
          slot.count = 0;
          slot.id.store(UINT32_MAX, std::memory_order_release);  // poisoned: never matches
          return 0;
        }
        for (size_t f = 0; f < count; ++f) arena_[offset + f] = frames[f];
        slot.count = static_cast<uint32_t>(count);
        slot.frames_offset = offset;
        const uint32_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
        on_new(id, frames, count, context);
        slot.id.store(id, std::memory_order_release);
        return id;
      }
    }
    if (seen != hash) continue;
    uint32_t id;
    // Another thread is publishing this slot; it is about to finish (a few stores away).
    while ((id = slot.id.load(std::memory_order_acquire)) == 0) sched_yield();
    if (id != UINT32_MAX && slot.count == count && same_frames(arena_ + slot.frames_offset, frames, count))
      return id;
  }
  return 0;
}

}  // namespace heapscope::preload
