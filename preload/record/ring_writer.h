// Producer side of the shared-memory event ring (format in include/heapscope/event_format.h).
// Lossless: when the ring is full the producer waits for the collector -- safe because the
// collector is another process and needs none of the program's locks. Only if the collector is
// gone does recording stop, and the ring is marked incomplete so the report says so.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "heapscope/event_format.h"

namespace heapscope::preload {

class RingWriter {
 public:
  // Creates `<session_dir>/<pid>-<nonce>.ring` (O_EXCL|O_NOFOLLOW, 0600) and maps it.
  bool open(const char* session_dir, int collector_pid, size_t capacity_bytes) noexcept;
  bool is_open() const noexcept { return ring_ != nullptr; }
  // Forgets the mapping without touching it.
  void abandon() noexcept { ring_ = nullptr; }
  // A fork child: nothing more reaches the parent's ring, and recording stops. The mapping is
  // replaced in place by private zeroed memory, so that a record reserved before the fork by a
  // frame the fork interrupted (a fork from a signal handler) is completed where nobody reads
  // it, and a reserve waiting for space gives up instead of waiting forever. close() unmaps it.
  void stop_in_fork_child() noexcept;
  // Unmaps the ring (attach agent, at detach, once no thread can be writing to it).
  void close() noexcept;
  // The ring's state bits (RingState), as the collector may have set them; 0 when closed.
  uint32_t state() const noexcept;

  // Reserves `size` bytes (multiple of 8) for one record; nullptr if recording has stopped.
  // The caller fills everything but header.kind, then calls commit().
  format::EventHeader* reserve(uint32_t size) noexcept;
  static void commit(format::EventHeader* record, format::EventKind kind) noexcept;

  void set_state(uint32_t bits) noexcept;
  // The mapping, for a reader in this process (tests: analyzer::RingReader's adopting form).
  format::RingHeader* mapping() const noexcept { return ring_; }
  uint64_t waits() const noexcept;

 private:
  void wait_for_space() noexcept;
  format::RingHeader* ring_ = nullptr;
  char* data_ = nullptr;
  uint64_t mask_ = 0;
  bool collector_lost_ = false;
  // The last read_pos seen. read_pos lives on a cache line the collector writes on the other
  // core; reading it on every reserve cost a cross-core transfer per event (9% of a run).
  // Producers re-read it only when this stale value says the ring may be full.
  std::atomic<uint64_t> seen_read_pos_{0};
};

}  // namespace heapscope::preload
