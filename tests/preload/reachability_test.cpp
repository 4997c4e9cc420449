// The classification rules of a leak scan on hand-made heaps: blocks carved from one array at
// known addresses, pointers written into them, roots given explicitly.
#include "reachability.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "heapscope/event_format.h"

namespace heapscope::preload {
namespace {

using format::LeakKind;

// A heap of `count` blocks of 64 bytes, 128 bytes apart, in address order.
class Heap {
 public:
  explicit Heap(size_t count) : memory_(count * 16, 0), blocks_(count), work_(2 * count + 1) {
    for (size_t i = 0; i < count; ++i) blocks_[i] = ScanBlock{address(i), 64, 0, Reach::kUnreached, 0, 0, 0};
  }
  uint64_t address(size_t i) const { return reinterpret_cast<uint64_t>(&memory_[i * 16]); }
  // Stores `value` in word `word` of block `i`.
  void store(size_t i, size_t word, uint64_t value) { memory_[i * 16 + word] = value; }
  void link(size_t from, size_t to, uint64_t offset = 0) { store(from, 0, address(to) + offset); }
  ScanBlock& block(size_t i) { return blocks_[i]; }

  // Runs the classification with `roots` as root memory.
  std::vector<LeakKind> classify(std::vector<uint64_t> roots) {
    ReachabilityMarker marker(blocks_.data(), blocks_.size(), work_.data());
    marker.scan_root(roots.data(), roots.size() * sizeof(uint64_t));
    marker.add_ignored_blocks();
    marker.propagate();
    marker.group_lost();
    std::vector<LeakKind> kinds;
    for (size_t i = 0; i < blocks_.size(); ++i) kinds.push_back(static_cast<LeakKind>(marker.kind(i)));
    return kinds;
  }

 private:
  std::vector<uint64_t> memory_;
  std::vector<ScanBlock> blocks_;
  std::vector<uint32_t> work_;
};

TEST(Reachability, StartPointerFromARootIsReachableAndNothingElseIs) {
  Heap heap(2);
  const auto kinds = heap.classify({heap.address(0)});
  EXPECT_EQ(kinds[0], LeakKind::kReachable);
  EXPECT_EQ(kinds[1], LeakKind::kDefinite);
}

TEST(Reachability, InteriorPointerMakesAPossibleLeakAndSoDoesEverythingBehindIt) {
  Heap heap(3);
  heap.link(0, 1);  // 0 -> 1 by a start pointer, but 0 is only reached by an interior one
  const auto kinds = heap.classify({heap.address(0) + 8, heap.address(2) + 63});
  EXPECT_EQ(kinds[0], LeakKind::kPossible);
  EXPECT_EQ(kinds[1], LeakKind::kPossible);
  EXPECT_EQ(kinds[2], LeakKind::kPossible);  // the last byte is still inside
}

TEST(Reachability, APointerPastTheEndReachesNothing) {
  Heap heap(1);
  EXPECT_EQ(heap.classify({heap.address(0) + 64})[0], LeakKind::kDefinite);
}

TEST(Reachability, AStartPointerLaterUpgradesAPossibleBlockAndWhatItLeadsTo) {
  Heap heap(3);
  heap.link(1, 2);
  // The interior pointer comes first in the root, the start pointer after it.
  const auto kinds = heap.classify({heap.address(1) + 16, heap.address(1)});
  EXPECT_EQ(kinds[1], LeakKind::kReachable);
  EXPECT_EQ(kinds[2], LeakKind::kReachable);
}

TEST(Reachability, ALostChainHasOneDefiniteHeadAndIndirectRest) {
  Heap heap(4);
  heap.link(2, 0);  // head 2 -> 0 -> 3, with the head at a higher address than its first link
  heap.link(0, 3);
  const auto kinds = heap.classify({});
  EXPECT_EQ(kinds[2], LeakKind::kDefinite);
  EXPECT_EQ(kinds[0], LeakKind::kIndirect);
  EXPECT_EQ(kinds[3], LeakKind::kIndirect);
  EXPECT_EQ(kinds[1], LeakKind::kDefinite);  // alone
}

TEST(Reachability, ALostCycleHasItsLowestBlockDefinite) {
  Heap heap(3);
  heap.link(1, 2);
  heap.link(2, 1);
  heap.link(0, 0);  // a block pointing to itself is still lost
  const auto kinds = heap.classify({});
  EXPECT_EQ(kinds[0], LeakKind::kDefinite);
  EXPECT_EQ(kinds[1], LeakKind::kDefinite);
  EXPECT_EQ(kinds[2], LeakKind::kIndirect);
}

TEST(Reachability, ALostBlockInsideAnotherLostStructureIsIndirectThroughInteriorPointersToo) {
  Heap heap(2);
  heap.link(1, 0, 24);  // 1 -> inside 0
  const auto kinds = heap.classify({});
  EXPECT_EQ(kinds[1], LeakKind::kDefinite);
  EXPECT_EQ(kinds[0], LeakKind::kIndirect);
}

TEST(Reachability, AHiddenPointerHidesTheBlock) {
  Heap heap(1);
  EXPECT_EQ(heap.classify({heap.address(0) ^ 0x5a5a5a5a5a5a5a5aull})[0], LeakKind::kDefinite);
}

TEST(Reachability, IgnoredBlocksAreRootsThemselves) {
  Heap heap(2);
  heap.link(0, 1);
  heap.block(0).ignored = 1;
  const auto kinds = heap.classify({});
  EXPECT_EQ(kinds[0], LeakKind::kReachable);
  EXPECT_EQ(kinds[1], LeakKind::kReachable);
}

TEST(Reachability, GlibcsTlsVectorPointerCountsAsAStartPointer) {
  // A dtv of 2 entries: (2 + 2) * 16 = 64 bytes, count in the first word, pointer to entry 1.
  Heap heap(2);
  heap.store(0, 0, 2);
  heap.store(1, 0, 5);  // block 1 does not have the layout: its count does not match its size
  const auto kinds = heap.classify({heap.address(0) + 16, heap.address(1) + 16});
  EXPECT_EQ(kinds[0], LeakKind::kReachable);
  EXPECT_EQ(kinds[1], LeakKind::kPossible);
}

TEST(Reachability, RegisterValuesAreRootsToo) {
  Heap heap(1);
  ScanBlock& only = heap.block(0);
  std::vector<uint32_t> work(3);
  ReachabilityMarker marker(&only, 1, work.data());
  const uint64_t registers[2] = {7, heap.address(0)};
  marker.scan_values(registers, 2);
  marker.propagate();
  marker.group_lost();
  EXPECT_EQ(static_cast<LeakKind>(marker.kind(0)), LeakKind::kReachable);
}

TEST(Reachability, FindsTheBlockAValuePointsInto) {
  Heap heap(3);
  std::vector<uint32_t> work(7);
  ReachabilityMarker marker(&heap.block(0), 3, work.data());
  bool start = false;
  EXPECT_EQ(marker.find(heap.address(1), start), 1);
  EXPECT_TRUE(start);
  EXPECT_EQ(marker.find(heap.address(2) + 10, start), 2);
  EXPECT_FALSE(start);
  EXPECT_EQ(marker.find(heap.address(0) + 64, start), -1);  // the gap between blocks
  EXPECT_EQ(marker.find(heap.address(0) - 1, start), -1);
  EXPECT_EQ(marker.find(0, start), -1);
}

}  // namespace
}  // namespace heapscope::preload
