// The memory a process mapped itself with mmap (format::MapEvent, UnmapEvent): which ranges
// are mapped now, by which call site, and how much at most. The heap model's sibling for the
// reports' "mappings" family: mapped memory is not a leak (a CI gate never counts it), but
// where it goes and what is still mapped at exit is shown as the heap is.
#pragma once
#include <cstdint>
#include <map>
#include <unordered_map>

#include "heapscope/event_format.h"

namespace heapscope::analyzer {

// How a range is mapped (from mmap's flags and the descriptor).
enum class MappingKind : uint8_t { kAnonymousPrivate, kAnonymousShared, kFilePrivate, kFileShared };
const char* mapping_kind_name(MappingKind kind) noexcept;

// One call site's mappings, keyed by allocation-stack id.
struct MappingSite {
  MappingKind kind = MappingKind::kAnonymousPrivate;  // of its first mapping
  uint64_t calls = 0;          // mmap (and mremap) calls that succeeded here
  uint64_t bytes_mapped = 0;   // pages mapped by those calls, in all
  uint64_t live_bytes = 0;     // pages mapped now
  uint64_t live_regions = 0;   // ranges mapped now (a partial munmap may split one in two)
};

struct MappingCounters {
  uint64_t maps = 0, unmaps = 0, remaps = 0;
  uint64_t live_bytes = 0, peak_bytes = 0;
  uint64_t live_regions = 0;
};

class MappingModel {
 public:
  // A new range: whatever it covers of the known ranges is replaced (MAP_FIXED, or a range the
  // kernel reused after an unmap we did not see). An mremap's range takes the kind of the
  // range it moved, which came in the kUnmap just before.
  void map(const format::MapEvent& event);
  // Unmaps [address, address + length) from the known ranges: partly covered ones are cut.
  void unmap(uint64_t address, uint64_t length, bool by_remap = false);

  const MappingCounters& counters() const noexcept { return counters_; }
  const std::unordered_map<uint32_t, MappingSite>& sites() const noexcept { return sites_; }

 private:
  struct Range {
    uint64_t end;
    uint32_t stack_id;
    MappingKind kind;
  };
  // Takes [begin, end) out of the ranges; returns the kind of the first range it touched.
  MappingKind remove(uint64_t begin, uint64_t end, bool& touched);
  std::map<uint64_t, Range> ranges_;  // by start address; disjoint
  std::unordered_map<uint32_t, MappingSite> sites_;
  MappingCounters counters_;
  MappingKind last_unmapped_kind_ = MappingKind::kAnonymousPrivate;  // for the mremap that follows
  bool last_unmap_touched_ = false;
};

}  // namespace heapscope::analyzer
