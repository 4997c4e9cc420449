// FIFO of freed blocks awaiting their use-after-free check (see quarantine.h). Hot path.
#include "quarantine.h"

#include "sys.h"

namespace heapscope::preload {

bool Quarantine::init(size_t budget_bytes) noexcept {
  budget_bytes_ = budget_bytes;
  if (budget_bytes_ == 0) return true;
  slots_ = static_cast<Slot*>(sys::map_anonymous(kSlots * sizeof(Slot)));
  if (slots_ == nullptr) budget_bytes_ = 0;
  return slots_ != nullptr;
}

bool Quarantine::over_budget() const noexcept {
  return bytes_.load(std::memory_order_relaxed) > budget_bytes_ || tail_ - head_ >= kSlots / 2;
}

Quarantine::Slot Quarantine::take_oldest() noexcept {
  const Slot slot = slots_[head_ % kSlots];
  ++head_;
  bytes_.store(bytes_.load(std::memory_order_relaxed) - slot.size, std::memory_order_relaxed);
  return slot;
}

bool Quarantine::push(uint64_t address, uint64_t size, uint64_t& leaving, uint64_t& leaving_size) noexcept {
  leaving = leaving_size = 0;
  SpinLockGuard hold(lock_);
  if (tail_ - head_ == kSlots) return false;
  slots_[tail_ % kSlots] = Slot{address, size};
  ++tail_;
  bytes_.store(bytes_.load(std::memory_order_relaxed) + size, std::memory_order_relaxed);
  if (over_budget()) {
    const Slot oldest = take_oldest();
    leaving = oldest.address;
    leaving_size = oldest.size;
  }
  return true;
}

bool Quarantine::pop(uint64_t& address, uint64_t& size, bool everything) noexcept {
  SpinLockGuard hold(lock_);
  if (head_ == tail_) return false;
  if (!everything && !over_budget()) return false;
  const Slot slot = take_oldest();
  address = slot.address;
  size = slot.size;
  return true;
}

bool Quarantine::holds(uint64_t address) noexcept {
  SpinLockGuard hold(lock_);
  for (size_t i = head_; i != tail_; ++i)
    if (slots_[i % kSlots].address == address) return true;
  return false;
}

}  // namespace heapscope::preload
