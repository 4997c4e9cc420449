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
  Dwfl_Module* module_;
  std::vector<uint64_t> edges_;           // sorted
  std::map<uint64_t, Interval> intervals_;  // by start, disjoint
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
