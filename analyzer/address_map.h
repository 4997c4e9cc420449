// An open-addressing hash map keyed by a block address, for the heap model's live blocks. The
// node-based std::unordered_map cost a malloc and a free per event, a third of the analysis
// time of a large trace; this keeps entries in one array, with linear probing and
// backward-shift deletion: no tombstones, so a heap that churns at a steady size never needs
// a rehash (tombstone cleanups were 7% of a report's time). Every key is accepted: the two
// values the table reserves live in side slots (a trace can name any address; found by
// tests/fuzz).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace heapscope::analyzer {

template <typename Value>
class AddressMap {
 public:
  // The value for `key`, inserted default-constructed if absent; `inserted` says which.
  Value& try_emplace(uint64_t key, bool& inserted) {
    if (key >= kReserved) {
      std::optional<Value>& side = side_[key - kReserved];
      inserted = !side.has_value();
      if (inserted) side.emplace();
      return *side;
    }
    if ((used_ + 1) * 4 > slots_.size() * 3) rehash();
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.key == key) {
        inserted = false;
        return slot.value;
      }
      if (slot.key == kEmpty) {
        slot.key = key;
        slot.value = Value{};
        ++used_;
        inserted = true;
        return slot.value;
      }
    }
  }

  Value* find(uint64_t key) {
    if (key >= kReserved) {
      std::optional<Value>& side = side_[key - kReserved];
      return side ? &*side : nullptr;
    }
    Slot* slot = lookup(key);
    return slot == nullptr ? nullptr : &slot->value;
  }
  const Value* find(uint64_t key) const { return const_cast<AddressMap*>(this)->find(key); }
  bool contains(uint64_t key) const { return find(key) != nullptr; }

  bool erase(uint64_t key) {
    if (key >= kReserved) {
      std::optional<Value>& side = side_[key - kReserved];
      const bool had = side.has_value();
      side.reset();
      return had;
    }
    Slot* slot = lookup(key);
    if (slot == nullptr) return false;
    // Backward shift: every entry after the hole, up to the next empty slot, that may live in
    // the hole (its home is not cyclically between the hole and it) moves into it.
    const size_t mask = slots_.size() - 1;
    size_t hole = static_cast<size_t>(slot - slots_.data());
    for (size_t next = (hole + 1) & mask; slots_[next].key != kEmpty; next = (next + 1) & mask) {
      const size_t home = hash(slots_[next].key) & mask;
      const bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (stays) continue;
      slots_[hole] = std::move(slots_[next]);
      hole = next;
    }
    slots_[hole].key = kEmpty;
    --used_;
    return true;
  }

  size_t size() const noexcept { return used_ + side_[0].has_value() + side_[1].has_value(); }

  // visit(key, value&): values may be changed, keys not.
  template <typename Visit>
  void for_each_value(Visit visit) {
    for (Slot& slot : slots_)
      if (slot.key != kEmpty) visit(slot.key, slot.value);
    for (uint64_t i = 0; i < 2; ++i)
      if (side_[i]) visit(kReserved + i, *side_[i]);
  }

  template <typename Visit>
  void for_each(Visit visit) const {
    for (const Slot& slot : slots_)
      if (slot.key != kEmpty) visit(slot.key, slot.value);
    for (uint64_t i = 0; i < 2; ++i)
      if (side_[i]) visit(kReserved + i, *side_[i]);
  }

 private:
  static constexpr uint64_t kEmpty = UINT64_MAX;
  static constexpr uint64_t kReserved = UINT64_MAX - 1;  // keys from here on live in side_
  struct Slot {
    uint64_t key = kEmpty;
    Value value{};
  };
  // All of the key's bits count: addresses are 16-aligned, but trace files name blocks by ordinal
  // (1, 2, 3...), and dropping low bits put sixteen consecutive ordinals in one probe run.
  static size_t hash(uint64_t key) noexcept { return static_cast<size_t>(key * 0x9e3779b97f4a7c15ull >> 16); }

  Slot* lookup(uint64_t key) {
    if (slots_.empty()) return nullptr;
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.key == key) return &slot;
      if (slot.key == kEmpty) return nullptr;
    }
  }

  void rehash() {
    // Doubles, keeping the load at most a half after growing (at least 1024 slots).
    size_t capacity = slots_.empty() ? 1024 : slots_.size();
    while ((used_ + 1) * 2 > capacity) capacity *= 2;
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    used_ = 0;
    const size_t mask = slots_.size() - 1;
    for (Slot& slot : old) {
      if (slot.key == kEmpty) continue;
      size_t i = hash(slot.key) & mask;
      while (slots_[i].key != kEmpty) i = (i + 1) & mask;
      slots_[i] = std::move(slot);
      ++used_;
    }
  }

  std::vector<Slot> slots_;
  std::optional<Value> side_[2];  // keys kReserved and kEmpty
  size_t used_ = 0;
};

}  // namespace heapscope::analyzer
