// Reading .dynsym from an ELF file (see elf_symbols.h). The file is read whole and every offset
// is checked against its size: the file comes from another process's view and may be anything.
#include "elf_symbols.h"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace heapscope::attach {
namespace {

template <typename T>
const T* at(const std::vector<char>& bytes, uint64_t offset, uint64_t count = 1) {
  if (offset > bytes.size() || count > (bytes.size() - offset) / sizeof(T)) return nullptr;
  return reinterpret_cast<const T*>(bytes.data() + offset);
}

}  // namespace

ElfFile read_elf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* header = at<Elf64_Ehdr>(bytes, 0);
  if (header == nullptr || std::memcmp(header->e_ident, ELFMAG, SELFMAG) != 0)
    throw std::runtime_error(path + " is not an ELF file");
  ElfFile file;
  file.is_64bit_x86 = header->e_ident[EI_CLASS] == ELFCLASS64 && header->e_machine == EM_X86_64;
  if (!file.is_64bit_x86) return file;

  const auto* programs = at<Elf64_Phdr>(bytes, header->e_phoff, header->e_phnum);
  bool first_load = true;
  for (int i = 0; programs != nullptr && i < header->e_phnum; ++i) {
    if (programs[i].p_type == PT_INTERP) file.has_interpreter = true;
    if (programs[i].p_type == PT_LOAD && first_load) {
      file.first_load_vaddr = programs[i].p_vaddr & ~uint64_t{0xfff};
      first_load = false;
    }
  }
  const auto* sections = at<Elf64_Shdr>(bytes, header->e_shoff, header->e_shnum);
  // .gnu.version: one half-word per .dynsym entry; bit 15 marks a hidden (non-default) version.
  const Elf64_Half* versions = nullptr;
  uint64_t version_count = 0;
  for (int i = 0; sections != nullptr && i < header->e_shnum; ++i) {
    if (sections[i].sh_type != SHT_GNU_versym) continue;
    version_count = sections[i].sh_size / sizeof(Elf64_Half);
    versions = at<Elf64_Half>(bytes, sections[i].sh_offset, version_count);
  }
  for (int i = 0; sections != nullptr && i < header->e_shnum; ++i) {
    if (sections[i].sh_type != SHT_DYNSYM || sections[i].sh_link >= header->e_shnum) continue;
    const Elf64_Shdr& strings = sections[sections[i].sh_link];
    const uint64_t count = sections[i].sh_size / sizeof(Elf64_Sym);
    const auto* symbols = at<Elf64_Sym>(bytes, sections[i].sh_offset, count);
    if (symbols == nullptr || at<char>(bytes, strings.sh_offset, strings.sh_size) == nullptr) continue;
    for (uint64_t s = 0; s < count; ++s) {
      const Elf64_Sym& symbol = symbols[s];
      const int type = ELF64_ST_TYPE(symbol.st_info);
      if (symbol.st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_GNU_IFUNC)) continue;
      if (symbol.st_name >= strings.sh_size) continue;
      const char* name = bytes.data() + strings.sh_offset + symbol.st_name;
      const size_t length = strnlen(name, strings.sh_size - symbol.st_name);
      // The default version wins over older ones of the same name (dlopen@@GLIBC_2.34 is the
      // one a program links to, not dlopen@GLIBC_2.2.5).
      const bool hidden = versions != nullptr && s < version_count && (versions[s] & 0x8000) != 0;
      auto [entry, fresh] = file.functions.try_emplace(std::string(name, length), ElfSymbol{symbol.st_value, symbol.st_size});
      if (!fresh && !hidden) entry->second = ElfSymbol{symbol.st_value, symbol.st_size};
    }
  }
  return file;
}

}  // namespace heapscope::attach
