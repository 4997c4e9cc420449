// A bounded FIFO of freed blocks. A freed block's bytes are filled with a pattern and held
// here; when it leaves (the budget is exceeded, or at exit) the pattern is checked, so a write
// after free is caught. Entries are only addresses: size and stacks live in the BlockIndex.
// Behind one SpinLock; never reached from nested (signal/unwinder) calls.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "spin_lock.h"

namespace heapscope::preload {

class Quarantine {
 public:
  // `budget_bytes` of user bytes at most; 0 disables the quarantine. False if mapping failed.
  bool init(size_t budget_bytes) noexcept;
  bool enabled() const noexcept { return budget_bytes_ > 0; }
  // True if a block of this size is worth holding (smaller than the whole budget).
  bool accepts(size_t size) const noexcept { return enabled() && size <= budget_bytes_ / 2; }

  // Adds a block. Returns false when the FIFO has no slot left (caller releases it at once).
  // When the budget is then exceeded, the oldest block leaves in the same locked operation:
  // `leaving` is its address (0 if none) and `leaving_size` its size.
  bool push(uint64_t address, uint64_t size, uint64_t& leaving, uint64_t& leaving_size) noexcept;
  // Takes the oldest block if the budget is exceeded (or, with `everything`, any block left).
  bool pop(uint64_t& address, uint64_t& size, bool everything) noexcept;

  // Read without the lock (the RSS sampler's figure): a relaxed load of a value only ever
  // stored under the lock.
  size_t held_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  // True if `address` is in the FIFO now: its free filled it completely before pushing it (a
  // block marked quarantined in the index may still be being filled). A linear search: for
  // the rare block a check found changed. Lock order: an index shard's lock, then this one.
  bool holds(uint64_t address) noexcept;

  // atfork only (see SpinLock::lock_for_fork).
  void lock_for_fork() noexcept { lock_.lock_for_fork(); }
  void unlock_after_fork() noexcept { lock_.unlock_after_fork(); }

 private:
  struct Slot {
    uint64_t address;
    uint64_t size;
  };
  bool over_budget() const noexcept;  // under lock_
  Slot take_oldest() noexcept;        // under lock_, not empty
  static constexpr size_t kSlots = size_t{1} << 20;
  SpinLock lock_;
  Slot* slots_ = nullptr;
  size_t head_ = 0;  // next to leave
  size_t tail_ = 0;  // next free slot
  std::atomic<size_t> bytes_{0};  // written under lock_ only; relaxed stores cost a plain move
  size_t budget_bytes_ = 0;
};

}  // namespace heapscope::preload
