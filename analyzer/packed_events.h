// The compact form of alloc and free events in trace files (format::PackedEvent). A trace is
// mostly allocations and frees; written as ring records they cost 48 and 32 bytes each before
// compression, 5.3 bytes an event after it. Packed, an allocation names an "allocation info"
// (size, stack, alignment, family) by its slot in a table both sides keep, a free names its
// allocation by how many allocations ago it was, and thread and time appear only when they
// change: about 2.6 bytes an event after compression.
//
// The info table is direct-mapped (an info's slot is a hash of its fields, computed by writer
// and reader alike) and has a fixed size: a program with millions of distinct (size, stack)
// pairs neither grows the reader's memory nor makes every allocation a cache miss into a huge
// table (an unbounded table, numbered in order of appearance, made reading a 10^8-event trace
// 25% slower and 2.6 times bigger in memory). An info not in its slot is sent in full and
// takes the slot.
//
// Blocks are named by ordinal (1 = the process image's first allocation) in every record of
// such a trace, including ignore and leak-kind records: addresses of blocks appear in no
// report, and ordinals are what frees can name compactly. The packer keeps the live blocks'
// address -> ordinal map (memory proportional to the live blocks, like the heap model's).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "address_map.h"
#include "event_reader.h"
#include "heapscope/event_format.h"

namespace heapscope::analyzer {

// What an allocation says besides its address; 16 bytes, so the table (1 MiB) stays in a core's
// L2 cache. Alignments are powers of two below 2^24 (the agent's are); the family is in the low
// byte of `alignment_family`, and size UINT64_MAX marks an empty slot.
struct AllocationInfo {
  uint64_t size = UINT64_MAX;
  uint32_t stack_id = 0;
  uint32_t alignment_family = 0;
  bool operator==(const AllocationInfo&) const = default;
};
inline constexpr unsigned kInfoSlotBits = 16;
inline constexpr size_t kInfoSlots = size_t{1} << kInfoSlotBits;
size_t info_slot(const AllocationInfo& info) noexcept;

// Writer side. Feed every record of one process image, in order, to add(); whatever it does
// not keep goes out through `emit`, with block addresses rewritten to ordinals.
class EventPacker {
 public:
  using Emit = std::function<void(std::span<const std::byte>)>;
  explicit EventPacker(Emit emit) : emit_(std::move(emit)) {}

  void add(std::span<const std::byte> record);
  // Emits what is packed so far as one PackedEvent record (nothing if empty).
  void flush();
  bool pending() const noexcept { return events_ != 0; }

 private:
  bool pack_alloc(const format::AllocEvent& event);
  bool pack_free(const format::FreeEvent& event);
  void emit_implied_free(const format::AllocEvent& event, uint64_t ordinal);
  void begin_event(const format::EventHeader& header, uint8_t tag, uint32_t thread_id);
  void emit_translated(std::span<const std::byte> record);
  uint64_t ordinal_of(uint64_t address) const;

  Emit emit_;
  std::vector<uint8_t> packed_;
  uint32_t events_ = 0;
  uint64_t first_time_ = 0;
  uint64_t last_time_ = 0;
  uint32_t last_thread_ = 0;
  uint64_t allocations_ = 0;  // the last ordinal handed out
  AddressMap<uint64_t> live_;  // address -> ordinal
  std::vector<AllocationInfo> infos_ = std::vector<AllocationInfo>(kInfoSlots);
  std::vector<std::byte> scratch_;
};

// Reader side: turns each PackedEvent record of one trace back into AllocEvent and FreeEvent
// records (whose addresses are ordinals). Throws FormatError on malformed data.
class EventUnpacker {
 public:
  void unpack(const RecordView& packed, const std::function<void(const RecordView&)>& deliver);
  // An alloc record the writer could not pack (its ordinal is in its address field): ordinals
  // count every allocation, packed or not.
  void note_unpacked_alloc() noexcept { ++allocations_; }
  uint64_t events() const noexcept { return events_; }

 private:
  std::vector<AllocationInfo> infos_ = std::vector<AllocationInfo>(kInfoSlots);
  uint64_t last_time_ = 0;
  uint32_t last_thread_ = 0;
  uint64_t allocations_ = 0;
  uint64_t events_ = 0;
};

}  // namespace heapscope::analyzer
