// Redirecting and restoring allocation slots for the attach agent (see got_patch.h).
#include "got_patch.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include "raw_log.h"
#include "self_maps.h"
#include "sys.h"

namespace heapscope::preload::got {
namespace {

// The allocation API: C functions, then operator new/delete (which are only redirected where
// their default definition is libstdc++'s: a program's own operators are its allocator).
struct Hook {
  const char* name;
  bool cxx;
  uint64_t hook = 0;        // our entry point
  uint64_t definition = 0;  // the default definition: the function the program's calls reach
  // A non-PIE program that takes the function's address gets a "canonical PLT entry": its own
  // stub, which RTLD_DEFAULT then returns and other modules' slots hold, for pointer equality.
  // The stub jumps through the program's own slot to `definition`.
  uint64_t canonical_stub = 0;
};
Hook hooks[] = {
    {"malloc", false}, {"calloc", false}, {"realloc", false}, {"free", false}, {"reallocarray", false},
    {"memalign", false}, {"posix_memalign", false}, {"aligned_alloc", false}, {"valloc", false},
    {"pvalloc", false}, {"malloc_usable_size", false},
    {"_Znwm", true}, {"_Znam", true}, {"_ZnwmRKSt9nothrow_t", true}, {"_ZnamRKSt9nothrow_t", true},
    {"_ZnwmSt11align_val_t", true}, {"_ZnamSt11align_val_t", true},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", true}, {"_ZnamSt11align_val_tRKSt9nothrow_t", true},
    {"_ZdlPv", true}, {"_ZdaPv", true}, {"_ZdlPvRKSt9nothrow_t", true}, {"_ZdaPvRKSt9nothrow_t", true},
    {"_ZdlPvm", true}, {"_ZdaPvm", true}, {"_ZdlPvSt11align_val_t", true}, {"_ZdaPvSt11align_val_t", true},
    {"_ZdlPvmSt11align_val_t", true}, {"_ZdaPvmSt11align_val_t", true},
    {"_ZdlPvSt11align_val_tRKSt9nothrow_t", true}, {"_ZdaPvSt11align_val_tRKSt9nothrow_t", true},
};
constexpr size_t kHookCount = sizeof(hooks) / sizeof(hooks[0]);

struct Slot {
  uint64_t address;
  uint64_t original;  // what it held before we wrote it
  uint64_t hook;
  uint64_t module;    // the module's identity (its PT_DYNAMIC address)
  uint64_t relro_begin, relro_end;
};

struct Module {
  uint64_t identity;  // PT_DYNAMIC's run-time address and the loader's name pointer
  bool patched;
  bool present;       // seen in the current pass
};

constexpr size_t kMaxSlots = 32768;
constexpr size_t kMaxModules = 4096;
Slot* slots = nullptr;  // mapped once, kept for the next session
size_t slot_count = 0;
Module* modules = nullptr;
size_t module_count = 0;
uint64_t agent_address = 0;
uint64_t program_base = ~uint64_t{0};  // the main program's dlpi_addr (the first module listed)
uint64_t page_size = 4096;
unsigned long long seen_adds = 0, seen_subs = 0;
// A module the last pass left for later (the loader was still relocating it): the next
// modules_changed_since_patch() says yes even if no module came or went since.
bool module_deferred = false;
constexpr size_t kMapsBuffer = 64 * 1024;
char* maps_buffer = nullptr;

const Hook* find_hook(const char* name) noexcept {
  for (const Hook& hook : hooks)
    if (hook.hook != 0 && sys::string_equal(hook.name, name, sys::string_length(hook.name) + 1)) return &hook;
  return nullptr;
}

bool in_relro(uint64_t address, uint64_t begin, uint64_t end) noexcept { return address >= begin && address < end; }

// A store into a slot that may be in the module's RELRO: made writable for the store, read-only
// again after (the protection RELRO gave it; patch_module only runs once it is in force).
void store_slot(uint64_t address, uint64_t value, uint64_t relro_begin, uint64_t relro_end) noexcept {
  const bool protect = in_relro(address, relro_begin, relro_end);
  const uint64_t page = address & ~(page_size - 1);
  if (protect && !sys::protect_memory(reinterpret_cast<void*>(page), page_size, PROT_READ | PROT_WRITE)) return;
  __atomic_store_n(reinterpret_cast<uint64_t*>(address), value, __ATOMIC_RELEASE);
  if (protect) sys::protect_memory(reinterpret_cast<void*>(page), page_size, PROT_READ);
}

// The process's mappings as one pass over /proc/self/maps found them (a pass over every module
// reads the file once, not once per module: 100 modules took 30 ms that way).
struct Protection {
  uint64_t begin, end;
  bool read_only;
};
constexpr size_t kMaxProtections = 65536;
Protection* protections = nullptr;
size_t protection_count = 0;

void load_protections() noexcept {
  protection_count = 0;
  if (protections == nullptr) return;
  for_each_mapping(maps_buffer, kMapsBuffer, [&](const Mapping& mapping) {
    if (protection_count < kMaxProtections)
      protections[protection_count++] = {mapping.begin, mapping.end, mapping.readable && !mapping.writable};
  });
}

// True when the page at `address` is mapped read-only now: the loader has relocated the module
// and applied its RELRO (it does both at the end of relocating it). A module still being
// relocated by another thread's dlopen is left for the next round.
bool relro_in_force(uint64_t address) noexcept {
  size_t low = 0, high = protection_count;  // /proc/self/maps lists mappings in address order
  while (low < high) {
    const size_t middle = (low + high) / 2;
    if (protections[middle].end <= address) low = middle + 1;
    else high = middle;
  }
  return low < protection_count && address >= protections[low].begin && protections[low].read_only;
}

Module* find_module(uint64_t identity) noexcept {
  for (size_t i = 0; i < module_count; ++i)
    if (modules[i].identity == identity) return &modules[i];
  return nullptr;
}

struct Pass {
  bool restore = false;
  PatchCounts counts;
};

struct DynamicInfo {
  const Elf64_Sym* symbols = nullptr;
  const char* strings = nullptr;
  const Elf64_Rela* rela = nullptr;
  uint64_t rela_bytes = 0;
  const Elf64_Rela* plt = nullptr;
  uint64_t plt_bytes = 0;
};

DynamicInfo read_dynamic(uint64_t base, const Elf64_Dyn* dynamic) noexcept {
  // glibc relocates these d_ptr values in place on x86-64; a module that was not (the vDSO,
  // read-only dynamic sections) holds file addresses: add the base then.
  auto pointer = [base](uint64_t value) { return value < base ? value + base : value; };
  DynamicInfo info;
  bool plt_is_rela = true;
  for (const Elf64_Dyn* entry = dynamic; entry->d_tag != DT_NULL; ++entry) {
    switch (entry->d_tag) {
      case DT_SYMTAB: info.symbols = reinterpret_cast<const Elf64_Sym*>(pointer(entry->d_un.d_ptr)); break;
      case DT_STRTAB: info.strings = reinterpret_cast<const char*>(pointer(entry->d_un.d_ptr)); break;
      case DT_RELA: info.rela = reinterpret_cast<const Elf64_Rela*>(pointer(entry->d_un.d_ptr)); break;
      case DT_RELASZ: info.rela_bytes = entry->d_un.d_val; break;
      case DT_JMPREL: info.plt = reinterpret_cast<const Elf64_Rela*>(pointer(entry->d_un.d_ptr)); break;
      case DT_PLTRELSZ: info.plt_bytes = entry->d_un.d_val; break;
      case DT_PLTREL: plt_is_rela = entry->d_un.d_val == DT_RELA; break;
      default: break;
    }
  }
  if (!plt_is_rela) info.plt = nullptr;  // x86-64 uses RELA only
  return info;
}

void patch_relocations(const Elf64_Rela* relocations, uint64_t bytes, const DynamicInfo& info, uint64_t base,
                       uint64_t identity, uint64_t low, uint64_t high, uint64_t relro_begin, uint64_t relro_end,
                       bool is_program, PatchCounts& counts, bool& any) noexcept {
  if (relocations == nullptr || info.symbols == nullptr || info.strings == nullptr) return;
  for (uint64_t i = 0; i < bytes / sizeof(Elf64_Rela); ++i) {
    const Elf64_Rela& relocation = relocations[i];
    const uint32_t type = ELF64_R_TYPE(relocation.r_info);
    if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && type != R_X86_64_64) continue;
    const uint32_t symbol_index = ELF64_R_SYM(relocation.r_info);
    if (symbol_index == 0) continue;
    const Hook* hook = find_hook(info.strings + info.symbols[symbol_index].st_name);
    if (hook == nullptr) continue;
    const uint64_t address = base + relocation.r_offset;
    const uint64_t current = __atomic_load_n(reinterpret_cast<const uint64_t*>(address), __ATOMIC_ACQUIRE);
    // Bound to the default definition, or a PLT slot not bound yet (it points back into its own
    // module's PLT, and would be bound to the default definition at the first call).
    const bool lazy = type == R_X86_64_JUMP_SLOT && current >= low && current < high;
    if (current == hook->hook) continue;  // ours already (a re-check)
    if (current != hook->definition && (current != hook->canonical_stub || current == 0) && !lazy) {
      ++counts.skipped;
      continue;
    }
    if (slot_count == kMaxSlots) {
      RawLine().text("heapscope: more than ").number(kMaxSlots).text(" allocation slots; the rest are not redirected").emit();
      return;
    }
    slots[slot_count++] = Slot{address, current, hook->hook, identity, relro_begin, relro_end};
    store_slot(address, hook->hook, relro_begin, relro_end);
    ++counts.slots;
    if (is_program) ++counts.program_slots;
    any = true;
  }
}

int visit_module(dl_phdr_info* info, size_t, void* context) noexcept {
  Pass& pass = *static_cast<Pass*>(context);
  if (program_base == ~uint64_t{0}) program_base = info->dlpi_addr;
  seen_adds = info->dlpi_adds;
  seen_subs = info->dlpi_subs;
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  const size_t name_length = sys::string_length(name);
  // The loader's own slots (its minimal malloc before libc is up) are never the program's.
  for (size_t i = 0; i + 8 <= name_length; ++i)
    if (sys::string_equal(name + i, "ld-linux", 8) || sys::string_equal(name + i, "linux-vdso", 10)) return 0;
  const Elf64_Dyn* dynamic = nullptr;
  uint64_t low = ~uint64_t{0}, high = 0, relro_begin = 0, relro_end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& header = info->dlpi_phdr[i];
    const uint64_t begin = info->dlpi_addr + header.p_vaddr;
    if (header.p_type == PT_DYNAMIC) dynamic = reinterpret_cast<const Elf64_Dyn*>(begin);
    if (header.p_type == PT_GNU_RELRO) {
      relro_begin = begin;
      relro_end = begin + header.p_memsz;
    }
    if (header.p_type == PT_LOAD) {
      if (begin < low) low = begin;
      if (begin + header.p_memsz > high) high = begin + header.p_memsz;
    }
  }
  if (dynamic == nullptr) return 0;
  if (agent_address >= low && agent_address < high) return 0;  // the agent itself
  // A module unloaded and another loaded at the same address would share the first; the
  // loader's name string is allocated per load.
  const uint64_t identity = reinterpret_cast<uint64_t>(dynamic) ^ (reinterpret_cast<uint64_t>(info->dlpi_name) << 1);
  Module* module = find_module(identity);
  if (module != nullptr) module->present = true;

  if (pass.restore) {
    if (module == nullptr || !module->patched) return 0;
    // Still loaded (we are inside the loader's iteration): its slots can be written.
    for (size_t i = 0; i < slot_count; ++i) {
      const Slot& slot = slots[i];
      if (slot.module != identity) continue;
      if (__atomic_load_n(reinterpret_cast<const uint64_t*>(slot.address), __ATOMIC_ACQUIRE) != slot.hook) continue;
      store_slot(slot.address, slot.original, slot.relro_begin, slot.relro_end);
      ++pass.counts.slots;
    }
    ++pass.counts.modules;
    return 0;
  }
  if (module != nullptr && module->patched) return 0;
  if (relro_end > relro_begin && !relro_in_force(relro_begin)) {  // not relocated yet: next round
    module_deferred = true;
    return 0;
  }
  if (module == nullptr) {
    if (module_count == kMaxModules) return 0;
    module = &modules[module_count++];
    *module = Module{identity, false, true};
  }
  const DynamicInfo dynamic_info = read_dynamic(info->dlpi_addr, dynamic);
  const bool is_program = name_length == 0 && info->dlpi_addr == program_base;
  bool any = false;
  patch_relocations(dynamic_info.rela, dynamic_info.rela_bytes, dynamic_info, info->dlpi_addr, identity, low, high,
                    relro_begin, relro_end, is_program, pass.counts, any);
  patch_relocations(dynamic_info.plt, dynamic_info.plt_bytes, dynamic_info, info->dlpi_addr, identity, low, high,
                    relro_begin, relro_end, is_program, pass.counts, any);
  module->patched = true;
  if (any) ++pass.counts.modules;
  return 0;
}

// Where the slot of the module holding `stub` for symbol `name` points: the function the stub
// jumps to. 0 when not found or not bound yet.
struct StubQuery {
  uint64_t stub;
  const char* name;
  uint64_t target = 0;
};

int find_stub_target(dl_phdr_info* info, size_t, void* context) noexcept {
  auto& query = *static_cast<StubQuery*>(context);
  const Elf64_Dyn* dynamic = nullptr;
  uint64_t low = ~uint64_t{0}, high = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& header = info->dlpi_phdr[i];
    const uint64_t begin = info->dlpi_addr + header.p_vaddr;
    if (header.p_type == PT_DYNAMIC) dynamic = reinterpret_cast<const Elf64_Dyn*>(begin);
    if (header.p_type == PT_LOAD) {
      if (begin < low) low = begin;
      if (begin + header.p_memsz > high) high = begin + header.p_memsz;
    }
  }
  if (query.stub < low || query.stub >= high || dynamic == nullptr) return 0;
  const DynamicInfo dynamic_info = read_dynamic(info->dlpi_addr, dynamic);
  const size_t name_bytes = sys::string_length(query.name) + 1;
  for (const auto& [relocations, bytes] : {std::pair{dynamic_info.plt, dynamic_info.plt_bytes},
                                           std::pair{dynamic_info.rela, dynamic_info.rela_bytes}}) {
    if (relocations == nullptr || dynamic_info.symbols == nullptr || dynamic_info.strings == nullptr) continue;
    for (uint64_t i = 0; i < bytes / sizeof(Elf64_Rela); ++i) {
      const uint32_t type = ELF64_R_TYPE(relocations[i].r_info);
      if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
      const char* symbol = dynamic_info.strings + dynamic_info.symbols[ELF64_R_SYM(relocations[i].r_info)].st_name;
      if (!sys::string_equal(symbol, query.name, name_bytes)) continue;
      const uint64_t target = *reinterpret_cast<const uint64_t*>(info->dlpi_addr + relocations[i].r_offset);
      if (target < low || target >= high) query.target = target;  // bound (not back into its own PLT)
      return 1;
    }
  }
  return 1;
}

}  // namespace

bool prepare(const void* agent) noexcept {
  agent_address = reinterpret_cast<uint64_t>(agent);
  const long size = sysconf(_SC_PAGESIZE);
  if (size > 0) page_size = static_cast<uint64_t>(size);
  if (slots == nullptr) slots = static_cast<Slot*>(sys::map_anonymous(kMaxSlots * sizeof(Slot)));
  if (modules == nullptr) modules = static_cast<Module*>(sys::map_anonymous(kMaxModules * sizeof(Module)));
  if (maps_buffer == nullptr) maps_buffer = static_cast<char*>(sys::map_anonymous(kMapsBuffer));
  if (protections == nullptr) protections = static_cast<Protection*>(sys::map_anonymous(kMaxProtections * sizeof(Protection)));
  if (slots == nullptr || modules == nullptr || maps_buffer == nullptr || protections == nullptr) return false;
  slot_count = 0;
  module_count = 0;
  // Our own entry points, found in our own object (its handle searches it first): through the
  // global scope the names would find the program's allocator instead.
  Dl_info self{};
  if (dladdr(agent, &self) == 0 || self.dli_fname == nullptr) return false;
  void* own = dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (own == nullptr) return false;
  for (Hook& hook : hooks) {
    hook.hook = reinterpret_cast<uint64_t>(dlsym(own, hook.name));
    void* definition = dlsym(RTLD_DEFAULT, hook.name);
    hook.definition = reinterpret_cast<uint64_t>(definition);
    hook.canonical_stub = 0;
    Dl_info where{};
    void* entry = nullptr;
    if (definition != nullptr && dladdr1(definition, &where, &entry, RTLD_DL_SYMENT) != 0 && entry != nullptr &&
        static_cast<const ElfW(Sym)*>(entry)->st_shndx == SHN_UNDEF) {
      StubQuery query{hook.definition, hook.name};
      dl_iterate_phdr(find_stub_target, &query);
      hook.canonical_stub = hook.definition;
      hook.definition = query.target;  // 0 (not bound yet): the name is left alone below
      definition = reinterpret_cast<void*>(query.target);
    }
    if (hook.cxx && definition != nullptr) {
      Dl_info home{};
      const char* file = dladdr(definition, &home) != 0 ? home.dli_fname : nullptr;
      bool libstdcxx = false;
      for (const char* p = file; p != nullptr && *p != '\0'; ++p)
        if (sys::string_equal(p, "libstdc++", 9)) libstdcxx = true;
      if (!libstdcxx) hook.hook = 0;  // the program's own operator: its allocator, left alone
    }
    if (hook.definition == 0 || hook.definition == hook.hook) hook.hook = 0;
  }
  dlclose(own);  // RTLD_NOLOAD took a reference; the attacher's dlopen keeps us loaded
  return find_hook("malloc") != nullptr && find_hook("free") != nullptr;
}

void* default_definition(const char* name) noexcept {
  for (const Hook& hook : hooks)
    if (sys::string_equal(hook.name, name, sys::string_length(hook.name) + 1)) return reinterpret_cast<void*>(hook.definition);
  return nullptr;
}

// Forgets the modules the last pass did not see (unloaded), and their slots: their addresses
// may belong to another module by now.
void forget_unloaded() noexcept {
  size_t kept_modules = 0;
  for (size_t i = 0; i < module_count; ++i) {
    if (modules[i].present) {
      modules[kept_modules++] = modules[i];
      continue;
    }
    size_t kept_slots = 0;
    for (size_t s = 0; s < slot_count; ++s)
      if (slots[s].module != modules[i].identity) slots[kept_slots++] = slots[s];
    slot_count = kept_slots;
  }
  module_count = kept_modules;
}

PatchCounts patch_new_modules() noexcept {
  for (size_t i = 0; i < module_count; ++i) modules[i].present = false;
  module_deferred = false;
  load_protections();
  Pass pass;
  dl_iterate_phdr(visit_module, &pass);
  forget_unloaded();
  return pass.counts;
}

PatchCounts restore_all() noexcept {
  Pass pass;
  pass.restore = true;
  dl_iterate_phdr(visit_module, &pass);
  slot_count = 0;
  module_count = 0;
  return pass.counts;
}

bool modules_changed_since_patch() noexcept {
  struct Counters {
    unsigned long long adds = 0, subs = 0;
  } counters;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* context) noexcept -> int {
        auto* out = static_cast<Counters*>(context);
        out->adds = info->dlpi_adds;
        out->subs = info->dlpi_subs;
        return 1;  // every entry carries the same counters: the first is enough
      },
      &counters);
  return module_deferred || counters.adds != seen_adds || counters.subs != seen_subs;
}

}  // namespace heapscope::preload::got
