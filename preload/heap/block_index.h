// The agent's index of every block it handed out and has not yet returned to the real
// allocator (live or quarantined). This is the only proof that a pointer is ours: free() never
// reads the bytes in front of a pointer before the index has vouched for it.
//
// 256 shards, each an open-addressing table behind a SpinLock, grown by mmap (never malloc).
// A signal handler that interrupts a thread holding a shard lock cannot reach the index: the
// ReentrancyGuard sends its calls to the pass-through path. fork() takes every shard lock
// (lock_all) so the child's copy is consistent.
#pragma once
#include <cstddef>
#include <cstdint>

#include "spin_lock.h"

namespace heapscope::preload {

enum class BlockState : uint8_t { kLive = 1, kQuarantined = 2 };

struct BlockEntry {
  uint64_t address;         // user pointer; 0 = empty slot
  uint64_t size;            // requested size, authoritative
  uint32_t alloc_stack_id;
  uint32_t free_stack_id;   // set when quarantined
  uint32_t front;           // bytes from the real allocation to `address`, encoded (front_bytes())
  uint8_t family;           // format::Family
  BlockState state;
  uint8_t free_api;         // format::Api of the release, when quarantined
  uint8_t flags;            // BlockFlags
};

enum BlockFlags : uint8_t {
  kBlockReported = 1u << 0,  // its damage was reported already (one report per bug)
  kBlockIgnored = 1u << 1,   // heapscope_ignore_object(): a leak scan treats it as a root
  kBlockSeenLost = 1u << 2,  // a leak scan found it lost (heapscope_leak_check counts it once)
  kBlockGuarded = 1u << 3,   // has pages of its own before a guard page (guarded_pages.h)
};
static_assert(sizeof(BlockEntry) == 32);

// BlockEntry::front in 32 bits: the bytes themselves below 2^31, else (a block aligned to 2 GiB
// or more, whose front is its alignment, a power of two) the top bit and the power.
constexpr uint32_t kFrontIsPower = 0x80000000u;
inline uint32_t encode_front(uint64_t front) noexcept {
  return front < kFrontIsPower ? static_cast<uint32_t>(front)
                               : kFrontIsPower | static_cast<uint32_t>(63 - __builtin_clzll(front));
}
inline uint64_t front_bytes(const BlockEntry& entry) noexcept {
  return (entry.front & kFrontIsPower) == 0 ? entry.front : uint64_t{1} << (entry.front & 63);
}

enum class FreeCheck : uint8_t { kNotOurs, kAlreadyFreed, kOk };

class BlockIndex {
 public:
  // Sets up the shards' first tables. Returns false if memory could not be mapped.
  bool init() noexcept;
  // Unmaps every table (attach agent, at detach, once no thread can be using the index).
  void release() noexcept;

  // Adds a live block. Returns false only if the table could not grow (block stays untracked).
  bool insert(const BlockEntry& entry) noexcept;

  // Looks the block up; on kOk it moves it to kQuarantined with the given free stack and api,
  // and copies the entry (as it was) to `out`. kAlreadyFreed copies the quarantined entry.
  FreeCheck begin_free(uint64_t address, uint32_t free_stack_id, uint8_t free_api,
                       BlockEntry& out) noexcept;

  // As begin_free, but on kOk the entry is removed at once (the block goes straight back to
  // the real allocator): one locked operation instead of two.
  FreeCheck take(uint64_t address, uint32_t free_stack_id, BlockEntry& out) noexcept;

  bool find(uint64_t address, BlockEntry& out) noexcept;
  // Removes a quarantined block and copies its entry to `out` (one locked operation, for a
  // block leaving the quarantine). False if `address` is not a quarantined block.
  bool take_quarantined(uint64_t address, BlockEntry& out) noexcept;
  // Starts loading the slot where `address` would be, without the lock (a prefetch never faults,
  // and a stale table only wastes it): the index is as big as the live heap, so its lookups
  // miss the cache, and the caller has other work to overlap with the miss.
  void prefetch(uint64_t address) const noexcept;
  bool remove(uint64_t address) noexcept;
  // Sets `flags` on a live block. Returns false if `address` is not a live block.
  bool add_live_flags(uint64_t address, uint8_t flags) noexcept;

  // Calls visit(entry, context) for every entry, shard by shard under the shard lock. The
  // visitor must not call back into the index.
  void for_each(void (*visit)(const BlockEntry&, void*), void* context) noexcept;
  // The same with write access to each entry (to set flags); same rules.
  void for_each_mutable(void (*visit)(BlockEntry&, void*), void* context) noexcept;

  size_t live_count() noexcept;

  void lock_all() noexcept;    // for a leak scan
  void unlock_all() noexcept;
  // atfork: every shard lock, except those this thread holds already (SpinLock::lock_for_fork).
  void lock_all_for_fork() noexcept;
  void unlock_all_after_fork() noexcept;  // in the parent and in the child

  // For a leak scan, between lock_all() and unlock_all() (the index cannot change).
  void for_each_locked(void (*visit)(const BlockEntry&, void*), void* context) const noexcept;
  size_t size_locked() const noexcept;  // entries, live and quarantined
  void add_flags_locked(uint64_t address, uint8_t flags) noexcept;
  uint32_t alloc_stack_locked(uint64_t address) noexcept;  // 0 if not ours

 private:
  static constexpr size_t kShards = 256;
  struct Shard {
    SpinLock lock;
    BlockEntry* slots = nullptr;
    size_t capacity = 0;     // power of two
    size_t used = 0;         // live + quarantined
  };
  static size_t hash(uint64_t address) noexcept;
  static Shard& shard_for(Shard* shards, uint64_t address) noexcept;
  static BlockEntry* lookup(Shard& shard, uint64_t address) noexcept;
  static FreeCheck verdict(const BlockEntry* slot, BlockEntry& out) noexcept;
  static bool grow(Shard& shard) noexcept;
  static void erase(Shard& shard, BlockEntry* slot) noexcept;
  Shard shards_[kShards];
};

}  // namespace heapscope::preload
