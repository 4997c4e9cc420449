// The wire format is a contract between two processes built from one header: pin its layout so
// an accidental change (which must bump kFormatVersion) fails here first.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include "heapscope/event_format.h"

namespace heapscope::format {
namespace {

TEST(EventFormat, VersionAndMagic) {
  EXPECT_EQ(kRingMagic, 0x48534352u);  // "HSCR"
  EXPECT_EQ(kFormatVersion, 11);
  EXPECT_EQ(kOldestTraceVersion, 8);
}

TEST(EventFormat, HeaderLayoutIsPinned) {
  EXPECT_EQ(offsetof(EventHeader, kind), 0u);
  EXPECT_EQ(offsetof(EventHeader, flags), 2u);
  EXPECT_EQ(offsetof(EventHeader, size), 4u);
  EXPECT_EQ(offsetof(EventHeader, time_ns), 8u);
  // A padding record only needs kind and size: both fit in the first 8 bytes.
  EXPECT_LE(offsetof(EventHeader, size) + sizeof(uint32_t), 8u);
}

TEST(EventFormat, RecordLayoutsArePinned) {
  EXPECT_EQ(sizeof(AllocEvent), 48u);
  EXPECT_EQ(offsetof(AllocEvent, address), 16u);
  EXPECT_EQ(offsetof(AllocEvent, size), 24u);
  EXPECT_EQ(offsetof(AllocEvent, stack_id), 32u);
  EXPECT_EQ(offsetof(AllocEvent, thread_id), 36u);
  EXPECT_EQ(offsetof(AllocEvent, alignment), 40u);
  EXPECT_EQ(offsetof(AllocEvent, api), 44u);
  EXPECT_EQ(offsetof(AllocEvent, family), 45u);
  EXPECT_EQ(sizeof(FreeEvent), 32u);
  EXPECT_EQ(offsetof(FreeEvent, address), 16u);
  EXPECT_EQ(sizeof(StackEvent), 24u);
  EXPECT_EQ(sizeof(CorruptionEvent), 64u);
  EXPECT_EQ(offsetof(CorruptionEvent, stack_id), 40u);
  EXPECT_EQ(offsetof(CorruptionEvent, error), 56u);
  EXPECT_EQ(sizeof(ModuleEvent), 80u);
  EXPECT_EQ(sizeof(ProcessEvent), 40u);
  EXPECT_EQ(sizeof(ExitEvent), 24u);
  EXPECT_EQ(sizeof(ExecEvent), 24u);
  EXPECT_EQ(sizeof(AgentEndEvent), 40u);
  EXPECT_EQ(sizeof(FatalSignalEvent), 24u);
  EXPECT_EQ(sizeof(EndingEvent), 32u);
  EXPECT_EQ(sizeof(PhaseEvent), 80u);
  EXPECT_EQ(sizeof(IgnoreEvent), 24u);
  EXPECT_EQ(sizeof(SampleEvent), 80u);
  EXPECT_EQ(sizeof(AgentMemoryEvent), 48u);
  EXPECT_EQ(sizeof(MapEvent), 48u);
  EXPECT_EQ(sizeof(UnmapEvent), 40u);
  EXPECT_EQ(sizeof(TraceFileHeader), 24u);
  EXPECT_EQ(sizeof(RedirectEvent), 32u);
  EXPECT_EQ(sizeof(DetachEvent), 32u);
}

TEST(EventFormat, GoldenBytesOfAnAllocRecord) {
  AllocEvent event{};
  event.header = {static_cast<uint16_t>(EventKind::kAlloc), 0, sizeof(AllocEvent), 0x0102030405060708};
  event.address = 0x7f0000001000;
  event.size = 24;
  event.stack_id = 3;
  event.thread_id = 77;
  event.api = static_cast<uint8_t>(Api::kMalloc);
  event.family = static_cast<uint8_t>(Family::kMalloc);
  const unsigned char expected[48] = {
      0x05, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00,  // kind 5, flags 0, size 48
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // time
      0x00, 0x10, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00,  // address
      0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // size 24
      0x03, 0x00, 0x00, 0x00, 0x4d, 0x00, 0x00, 0x00,  // stack 3, thread 77
      0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,  // alignment 0, api malloc, family malloc
  };
  EXPECT_EQ(std::memcmp(&event, expected, sizeof(expected)), 0);
}

TEST(EventFormat, KindsAreAppendOnly) {
  EXPECT_EQ(static_cast<int>(EventKind::kPadding), 1);
  EXPECT_EQ(static_cast<int>(EventKind::kAlloc), 5);
  EXPECT_EQ(static_cast<int>(EventKind::kFree), 6);
  EXPECT_EQ(static_cast<int>(EventKind::kCorruption), 7);
  EXPECT_EQ(static_cast<int>(EventKind::kRedirect), 23);
  EXPECT_EQ(static_cast<int>(EventKind::kDetach), 24);
  EXPECT_EQ(static_cast<int>(EventKind::kAgentMemory), 25);
  EXPECT_EQ(static_cast<int>(EventKind::kMap), 26);
  EXPECT_EQ(static_cast<int>(EventKind::kUnmap), 27);
  EXPECT_EQ(static_cast<int>(EventKind::kAgentEnd), 11);
  EXPECT_EQ(static_cast<int>(EventKind::kFatalSignal), 12);
  EXPECT_EQ(static_cast<int>(EventKind::kEnding), 13);
  EXPECT_EQ(static_cast<int>(EventKind::kPhase), 14);
  EXPECT_EQ(static_cast<int>(EventKind::kIgnore), 15);
  EXPECT_EQ(static_cast<int>(EventKind::kSample), 16);
  EXPECT_EQ(static_cast<int>(EventKind::kLeakKinds), 17);
  EXPECT_EQ(static_cast<int>(EventKind::kLeakScanEnd), 18);
  EXPECT_EQ(static_cast<int>(EventKind::kThreadExit), 20);
  EXPECT_EQ(static_cast<int>(EventKind::kModuleUnload), 21);
  EXPECT_EQ(static_cast<int>(LeakKind::kDefinite), 1);
  EXPECT_EQ(static_cast<int>(LeakKind::kReachable), 4);
  EXPECT_EQ(static_cast<int>(ErrorKind::kUseAfterFree), 6);
}

TEST(EventFormat, RecordSizeRoundsToEight) {
  EXPECT_EQ(record_size(1), 8u);
  EXPECT_EQ(record_size(8), 8u);
  EXPECT_EQ(record_size(81), 88u);
}

}  // namespace
}  // namespace heapscope::format
