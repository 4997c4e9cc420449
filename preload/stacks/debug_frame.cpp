// The `.debug_frame` index (see debug_frame.h).
#include "debug_frame.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "sys.h"

namespace heapscope::preload::unwind {
namespace {

struct Entry {
  uint64_t begin;  // run-time addresses
  uint64_t end;
  const uint8_t* fde;
};

enum : uint32_t { kEmpty = 0, kReading = 1, kReady = 2 };

// One loaded module's section and index. A slot is claimed once per module (and generation);
// what it maps is never unmapped: another thread may be reading it.
struct ModuleFrames {
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> generation;
  uint64_t map_start;  // _dl_find_object's dlfo_map_start: which module
  const uint8_t* section;
  const uint8_t* section_end;
  uint64_t bias;
  Entry* entries;
  size_t count;
};
constexpr size_t kModules = 256;  // modules with frames walked through their .debug_frame
ModuleFrames modules[kModules];
std::atomic<uint32_t> current_generation{1};

// Reads exactly `bytes` at `offset`.
bool read_at(int fd, void* out, size_t bytes, uint64_t offset) noexcept {
  return sys::pread_some(fd, out, bytes, offset) == static_cast<long>(bytes);
}

// Maps the named file's .debug_frame (read-only, private). False if it has none (or it is
// compressed: SHF_COMPRESSED sections are left alone).
bool map_section(const char* path, const uint8_t*& section, const uint8_t*& section_end) noexcept {
  const int fd = sys::open_file(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool mapped = false;
  Elf64_Ehdr header{};
  constexpr size_t kMaxSections = 65536;
  if (read_at(fd, &header, sizeof(header), 0) && memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 &&
      header.e_ident[EI_CLASS] == ELFCLASS64 && header.e_shentsize == sizeof(Elf64_Shdr) && header.e_shnum > 0 &&
      header.e_shnum < kMaxSections && header.e_shstrndx < header.e_shnum) {
    const size_t table_bytes = size_t{header.e_shnum} * sizeof(Elf64_Shdr);
    auto* sections = static_cast<Elf64_Shdr*>(sys::map_anonymous(table_bytes));
    if (sections != nullptr && read_at(fd, sections, table_bytes, header.e_shoff)) {
      const Elf64_Shdr& names = sections[header.e_shstrndx];
      constexpr char kName[] = ".debug_frame";
      for (size_t i = 0; i < header.e_shnum && !mapped; ++i) {
        const Elf64_Shdr& candidate = sections[i];
        if (candidate.sh_type != SHT_PROGBITS || (candidate.sh_flags & SHF_COMPRESSED) != 0 || candidate.sh_size == 0 ||
            candidate.sh_name + sizeof(kName) > names.sh_size)
          continue;
        char name[sizeof(kName)];
        if (!read_at(fd, name, sizeof(name), names.sh_offset + candidate.sh_name) || memcmp(name, kName, sizeof(kName)) != 0)
          continue;
        const uint64_t page_offset = candidate.sh_offset & ~uint64_t{4095};
        const size_t length = candidate.sh_size + (candidate.sh_offset - page_offset);
        void* mapping = sys::map_memory(nullptr, length, PROT_READ, MAP_PRIVATE, fd, page_offset);
        if (mapping == nullptr) break;
        section = static_cast<const uint8_t*>(mapping) + (candidate.sh_offset - page_offset);
        section_end = section + candidate.sh_size;
        mapped = true;
      }
    }
    sys::unmap(sections, table_bytes);
  }
  sys::close_file(fd);
  return mapped;
}

// Every FDE of the section, by run-time address (entries of 64-bit DWARF are skipped).
void index_section(ModuleFrames& module) noexcept {
  size_t count = 0;
  for (int pass = 0; pass < 2; ++pass) {
    size_t filled = 0;
    for (const uint8_t* at = module.section; at + 8 <= module.section_end;) {
      uint32_t length = 0;
      memcpy(&length, at, 4);
      if (length == 0 || length == 0xffffffffu || length > static_cast<size_t>(module.section_end - at - 4)) break;
      const uint8_t* next = at + 4 + length;
      uint32_t id = 0;
      memcpy(&id, at + 4, 4);
      if (id != 0xffffffffu && length >= 4 + 16) {  // an FDE: CIE offset, initial location, range
        uint64_t location = 0;
        uint64_t range = 0;
        memcpy(&location, at + 8, 8);
        memcpy(&range, at + 16, 8);
        if (range != 0) {
          if (pass == 1 && filled < count) module.entries[filled] = {location + module.bias, location + module.bias + range, at};
          ++filled;
        }
      }
      at = next;
    }
    if (pass == 0) {
      count = filled;
      if (count == 0) return;
      module.entries = static_cast<Entry*>(sys::map_anonymous(count * sizeof(Entry)));
      if (module.entries == nullptr) return;
    }
  }
  std::sort(module.entries, module.entries + count, [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  module.count = count;
}

void read_module(ModuleFrames& module, const dl_find_object& found) noexcept {
  const link_map* map = found.dlfo_link_map;
  if (map == nullptr) return;
  module.bias = map->l_addr;
  const char* path = map->l_name;
  if (path == nullptr || path[0] == '\0') path = "/proc/self/exe";  // the main program
  if (path[0] != '/') return;  // the vDSO, or a relative name: no file to read here
  if (!map_section(path, module.section, module.section_end)) return;
  index_section(module);
}

}  // namespace

bool find_debug_frame(const dl_find_object& found, uint64_t address, DebugFrameEntry& out) noexcept {
  const auto start = reinterpret_cast<uint64_t>(found.dlfo_map_start);
  const uint32_t generation = current_generation.load(std::memory_order_acquire);
  ModuleFrames* module = nullptr;
  for (ModuleFrames& candidate : modules) {
    const uint32_t state = candidate.state.load(std::memory_order_acquire);
    if (state == kEmpty) {
      uint32_t expected = kEmpty;
      if (!candidate.state.compare_exchange_strong(expected, kReading, std::memory_order_acq_rel)) continue;
      candidate.map_start = start;
      candidate.generation.store(generation, std::memory_order_relaxed);
      candidate.section = candidate.section_end = nullptr;
      candidate.entries = nullptr;
      candidate.count = 0;
      const int saved_errno = errno;
      read_module(candidate, found);
      errno = saved_errno;
      candidate.state.store(kReady, std::memory_order_release);
      module = &candidate;
      break;
    }
    // Another thread is reading some module's section: it may be this one's.
    while (candidate.state.load(std::memory_order_acquire) == kReading) sched_yield();
    if (candidate.map_start == start && candidate.generation.load(std::memory_order_relaxed) == generation) {
      module = &candidate;
      break;
    }
  }
  if (module == nullptr || module->count == 0) return false;  // no .debug_frame (or every slot taken)
  const Entry* entries = module->entries;
  const Entry* after = std::upper_bound(entries, entries + module->count, address,
                                        [](uint64_t value, const Entry& entry) { return value < entry.begin; });
  if (after == entries) return false;
  const Entry& entry = *(after - 1);
  if (address >= entry.end) return false;
  out = DebugFrameEntry{entry.fde, module->section, module->section_end, module->bias};
  return true;
}

void forget_debug_frames() noexcept { current_generation.fetch_add(1, std::memory_order_acq_rel); }

void reset_debug_frames_in_fork_child() noexcept {
  for (ModuleFrames& module : modules) {
    uint32_t reading = kReading;
    // Half read by a thread the child does not have: read again by whoever needs it.
    if (module.state.compare_exchange_strong(reading, kReady, std::memory_order_acq_rel)) {
      module.count = 0;
      module.map_start = 0;
    }
  }
}

}  // namespace heapscope::preload::unwind
