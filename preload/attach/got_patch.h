// Redirection of the allocation API for the attach agent: every relocation slot (JUMP_SLOT,
// GLOB_DAT, R_X86_64_64) of every loaded module that names an allocation function and holds its
// default definition (or, not yet bound, its own PLT stub) is pointed at the agent's entry
// point, full-RELRO slots included (the page is made writable for the store and read-only
// again). Each slot's previous value is kept, so detach restores exactly it, and only where the
// slot still holds our hook.
//
// Slots are written inside dl_iterate_phdr's callback: the loader's lock it holds keeps the
// module from being unloaded under the store. The callback allocates nothing and takes no lock
// of ours (a hook called meanwhile must not wait on us: heaptrack 88e66a6).
// Not hot-path code: runs at attach, when modules appear, and at detach, on the agent thread.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload::got {

struct PatchCounts {
  uint32_t modules = 0;        // modules with at least one slot redirected
  uint32_t slots = 0;          // slots redirected
  uint32_t program_slots = 0;  // of those, in the main program
  uint32_t skipped = 0;        // naming an allocation function but bound elsewhere (another interposer, namespace)
};

// Finds the hooks (the agent's own exported entry points) and the default definitions. False
// if malloc or free has no default definition. Call once per session, before patch_new_modules.
bool prepare(const void* agent_address) noexcept;

// Redirects the slots of every module not redirected yet (all of them the first time). Returns
// what it did in this call.
PatchCounts patch_new_modules() noexcept;

// Restores every redirected slot still holding our hook to the value it had, in the modules
// still loaded, and forgets them all.
PatchCounts restore_all() noexcept;

// True when modules were loaded or unloaded since the last patch_new_modules/restore_all
// (dl_iterate_phdr's adds/subs counters; cheap), or that pass left a module for later (the
// loader was still relocating it when the pass saw it).
bool modules_changed_since_patch() noexcept;

// The default definition of an allocation function, the function the program's calls reach
// (RTLD_DEFAULT, seen through a canonical PLT stub): the real allocator under the attach
// agent. nullptr if unknown. Valid after prepare().
void* default_definition(const char* name) noexcept;

}  // namespace heapscope::preload::got
