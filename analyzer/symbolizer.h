// Turns return addresses into function, file:line and inlined frames, out of process, with
// elfutils libdw. Each module (path + load bias) is opened once; results are cached per
// address. A module whose file is gone or whose build-id no longer matches the recording is
// not trusted for names: its frames keep only address and module.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "heap_model.h"

namespace heapscope::analyzer {

struct SymbolizedFrame {
  uint64_t address = 0;
  std::string function;  // demangled; empty when unknown
  std::string file;      // absolute or as recorded in DWARF; empty when unknown
  int line = 0;          // 0 when unknown
  std::string module;    // path of the ELF object; empty when outside every module
  bool inlined = false;  // an inlined call inside the next frame's function
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

 private:
  struct OpenModule;
  OpenModule* open(const Module& module);
  std::map<std::pair<std::string, uint64_t>, std::unique_ptr<OpenModule>> modules_;
  // Keyed by (opened module, address): the same address means different code in another
  // process or after dlclose/dlopen.
  std::map<std::pair<const OpenModule*, uint64_t>, std::vector<SymbolizedFrame>> cache_;
};

std::string demangle(const char* name);

}  // namespace heapscope::analyzer
