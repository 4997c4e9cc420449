// Consumer side of one shared-memory event ring (format in include/heapscope/event_format.h).
// Maps the ring file the agent created, validates its header, and hands committed records to a
// callback, zeroing each slot and publishing read_pos so producers waiting for room continue.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "event_reader.h"

namespace heapscope::analyzer {

class RingReader {
 public:
  // Throws IoError if the file cannot be opened or mapped, FormatError if it is not a ring of a
  // version we understand. Returns with is_ready()==false if the agent has not finished writing
  // the header yet (try again later).
  explicit RingReader(const std::string& path);
  // Reads a ring this process has mapped already, through that mapping (not owned). For tests
  // under ThreadSanitizer, which cannot see that two mappings of one file are the same memory.
  explicit RingReader(format::RingHeader* mapped);
  ~RingReader();
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  bool is_ready() const noexcept { return ring_ != nullptr; }
  int pid() const noexcept;
  uint32_t state() const noexcept;
  uint64_t waits() const noexcept;
  // Sets state bits the agent reads (kRingDetachRequested).
  void set_state_bits(uint32_t bits) noexcept;
  const std::string& path() const noexcept { return path_; }

  // Delivers every committed record (padding skipped). Stops at the first uncommitted slot.
  // Returns the number of records delivered.
  size_t drain(const std::function<void(const RecordView&)>& deliver);
  // drain() for a ring no one will write again (its process died, or exec replaced its image):
  // a record a killed thread reserved and never committed would stop drain() for good, and
  // every record after it (the signal that ended the process) would be lost. Such holes are
  // skipped: by their size when the thread wrote it, else a zero word at a time (a slot is
  // zero until written). Returns the records delivered; torn_records() counts the holes.
  size_t drain_abandoned(const std::function<void(const RecordView&)>& deliver);
  uint64_t torn_records() const noexcept { return torn_records_; }

 private:
  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  format::RingHeader* ring_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t torn_records_ = 0;
};

}  // namespace heapscope::analyzer
