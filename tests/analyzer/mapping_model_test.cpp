// The program's own mappings: ranges cut by partial munmaps, replaced by MAP_FIXED, moved by
// mremap; bytes in whole pages, per call site and in all, with the peak.
#include "mapping_model.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

namespace heapscope::analyzer {
namespace {

constexpr uint64_t kPage = 4096;

format::MapEvent mapping(uint64_t address, uint64_t length, uint32_t stack, int flags = MAP_PRIVATE | MAP_ANONYMOUS,
                         uint16_t header_flags = 0) {
  format::MapEvent event{};
  event.header.flags = header_flags;
  event.address = address;
  event.length = length;
  event.stack_id = stack;
  event.protection = PROT_READ | PROT_WRITE;
  event.map_flags = flags;
  return event;
}

TEST(MappingModel, CountsWholePagesBySiteAndThePeak) {
  MappingModel model;
  model.map(mapping(0x10000, 100, 1));          // one page
  model.map(mapping(0x20000, 3 * kPage, 2));
  EXPECT_EQ(model.counters().live_bytes, 4 * kPage);
  EXPECT_EQ(model.counters().live_regions, 2u);
  model.unmap(0x10000, kPage);
  EXPECT_EQ(model.counters().live_bytes, 3 * kPage);
  EXPECT_EQ(model.counters().peak_bytes, 4 * kPage);
  EXPECT_EQ(model.sites().at(1).live_bytes, 0u);
  EXPECT_EQ(model.sites().at(1).bytes_mapped, kPage);
  EXPECT_EQ(model.counters().maps, 2u);
  EXPECT_EQ(model.counters().unmaps, 1u);
}

TEST(MappingModel, AnUnmapInTheMiddleLeavesTwoRangesOfTheSameSite) {
  MappingModel model;
  model.map(mapping(0x100000, 16 * kPage, 7));
  model.unmap(0x100000 + 4 * kPage, 2 * kPage);
  const MappingSite& site = model.sites().at(7);
  EXPECT_EQ(site.live_bytes, 14 * kPage);
  EXPECT_EQ(site.live_regions, 2u);
  // Unmapping across both pieces and beyond them takes what is there, nothing more.
  model.unmap(0x100000 + 3 * kPage, 10 * kPage);
  EXPECT_EQ(model.sites().at(7).live_bytes, 6 * kPage);  // pages 0-2 and 13-15
  EXPECT_EQ(model.sites().at(7).live_regions, 2u);
  EXPECT_EQ(model.counters().live_regions, 2u);
  // An address nobody mapped (the C library's own, say) changes nothing.
  model.unmap(0x900000, kPage);
  EXPECT_EQ(model.counters().live_bytes, 6 * kPage);
}

TEST(MappingModel, AFixedMappingReplacesWhatItCovers) {
  MappingModel model;
  model.map(mapping(0x200000, 8 * kPage, 1));
  model.map(mapping(0x200000 + 2 * kPage, 2 * kPage, 2, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED));
  EXPECT_EQ(model.sites().at(1).live_bytes, 6 * kPage);
  EXPECT_EQ(model.sites().at(1).live_regions, 2u);
  EXPECT_EQ(model.sites().at(2).live_bytes, 2 * kPage);
  EXPECT_EQ(model.counters().live_bytes, 8 * kPage);
  EXPECT_EQ(model.counters().live_regions, 3u);
}

TEST(MappingModel, AnMremapMovesTheRangeAndKeepsItsKind) {
  MappingModel model;
  model.map(mapping(0x300000, 4 * kPage, 1, MAP_SHARED));  // a shared file mapping
  model.unmap(0x300000, 4 * kPage, /*by_remap=*/true);
  model.map(mapping(0x700000, 8 * kPage, 3, 0, format::kMapByRemap));
  EXPECT_EQ(model.counters().remaps, 1u);
  EXPECT_EQ(model.counters().unmaps, 0u);
  EXPECT_EQ(model.counters().maps, 1u);
  EXPECT_EQ(model.sites().at(1).live_bytes, 0u);
  EXPECT_EQ(model.sites().at(3).live_bytes, 8 * kPage);
  EXPECT_EQ(model.sites().at(3).kind, MappingKind::kFileShared);
  EXPECT_STREQ(mapping_kind_name(model.sites().at(3).kind), "file_shared");
  EXPECT_EQ(model.counters().peak_bytes, 8 * kPage);
}

}  // namespace
}  // namespace heapscope::analyzer
