// libdw-based symbolization (see symbolizer.h).
#include "symbolizer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <gelf.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace heapscope::analyzer {
namespace {

char* no_debuginfo_path = nullptr;
const Dwfl_Callbacks kOfflineCallbacks = {
    dwfl_build_id_find_elf, dwfl_standard_find_debuginfo, dwfl_offline_section_address,
    &no_debuginfo_path};

std::string hex_build_id(Dwfl_Module* module) {
  const unsigned char* bits = nullptr;
  GElf_Addr vaddr = 0;
  const int length = dwfl_module_build_id(module, &bits, &vaddr);
  std::string hex;
  for (int i = 0; i < length; ++i) hex += fmt::format("{:02x}", bits[i]);
  return hex;
}

// The demangled linkage name of a subprogram or inlined-subroutine DIE (fully qualified C++),
// or empty when it has none (C, and C++ functions with internal linkage).
std::string die_linkage_name(Dwarf_Die* die) {
  Dwarf_Attribute attribute;
  for (int name : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dwarf_attr_integrate(die, name, &attribute) != nullptr)
      if (const char* linkage = dwarf_formstring(&attribute)) return demangle(linkage);
  }
  return {};
}

// The DIE's own name, unqualified.
std::string die_plain_name(Dwarf_Die* die) {
  Dwarf_Attribute attribute;
  if (dwarf_attr_integrate(die, DW_AT_name, &attribute) != nullptr)
    if (const char* plain = dwarf_formstring(&attribute)) return plain;
  return {};
}

std::string die_function_name(Dwarf_Die* die) {
  std::string name = die_linkage_name(die);
  return name.empty() ? die_plain_name(die) : name;
}

}  // namespace

std::string demangle(const char* name) {
  if (name == nullptr) return {};
  int status = 0;
  char* readable = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || readable == nullptr) return name;
  std::string result(readable);
  free(readable);
  return result;
}

SymbolLookup::SymbolLookup(Dwfl_Module* module) : module_(module) {
  const int count = dwfl_module_getsymtab(module);
  const int first_global = dwfl_module_getsymtab_first_global(module);
  locals_exist_ = first_global > 1;
  bool globals_started = false;
  for (int i = 1; i < count; ++i) {
    if (!globals_started && i >= first_global) {  // where the global part begins in symbols_
      first_global_ = symbols_.size();
      globals_started = true;
    }
    GElf_Sym symbol{};
    GElf_Addr value = 0;
    GElf_Word shndx = 0;
    const char* name = dwfl_module_getsym_info(module, i, &symbol, &value, &shndx, nullptr, nullptr);
    if (name == nullptr) continue;
    edges_.push_back(value);
    edges_.push_back(value + symbol.st_size);
    edges_.push_back(symbol.st_value);  // a raw st_value may be tried too (function descriptors)
    const int type = GELF_ST_TYPE(symbol.st_info);
    if (name[0] == '\0' || symbol.st_shndx == SHN_UNDEF || type == STT_SECTION || type == STT_FILE || type == STT_TLS)
      continue;  // never a candidate (search_table's filter)
    uint8_t binding = 0;
    switch (GELF_ST_BIND(symbol.st_info)) {
      case STB_GLOBAL: binding = 3; break;
      case STB_WEAK: binding = 2; break;
      case STB_LOCAL: binding = 1; break;
      default: break;
    }
    symbols_.push_back(Symbol{value, symbol.st_size, name, shndx, binding});
  }
  if (first_global <= 1) first_global_ = 0;  // one table, searched whole
  else if (!globals_started) first_global_ = symbols_.size();
  GElf_Addr bias = 0;
  if (Elf* elf = dwfl_module_getelf(module, &bias)) {
    Elf_Scn* section = nullptr;
    while ((section = elf_nextscn(elf, section)) != nullptr) {
      GElf_Shdr header{};
      if (gelf_getshdr(section, &header) == nullptr) continue;
      edges_.push_back(header.sh_addr);
      edges_.push_back(header.sh_addr + header.sh_size);
      if ((header.sh_flags & SHF_ALLOC) != 0)
        sections_.push_back(Section{header.sh_addr + bias, header.sh_addr + bias + header.sh_size,
                                    static_cast<uint32_t>(elf_ndxscn(section))});
    }
  }
  std::stable_sort(sections_.begin(), sections_.end(), [](const Section& a, const Section& b) { return a.start < b.start; });
  by_value_.resize(symbols_.size());
  for (size_t i = 0; i < symbols_.size(); ++i) by_value_[i] = static_cast<uint32_t>(i);
  std::stable_sort(by_value_.begin(), by_value_.end(),
                   [&](uint32_t a, uint32_t b) { return symbols_[a].value < symbols_[b].value; });
  prefix_end_.resize(by_value_.size());
  prefix_end_global_.resize(by_value_.size());
  uint64_t highest = 0;
  uint64_t highest_global = 0;
  for (size_t k = 0; k < by_value_.size(); ++k) {
    const Symbol& symbol = symbols_[by_value_[k]];
    highest = std::max(highest, symbol.value + symbol.size);
    if (by_value_[k] >= first_global_) highest_global = std::max(highest_global, symbol.value + symbol.size);
    prefix_end_[k] = highest;
    prefix_end_global_[k] = highest_global;
  }
  for (const Symbol& symbol : symbols_) {
    if (symbol.size != 0) continue;
    if (symbol.shndx >= SHN_LORESERVE) sizeless_absolute_.push_back(symbol.value);
    else sizeless_by_section_[section_of(symbol.value)].push_back(symbol.value);
  }
  std::sort(sizeless_absolute_.begin(), sizeless_absolute_.end());
  for (auto& [section, values] : sizeless_by_section_) std::sort(values.begin(), values.end());
  std::sort(edges_.begin(), edges_.end());
  edges_.erase(std::unique(edges_.begin(), edges_.end()), edges_.end());
}

// libdwfl's section lookup (derelocate.c, find_section): a binary search in which a section's
// end counts as inside it unless the next one starts there. UINT32_MAX: in none.
uint32_t SymbolLookup::section_of(uint64_t address) const {
  size_t low = 0;
  size_t high = sections_.size();
  while (low < high) {
    const size_t middle = (low + high) / 2;
    if (address < sections_[middle].start) {
      high = middle;
    } else if (address > sections_[middle].end) {
      low = middle + 1;
    } else {
      size_t found = middle;
      if (address == sections_[middle].end && middle + 1 < sections_.size() && address == sections_[middle + 1].start)
        ++found;
      return sections_[found].index;
    }
  }
  return UINT32_MAX;
}

struct SymbolLookup::Candidates {
  const Symbol* closest = nullptr;  // sized, containing the address
  const Symbol* sizeless = nullptr;
  uint64_t min_label = 0;  // no sizeless symbol below every candidate's end
  uint32_t address_section = 0;
  bool address_section_known = false;
};

// __libdwfl_addrsym's search_table and try_sym_value, for addrinfo (values not adjusted).
void SymbolLookup::scan(size_t from, size_t to, uint64_t address, Candidates& found) const {
  for (size_t i = from; i < to; ++i) {
    const Symbol& symbol = symbols_[i];
    if (symbol.value > address) continue;
    if (symbol.value + symbol.size > found.min_label) found.min_label = symbol.value + symbol.size;
    if (symbol.size != 0 && address - symbol.value >= symbol.size) continue;
    const Symbol* closest = found.closest;
    if (closest == nullptr || closest->value < symbol.value || closest->binding < symbol.binding) {
      if (symbol.size != 0) {
        found.closest = &symbol;
      } else if (closest == nullptr && symbol.value >= found.min_label) {
        bool same_section = false;
        if (symbol.shndx >= SHN_LORESERVE) {
          same_section = symbol.value == address;
        } else {
          if (!found.address_section_known) {
            found.address_section = section_of(address);
            found.address_section_known = true;
          }
          same_section = found.address_section == section_of(symbol.value);
        }
        if (same_section) found.sizeless = &symbol;
      }
    } else if (symbol.size != 0 && closest->value == symbol.value &&
               ((closest->size > symbol.size && closest->binding <= symbol.binding) ||
                (closest->size >= symbol.size && closest->binding < symbol.binding))) {
      found.closest = &symbol;
    }
  }
}

// Whether a sizeless symbol could be the answer: one at or below the address in its section (or
// an absolute one exactly at it). Where none is, only sized symbols containing the address count.
bool SymbolLookup::sizeless_may_apply(uint64_t address) const {
  if (std::binary_search(sizeless_absolute_.begin(), sizeless_absolute_.end(), address)) return true;
  const auto in_section = sizeless_by_section_.find(section_of(address));
  if (in_section == sizeless_by_section_.end()) return false;
  const std::vector<uint64_t>& values = in_section->second;
  const auto after = std::upper_bound(values.begin(), values.end(), address);
  if (after == values.begin()) return false;
  const uint64_t highest_sizeless = *(after - 1);
  if (highest_sizeless == address) return true;  // it also decides whether locals are searched
  // Every symbol below the address pushes libdwfl's min_label to its end, and the global part is
  // always searched: a sizeless symbol below that end is never the answer.
  const auto at = std::upper_bound(by_value_.begin(), by_value_.end(), address,
                                   [&](uint64_t value, uint32_t index) { return value < symbols_[index].value; });
  const uint64_t global_end = at == by_value_.begin() ? 0 : prefix_end_global_[static_cast<size_t>(at - by_value_.begin()) - 1];
  return highest_sizeless >= global_end;
}

// The same answer as full_scan, mostly without one: the sized symbols containing the address
// are found through the value order (walking down while an earlier symbol may still reach it),
// then judged by libdwfl's rules in table order, globals before locals. Where a sizeless
// symbol could matter, the full scan decides.
const char* SymbolLookup::addrinfo(uint64_t address) const {
  if (sizeless_may_apply(address)) return full_scan(address);
  std::vector<uint32_t> containing;
  auto at = std::upper_bound(by_value_.begin(), by_value_.end(), address,
                             [&](uint64_t value, uint32_t index) { return value < symbols_[index].value; });
  for (size_t k = static_cast<size_t>(at - by_value_.begin()); k > 0 && prefix_end_[k - 1] > address; --k) {
    const Symbol& symbol = symbols_[by_value_[k - 1]];
    if (symbol.size != 0 && address - symbol.value < symbol.size) containing.push_back(by_value_[k - 1]);
  }
  std::sort(containing.begin(), containing.end());
  auto pick = [&](bool globals) -> const Symbol* {
    const Symbol* closest = nullptr;
    for (const uint32_t index : containing) {
      if ((index >= first_global_) != globals) continue;
      const Symbol& symbol = symbols_[index];
      if (closest == nullptr || closest->value < symbol.value || closest->binding < symbol.binding) {
        closest = &symbol;
      } else if (closest->value == symbol.value &&
                 ((closest->size > symbol.size && closest->binding <= symbol.binding) ||
                  (closest->size >= symbol.size && closest->binding < symbol.binding))) {
        closest = &symbol;
      }
    }
    return closest;
  };
  if (const Symbol* global = pick(true)) return global->name;
  if (!locals_exist_) return nullptr;
  const Symbol* local = pick(false);
  return local != nullptr ? local->name : nullptr;
}

const char* SymbolLookup::full_scan(uint64_t address) const {
  Candidates found;
  scan(first_global_, symbols_.size(), address, found);
  if (found.closest == nullptr && locals_exist_ && (found.sizeless == nullptr || found.sizeless->value != address))
    scan(0, first_global_, address, found);
  if (found.closest != nullptr) return found.closest->name;
  if (found.sizeless != nullptr && found.sizeless->value >= found.min_label) return found.sizeless->name;
  return nullptr;
}

std::string SymbolLookup::at(uint64_t address) {
  auto after = intervals_.upper_bound(address);
  if (after != intervals_.begin() && address < std::prev(after)->second.end) return std::prev(after)->second.name;
  const char* name = addrinfo(address);
  std::string readable = name != nullptr ? demangle(name) : std::string();
  // An edge at the address itself (a symbol starting exactly there) can make its answer its own.
  const auto next = std::upper_bound(edges_.begin(), edges_.end(), address);
  const bool at_edge = std::binary_search(edges_.begin(), edges_.end(), address);
  const uint64_t end = at_edge || next == edges_.end() ? address + 1 : *next;
  intervals_.emplace(address, Interval{end, readable});
  return readable;
}

struct Symbolizer::OpenModule {
  std::string path;
  Dwfl* dwfl = nullptr;
  Dwfl_Module* module = nullptr;
  bool trusted = false;
  std::unique_ptr<SymbolLookup> symbols;  // once `module` is known
  ~OpenModule() {
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
};

Symbolizer::Symbolizer() = default;
Symbolizer::~Symbolizer() = default;

Symbolizer::OpenModule* Symbolizer::open(const Module& module) {
  auto key = std::make_pair(module.path, module.build_id);
  auto found = modules_.find(key);
  if (found != modules_.end()) return found->second.get();
  auto opened = std::make_unique<OpenModule>();
  opened->path = module.path;
  // A trace names its modules: only a regular file is read, opened without blocking (a FIFO or
  // a terminal in a trace would otherwise hold `heapscope report` in open() or read() forever).
  int fd = -1;
  if (!module.path.empty() && module.path[0] == '/') {
    fd = ::open(module.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat status {};
    if (fd >= 0 && (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode))) {
      ::close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) {
    opened->dwfl = dwfl_begin(&kOfflineCallbacks);
    if (opened->dwfl == nullptr) ::close(fd);
    if (opened->dwfl != nullptr) {
      dwfl_report_begin(opened->dwfl);
      // At bias 0: lookups use addresses within the file, the same in every process. libdwfl
      // owns the descriptor from here (closed by dwfl_end, or at once if it fails).
      opened->module = dwfl_report_elf(opened->dwfl, module.path.c_str(), module.path.c_str(), fd, 0, false);
      dwfl_report_end(opened->dwfl, nullptr, nullptr);
      // A rebuilt or replaced binary would give confidently wrong names: require the same id.
      opened->trusted = opened->module != nullptr &&
                        (module.build_id.empty() || hex_build_id(opened->module) == module.build_id);
    }
  }
  return modules_.emplace(std::move(key), std::move(opened)).first->second.get();
}

const std::vector<SymbolizedFrame>& Symbolizer::symbolize(const Module* module, uint64_t address) {
  OpenModule* open_module = module != nullptr ? open(*module) : nullptr;
  const uint64_t bias = module != nullptr ? module->load_bias : 0;
  const auto key = std::make_tuple(static_cast<const OpenModule*>(open_module), bias, address);
  auto cached = cache_.find(key);
  if (cached != cache_.end()) return cached->second;
  std::vector<SymbolizedFrame> frames;
  if (open_module == nullptr || !open_module->trusted) {
    SymbolizedFrame outer;
    if (module != nullptr) outer.module = module->path;
    frames.push_back(std::move(outer));
  } else {
    frames = symbolize_in_file(*open_module, address - bias);
  }
  for (SymbolizedFrame& frame : frames) {
    frame.address = address;
    if (module != nullptr) frame.module_offset = address - bias;
  }
  return cache_.emplace(key, std::move(frames)).first->second;
}

const std::vector<SymbolizedFrame>& Symbolizer::symbolize_in_file(OpenModule& open_module, uint64_t file_address) {
  const auto key = std::make_pair(static_cast<const OpenModule*>(&open_module), file_address);
  auto cached = file_cache_.find(key);
  if (cached != file_cache_.end()) return cached->second;
  std::vector<SymbolizedFrame> frames;
  SymbolizedFrame outer;
  outer.module = open_module.path;
  Dwfl_Module* dwfl_module = open_module.module;
  const Dwarf_Addr pc = file_address - 1;  // inside the call instruction, not after it

  if (!open_module.symbols) open_module.symbols = std::make_unique<SymbolLookup>(dwfl_module);
  outer.function = open_module.symbols->at(pc);
  std::string file;
  int line = 0;
  if (Dwfl_Line* source = dwfl_module_getsrc(dwfl_module, pc)) {
    Dwarf_Addr line_address = 0;
    if (const char* path = dwfl_lineinfo(source, &line_address, &line, nullptr, nullptr, nullptr))
      file = path;
  }

  // Expand inlined calls like `addr2line -i`: each inlined scope is a frame at the current
  // location; its call site becomes the location of the frame around it.
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(dwfl_module, pc, &bias);
  Dwarf_Die* scopes = nullptr;
  const int scope_count = cu != nullptr ? dwarf_getscopes(cu, pc - bias, &scopes) : 0;
  Dwarf_Files* files = nullptr;
  size_t file_count = 0;
  if (cu != nullptr) dwarf_getsrcfiles(cu, &files, &file_count);
  for (int i = 0; i < scope_count; ++i) {
    const int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_subprogram) {
      // The symbol table already named the function; DWARF's linkage name is as good, and its
      // plain name (no namespace, no parameters) is only a fallback.
      std::string name = die_linkage_name(&scopes[i]);
      if (name.empty() && outer.function.empty()) name = die_plain_name(&scopes[i]);
      if (!name.empty()) outer.function = std::move(name);
      break;
    }
    if (tag != DW_TAG_inlined_subroutine) continue;
    SymbolizedFrame inlined;
    inlined.module = outer.module;
    inlined.function = die_function_name(&scopes[i]);
    inlined.file = file;
    inlined.line = line;
    inlined.inlined = true;
    frames.push_back(std::move(inlined));
    Dwarf_Attribute attribute;
    Dwarf_Word call_file = 0;
    Dwarf_Word call_line = 0;
    if (dwarf_attr(&scopes[i], DW_AT_call_file, &attribute) != nullptr &&
        dwarf_formudata(&attribute, &call_file) == 0 && files != nullptr && call_file < file_count) {
      const char* path = dwarf_filesrc(files, call_file, nullptr, nullptr);
      file = path != nullptr ? path : "";
    }
    if (dwarf_attr(&scopes[i], DW_AT_call_line, &attribute) != nullptr &&
        dwarf_formudata(&attribute, &call_line) == 0)
      line = static_cast<int>(call_line);
  }
  free(scopes);
  outer.file = file;
  outer.line = line;
  frames.push_back(std::move(outer));
  return file_cache_.emplace(key, std::move(frames)).first->second;
}

}  // namespace heapscope::analyzer
