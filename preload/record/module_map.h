// Tells the collector which ELF objects are loaded where (path, load bias, range, build-id), so
// frames can be symbolized out of process, later, and after the target is gone. Modules are sent
// at start and again whenever a new stack holds a frame outside every module sent so far
// (dlopen, including glibc-internal ones that no interposed dlopen would see).
#pragma once
#include <cstddef>
#include <cstdint>

#include "spin_lock.h"

struct dl_phdr_info;

namespace heapscope::preload {

class RingWriter;

class ModuleMap {
 public:
  // A fork child's new ring: sends again every module the parent sent, from our own copies of
  // the records. No loader call: the child may have inherited the loader's lock from a thread
  // that was inside dl_iterate_phdr at the fork and does not exist in the child, and would
  // wait for it forever.
  void announce_again(RingWriter& ring) noexcept;
  // Forgets what was sent (a new ring: the attach agent's next session).
  void reset() noexcept;
  // reset(), and unmaps the copies (the attach agent's detach).
  void release() noexcept;
  // True if every frame falls inside a module already sent.
  bool covers(const uint64_t* frames, size_t count) noexcept;
  // Sends every loaded module not sent yet. Calls dl_iterate_phdr (takes the loader's
  // recursive lock; never called from nested/signal context). Our lock is only held inside
  // each callback, never while waiting for the loader's: a thread holding the loader's lock
  // (dlclose) may itself be waiting in covers().
  void refresh(RingWriter& ring) noexcept;
  // After dlclose: sends kModuleUnload for every module sent that is no longer loaded, and
  // forgets it (its range may be reused). Same context rules as refresh().
  void forget_unloaded(RingWriter& ring) noexcept;

  // atfork only (see SpinLock::lock_for_fork).
  void lock_for_fork() noexcept { lock_.lock_for_fork(); }
  void unlock_after_fork() noexcept { lock_.unlock_after_fork(); }

 private:
  struct Range {
    uint64_t start;
    uint64_t end;
    uint64_t bias;
    bool present;            // seen by the current forget_unloaded() walk
    uint32_t record_offset;  // its kModule record in records_ (record_bytes 0: no copy)
    uint32_t record_bytes;
  };
  static constexpr size_t kMaxModules = 2048;
  // Copies of the module records sent, for announce_again: reserved, not committed (pages cost
  // only as they fill). Past it, records are not copied, and a fork child finds those modules
  // through the loader at its first new stack.
  static constexpr size_t kRecordBytes = size_t{4} << 20;
  static int visit(::dl_phdr_info* info, size_t, void* self) noexcept;
  static int mark_present(::dl_phdr_info* info, size_t, void* self) noexcept;
  void add(::dl_phdr_info* info) noexcept;  // under lock_
  void keep_copy(Range& range, const void* record, uint32_t bytes) noexcept;
  bool known(uint64_t start, uint64_t end, uint64_t bias) const noexcept;

  SpinLock lock_;
  Range ranges_[kMaxModules] = {};
  size_t count_ = 0;
  char* records_ = nullptr;
  size_t records_used_ = 0;
  RingWriter* ring_ = nullptr;  // only during refresh()
};

}  // namespace heapscope::preload
