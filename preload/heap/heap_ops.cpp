// Allocation semantics with checks and recording (see heap_ops.h). Hot path: no malloc of our
// own, no locks except the index/quarantine SpinLocks, which nested calls never reach.
#include "heap_ops.h"

#include <ucontext.h>

#include <cstdint>
#include <cstring>

#include "agent.h"
#include "block_header.h"
#include "block_index.h"
#include "build_mode.h"
#include "guarded_pages.h"
#include "nested_arena.h"
#include "real_alloc.h"
#include "sys.h"

namespace heapscope::preload::heap {
namespace {

using format::Api;
using format::ErrorKind;
using format::Family;

void* real_allocate(size_t total, size_t alignment, bool zeroed) noexcept {
  if (alignment <= block::kDefaultAlignment)
    return zeroed ? real::calloc(1, total) : real::malloc(total);
  void* out = nullptr;
  if (real::posix_memalign(&out, alignment, total) != 0) return nullptr;
  if (zeroed) memset(out, 0, total);
  return out;
}

void release_to_real(const BlockEntry& entry) noexcept {
  if ((entry.flags & kBlockGuarded) != 0) return guarded::unmap_block(entry.address, entry.size, front_bytes(entry));
  real::free(reinterpret_cast<char*>(entry.address) - front_bytes(entry));
}

// A freed block's fill, checked as it leaves the quarantine: -1 when unchanged. A guarded
// block has no fill to check: its pages were made inaccessible, any access faulted already.
int64_t changed_fill(uint64_t address, uint64_t size) noexcept {
  if (agent::options().guard_pages) {
    BlockEntry entry{};
    if (agent::index().find(address, entry) && (entry.flags & kBlockGuarded) != 0) return -1;
  }
  return block::check_fill(reinterpret_cast<void*>(address), size);
}

// Releases the blocks leaving the quarantine, `address` (of `size` bytes) and any more while it
// is over budget, checking that nothing wrote to them since they were freed. The fill is checked
// while the block is still in the index (a racing second free of it is still a double free);
// then one locked operation takes it out.
__attribute__((noinline)) void drain_quarantine(uint32_t detecting_stack, uint64_t address, uint64_t size) noexcept {
  Quarantine& quarantine = agent::quarantine();
  BlockIndex& index = agent::index();
  do {
    const int64_t changed = changed_fill(address, size);
    BlockEntry entry{};
    if (!index.take_quarantined(address, entry)) continue;
    if (changed >= 0 && (entry.flags & kBlockReported) == 0) {
      agent::report_error({ErrorKind::kUseAfterFree, address, entry.size, changed,
                           detecting_stack, entry.alloc_stack_id, entry.free_stack_id,
                           entry.family, entry.free_api, 0});
    }
    release_to_real(entry);
  } while (quarantine.pop(address, size, /*everything=*/false));
}

// The stack where an error was found, when the free has none: errors are rare, so this capture
// stays out of the flattened release() (which would otherwise inline a walker per error kind).
HEAPSCOPE_COLD uint32_t capture_detection_stack() noexcept { return agent::capture_stack_id(); }

// AllocEvent::alignment: 0 for the default; 4 GiB and more do not fit and are sent as UINT32_MAX.
inline uint32_t event_alignment(size_t alignment) noexcept {
  if (alignment <= block::kDefaultAlignment) return 0;
  return alignment > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(alignment);
}

// A block a signal handler got from the nested arena, freed twice (or an address inside the
// arena it never handed out) by the program's own code: reported like any double or invalid
// free; the arena itself changed nothing.
HEAPSCOPE_COLD void report_nested_misuse(void* pointer, Api api, nested::Release what) noexcept {
  const auto kind = what == nested::Release::kAlreadyFree ? ErrorKind::kDoubleFree : ErrorKind::kInvalidFree;
  agent::report_error({kind, reinterpret_cast<uint64_t>(pointer), 0, 0, capture_detection_stack(), 0, 0, 0,
                       static_cast<uint8_t>(api), 0});
}

bool family_matches(Family family, Api api) noexcept {
  switch (api) {
    case Api::kDelete: return family == Family::kNew;
    case Api::kDeleteArray: return family == Family::kNewArray;
    default: return family == Family::kMalloc;  // free, realloc(p, 0), realloc's old block
  }
}

// --- The attach agent (build_mode.h): the program keeps exactly the pointer the real allocator
// returned, so every block stays valid after detach, when the program frees it without us.
// No header, no canaries, no quarantine; the index alone holds size, family and stacks, and
// says which blocks are ours. A pointer it does not know is a block from before the attach:
// it goes to the real allocator untouched, and its release is recorded as a free of an
// address the ring never allocated (the report counts those).

HEAPSCOPE_HOT inline void* allocate_in_place(size_t size, size_t alignment, Api api, Family family, bool zeroed) noexcept {
  void* block = real_allocate(size, alignment, zeroed);
  if (block == nullptr || !agent::allocations_tracked()) return block;  // the session is ending
  const auto address = reinterpret_cast<uint64_t>(block);
  agent::index().prefetch(address);
  const uint32_t stack_id = agent::capture_stack_id();
  const BlockEntry entry{address, size, stack_id, 0, 0, static_cast<uint8_t>(family), BlockState::kLive, 0, 0};
  // An index that cannot grow leaves the block untracked, still the program's to use.
  if (!agent::index().insert(entry)) return block;
  agent::emit_alloc(address, size, stack_id, event_alignment(alignment),
                    api, family);
  return block;
}

HEAPSCOPE_HOT inline void release_in_place(void* pointer, Api api) noexcept {
  const auto address = reinterpret_cast<uint64_t>(pointer);
  const uint32_t free_stack = agent::options().free_stacks ? agent::capture_stack_id() : 0;
  BlockEntry entry{};
  if (agent::index().take(address, free_stack, entry) == FreeCheck::kOk &&
      !family_matches(static_cast<Family>(entry.family), api)) {
    agent::report_error({ErrorKind::kMismatchedFree, address, entry.size, 0,
                         free_stack != 0 ? free_stack : capture_detection_stack(), entry.alloc_stack_id, 0,
                         entry.family, static_cast<uint8_t>(api), 0});
  }
  agent::emit_free(address, api);  // a block of ours, or one from before the attach
  real::free(pointer);
}

inline void* reallocate_in_place(void* pointer, size_t size, Api api) noexcept {
  const auto address = reinterpret_cast<uint64_t>(pointer);
  BlockEntry old{};
  // Out of the index, and its free recorded, before the real realloc: once that returns, the
  // old address may be handed to another thread at once, whose allocation must come after
  // this free in the ring (else the free would be taken for that block's: its trace kept the
  // realloc'd block alive and lost the other one).
  const bool ours = agent::index().take(address, 0, old) == FreeCheck::kOk;
  const bool tracking = agent::allocations_tracked();
  const uint32_t stack_id = tracking ? agent::capture_stack_id() : 0;
  agent::emit_free(address, api);
  void* fresh = real::realloc(pointer, size);
  if (fresh == nullptr) {
    // The old block stays valid, as realloc promises: it is ours again, recorded again.
    if (ours && agent::index().insert(old))
      agent::emit_alloc(address, old.size, old.alloc_stack_id, 0, api, static_cast<Family>(old.family));
    return nullptr;
  }
  if (!tracking) return fresh;
  const auto fresh_address = reinterpret_cast<uint64_t>(fresh);
  const BlockEntry entry{fresh_address, size, stack_id, 0, 0, static_cast<uint8_t>(Family::kMalloc), BlockState::kLive, 0, 0};
  if (agent::index().insert(entry)) agent::emit_alloc(fresh_address, size, stack_id, 0, api, Family::kMalloc);
  return fresh;
}

// --guard-pages: the block on pages of its own, against a guard page (guarded_pages.h).
// nullptr when it cannot be guarded: the caller lays it out as usual.
HEAPSCOPE_COLD void* allocate_guarded(size_t size, size_t alignment, Api api, Family family) noexcept {
  size_t front = 0;
  char* user = static_cast<char*>(guarded::map_block(size, alignment, front));
  if (user == nullptr) return nullptr;
  const auto address = reinterpret_cast<uint64_t>(user);
  const uint32_t stack_id = agent::capture_stack_id();
  if (agent::options().canaries) block::arm_with_tail(user, size, front, stack_id, guarded::tail_bytes(address, size));
  const BlockEntry entry{address, size, stack_id, 0, encode_front(front), static_cast<uint8_t>(family),
                         BlockState::kLive, 0, kBlockGuarded};
  if (!agent::index().insert(entry)) {
    guarded::unmap_block(address, size, front);
    return nullptr;
  }
  agent::emit_alloc(address, size, stack_id, event_alignment(alignment), api, family);
  return user;
}

// The end of release() for a guarded block, its canaries already checked: its pages become
// inaccessible in the quarantine, or go at once.
HEAPSCOPE_COLD void release_guarded(const BlockEntry& entry, uint32_t free_stack, bool may_quarantine) noexcept {
  Quarantine& quarantine = agent::quarantine();
  const uint64_t front = front_bytes(entry);
  if (quarantine.accepts(entry.size)) {
    guarded::retire(entry.address, entry.size, front);
    uint64_t leaving = 0;
    uint64_t leaving_size = 0;
    if (quarantine.push(entry.address, entry.size, leaving, leaving_size)) {
      if (leaving != 0) drain_quarantine(free_stack, leaving, leaving_size);
      return;
    }
  }
  if (may_quarantine) agent::index().remove(entry.address);
  guarded::unmap_block(entry.address, entry.size, front);
}

}  // namespace

HEAPSCOPE_HOT void* passthrough_allocate(size_t size, size_t alignment, bool zeroed,
                                         bool nested) noexcept {
  if (nested) return nested::allocate(size, alignment, zeroed);
  return real_allocate(size, alignment, zeroed);
}

HEAPSCOPE_HOT void passthrough_release(void* pointer, bool nested) noexcept {
  // A second free of a nested block changes nothing; from here (inside the agent) it cannot be
  // reported, a free from the program's own context reports it (release()).
  if (pointer == nullptr || real::is_bootstrap(pointer) || nested::release(pointer) != nested::Release::kNotOurs) return;
  if (!nested) {
    real::free(pointer);
    return;
  }
  // A tracked block freed from a signal handler that interrupted this thread inside the agent:
  // neither the index (its shard may be locked by the interrupted frame) nor the real
  // allocator (it may be mid-call) may be touched. Leaving the block allocated is the only safe
  // choice; it shows as live at exit.
}

void* passthrough_reallocate(void* pointer, size_t size, bool nested) noexcept {
  if (nested::owns(pointer)) return nested::reallocate(pointer, size);
  if (nested) return pointer == nullptr ? nested::allocate(size, 16, false) : nullptr;
  return real::realloc(pointer, size);
}

size_t passthrough_usable_size(void* pointer) noexcept {
  if (nested::owns(pointer)) return nested::usable_size(pointer);
  return real::usable_size(pointer);
}

namespace {

struct FaultSearch {
  uint64_t address;
  bool found;
  BlockEntry entry;
};

void find_guarded_block(const BlockEntry& entry, void* context) noexcept {
  auto& search = *static_cast<FaultSearch*>(context);
  if (search.found || (entry.flags & kBlockGuarded) == 0) return;
  const guarded::Span span = guarded::span_of(entry.address, entry.size, front_bytes(entry));
  if (search.address < span.begin || search.address >= span.end) return;
  search.found = true;
  search.entry = entry;
}

}  // namespace

// A fault is rare and ends the process: one pass over the index finds the block.
bool report_guard_fault(uint64_t address, bool write, const void* context) noexcept {
  FaultSearch search{address, false, {}};
  agent::index().for_each(find_guarded_block, &search);
  if (!search.found) return false;
  const BlockEntry& entry = search.entry;
  const auto& registers = static_cast<const ucontext_t*>(context)->uc_mcontext;
  const uint32_t stack = agent::capture_stack_id_at(static_cast<uint64_t>(registers.gregs[REG_RIP]),
                                                    static_cast<uint64_t>(registers.gregs[REG_RSP]),
                                                    static_cast<uint64_t>(registers.gregs[REG_RBP]));
  const auto offset = static_cast<int64_t>(address - entry.address);
  const bool freed = entry.state == BlockState::kQuarantined;
  const ErrorKind kind = freed ? ErrorKind::kUseAfterFree : offset < 0 ? ErrorKind::kUnderflow : ErrorKind::kOverflow;
  const auto flags = static_cast<uint16_t>(format::kDetectedAtAccess | (write ? format::kAccessWasWrite : 0));
  agent::report_error({kind, entry.address, entry.size, offset, stack, entry.alloc_stack_id,
                       freed ? entry.free_stack_id : 0, entry.family, freed ? entry.free_api : uint8_t{0}, flags});
  return true;
}

int check_canaries(const BlockEntry& entry, int64_t& bad_offset) noexcept {
  const auto* user = reinterpret_cast<const void*>(entry.address);
  if ((entry.flags & kBlockGuarded) != 0)
    return block::check_with_tail(user, entry.size, guarded::tail_bytes(entry.address, entry.size), bad_offset);
  return block::check(user, entry.size, bad_offset);
}

HEAPSCOPE_HOT HEAPSCOPE_FLATTEN void* allocate(size_t size, size_t alignment, Api api, Family family,
                                               bool zeroed) noexcept {
  if (kAttachBuild) return allocate_in_place(size, alignment, api, family, zeroed);
  if (agent::options().guard_pages) {
    if (void* guarded_block = allocate_guarded(size, alignment, api, family)) return guarded_block;
  }
  size_t total = 0;
  if (!block::total_bytes(size, alignment, total)) return nullptr;
  void* real_block = real_allocate(total, alignment, zeroed);
  if (real_block == nullptr) return nullptr;
  const size_t front = block::front_bytes(alignment);
  char* user = static_cast<char*>(real_block) + front;
  agent::index().prefetch(reinterpret_cast<uint64_t>(user));  // loads while the stack is walked
  const uint32_t stack_id = agent::capture_stack_id();
  if (agent::options().canaries) block::arm(user, size, front, stack_id);
  const BlockEntry entry{reinterpret_cast<uint64_t>(user), size, stack_id, 0,
                         encode_front(front), static_cast<uint8_t>(family),
                         BlockState::kLive, 0, 0};
  if (!agent::index().insert(entry)) {
    // The index could not grow (out of memory): hand back nothing rather than a block we could
    // not recognize at free().
    real::free(real_block);
    return nullptr;
  }
  agent::emit_alloc(entry.address, size, stack_id,
                    event_alignment(alignment),
                    api, family);
  return user;
}

HEAPSCOPE_HOT HEAPSCOPE_FLATTEN void release(void* pointer, Api api) noexcept {
  if (pointer == nullptr || real::is_bootstrap(pointer)) return;
  if (const nested::Release freed = nested::release(pointer); freed != nested::Release::kNotOurs) {
    if (freed != nested::Release::kReleased) report_nested_misuse(pointer, api, freed);
    return;
  }
  if (kAttachBuild) return release_in_place(pointer, api);
  const auto address = reinterpret_cast<uint64_t>(pointer);
  uint32_t free_stack = 0;
  if (agent::options().free_stacks) {
    agent::index().prefetch(address);  // loads while the free stack is walked
    free_stack = agent::capture_stack_id();
  }
  // Where an error was found: the free stack when there is one, else captured once, on demand.
  uint32_t detected_at = free_stack;
  auto detection_stack = [&detected_at]() noexcept {
    if (detected_at == 0) detected_at = capture_detection_stack();
    return detected_at;
  };
  BlockEntry entry{};
  // A block too big for the quarantine (or with it off) leaves the index in the same locked
  // operation that proves it ours; otherwise it stays, marked quarantined.
  Quarantine& quarantine = agent::quarantine();
  const bool may_quarantine = quarantine.enabled();
  const FreeCheck verdict = may_quarantine
                                ? agent::index().begin_free(address, free_stack, static_cast<uint8_t>(api), entry)
                                : agent::index().take(address, free_stack, entry);
  switch (verdict) {
    case FreeCheck::kNotOurs: {
      const uint32_t stack = detection_stack();
      agent::report_error({ErrorKind::kInvalidFree, address, 0, 0, stack, 0, 0, 0,
                           static_cast<uint8_t>(api), 0});
      return;  // never hand an unknown pointer to the real allocator
    }
    case FreeCheck::kAlreadyFreed: {
      const uint32_t stack = detection_stack();
      agent::report_error({ErrorKind::kDoubleFree, address, entry.size, 0, stack,
                           entry.alloc_stack_id, entry.free_stack_id, entry.family,
                           static_cast<uint8_t>(api), 0});
      return;
    }
    case FreeCheck::kOk:
      break;
  }
  agent::emit_free(address, api);
  const auto family = static_cast<Family>(entry.family);
  if (!family_matches(family, api)) {
    const uint32_t stack = detection_stack();
    agent::report_error({ErrorKind::kMismatchedFree, address, entry.size, 0, stack,
                         entry.alloc_stack_id, 0, entry.family, static_cast<uint8_t>(api), 0});
  }
  if (agent::options().canaries && (entry.flags & kBlockReported) == 0) {
    int64_t bad_offset = 0;
    const int damage = check_canaries(entry, bad_offset);
    if (damage != 0) {
      const uint32_t stack = detection_stack();
      agent::report_error({damage > 0 ? ErrorKind::kOverflow : ErrorKind::kUnderflow, address,
                           entry.size, bad_offset, stack, entry.alloc_stack_id, 0, entry.family,
                           static_cast<uint8_t>(api), 0});
    }
  }
  if ((entry.flags & kBlockGuarded) != 0) return release_guarded(entry, free_stack, may_quarantine);
  if (quarantine.accepts(entry.size)) {
    block::fill_freed(pointer, entry.size);
    uint64_t leaving = 0;
    uint64_t leaving_size = 0;
    if (quarantine.push(address, entry.size, leaving, leaving_size)) {
      if (leaving != 0) drain_quarantine(free_stack, leaving, leaving_size);
      return;
    }
  }
  // Out of the index before the real free: the address may be handed out again at once.
  if (may_quarantine) agent::index().remove(address);
  release_to_real(entry);
}

HEAPSCOPE_HOT void* reallocate(void* pointer, size_t size, Api api) noexcept {
  if (pointer == nullptr) return allocate(size, 0, api, Family::kMalloc, false);
  if (size == 0) {
    release(pointer, api);
    return nullptr;
  }
  BlockEntry entry{};
  const auto address = reinterpret_cast<uint64_t>(pointer);
  if (real::is_bootstrap(pointer) || nested::owns(pointer)) {
    // Made before tracking or in a nested call (e.g. by dlsym or atexit during init), resized
    // now by an ordinary call: move it into a tracked block.
    const size_t old_size = real::is_bootstrap(pointer) ? size : nested::usable_size(pointer);
    void* fresh = allocate(size, 0, api, Family::kMalloc, false);
    if (fresh == nullptr) return nullptr;
    memcpy(fresh, pointer, old_size < size ? old_size : size);
    if (!real::is_bootstrap(pointer)) (void)nested::release(pointer);
    return fresh;
  }
  if (kAttachBuild) return reallocate_in_place(pointer, size, api);
  if (!agent::index().find(address, entry) || entry.state != BlockState::kLive) {
    release(pointer, api);  // reports the invalid or double free
    return nullptr;
  }
  void* fresh = allocate(size, 0, api, Family::kMalloc, false);
  if (fresh == nullptr) return nullptr;  // the old block stays valid, as realloc promises
  memcpy(fresh, pointer, entry.size < size ? entry.size : size);
  release(pointer, api);
  return fresh;
}

namespace {

struct Verification {
  uint32_t stack_id;
  int damaged = 0;
};

void verify_entry(BlockEntry& entry, void* context) noexcept {
  auto& verification = *static_cast<Verification*>(context);
  if ((entry.flags & kBlockReported) != 0) return;
  const auto* user = reinterpret_cast<const void*>(entry.address);
  if (entry.state == BlockState::kQuarantined) {
    if ((entry.flags & kBlockGuarded) != 0) return;  // inaccessible: an access faulted already
    const int64_t changed = block::check_fill(user, entry.size);
    if (changed < 0) return;
    // A free still filling it (it pushes the block into the FIFO once the fill is done), or
    // one that took it out to check it as it leaves: not ours to judge. We hold the block's
    // shard lock, so it cannot be released meanwhile; checked again now that it is proven full.
    if (!agent::quarantine().holds(entry.address) || block::check_fill(user, entry.size) < 0) return;
    agent::report_error({ErrorKind::kUseAfterFree, entry.address, entry.size, changed, verification.stack_id,
                         entry.alloc_stack_id, entry.free_stack_id, entry.family, entry.free_api, 0});
  } else {
    int64_t bad_offset = 0;
    const int damage = agent::options().canaries ? check_canaries(entry, bad_offset) : 0;
    if (damage == 0) return;
    agent::report_error({damage > 0 ? ErrorKind::kOverflow : ErrorKind::kUnderflow, entry.address, entry.size,
                         bad_offset, verification.stack_id, entry.alloc_stack_id, 0, entry.family, 0, 0});
  }
  entry.flags |= kBlockReported;
  ++verification.damaged;
}

}  // namespace

int verify_all() noexcept {
  Verification verification{agent::capture_stack_id()};
  agent::index().for_each_mutable(verify_entry, &verification);
  return verification.damaged;
}

size_t usable_size(void* pointer) noexcept {
  if (pointer == nullptr) return 0;
  // The attach agent's blocks are the real allocator's, slack included: programs may use it
  // (Redis sizes its strings by it).
  if (kAttachBuild) return passthrough_usable_size(pointer);
  BlockEntry entry{};
  if (agent::index().find(reinterpret_cast<uint64_t>(pointer), entry) &&
      entry.state == BlockState::kLive)
    return entry.size;
  return 0;  // not a live block of ours: reading the real allocator's metadata is not safe
}

}  // namespace heapscope::preload::heap
