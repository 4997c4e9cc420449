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

 private:
  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  format::RingHeader* ring_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t mask_ = 0;
};

}  // namespace heapscope::analyzer
