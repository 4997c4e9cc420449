// The program's own mappings (see mapping_model.h).
#include "mapping_model.h"

#include <sys/mman.h>

namespace heapscope::analyzer {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t page_end(uint64_t address) noexcept { return (address + kPage - 1) & ~(kPage - 1); }

MappingKind kind_of(int map_flags) noexcept {
  const bool shared = (map_flags & MAP_SHARED) != 0 || (map_flags & MAP_SHARED_VALIDATE) == MAP_SHARED_VALIDATE;
  if ((map_flags & MAP_ANONYMOUS) != 0) return shared ? MappingKind::kAnonymousShared : MappingKind::kAnonymousPrivate;
  return shared ? MappingKind::kFileShared : MappingKind::kFilePrivate;
}

}  // namespace

const char* mapping_kind_name(MappingKind kind) noexcept {
  switch (kind) {
    case MappingKind::kAnonymousPrivate: return "anonymous";
    case MappingKind::kAnonymousShared: return "anonymous_shared";
    case MappingKind::kFilePrivate: return "file";
    case MappingKind::kFileShared: return "file_shared";
  }
  return "anonymous";
}

MappingKind MappingModel::remove(uint64_t begin, uint64_t end, bool& touched) {
  touched = false;
  MappingKind first = MappingKind::kAnonymousPrivate;
  auto at = ranges_.upper_bound(begin);
  if (at != ranges_.begin()) --at;
  while (at != ranges_.end() && at->first < end) {
    const uint64_t range_begin = at->first;
    const Range range = at->second;
    if (range.end <= begin) {
      ++at;
      continue;
    }
    if (!touched) first = range.kind;
    touched = true;
    MappingSite& site = sites_[range.stack_id];
    const uint64_t cut_begin = range_begin > begin ? range_begin : begin;
    const uint64_t cut_end = range.end < end ? range.end : end;
    site.live_bytes -= cut_end - cut_begin;
    counters_.live_bytes -= cut_end - cut_begin;
    at = ranges_.erase(at);
    --site.live_regions;
    --counters_.live_regions;
    // What is left on either side stays mapped, by the same site.
    if (range_begin < cut_begin) {
      ranges_.emplace(range_begin, Range{cut_begin, range.stack_id, range.kind});
      ++site.live_regions;
      ++counters_.live_regions;
    }
    if (cut_end < range.end) {
      at = ranges_.emplace(cut_end, Range{range.end, range.stack_id, range.kind}).first;
      ++site.live_regions;
      ++counters_.live_regions;
      ++at;
    }
  }
  return first;
}

void MappingModel::map(const format::MapEvent& event) {
  const bool by_remap = (event.header.flags & format::kMapByRemap) != 0;
  const uint64_t begin = event.address;
  const uint64_t end = page_end(event.address + event.length);
  if (end <= begin) return;
  bool replaced = false;
  remove(begin, end, replaced);
  const MappingKind kind = by_remap ? (last_unmap_touched_ ? last_unmapped_kind_ : MappingKind::kAnonymousPrivate)
                                    : kind_of(event.map_flags);
  ranges_.emplace(begin, Range{end, event.stack_id, kind});
  auto [site, fresh] = sites_.try_emplace(event.stack_id);
  if (fresh) site->second.kind = kind;
  ++site->second.calls;
  site->second.bytes_mapped += end - begin;
  site->second.live_bytes += end - begin;
  ++site->second.live_regions;
  ++counters_.live_regions;
  counters_.live_bytes += end - begin;
  if (counters_.live_bytes > counters_.peak_bytes) counters_.peak_bytes = counters_.live_bytes;
  if (by_remap) ++counters_.remaps; else ++counters_.maps;
}

void MappingModel::unmap(uint64_t address, uint64_t length, bool by_remap) {
  if (!by_remap) ++counters_.unmaps;
  last_unmapped_kind_ = remove(address, page_end(address + length), last_unmap_touched_);
}

}  // namespace heapscope::analyzer
