// The dynamic symbol table of an ELF file on disk (.dynsym), read without loading it: how the
// attacher finds dlopen, dlsym and the allocator's entry points in the target's own libc.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace heapscope::attach {

struct ElfSymbol {
  uint64_t value = 0;  // virtual address in the file's own numbering (add the load bias)
  uint64_t size = 0;
};

struct ElfFile {
  bool is_64bit_x86 = false;
  bool has_interpreter = false;     // PT_INTERP: dynamically linked
  uint64_t first_load_vaddr = 0;    // page-aligned p_vaddr of the first PT_LOAD
  std::map<std::string, ElfSymbol> functions;  // defined FUNC/IFUNC symbols of .dynsym
};

// Throws std::runtime_error naming the file and the problem.
ElfFile read_elf(const std::string& path);

}  // namespace heapscope::attach
