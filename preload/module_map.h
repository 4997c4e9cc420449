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
  void reset() noexcept;  // forget what was sent (new ring after fork)
  // True if every frame falls inside a module already sent.
  bool covers(const uint64_t* frames, size_t count) noexcept;
  // Sends every loaded module not sent yet. Calls dl_iterate_phdr (takes the loader's
  // recursive lock; never called from nested/signal context).
  void refresh(RingWriter& ring) noexcept;
  // After dlclose: sends kModuleUnload for every module sent that is no longer loaded, and
  // forgets it (its range may be reused). Same context rules as refresh().
  void forget_unloaded(RingWriter& ring) noexcept;

  void lock() noexcept { lock_.lock(); }
  void unlock() noexcept { lock_.unlock(); }

 private:
  struct Range {
    uint64_t start;
    uint64_t end;
    uint64_t bias;
    bool present;  // seen by the current forget_unloaded() walk
  };
  static constexpr size_t kMaxModules = 2048;
  static int visit(::dl_phdr_info* info, size_t, void* self) noexcept;
  static int mark_present(::dl_phdr_info* info, size_t, void* self) noexcept;
  void add(::dl_phdr_info* info) noexcept;
  bool known(uint64_t start, uint64_t end, uint64_t bias) const noexcept;

  SpinLock lock_;
  Range ranges_[kMaxModules] = {};
  size_t count_ = 0;
  RingWriter* ring_ = nullptr;  // only during refresh()
};

}  // namespace heapscope::preload
