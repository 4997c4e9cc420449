// Rebuilding a process from records: counts, peak, leaks by stack, exec and exit.
#include "heap_model.h"

#include <gtest/gtest.h>

#include <map>

#include "record_builder.h"

namespace heapscope::analyzer {
namespace {

using test::RecordBuilder;

TEST(HeapModel, CountsLikeValgrindsTotalHeapUsage) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.alloc(0x100, 10, 1));
  model.apply(records.alloc(0x200, 20, 1));
  model.apply(records.free(0x100));
  model.apply(records.alloc(0x300, 5, 2));  // realloc: an allocation...
  model.apply(records.free(0x200));         // ...plus a free of the old block
  const HeapCounters& counters = model.counters();
  EXPECT_EQ(counters.allocations, 3u);
  EXPECT_EQ(counters.frees, 2u);
  EXPECT_EQ(counters.bytes_allocated, 35u);
  EXPECT_EQ(counters.peak_live_bytes, 30u);
  EXPECT_EQ(counters.live_bytes, 5u);
  EXPECT_EQ(model.live().size(), 1u);
}

// issue 12: a moved realloc records its new block before the old one's release; the program
// never holds both, so the peak must not count both (massif and heaptrack do not).
TEST(HeapModel, AMovedReallocDoesNotCountBothBlocksInThePeak) {
  RecordBuilder records;
  ProcessModel model;
  using format::Api;
  using format::Family;
  model.apply(records.alloc(0x100000, 128 << 10, 1));
  model.apply(records.alloc(0x200000, 256 << 10, 2, Family::kMalloc, Api::kRealloc));
  model.apply(records.free(0x100000, Api::kRealloc));
  EXPECT_EQ(model.counters().peak_live_bytes, 256u << 10);
  // The attach agent records an in-place realloc as the release first, then the block.
  model.apply(records.free(0x200000, Api::kRealloc));
  model.apply(records.alloc(0x200000, 512 << 10, 2, Family::kMalloc, Api::kRealloc));
  model.apply(records.stack(9, {0x1}));  // any other record settles the peak
  EXPECT_EQ(model.counters().peak_live_bytes, 512u << 10);
  // A plain malloc then free still peaks at both.
  model.apply(records.alloc(0x300000, 16, 3));
  model.apply(records.free(0x300000));
  EXPECT_EQ(model.counters().peak_live_bytes, (512u << 10) + 16);
  // Per stack: at the peak, stack 2 held 512 KiB and stack 1 nothing.
  const auto costs = model.stack_costs();
  EXPECT_EQ(costs.at(1).peak_bytes, 0u);
  EXPECT_EQ(costs.at(2).peak_bytes, 512u << 10);
}

// issue 12, point 10: heapscope's share of each RSS sample, with the headers and canaries of
// the blocks live then counted from their sizes and alignments (block_layout.h).
TEST(HeapModel, ASampleCarriesHeapscopesShareWithTheLiveBlocksHeaders) {
  RecordBuilder records;
  ProcessModel model;
  format::AllocEvent aligned{};
  aligned.address = 0x10000;
  aligned.size = 100;
  aligned.stack_id = 1;
  aligned.alignment = 4096;  // its front is the alignment, not the 32-byte header
  aligned.api = static_cast<uint8_t>(format::Api::kAlignedAlloc);
  aligned.family = static_cast<uint8_t>(format::Family::kMalloc);
  model.apply(records.add(format::EventKind::kAlloc, aligned));
  model.apply(records.alloc(0x200, 10, 1));  // 32 + 22
  model.apply(records.alloc(0x300, 16, 1));  // 32 + 16
  model.apply(records.free(0x300));
  format::SampleEvent sample{};
  sample.rss_bytes = 10 << 20;
  model.apply(records.add(format::EventKind::kSample, sample));
  format::AgentMemoryEvent share{};
  share.table_bytes = 4096;
  share.ring_bytes = 8192;
  share.image_bytes = 12288;
  share.quarantine_bytes = 16;
  share.header.flags = format::kAgentMemoryBlockHeaders;
  model.apply(records.add(format::EventKind::kAgentMemory, share));
  ASSERT_EQ(model.samples().size(), 1u);
  const Sample& first = model.samples()[0];
  EXPECT_TRUE(first.has_agent_share);
  EXPECT_EQ(first.agent_headers, (4096u + 28) + (32 + 22));
  EXPECT_EQ(first.agent_bytes(), 4096u + 8192 + 12288 + 16 + first.agent_headers);

  // The wide front leaves with its block; an attached process's blocks have no headers.
  model.apply(records.free(0x10000));
  model.apply(records.add(format::EventKind::kSample, sample));
  share.header.flags = 0;
  model.apply(records.add(format::EventKind::kAgentMemory, share));
  model.apply(records.add(format::EventKind::kSample, sample));
  model.apply(records.add(format::EventKind::kSample, sample));
  share.header.flags = format::kAgentMemoryBlockHeaders;
  model.apply(records.add(format::EventKind::kAgentMemory, share));
  ASSERT_EQ(model.samples().size(), 4u);
  EXPECT_EQ(model.samples()[1].agent_headers, 0u);
  EXPECT_FALSE(model.samples()[2].has_agent_share);  // its share record never came
  EXPECT_EQ(model.samples()[3].agent_headers, 32u + 22);
}

TEST(HeapModel, GroupsLeaksByStackLargestFirst) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.alloc(0x100, 10, 7));
  model.apply(records.alloc(0x200, 10, 7));
  model.apply(records.alloc(0x300, 50, 8, format::Family::kNewArray));
  model.apply(records.alloc(0x400, 1, 9));
  const auto groups = model.leak_groups();
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].stack_id, 8u);
  EXPECT_EQ(groups[0].family, format::Family::kNewArray);
  EXPECT_EQ(groups[1].stack_id, 7u);
  EXPECT_EQ(groups[1].blocks, 2u);
  EXPECT_EQ(groups[1].bytes, 20u);
  EXPECT_EQ(groups[2].bytes, 1u);
}

TEST(HeapModel, IdenticalStacksUnderTwoIdsAreOneLeakGroup) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.stack(1, {0x10, 0x20}));
  model.apply(records.stack(2, {0x10, 0x20}));  // the same frames, named twice by the agent
  model.apply(records.stack(3, {0x10, 0x21}));
  model.apply(records.alloc(0x100, 10, 1));
  model.apply(records.alloc(0x200, 10, 2));
  model.apply(records.alloc(0x300, 10, 3));
  const auto groups = model.leak_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].stack_id, 1u);
  EXPECT_EQ(groups[0].blocks, 2u);
  EXPECT_EQ(groups[1].stack_id, 3u);
}

TEST(HeapModel, AnEmptyStackIsAcceptedWithoutTouchingMemory) {
  RecordBuilder records;  // regression: found by tests/fuzz (memcpy to nullptr)
  ProcessModel model;
  model.apply(records.stack(5, {}));
  ASSERT_NE(model.stack(5), nullptr);
  EXPECT_TRUE(model.stack(5)->frames.empty());
}

TEST(HeapModel, PeakCompositionIsEachStacksShareAtTheGlobalPeak) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.alloc(0x100, 100, 1));  // stack 1: 100
  model.apply(records.alloc(0x200, 50, 2));   // stack 2: 50 -> peak 150 (1:100, 2:50)
  model.apply(records.free(0x100));           // 1: 0
  model.apply(records.alloc(0x300, 80, 3));   // 3: 80 -> live 130, below the peak
  model.apply(records.alloc(0x400, 30, 2));   // 2: 80 -> live 160: new peak (2:80, 3:80)
  model.apply(records.free(0x300));           // after the peak: 3 drops to 0
  model.apply(records.free(0x400));
  auto costs = model.stack_costs();
  EXPECT_EQ(model.counters().peak_live_bytes, 160u);
  EXPECT_EQ(costs[1].peak_bytes, 0u);
  EXPECT_EQ(costs[2].peak_bytes, 80u);
  EXPECT_EQ(costs[3].peak_bytes, 80u);
  EXPECT_EQ(costs[2].allocations, 2u);
  EXPECT_EQ(costs[2].allocated_bytes, 80u);
  EXPECT_EQ(costs[2].live_bytes, 50u);
  EXPECT_EQ(costs[3].live_bytes, 0u);
}

TEST(HeapModel, FreesOfUnknownBlocksAreNotCounted) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.free(0xdead));  // inherited from the parent over fork
  EXPECT_EQ(model.counters().frees, 0u);
  EXPECT_EQ(model.counters().unknown_frees, 1u);
}

TEST(HeapModel, AttributesFramesToTheModuleLoadedThen) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.module("/lib/a.so", 0x1000, 0x2000));
  model.apply(records.stack(1, {0x1500, 0x9000}));
  model.apply(records.module("/lib/b.so", 0x1000, 0x2000));  // same range, after dlclose+dlopen
  model.apply(records.stack(2, {0x1500}));
  ASSERT_NE(model.stack(1), nullptr);
  EXPECT_EQ(model.stack(1)->modules, (std::vector<int>{0, -1}));
  EXPECT_EQ(model.stack(2)->modules, (std::vector<int>{1}));
  EXPECT_EQ(model.stack(3), nullptr);
}

TEST(HeapModel, ExecEndsTheImageUnlessItFailed) {
  RecordBuilder records;
  ProcessModel model;
  format::ExecEvent exec{};
  model.apply(records.add(format::EventKind::kExec, exec));
  EXPECT_TRUE(model.ended_by_exec());
  format::EventHeader failed{};
  struct Bare {
    format::EventHeader header;
  };
  model.apply(records.add(format::EventKind::kExecFailed, Bare{failed}));
  EXPECT_FALSE(model.ended_by_exec());
  format::ExitEvent exit{};
  exit.status = 4;
  model.apply(records.add(format::EventKind::kExit, exit));
  EXPECT_EQ(model.exit_status(), 4);
}

TEST(HeapModel, ProcessRecordGivesIdentity) {
  RecordBuilder records;
  ProcessModel model;
  format::ProcessEvent process{};
  process.pid = 10;
  process.parent_pid = 9;
  const std::string argv = std::string("prog\0--flag\0", 12);
  process.argv_bytes = static_cast<uint32_t>(argv.size());
  process.exe_bytes = 9;
  model.apply(records.add(format::EventKind::kProcess, process, argv + "/bin/prog"));
  EXPECT_EQ(model.pid(), 10);
  EXPECT_EQ(model.parent_pid(), 9);
  EXPECT_EQ(model.argv(), (std::vector<std::string>{"prog", "--flag"}));
  EXPECT_EQ(model.exe(), "/bin/prog");
}

TEST(HeapModel, TheExitScanGivesEveryLiveBlockAKindAndTheRestAreReachable) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.stack(1, {0x1000}));
  model.apply(records.alloc(0xa0, 10, 1));
  model.apply(records.alloc(0xb0, 20, 1));
  model.apply(records.alloc(0xc0, 40, 1));
  // A verdict may name a block whose alloc record comes after it (in flight during the scan).
  model.apply(records.leak_kinds(1, {{0xa0, format::LeakKind::kDefinite}, {0xd0, format::LeakKind::kIndirect}}));
  model.apply(records.alloc(0xd0, 80, 1));
  model.apply(records.scan_end(1, format::kScanAtExit));
  ASSERT_TRUE(model.exit_scan().has_value());
  EXPECT_EQ(model.exit_scan()->status, format::ScanStatus::kDone);
  std::map<uint8_t, uint64_t> bytes;
  for (const LeakGroup& group : model.leak_groups()) bytes[group.kind] += group.bytes;
  EXPECT_EQ(bytes[static_cast<uint8_t>(format::LeakKind::kDefinite)], 10u);
  EXPECT_EQ(bytes[static_cast<uint8_t>(format::LeakKind::kIndirect)], 80u);
  EXPECT_EQ(bytes[static_cast<uint8_t>(format::LeakKind::kReachable)], 60u);
  // Allocated after the scan: unclassified.
  model.apply(records.alloc(0xe0, 5, 1));
  uint64_t unclassified = 0;
  for (const LeakGroup& group : model.leak_groups())
    if (group.kind == 0) unclassified += group.bytes;
  EXPECT_EQ(unclassified, 5u);
}

TEST(HeapModel, AFailedScanClassifiesNothing) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.alloc(0xa0, 10, 1));
  model.apply(records.scan_end(1, format::kScanAtExit, format::ScanStatus::kDisabled));
  EXPECT_EQ(model.exit_scan()->status, format::ScanStatus::kDisabled);
  ASSERT_EQ(model.leak_groups().size(), 1u);
  EXPECT_EQ(model.leak_groups()[0].kind, 0);
}

TEST(HeapModel, ChecksOnDemandListEachLostBlockOnce) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.alloc(0xa0, 10, 1));
  model.apply(records.leak_kinds(1, {{0xa0, format::LeakKind::kDefinite}}));
  model.apply(records.scan_end(1, format::kScanOnDemand));
  model.apply(records.alloc(0xb0, 20, 2));
  model.apply(records.leak_kinds(2, {{0xa0, format::LeakKind::kDefinite}, {0xb0, format::LeakKind::kPossible}}));
  model.apply(records.scan_end(2, format::kScanOnDemand));
  const auto& checks = model.leak_checks();
  ASSERT_EQ(checks.size(), 2u);
  ASSERT_EQ(checks[0].new_leaks.size(), 1u);
  EXPECT_EQ(checks[0].new_leaks[0].bytes, 10u);
  ASSERT_EQ(checks[1].new_leaks.size(), 1u);  // 0xa0 was listed already
  EXPECT_EQ(checks[1].new_leaks[0].bytes, 20u);
  EXPECT_EQ(checks[1].new_leaks[0].kind, static_cast<uint8_t>(format::LeakKind::kPossible));
  EXPECT_FALSE(model.exit_scan().has_value());  // checks do not classify the exit
}

TEST(HeapModel, ThreadsHaveLifetimesAndTheirAllocations) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.thread(format::EventKind::kThreadStart, 7, 1, 100));
  format::AllocEvent on_thread{};
  on_thread.address = 0xa0;
  on_thread.size = 12;
  on_thread.thread_id = 7;
  model.apply(records.add(format::EventKind::kAlloc, on_thread));
  model.apply(records.alloc(0xb0, 5, 1));  // thread 0: not a started thread
  model.apply(records.thread(format::EventKind::kThreadExit, 7, 0, 300));
  model.apply(records.thread(format::EventKind::kThreadStart, 7, 1, 400));  // the tid reused
  ASSERT_EQ(model.threads().size(), 2u);
  EXPECT_EQ(model.threads()[0].allocations, 1u);
  EXPECT_EQ(model.threads()[0].bytes_allocated, 12u);
  EXPECT_EQ(model.threads()[0].end_ns, 300u);
  EXPECT_FALSE(model.threads()[1].end_ns.has_value());
  EXPECT_EQ(model.threads()[1].allocations, 0u);
}

TEST(HeapModel, AnUnloadedModuleKeepsItsFramesAndSaysWhenItWent) {
  RecordBuilder records;
  ProcessModel model;
  model.apply(records.module("/lib/plugin.so", 0x7000, 0x8000));
  format::ModuleUnloadEvent gone{};
  gone.start = 0x7000;
  gone.end = 0x8000;
  gone.header.time_ns = 50;
  model.apply(records.add(format::EventKind::kModuleUnload, gone));
  model.apply(records.module("/lib/other.so", 0x7000, 0x8000));  // the range reused
  ASSERT_EQ(model.modules().size(), 2u);
  EXPECT_EQ(model.modules()[0].unloaded_ns, 50u);
  EXPECT_FALSE(model.modules()[1].unloaded_ns.has_value());
  model.apply(records.stack(3, {0x7100}));
  EXPECT_EQ(model.stack(3)->modules[0], 1);  // frames after the reuse belong to the new one
}

}  // namespace
}  // namespace heapscope::analyzer
