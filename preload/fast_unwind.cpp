// The cached stack walker (see fast_unwind.h).
#include "fast_unwind.h"

#include <atomic>

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
std::atomic<uint32_t> rules_generation{1};  // bumped by forget_rules

// Each thread's own cache in front of the shared one, indexed by the frame's stack address.
// The walk is a chain of dependent loads, so where each rule comes from sets its speed: the
// shared table is indexed by the return address, which must first be loaded from the stack;
// this one by the stack pointer, which is known as soon as the previous frame's rule is. The
// return address is still loaded and compared, but that comparison is a predicted branch,
// off the chain. Programs allocate from the same paths again and again, and the same path puts
// the same return address at the same stack address, so most lookups hit; 64 slots of 16
// bytes map each 1 KiB of stack one to one. Safe without atomics: only this thread touches it,
// and walks never nest (a signal handler's malloc inside the agent takes the nested path,
// which captures no stack). 1 KiB of initial-exec TLS.
constexpr size_t kThreadSlots = 64;
// A rule already decoded, so the next stack pointer is one add away from the slot's load.
struct ThreadEntry {
  uint64_t address;
  int32_t cfa_offset;
  int16_t rbp_offset;
  RuleKind kind;
  uint8_t cfa_base : 4;  // CfaBase
  uint8_t rbp_saved : 4;  // RbpSaved
};
static_assert(sizeof(ThreadEntry) == 16);

// The entry for `address`, or false when its rule does not fit one (a huge rbp offset).
inline bool thread_entry(uint64_t address, const Rule& rule, ThreadEntry& entry) noexcept {
  if (rule.rbp_offset != static_cast<int16_t>(rule.rbp_offset)) return false;
  entry = ThreadEntry{address, rule.cfa_offset, static_cast<int16_t>(rule.rbp_offset), rule.kind,
                      static_cast<uint8_t>(rule.cfa_base), static_cast<uint8_t>(rule.rbp_saved)};
  return true;
}
// Behind it, a small two-way table indexed by the address itself, for the frames whose stack
// address moves from call to call while their code does not: the agent's own frames and the
// program's innermost ones, whenever the program allocates from varying depths.
constexpr size_t kThreadSets = 16;
struct ThreadRules {
  uint32_t generation;
  ThreadEntry slots[kThreadSlots];
  ThreadEntry sets[kThreadSets][2];  // [0] most recently filled
};
[[gnu::tls_model("initial-exec")]] thread_local ThreadRules thread_rules;

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

inline uint64_t rule_for(uint64_t address) noexcept {
  uint64_t word = 0;
  if (cached(address, word)) return word;
  word = find_rule(address).encode();
  remember(address, word);
  return word;
}

inline uint64_t load_word(uint64_t address) noexcept { return *reinterpret_cast<const uint64_t*>(address); }

// A frame or frame pointer further than this above the stack pointer is not a frame.
constexpr uint64_t kMaxFrameBytes = uint64_t{1} << 30;

}  // namespace

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
  rules_generation.fetch_add(1, std::memory_order_release);
  writing.store(false, std::memory_order_release);
}

// Walks from the state (ip, sp, fp). `lookup` is the address whose rule describes that state:
// ip itself where execution is, ip - 1 for a return address, so a call that ends its function
// finds that function's rule, not the next one's.
HEAPSCOPE_HOT static inline int walk(uint64_t ip, uint64_t sp, uint64_t fp, uint64_t lookup, uint64_t* frames,
                                     size_t max_frames) noexcept {
  if (slots == nullptr) return -1;
  ThreadRules& mine = thread_rules;
  const uint32_t generation = rules_generation.load(std::memory_order_acquire);
  if (mine.generation != generation) {
    for (ThreadEntry& entry : mine.slots) entry.address = 0;
    for (auto& set : mine.sets) set[0].address = set[1].address = 0;
    mine.generation = generation;
  }
  size_t count = 0;
  while (count < max_frames) {
    ThreadEntry* entry = &mine.slots[(sp >> 4) % kThreadSlots];
    ThreadEntry missed;
    if (__builtin_expect(entry->address != lookup, 0)) {
      ThreadEntry* set = mine.sets[(lookup ^ (lookup >> 4) ^ (lookup >> 8)) % kThreadSets];
      if (set[0].address == lookup) {
        *entry = set[0];
      } else if (set[1].address == lookup) {
        *entry = set[1];
      } else {
        const Rule rule = Rule::decode(rule_for(lookup));
        if (!thread_entry(lookup, rule, *entry)) {
          if (rule.kind == RuleKind::kFrame) return -1;  // too unusual to bother: libunwind
          missed = ThreadEntry{lookup, 0, 0, rule.kind, 0, 0};
          entry = &missed;
        } else {
          set[1] = set[0];
          set[0] = *entry;
        }
      }
    }
    frames[count++] = ip;
    if (entry->kind == RuleKind::kOutermost) break;
    if (entry->kind != RuleKind::kFrame) return -1;
    const auto base = static_cast<CfaBase>(entry->cfa_base);
    uint64_t cfa;
    if (base == CfaBase::kRsp) {
      cfa = sp + static_cast<int64_t>(entry->cfa_offset);
    } else {
      if (fp < sp || fp - sp > kMaxFrameBytes) return -1;
      cfa = fp + static_cast<int64_t>(entry->cfa_offset);
      if (base == CfaBase::kDerefRbp) cfa = load_word(cfa);
    }
    if (cfa <= sp || cfa - sp > kMaxFrameBytes || (cfa & 7) != 0) return -1;
    const auto rbp_saved = static_cast<RbpSaved>(entry->rbp_saved);
    if (rbp_saved == RbpSaved::kAtCfa) fp = load_word(cfa + entry->rbp_offset);
    else if (rbp_saved == RbpSaved::kAtRbp) fp = load_word(fp + entry->rbp_offset);
    ip = load_word(cfa - 8);
    sp = cfa;
    if (ip == 0) break;
    lookup = ip - 1;
  }
  return static_cast<int>(count);
}

HEAPSCOPE_HOT __attribute__((noinline)) int fast_backtrace(uint64_t* frames, size_t max_frames) noexcept {
  uint64_t ip;
  uint64_t sp;
  uint64_t fp;
  // The three registers at one instruction: the rule for `ip` then describes `sp` exactly.
  asm volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(ip), "=r"(sp), "=r"(fp));
  return walk(ip, sp, fp, ip, frames, max_frames);
}

HEAPSCOPE_HOT int fast_backtrace_from(uint64_t return_address, uint64_t stack_pointer, uint64_t frame_pointer,
                                      uint64_t* frames, size_t max_frames) noexcept {
  if (return_address == 0) return -1;
  return walk(return_address, stack_pointer, frame_pointer, return_address - 1, frames, max_frames);
}

}  // namespace heapscope::preload::unwind
