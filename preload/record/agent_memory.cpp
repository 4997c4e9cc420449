// heapscope's share of the RSS (see agent_memory.h).
//
// Why /proc/self/pagemap and not mincore(): the block index and the depot are read where they
// were never written (a lookup of an empty slot), and a read maps the kernel's shared zero
// page, which mincore() calls resident but the RSS does not count. pagemap says, per page,
// whether it is present and whether this process alone maps it: a written private page is
// exclusive, the zero page never is. The ring is shared with the collector, so for it (and for
// the library's file-backed image) a present page is counted, as the RSS counts it. A page of
// a table still shared copy-on-write with the parent after fork is not counted (it is the
// parent's until written).
#include "agent_memory.h"

#include <fcntl.h>

#include "fast_unwind.h"
#include "own_image.h"
#include "ring_writer.h"
#include "sys.h"

namespace heapscope::preload {
namespace {

constexpr uint64_t kPagePresent = uint64_t{1} << 63;
constexpr uint64_t kPageExclusive = uint64_t{1} << 56;
constexpr uint64_t kPageBytes = 4096;

constexpr size_t kMaxImageSegments = 6;
constinit ImageSegment image_segments[kMaxImageSegments] = {};
constinit size_t image_segment_count = 0;

struct Counter {
  int pagemap = -1;
  bool exclusive_only = true;  // private tables: the zero page and copy-on-write pages do not count
  uint64_t bytes = 0;
};

// Counts the range's pages in batches of 512 pagemap entries (a 4 KiB buffer on the stack).
void count_resident(uint64_t begin, uint64_t end, void* context) noexcept {
  auto& counter = *static_cast<Counter*>(context);
  uint64_t entries[512];
  for (uint64_t page = begin / kPageBytes; page < (end + kPageBytes - 1) / kPageBytes;) {
    const uint64_t want = (end + kPageBytes - 1) / kPageBytes - page;
    const uint64_t batch = want < 512 ? want : 512;
    const long got = sys::pread_some(counter.pagemap, entries, batch * 8, page * 8);
    if (got <= 0) return;
    const auto read_entries = static_cast<uint64_t>(got) / 8;
    for (uint64_t i = 0; i < read_entries; ++i) {
      const bool present = (entries[i] & kPagePresent) != 0;
      if (present && (!counter.exclusive_only || (entries[i] & kPageExclusive) != 0)) counter.bytes += kPageBytes;
    }
    page += read_entries;
  }
}

}  // namespace

void init_agent_memory() noexcept {
  if (image_segment_count == 0) image_segment_count = find_own_segments(image_segments, kMaxImageSegments, false);
}

format::AgentMemoryEvent measure_agent_memory(const RingWriter& ring, uint64_t quarantine_bytes) noexcept {
  format::AgentMemoryEvent out{};
  out.quarantine_bytes = quarantine_bytes;
  Counter counter;
  counter.pagemap = sys::open_file("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (counter.pagemap < 0) return out;
  sys::for_each_agent_mapping(count_resident, &counter);
  unwind::for_each_thread_table(count_resident, &counter);
  out.table_bytes = counter.bytes;
  counter.exclusive_only = false;
  counter.bytes = 0;
  if (const format::RingHeader* mapping = ring.mapping(); mapping != nullptr) {
    const auto begin = reinterpret_cast<uint64_t>(mapping);
    count_resident(begin, begin + mapping->header_size + mapping->capacity, &counter);
  }
  out.ring_bytes = counter.bytes;
  counter.bytes = 0;
  for (size_t i = 0; i < image_segment_count; ++i)
    count_resident(image_segments[i].begin, image_segments[i].end, &counter);
  out.image_bytes = counter.bytes;
  sys::close_file(counter.pagemap);
  return out;
}

}  // namespace heapscope::preload
