// DWARF call frame information, read just far enough to unwind ordinary x86-64 frames (see
// unwind_rules.h). Formats: DWARF 5 section 6.4 and the LSB's .eh_frame / .eh_frame_hdr.
#include "unwind_rules.h"

#include "debug_frame.h"

#include <dlfcn.h>
#include <link.h>

namespace heapscope::preload::unwind {
namespace {

// DWARF register numbers on x86-64 (System V psABI, figure 3.36).
constexpr uint64_t kRegRbp = 6;
constexpr uint64_t kRegRsp = 7;
constexpr uint64_t kRegReturnAddress = 16;

// Pointer encodings (DW_EH_PE_*): the low nibble is the value's format, the next bits what it
// is relative to.
constexpr uint8_t kEncOmit = 0xff;
constexpr uint8_t kEncFormatMask = 0x0f;
constexpr uint8_t kEncRelativeMask = 0x70;
constexpr uint8_t kEncPcRelative = 0x10;
constexpr uint8_t kEncDataRelative = 0x30;
constexpr uint8_t kEncIndirect = 0x80;
constexpr uint8_t kTableEncoding = 0x3b;  // datarel | sdata4: what every linker writes

class Reader {
 public:
  Reader(const uint8_t* at, const uint8_t* end) noexcept : at_(at), end_(end) {}
  bool ok() const noexcept { return ok_; }
  bool done() const noexcept { return !ok_ || at_ >= end_; }
  const uint8_t* position() const noexcept { return at_; }
  void skip(uint64_t bytes) noexcept {
    if (bytes > static_cast<uint64_t>(end_ - at_)) ok_ = false, at_ = end_;
    else at_ += bytes;
  }
  template <typename T>
  T fixed() noexcept {
    if (static_cast<size_t>(end_ - at_) < sizeof(T)) return ok_ = false, T{};
    T value;
    __builtin_memcpy(&value, at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  uint64_t uleb() noexcept {
    uint64_t value = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (at_ >= end_) break;
      const uint8_t byte = *at_++;
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    ok_ = false;
    return 0;
  }
  int64_t sleb() noexcept {
    int64_t value = 0;
    unsigned shift = 0;
    while (shift < 64 && at_ < end_) {
      const uint8_t byte = *at_++;
      value |= static_cast<int64_t>(byte & 0x7f) << shift;
      shift += 7;
      if ((byte & 0x80) == 0) {
        if (shift < 64 && (byte & 0x40) != 0) value |= -(static_cast<int64_t>(1) << shift);
        return value;
      }
    }
    ok_ = false;
    return 0;
  }
  // A pointer in `encoding`; `data_base` anchors datarel values. Indirect pointers are returned
  // as the address of the pointer: callers here only skip them.
  uint64_t pointer(uint8_t encoding, uintptr_t data_base) noexcept {
    const auto field = reinterpret_cast<uintptr_t>(at_);
    uint64_t value = 0;
    switch (encoding & kEncFormatMask) {
      case 0x00: value = fixed<uint64_t>(); break;
      case 0x01: value = uleb(); break;
      case 0x02: value = fixed<uint16_t>(); break;
      case 0x03: value = fixed<uint32_t>(); break;
      case 0x04: value = fixed<uint64_t>(); break;
      case 0x09: value = static_cast<uint64_t>(sleb()); break;
      case 0x0a: value = static_cast<uint64_t>(static_cast<int64_t>(fixed<int16_t>())); break;
      case 0x0b: value = static_cast<uint64_t>(static_cast<int64_t>(fixed<int32_t>())); break;
      case 0x0c: value = static_cast<uint64_t>(fixed<int64_t>()); break;
      default: ok_ = false; return 0;
    }
    switch (encoding & kEncRelativeMask) {
      case 0x00: break;
      case kEncPcRelative: value += field; break;
      case kEncDataRelative: value += data_base; break;
      default: ok_ = false; return 0;
    }
    return value;
  }

 private:
  const uint8_t* at_;
  const uint8_t* end_;
  bool ok_ = true;
};

// Where a register's caller value is, as far as the rules we support go.
enum class Saved : uint8_t { kSame, kAtCfa, kAtRbp, kUndefined, kOther };

struct RegisterRule {
  Saved saved = Saved::kSame;
  int64_t offset = 0;
};

struct Row {
  uint64_t cfa_register = kRegRsp;
  int64_t cfa_offset = 0;
  bool cfa_deref_rbp = false;  // CFA = *(rbp + cfa_offset)
  bool cfa_supported = true;
  RegisterRule rbp;
  RegisterRule return_address;
};

struct Cie {
  uint64_t code_align = 1;
  int64_t data_align = 1;
  uint8_t fde_encoding = 0;
  bool has_augmentation_data = false;
  const uint8_t* instructions = nullptr;
  const uint8_t* end = nullptr;
};

// Reads an entry's length field; returns where the entry's content ends (nullptr: terminator or
// malformed).
const uint8_t* entry_end(Reader& reader) noexcept {
  uint64_t length = reader.fixed<uint32_t>();
  if (length == 0xffffffffu) length = reader.fixed<uint64_t>();
  if (!reader.ok() || length == 0 || length > (uint64_t{1} << 30)) return nullptr;
  return reader.position() + length;
}

// `debug_frame`: a CIE of .debug_frame, whose id is 0xffffffff (0 in .eh_frame) and which
// may be version 4 (address and segment selector sizes after the augmentation).
bool parse_cie(const uint8_t* at, Cie& cie, bool debug_frame = false) noexcept {
  Reader reader(at, at + 16);
  const uint8_t* end = entry_end(reader);
  if (end == nullptr) return false;
  reader = Reader(reader.position(), end);
  if (reader.fixed<uint32_t>() != (debug_frame ? 0xffffffffu : 0u)) return false;  // not a CIE
  const uint8_t version = reader.fixed<uint8_t>();
  if (version != 1 && version != 3 && !(debug_frame && version == 4)) return false;
  const auto* augmentation = reinterpret_cast<const char*>(reader.position());
  size_t augmentation_length = 0;
  while (augmentation[augmentation_length] != '\0') {
    if (++augmentation_length > 8) return false;
  }
  reader.skip(augmentation_length + 1);
  if (augmentation_length > 0 && augmentation[0] != 'z') return false;  // e.g. the old "eh"
  if (version == 4 && (reader.fixed<uint8_t>() != 8 || reader.fixed<uint8_t>() != 0)) return false;  // 64-bit, no segments
  cie.code_align = reader.uleb();
  cie.data_align = reader.sleb();
  const uint64_t return_register = version == 1 ? reader.fixed<uint8_t>() : reader.uleb();
  if (return_register != kRegReturnAddress) return false;
  cie.has_augmentation_data = augmentation_length > 0;
  if (cie.has_augmentation_data) {
    const uint64_t data_length = reader.uleb();
    const uint8_t* data_end = reader.position() + data_length;
    for (size_t i = 1; i < augmentation_length && reader.ok(); ++i) {
      switch (augmentation[i]) {
        case 'R': cie.fde_encoding = reader.fixed<uint8_t>(); break;
        case 'L': reader.fixed<uint8_t>(); break;
        case 'P': {
          const uint8_t encoding = reader.fixed<uint8_t>();
          reader.pointer(encoding & ~kEncIndirect, 0);
          break;
        }
        case 'S': return false;  // a signal frame: libunwind knows the kernel's frame layout
        default: return false;
      }
    }
    if (!reader.ok() || data_end > end) return false;
    reader = Reader(data_end, end);
  }
  cie.instructions = reader.position();
  cie.end = end;
  return reader.ok();
}

// Recognizes a DWARF expression that is exactly "DW_OP_breg6 (rbp) OFFSET", optionally followed
// by DW_OP_deref; anything longer is not ours to evaluate.
bool rbp_expression(Reader& reader, bool with_deref, int64_t& offset) noexcept {
  const uint64_t length = reader.uleb();
  if (!reader.ok() || length == 0 || length > 16) return false;
  Reader expression(reader.position(), reader.position() + length);
  reader.skip(length);
  constexpr uint8_t kOpBregRbp = 0x76;
  constexpr uint8_t kOpDeref = 0x06;
  if (expression.fixed<uint8_t>() != kOpBregRbp) return false;
  offset = expression.sleb();
  if (with_deref && expression.fixed<uint8_t>() != kOpDeref) return false;
  return expression.ok() && expression.done();
}

class CfaProgram {
 public:
  CfaProgram(const Cie& cie, uintptr_t target) noexcept : cie_(cie), target_(target) {}

  // Runs instructions until the row covering the target address; false when an instruction is
  // unknown or malformed.
  bool run(const uint8_t* begin, const uint8_t* end, uintptr_t location) noexcept {
    location_ = location;
    Reader reader(begin, end);
    while (!reader.done()) {
      const uint8_t op = reader.fixed<uint8_t>();
      bool keep_going = true;
      if (!step(op, reader, keep_going)) return false;
      if (!keep_going) return true;
    }
    return reader.ok();
  }
  void mark_initial() noexcept { initial_ = row_; }
  const Row& row() const noexcept { return row_; }

 private:
  RegisterRule* rule_for(uint64_t reg) noexcept {
    if (reg == kRegRbp) return &row_.rbp;
    if (reg == kRegReturnAddress) return &row_.return_address;
    return nullptr;  // other registers never feed the CFA rules we accept
  }
  void set(uint64_t reg, Saved saved, int64_t offset = 0) noexcept {
    if (reg == kRegRsp && saved != Saved::kSame) row_.cfa_supported = false;
    if (RegisterRule* rule = rule_for(reg)) *rule = RegisterRule{saved, offset};
  }
  void restore(uint64_t reg) noexcept {
    if (RegisterRule* rule = rule_for(reg)) *rule = reg == kRegRbp ? initial_.rbp : initial_.return_address;
  }
  bool advance(uint64_t delta) noexcept {
    const uint64_t next = location_ + delta * cie_.code_align;
    if (next > target_) return false;
    location_ = next;
    return true;
  }

  bool step(uint8_t op, Reader& reader, bool& keep_going) noexcept {
    switch (op >> 6) {
      case 1: keep_going = advance(op & 0x3f); return true;
      case 2: set(op & 0x3f, Saved::kAtCfa, static_cast<int64_t>(reader.uleb()) * cie_.data_align); return reader.ok();
      case 3: restore(op & 0x3f); return true;
      default: break;
    }
    switch (op) {
      case 0x00: return true;  // DW_CFA_nop
      case 0x01: {             // DW_CFA_set_loc
        const uint64_t next = reader.pointer(cie_.fde_encoding, 0);
        if (next > target_) keep_going = false;
        else location_ = next;
        return reader.ok();
      }
      case 0x02: keep_going = advance(reader.fixed<uint8_t>()); return reader.ok();
      case 0x03: keep_going = advance(reader.fixed<uint16_t>()); return reader.ok();
      case 0x04: keep_going = advance(reader.fixed<uint32_t>()); return reader.ok();
      case 0x05: {  // DW_CFA_offset_extended
        const uint64_t reg = reader.uleb();
        set(reg, Saved::kAtCfa, static_cast<int64_t>(reader.uleb()) * cie_.data_align);
        return reader.ok();
      }
      case 0x06: restore(reader.uleb()); return reader.ok();        // DW_CFA_restore_extended
      case 0x07: set(reader.uleb(), Saved::kUndefined); return reader.ok();  // DW_CFA_undefined
      case 0x08: set(reader.uleb(), Saved::kSame); return reader.ok();       // DW_CFA_same_value
      case 0x09: {  // DW_CFA_register
        const uint64_t reg = reader.uleb();
        reader.uleb();
        set(reg, Saved::kOther);
        return reader.ok();
      }
      case 0x0a:  // DW_CFA_remember_state
        if (depth_ == kMaxRemembered) return false;
        remembered_[depth_++] = row_;
        return true;
      case 0x0b:  // DW_CFA_restore_state: the CFA rule too, as GCC's epilogues expect
        if (depth_ == 0) return false;
        row_ = remembered_[--depth_];
        return true;
      case 0x0c:  // DW_CFA_def_cfa
        row_.cfa_register = reader.uleb();
        row_.cfa_offset = static_cast<int64_t>(reader.uleb());
        row_.cfa_deref_rbp = false;
        return reader.ok();
      case 0x0d: row_.cfa_register = reader.uleb(); row_.cfa_deref_rbp = false; return reader.ok();
      case 0x0e: row_.cfa_offset = static_cast<int64_t>(reader.uleb()); return reader.ok();
      case 0x0f: {  // DW_CFA_def_cfa_expression
        int64_t offset = 0;
        if (!rbp_expression(reader, /*with_deref=*/true, offset)) return false;
        row_.cfa_deref_rbp = true;
        row_.cfa_register = kRegRbp;
        row_.cfa_offset = offset;
        return true;
      }
      case 0x10: {  // DW_CFA_expression
        const uint64_t reg = reader.uleb();
        if (rule_for(reg) == nullptr && reg != kRegRsp) {
          reader.skip(reader.uleb());
          return reader.ok();
        }
        int64_t offset = 0;
        if (reg != kRegRbp || !rbp_expression(reader, /*with_deref=*/false, offset)) return false;
        set(reg, Saved::kAtRbp, offset);
        return true;
      }
      case 0x11: {  // DW_CFA_offset_extended_sf
        const uint64_t reg = reader.uleb();
        set(reg, Saved::kAtCfa, reader.sleb() * cie_.data_align);
        return reader.ok();
      }
      case 0x12:  // DW_CFA_def_cfa_sf
        row_.cfa_register = reader.uleb();
        row_.cfa_offset = reader.sleb() * cie_.data_align;
        row_.cfa_deref_rbp = false;
        return reader.ok();
      case 0x13: row_.cfa_offset = reader.sleb() * cie_.data_align; return reader.ok();
      case 0x14:    // DW_CFA_val_offset
      case 0x15: {  // DW_CFA_val_offset_sf
        const uint64_t reg = reader.uleb();
        if (op == 0x14) reader.uleb(); else reader.sleb();
        set(reg, Saved::kOther);
        return reader.ok();
      }
      case 0x16: {  // DW_CFA_val_expression
        const uint64_t reg = reader.uleb();
        reader.skip(reader.uleb());
        set(reg, Saved::kOther);
        return reader.ok();
      }
      case 0x2e: reader.uleb(); return reader.ok();  // DW_CFA_GNU_args_size
      case 0x2f: {                                     // DW_CFA_GNU_negative_offset_extended
        const uint64_t reg = reader.uleb();
        set(reg, Saved::kAtCfa, -static_cast<int64_t>(reader.uleb()) * cie_.data_align);
        return reader.ok();
      }
      default: return false;
    }
  }

  static constexpr size_t kMaxRemembered = 8;
  const Cie& cie_;
  uintptr_t target_;
  uintptr_t location_ = 0;
  Row row_;
  Row initial_;
  Row remembered_[kMaxRemembered];
  size_t depth_ = 0;
};

bool fits(int64_t value) noexcept { return value >= -(1 << 28) && value < (1 << 28); }

Rule rule_from_row(const Row& row) noexcept {
  Rule rule;
  if (row.return_address.saved == Saved::kUndefined) {
    rule.kind = RuleKind::kOutermost;
    return rule;
  }
  if (!row.cfa_supported || row.return_address.saved != Saved::kAtCfa || row.return_address.offset != -8)
    return rule;
  if (row.cfa_deref_rbp) rule.cfa_base = CfaBase::kDerefRbp;
  else if (row.cfa_register == kRegRsp) rule.cfa_base = CfaBase::kRsp;
  else if (row.cfa_register == kRegRbp) rule.cfa_base = CfaBase::kRbp;
  else return rule;  // CFA in another register (r10 during a realigning prologue)
  switch (row.rbp.saved) {
    case Saved::kSame: rule.rbp_saved = RbpSaved::kNo; break;
    case Saved::kAtCfa: rule.rbp_saved = RbpSaved::kAtCfa; break;
    case Saved::kAtRbp: rule.rbp_saved = RbpSaved::kAtRbp; break;
    default: return rule;
  }
  if (!fits(row.cfa_offset) || !fits(row.rbp.offset)) return rule;
  rule.cfa_offset = static_cast<int32_t>(row.cfa_offset);
  rule.rbp_offset = static_cast<int32_t>(row.rbp.offset);
  rule.kind = RuleKind::kFrame;
  return rule;
}

// The FDE whose range holds `address`, by binary search of .eh_frame_hdr's table.
const uint8_t* find_fde(const uint8_t* header, uintptr_t address) noexcept {
  Reader reader(header, header + 64);
  if (reader.fixed<uint8_t>() != 1) return nullptr;  // version
  const uint8_t frame_pointer_encoding = reader.fixed<uint8_t>();
  const uint8_t count_encoding = reader.fixed<uint8_t>();
  const uint8_t table_encoding = reader.fixed<uint8_t>();
  if (frame_pointer_encoding == kEncOmit || count_encoding == kEncOmit || table_encoding != kTableEncoding)
    return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(header);
  reader.pointer(frame_pointer_encoding, base);
  const uint64_t count = reader.pointer(count_encoding, base);
  if (!reader.ok() || count == 0) return nullptr;
  struct Entry {
    int32_t start;
    int32_t fde;
  };
  const auto* table = reinterpret_cast<const Entry*>(reader.position());
  const auto relative = static_cast<int64_t>(address - base);
  if (relative < table[0].start) return nullptr;
  uint64_t low = 0;
  uint64_t high = count;  // invariant: table[low].start <= relative < table[high].start
  while (high - low > 1) {
    const uint64_t middle = low + (high - low) / 2;
    if (table[middle].start <= relative) low = middle;
    else high = middle;
  }
  return header + table[low].fde;
}

// x86-64 glibc's __restore_rt: mov $15 (rt_sigreturn), %rax; syscall.
constexpr uint8_t kSigreturnCode[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};

}  // namespace

namespace {

// The rule at `address` from its FDE at `fde`. In .eh_frame the CIE pointer is relative to
// its own field and locations are encoded as the CIE says; in .debug_frame (`debug_frame`
// non-null: that section's start) it is an offset from the section's start and locations are
// link-time addresses, `bias` away from run-time ones.
Rule rule_from_fde(const uint8_t* fde, uintptr_t address, const uint8_t* debug_frame, const uint8_t* debug_frame_end,
                   uint64_t bias) noexcept {
  Reader reader(fde, fde + 16);
  const uint8_t* end = entry_end(reader);
  if (end == nullptr) return Rule{};
  reader = Reader(reader.position(), end);
  const uint8_t* cie_field = reader.position();
  const uint32_t cie_offset = reader.fixed<uint32_t>();
  if (cie_offset == (debug_frame != nullptr ? 0xffffffffu : 0u)) return Rule{};  // a CIE, not an FDE
  Cie cie;
  // A file's offsets are checked before they are followed: the section is all we mapped.
  if (debug_frame != nullptr && cie_offset + uint64_t{16} > static_cast<uint64_t>(debug_frame_end - debug_frame))
    return Rule{};
  const uint8_t* cie_at = debug_frame != nullptr ? debug_frame + cie_offset : cie_field - cie_offset;
  if (!parse_cie(cie_at, cie, debug_frame != nullptr)) return Rule{};
  const uintptr_t begin = reader.pointer(cie.fde_encoding, 0) + bias;
  const uint64_t range = reader.pointer(cie.fde_encoding & kEncFormatMask, 0);
  if (!reader.ok() || address < begin || address - begin >= range) return Rule{};
  if (cie.has_augmentation_data) reader.skip(reader.uleb());
  if (!reader.ok()) return Rule{};
  CfaProgram program(cie, address);
  if (!program.run(cie.instructions, cie.end, begin)) return Rule{};
  program.mark_initial();
  if (!program.run(reader.position(), end, begin)) return Rule{};
  return rule_from_row(program.row());
}

}  // namespace

Rule rule_in_module(const uint8_t* eh_frame_hdr, uintptr_t address) noexcept {
  const uint8_t* fde = find_fde(eh_frame_hdr, address);
  if (fde == nullptr) return Rule{};
  return rule_from_fde(fde, address, nullptr, nullptr, 0);
}

// _dl_find_object (glibc 2.35), not dl_iterate_phdr: it takes no lock and is async-signal-safe.
// dl_iterate_phdr waits for the loader's lock, which a fork child may have inherited from a
// thread that does not exist in it (issue 15, hang #1), and which dlclose holds while it calls
// free() in another thread.
Rule find_rule(uintptr_t address) noexcept {
  dl_find_object found{};
  if (_dl_find_object(reinterpret_cast<void*>(address), &found) != 0) return Rule{};
  // A return address at the signal trampoline (looked up at the byte before it): its CFI is an
  // expression we do not evaluate, and the kernel's frame layout says it all.
  const uintptr_t next = address + 1;
  if (next + sizeof(kSigreturnCode) <= reinterpret_cast<uintptr_t>(found.dlfo_map_end) &&
      __builtin_memcmp(reinterpret_cast<const void*>(next), kSigreturnCode, sizeof(kSigreturnCode)) == 0) {
    Rule rule;
    rule.kind = RuleKind::kSignalReturn;
    return rule;
  }
  if (found.dlfo_eh_frame != nullptr) {
    const Rule rule = rule_in_module(static_cast<const uint8_t*>(found.dlfo_eh_frame), address);
    if (rule.kind != RuleKind::kUnsupported) return rule;
  }
  // Code built with -g but without unwind tables has its frames in .debug_frame only.
  DebugFrameEntry entry{};
  if (!find_debug_frame(found, address, entry)) return Rule{};
  return rule_from_fde(entry.fde, address, entry.section, entry.section_end, entry.bias);
}

}  // namespace heapscope::preload::unwind
