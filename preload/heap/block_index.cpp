// Sharded open-addressing index of the agent's blocks (see block_index.h). Hot path.
#include "block_index.h"

#include "sys.h"

namespace heapscope::preload {
namespace {
constexpr uint64_t kEmpty = 0;
// Small first tables keep a small live set dense in cache (256 shards x 2 KiB); they double as
// they fill.
constexpr size_t kInitialCapacity = 64;
}  // namespace

size_t BlockIndex::hash(uint64_t address) noexcept {
  return static_cast<size_t>((address >> 4) * 0x9e3779b97f4a7c15ull);
}

BlockIndex::Shard& BlockIndex::shard_for(Shard* shards, uint64_t address) noexcept {
  return shards[hash(address) >> 56];  // top 8 bits pick the shard, low bits the slot
}

bool BlockIndex::init() noexcept {
  for (Shard& shard : shards_) {
    shard.slots = static_cast<BlockEntry*>(sys::map_anonymous(kInitialCapacity * sizeof(BlockEntry)));
    if (shard.slots == nullptr) return false;
    shard.capacity = kInitialCapacity;
  }
  return true;
}

void BlockIndex::release() noexcept {
  for (Shard& shard : shards_) {
    if (shard.slots != nullptr) sys::unmap(shard.slots, shard.capacity * sizeof(BlockEntry));
    shard.slots = nullptr;
    shard.capacity = 0;
    shard.used = 0;
  }
}

BlockEntry* BlockIndex::lookup(Shard& shard, uint64_t address) noexcept {
  const size_t mask = shard.capacity - 1;
  for (size_t i = hash(address) & mask;; i = (i + 1) & mask) {
    BlockEntry& slot = shard.slots[i];
    if (slot.address == address) return &slot;
    if (slot.address == kEmpty) return nullptr;
  }
}

HEAPSCOPE_COLD bool BlockIndex::grow(Shard& shard) noexcept {
  const size_t capacity = shard.capacity * 2;
  auto* slots = static_cast<BlockEntry*>(sys::map_anonymous(capacity * sizeof(BlockEntry)));
  if (slots == nullptr) return false;
  const size_t mask = capacity - 1;
  for (size_t i = 0; i < shard.capacity; ++i) {
    const BlockEntry& entry = shard.slots[i];
    if (entry.address == kEmpty) continue;
    size_t j = hash(entry.address) & mask;
    while (slots[j].address != kEmpty) j = (j + 1) & mask;
    slots[j] = entry;
  }
  sys::unmap(shard.slots, shard.capacity * sizeof(BlockEntry));
  shard.slots = slots;
  shard.capacity = capacity;
  return true;
}

// Removes the entry at `slot` by shifting later entries of its probe run back (Knuth's
// algorithm R for linear probing): no tombstones, so probes stay short and a shard whose
// blocks come and go never needs rehashing (which mapped and unmapped a table: two syscalls).
void BlockIndex::erase(Shard& shard, BlockEntry* slot) noexcept {
  const size_t mask = shard.capacity - 1;
  size_t hole = static_cast<size_t>(slot - shard.slots);
  for (size_t next = (hole + 1) & mask; shard.slots[next].address != kEmpty; next = (next + 1) & mask) {
    const size_t home = hash(shard.slots[next].address) & mask;
    // The entry may fill the hole unless its home lies cyclically in (hole, next].
    const bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
    if (stays) continue;
    shard.slots[hole] = shard.slots[next];
    hole = next;
  }
  shard.slots[hole].address = kEmpty;
  --shard.used;
}

bool BlockIndex::insert(const BlockEntry& entry) noexcept {
  Shard& shard = shard_for(shards_, entry.address);
  SpinLockGuard hold(shard.lock);
  // Keep the load under one half: probes stay short.
  if ((shard.used + 1) * 2 > shard.capacity && !grow(shard)) return false;
  const size_t mask = shard.capacity - 1;
  for (size_t i = hash(entry.address) & mask;; i = (i + 1) & mask) {
    BlockEntry& slot = shard.slots[i];
    if (slot.address == entry.address) {  // stale entry for a recycled address: replace it
      slot = entry;
      return true;
    }
    if (slot.address == kEmpty) {
      slot = entry;
      ++shard.used;
      return true;
    }
  }
}

// The verdict on freeing `slot` (under its shard's lock); copies the entry as it is to `out`.
FreeCheck BlockIndex::verdict(const BlockEntry* slot, BlockEntry& out) noexcept {
  if (slot == nullptr) return FreeCheck::kNotOurs;
  out = *slot;
  return slot->state == BlockState::kQuarantined ? FreeCheck::kAlreadyFreed : FreeCheck::kOk;
}

FreeCheck BlockIndex::begin_free(uint64_t address, uint32_t free_stack_id, uint8_t free_api,
                                 BlockEntry& out) noexcept {
  Shard& shard = shard_for(shards_, address);
  SpinLockGuard hold(shard.lock);
  BlockEntry* slot = lookup(shard, address);
  const FreeCheck check = verdict(slot, out);
  if (check != FreeCheck::kOk) return check;
  slot->state = BlockState::kQuarantined;
  slot->free_stack_id = free_stack_id;
  slot->free_api = free_api;
  return FreeCheck::kOk;
}

FreeCheck BlockIndex::take(uint64_t address, uint32_t free_stack_id, BlockEntry& out) noexcept {
  Shard& shard = shard_for(shards_, address);
  SpinLockGuard hold(shard.lock);
  BlockEntry* slot = lookup(shard, address);
  const FreeCheck check = verdict(slot, out);
  if (check != FreeCheck::kOk) return check;
  out.free_stack_id = free_stack_id;
  erase(shard, slot);
  return FreeCheck::kOk;
}

void BlockIndex::prefetch(uint64_t address) const noexcept {
  const Shard& shard = shards_[hash(address) >> 56];
  const BlockEntry* slots = __atomic_load_n(&shard.slots, __ATOMIC_RELAXED);
  const size_t capacity = __atomic_load_n(&shard.capacity, __ATOMIC_RELAXED);
  __builtin_prefetch(slots + (hash(address) & (capacity - 1)), 1);
}

bool BlockIndex::find(uint64_t address, BlockEntry& out) noexcept {
  Shard& shard = shard_for(shards_, address);
  SpinLockGuard hold(shard.lock);
  const BlockEntry* slot = lookup(shard, address);
  if (slot == nullptr) return false;
  out = *slot;
  return true;
}

bool BlockIndex::take_quarantined(uint64_t address, BlockEntry& out) noexcept {
  Shard& shard = shard_for(shards_, address);
  SpinLockGuard hold(shard.lock);
  BlockEntry* slot = lookup(shard, address);
  if (slot == nullptr || slot->state != BlockState::kQuarantined) return false;
  out = *slot;
  erase(shard, slot);
  return true;
}

bool BlockIndex::remove(uint64_t address) noexcept {
  Shard& shard = shard_for(shards_, address);
  SpinLockGuard hold(shard.lock);
  BlockEntry* slot = lookup(shard, address);
  if (slot == nullptr) return false;
  erase(shard, slot);
  return true;
}

bool BlockIndex::add_live_flags(uint64_t address, uint8_t flags) noexcept {
  Shard& shard = shard_for(shards_, address);
  SpinLockGuard hold(shard.lock);
  BlockEntry* slot = lookup(shard, address);
  if (slot == nullptr || slot->state != BlockState::kLive) return false;
  slot->flags |= flags;
  return true;
}

void BlockIndex::for_each_locked(void (*visit)(const BlockEntry&, void*), void* context) const noexcept {
  for (const Shard& shard : shards_) {
    for (size_t i = 0; i < shard.capacity; ++i) {
      const BlockEntry& entry = shard.slots[i];
      if (entry.address != kEmpty) visit(entry, context);
    }
  }
}

size_t BlockIndex::size_locked() const noexcept {
  size_t total = 0;
  for (const Shard& shard : shards_) total += shard.used;
  return total;
}

void BlockIndex::add_flags_locked(uint64_t address, uint8_t flags) noexcept {
  BlockEntry* slot = lookup(shard_for(shards_, address), address);
  if (slot != nullptr) slot->flags |= flags;
}

uint32_t BlockIndex::alloc_stack_locked(uint64_t address) noexcept {
  const BlockEntry* slot = lookup(shard_for(shards_, address), address);
  return slot != nullptr ? slot->alloc_stack_id : 0;
}

void BlockIndex::for_each(void (*visit)(const BlockEntry&, void*), void* context) noexcept {
  for (Shard& shard : shards_) {
    SpinLockGuard hold(shard.lock);
    for (size_t i = 0; i < shard.capacity; ++i) {
      const BlockEntry& entry = shard.slots[i];
      if (entry.address != kEmpty) visit(entry, context);
    }
  }
}

void BlockIndex::for_each_mutable(void (*visit)(BlockEntry&, void*), void* context) noexcept {
  for (Shard& shard : shards_) {
    SpinLockGuard hold(shard.lock);
    for (size_t i = 0; i < shard.capacity; ++i) {
      BlockEntry& entry = shard.slots[i];
      if (entry.address != kEmpty) visit(entry, context);
    }
  }
}

size_t BlockIndex::live_count() noexcept {
  size_t total = 0;
  for (Shard& shard : shards_) {
    SpinLockGuard hold(shard.lock);
    total += shard.used;
  }
  return total;
}

void BlockIndex::lock_all() noexcept {
  for (Shard& shard : shards_) shard.lock.lock();
}

void BlockIndex::unlock_all() noexcept {
  for (Shard& shard : shards_) shard.lock.unlock();
}

void BlockIndex::lock_all_for_fork() noexcept {
  for (Shard& shard : shards_) shard.lock.lock_for_fork();
}

void BlockIndex::unlock_all_after_fork() noexcept {
  for (Shard& shard : shards_) shard.lock.unlock_after_fork();
}

}  // namespace heapscope::preload
