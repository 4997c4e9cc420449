// Stores each distinct stack once and names it with a small id (LSan's StackDepot idea).
// Lock-free: a fixed open-addressing table of hashes plus a bump arena of frames, both mmap'd
// at init (MAP_NORESERVE: untouched capacity costs nothing). When full, put() returns 0 and the
// event simply has no stack.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

class StackDepot {
 public:
  bool init() noexcept;   // maps the table and arena; false on failure
  void release() noexcept;  // unmaps (fork child starts a fresh depot)

  // Returns the id of `frames` (> 0), or 0 when the depot is full or count is 0. `is_new` is set
  // for the one caller that inserted the stack: it must emit the kStack event before any other
  // thread can publish an event naming the id, which put() guarantees by publishing the id only
  // after `on_new(id, context)` returned.
  uint32_t put(const uint64_t* frames, size_t count,
               void (*on_new)(uint32_t id, const uint64_t* frames, size_t count, void* context),
               void* context) noexcept;

  size_t size() const noexcept { return next_id_.load(std::memory_order_relaxed) - 1; }

 private:
  struct Slot {
    std::atomic<uint64_t> hash;   // 0 = empty
    std::atomic<uint32_t> id;     // 0 = being published
    uint32_t count;
    uint64_t frames_offset;       // index into arena_
  };
  static constexpr size_t kSlots = size_t{1} << 21;        // 2M distinct stacks
  static constexpr size_t kArenaFrames = size_t{1} << 26;  // 512 MiB of frames, reserved lazily
  Slot* slots_ = nullptr;
  uint64_t* arena_ = nullptr;
  std::atomic<uint64_t> arena_used_{0};
  std::atomic<uint32_t> next_id_{1};
};

}  // namespace heapscope::preload
