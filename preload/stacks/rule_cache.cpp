// The shared rule cache (see rule_cache.h).
#include "rule_cache.h"

#include <atomic>

#include "debug_frame.h"
#include "sys.h"
#include "unwind_rules.h"

namespace heapscope::preload::unwind {
namespace {

// A direct-mapped cache from code address to encoded rule. Readers validate a slot the way a
// seqlock does, with the address as the sequence: writers clear the address, store the rule,
// then store the address (release), so a reader that sees the same address before and after
// reading the rule read that address's rule.
struct Slot {
  std::atomic<uint64_t> address;
  std::atomic<uint64_t> rule;
};
constexpr unsigned kSlotBits = 16;  // 1 MiB, mapped NORESERVE: only slots in use cost memory
constexpr size_t kSlots = size_t{1} << kSlotBits;

Slot* slots = nullptr;
std::atomic<bool> writing{false};
std::atomic<uint32_t> generation{1};  // bumped by forget_rules

inline Slot& slot_for(uint64_t address) noexcept {
  return slots[(address * 0x9e3779b97f4a7c15ull) >> (64 - kSlotBits)];
}

inline bool cached(uint64_t address, uint64_t& rule) noexcept {
  Slot& slot = slot_for(address);
  if (slot.address.load(std::memory_order_acquire) != address) return false;
  rule = slot.rule.load(std::memory_order_acquire);
  return slot.address.load(std::memory_order_relaxed) == address;
}

void remember(uint64_t address, uint64_t rule) noexcept {
  // A try-lock: a busy writer (another thread, or the frame this signal handler interrupted)
  // means this rule is simply not cached this time.
  if (writing.exchange(true, std::memory_order_acquire)) return;
  Slot& slot = slot_for(address);
  slot.address.store(0, std::memory_order_relaxed);
  slot.rule.store(rule, std::memory_order_release);
  slot.address.store(address, std::memory_order_release);
  writing.store(false, std::memory_order_release);
}

}  // namespace

__attribute__((noinline)) uint64_t shared_rule(uint64_t address) noexcept {
  uint64_t word = 0;
  if (cached(address, word)) return word;
  word = find_rule(address).encode();
  remember(address, word);
  return word;
}

bool init_rule_cache() noexcept {
  if (slots != nullptr) return true;
  slots = static_cast<Slot*>(sys::map_anonymous(kSlots * sizeof(Slot)));
  return slots != nullptr;
}

void forget_rules() noexcept {
  if (slots == nullptr) return;
  while (writing.exchange(true, std::memory_order_acquire)) {
  }
  for (size_t i = 0; i < kSlots; ++i) {
    // Only touched slots are written: untouched pages stay unbacked.
    if (slots[i].address.load(std::memory_order_relaxed) != 0)
      slots[i].address.store(0, std::memory_order_relaxed);
  }
  generation.fetch_add(1, std::memory_order_release);
  forget_debug_frames();  // a module loaded later at the same address is another file
  writing.store(false, std::memory_order_release);
}

void reset_rule_cache_in_fork_child() noexcept {
  writing.store(false, std::memory_order_release);
  reset_debug_frames_in_fork_child();
}

bool rule_cache_ready() noexcept { return slots != nullptr; }

uint32_t rules_generation() noexcept { return generation.load(std::memory_order_acquire); }

}  // namespace heapscope::preload::unwind
