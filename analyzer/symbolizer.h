// Turns return addresses into function, file:line and inlined frames, out of process, with
// elfutils libdw. Each module file (path + recorded build-id) is opened once, whatever address it
// was loaded at: processes of one run (a shell script's dozens of bash, sed and readlink) load
// the same libraries at different addresses, and opening their debug information (decompressing
// libc6-dbg's DWARF) once per process made the report of `python3 -c pass` through pyenv's shim
// take 1.8 s. Lookups are by address within the file, cached; results per run-time address too.
// A module whose file is gone or whose build-id no longer matches the recording is not trusted
// for names: its frames keep only address and module.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "heap_model.h"

typedef struct Dwfl_Module Dwfl_Module;

namespace heapscope::analyzer {

struct SymbolizedFrame {
  uint64_t address = 0;
  std::string function;  // demangled; empty when unknown
  std::string file;      // absolute or as recorded in DWARF; empty when unknown
  int line = 0;          // 0 when unknown
  std::string module;    // path of the ELF object; empty when outside every module
  bool inlined = false;  // an inlined call inside the next frame's function
  // address less the module's load bias: the same in every run and process (what addr2line
  // and `nm` take), for frames of stripped libraries; meaningful only when `module` is set.
  uint64_t module_offset = 0;
};

// A module's symbol names by address, as dwfl_module_addrinfo gives them, without its cost.
// dwfl_module_addrinfo scans the whole symbol table on every call (elfutils 0.188): with
// thousands of distinct return addresses (cc1's 944 leak stacks) that was most of a gcc run's
// report. Its answer depends only on which symbols start at or below the address, which of those
// still cover it, and which section holds it; between two consecutive edges (a symbol's start
// or end, a section's start or end) all of that stays the same, and so does the answer. Each
// answer is kept for the whole interval it holds for: one scan per interval, not per address.
// The scan is libdwfl's own rules (__libdwfl_addrsym: sized symbols containing the address,
// binding preference, then a sizeless one in the same section past every symbol's end), run
// over a compact copy of the table: libdwfl's per-symbol calls made a stripped libLLVM's 40,000
// dynamic symbols cost a millisecond a scan, and a clang++ report several seconds.
class SymbolLookup {
 public:
  explicit SymbolLookup(Dwfl_Module* module);
  // The demangled name dwfl_module_addrinfo gives for `address` (within the file, as the module
  // was reported), or "" if none.
  std::string at(uint64_t address);

 private:
  struct Interval {
    uint64_t end;
    std::string name;
  };
  // One symbol as __libdwfl_addrsym considers it, in table order (ties go to the first found).
  struct Symbol {
    uint64_t value;
    uint64_t size;
    const char* name;  // libdwfl's, valid while the module is
    uint32_t shndx;    // its section (SHN_XINDEX resolved)
    uint8_t binding;   // global 3, weak 2, local 1, other 0
  };
  // An SHF_ALLOC section, as libdwfl's section lookup for addresses sees it.
  struct Section {
    uint64_t start;
    uint64_t end;
    uint32_t index;
  };
  const char* addrinfo(uint64_t address) const;
  const char* full_scan(uint64_t address) const;
  bool sizeless_may_apply(uint64_t address) const;
  uint32_t section_of(uint64_t address) const;
  struct Candidates;
  void scan(size_t from, size_t to, uint64_t address, Candidates& found) const;

  Dwfl_Module* module_;
  std::vector<uint64_t> edges_;           // sorted
  std::map<uint64_t, Interval> intervals_;  // by start, disjoint
  std::vector<Symbol> symbols_;           // eligible ones only, table order
  size_t first_global_ = 0;               // in symbols_: the first of the global part
  bool locals_exist_ = false;             // the table has a local part (first_global > 1)
  std::vector<Section> sections_;         // by start
  // For the common answers without a scan (addrinfo): symbols_ indices by value, the highest
  // end among each prefix of that order, and the sizeless symbols' values by section.
  std::vector<uint32_t> by_value_;
  std::vector<uint64_t> prefix_end_;
  std::vector<uint64_t> prefix_end_global_;  // the same over the global part only (always searched)
  std::map<uint32_t, std::vector<uint64_t>> sizeless_by_section_;  // sorted values
  std::vector<uint64_t> sizeless_absolute_;                        // sorted values (shndx >= SHN_LORESERVE)
};

class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Frames for one return address (the innermost first when inlined calls are expanded).
  // `module` may be nullptr. Return addresses are looked up at address-1 (the call).
  const std::vector<SymbolizedFrame>& symbolize(const Module* module, uint64_t address);

  // Module files opened so far (for tests).
  size_t open_module_count() const noexcept { return modules_.size(); }

 private:
  struct OpenModule;
  OpenModule* open(const Module& module);
  // The frames of a file-relative address in an opened module (address fields left 0).
  const std::vector<SymbolizedFrame>& symbolize_in_file(OpenModule& open_module, uint64_t file_address);
  // Keyed by (path, recorded build-id).
  std::map<std::pair<std::string, std::string>, std::unique_ptr<OpenModule>> modules_;
  std::map<std::pair<const OpenModule*, uint64_t>, std::vector<SymbolizedFrame>> file_cache_;
  // Keyed by (opened module, load bias, address): the same address means different code in
  // another process or after dlclose/dlopen.
  std::map<std::tuple<const OpenModule*, uint64_t, uint64_t>, std::vector<SymbolizedFrame>> cache_;
};

std::string demangle(const char* name);

}  // namespace heapscope::analyzer
