// Turns a code address into the rule that finds its caller's frame on x86-64, read from the
// module's DWARF call frame information (.eh_frame, found through .eh_frame_hdr's sorted table).
// Only the rules compilers emit for ordinary frames are understood: CFA = rsp or rbp + offset,
// the stack-realigned form CFA = *(rbp + offset), the return address at CFA - 8 and rbp saved
// in memory. Anything else (signal frames, CFA in another register, JIT code without unwind
// info) is kUnsupported, and the caller unwinds that stack with libunwind instead, so an
// unusual frame costs speed, never a wrong stack.
// Runs on the agent's hot path when a code address is met the first time: no malloc, no locks
// of our own (dl_iterate_phdr takes the loader's, as libunwind's lookups do).
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload::unwind {

enum class RuleKind : uint8_t {
  kUnsupported = 0,  // unwind this stack another way
  kFrame = 1,        // an ordinary frame: the fields below say how to reach the caller
  kOutermost = 2,    // the return address is undefined: the first frame of a thread or process
  kSignalReturn = 3, // the kernel's signal trampoline (__restore_rt): the interrupted context lies
                     // in the ucontext_t at the caller's stack pointer
};

enum class CfaBase : uint8_t {
  kRsp = 0,       // CFA = rsp + cfa_offset
  kRbp = 1,       // CFA = rbp + cfa_offset
  kDerefRbp = 2,  // CFA = *(rbp + cfa_offset): functions that realign their stack
};

enum class RbpSaved : uint8_t {
  kNo = 0,     // the caller's rbp is still in rbp
  kAtCfa = 1,  // the caller's rbp is at CFA + rbp_offset
  kAtRbp = 2,  // the caller's rbp is at rbp + rbp_offset (realigned frames)
};

struct Rule {
  RuleKind kind = RuleKind::kUnsupported;
  CfaBase cfa_base = CfaBase::kRsp;
  RbpSaved rbp_saved = RbpSaved::kNo;
  int32_t cfa_offset = 0;
  int32_t rbp_offset = 0;

  // One word, so a cache slot holds it and its address in two atomic stores. Inline: the
  // walker decodes a rule per frame.
  uint64_t encode() const noexcept {
    return static_cast<uint64_t>(kind) | static_cast<uint64_t>(cfa_base) << 2 |
           static_cast<uint64_t>(rbp_saved) << 4 |
           (static_cast<uint64_t>(static_cast<uint32_t>(cfa_offset)) & kOffsetMask) << 6 |
           (static_cast<uint64_t>(static_cast<uint32_t>(rbp_offset)) & kOffsetMask) << 35;
  }
  static Rule decode(uint64_t word) noexcept {
    Rule rule;
    rule.kind = static_cast<RuleKind>(word & 3);
    rule.cfa_base = static_cast<CfaBase>((word >> 2) & 3);
    rule.rbp_saved = static_cast<RbpSaved>((word >> 4) & 3);
    rule.cfa_offset = signed29((word >> 6) & kOffsetMask);
    rule.rbp_offset = signed29((word >> 35) & kOffsetMask);
    return rule;
  }

 private:
  static constexpr uint64_t kOffsetMask = 0x1fffffff;  // offsets are 29-bit signed
  static int32_t signed29(uint64_t bits) noexcept {
    return static_cast<int32_t>(static_cast<uint32_t>(bits << 3)) >> 3;
  }
};

// The rule at `address` in the module whose .eh_frame_hdr section starts at `eh_frame_hdr`.
Rule rule_in_module(const uint8_t* eh_frame_hdr, uintptr_t address) noexcept;

// The rule at `address` in whatever loaded module contains it (found with _dl_find_object).
Rule find_rule(uintptr_t address) noexcept;

}  // namespace heapscope::preload::unwind
