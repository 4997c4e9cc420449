// The event ring end to end inside one process: the agent's writer against the analyzer's
// reader, through a real shared mapping -- wrap-around, back-pressure, many producers.
#include "ring_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <thread>
#include <vector>

#include "errors.h"
#include "ring_reader.h"

namespace heapscope::preload {
namespace {

namespace fs = std::filesystem;
using analyzer::RecordView;
using analyzer::RingReader;

class RingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "heapscope-ring.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string ring_path() const {
    for (const auto& entry : fs::directory_iterator(dir_)) return entry.path().string();
    return {};
  }
  std::string dir_;
};

bool write_free(RingWriter& writer, uint64_t address) {
  auto* header = writer.reserve(sizeof(format::FreeEvent));
  if (header == nullptr) return false;
  reinterpret_cast<format::FreeEvent*>(header)->address = address;
  RingWriter::commit(header, format::EventKind::kFree);
  return true;
}

// issue 15 #25: a thread killed between reserving a record and committing it (the process died
// of a signal, or exec'd) left a hole that stopped the reader for good: the records after it,
// the fatal signal among them, were lost and the report said "exit unknown".
TEST_F(RingTest, ARingNoOneWillWriteAgainIsReadPastItsTornRecords) {
  RingWriter writer;
  ASSERT_TRUE(writer.open(dir_.c_str(), getpid(), 4096));
  RingReader reader(ring_path());
  ASSERT_TRUE(write_free(writer, 1));
  // Reserved, size written, never committed.
  ASSERT_NE(writer.reserve(sizeof(format::FreeEvent)), nullptr);
  ASSERT_TRUE(write_free(writer, 2));
  // Reserved and killed before even its size was written: all zero.
  auto* silent = writer.reserve(sizeof(format::FreeEvent) + 16);
  ASSERT_NE(silent, nullptr);
  std::memset(silent, 0, sizeof(format::FreeEvent) + 16);
  ASSERT_TRUE(write_free(writer, 3));

  std::vector<uint64_t> freed;
  const auto collect = [&](const RecordView& record) {
    if (record.kind == format::EventKind::kFree) freed.push_back(record.as<format::FreeEvent>().address);
  };
  EXPECT_EQ(reader.drain(collect), 1u);  // a live writer may still commit: stop at the hole
  EXPECT_EQ(freed, std::vector<uint64_t>({1}));
  EXPECT_EQ(reader.drain_abandoned(collect), 2u);
  EXPECT_EQ(freed, std::vector<uint64_t>({1, 2, 3}));
  EXPECT_EQ(reader.torn_records(), 2u);
  EXPECT_EQ(reader.drain_abandoned(collect), 0u);  // nothing twice
}

TEST_F(RingTest, RecordsArriveInOrderAcrossWrapAround) {
  RingWriter writer;
  ASSERT_TRUE(writer.open(dir_.c_str(), getpid(), 4096));
  const std::string path = ring_path();
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  RingReader reader(path);
  ASSERT_TRUE(reader.is_ready());
  EXPECT_EQ(reader.pid(), getpid());
  uint64_t next_expected = 1;
  uint64_t written = 1;
  while (written <= 1000) {
    // 3 records of 32 bytes never divide 4096 evenly: padding records are exercised.
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(write_free(writer, written++));
    auto* stack = writer.reserve(format::record_size(sizeof(format::StackEvent) + 8 * 5));
    auto* record = reinterpret_cast<format::StackEvent*>(stack);
    record->stack_id = static_cast<uint32_t>(written);
    record->frame_count = 5;
    RingWriter::commit(stack, format::EventKind::kStack);
    reader.drain([&](const RecordView& view) {
      if (view.kind == format::EventKind::kFree) {
        EXPECT_EQ(view.as<format::FreeEvent>().address, next_expected++);
      } else {
        EXPECT_EQ(view.kind, format::EventKind::kStack);
      }
    });
  }
  EXPECT_EQ(next_expected, written);  // every record written was read, in order
}

// The reader goes through the writer's own mapping: under ThreadSanitizer (preload_tsan_test)
// the producers' reservations, the collector's zeroing and read_pos must then show the
// happens-before the ring relies on (TSan cannot tell that two mappings alias).
TEST_F(RingTest, FullRingMakesProducersWaitAndLosesNothing) {
  RingWriter writer;
  ASSERT_TRUE(writer.open(dir_.c_str(), getpid(), 4096));
  RingReader reader(writer.mapping());
  constexpr uint64_t kPerThread = 20000;
  std::atomic<bool> done{false};
  std::vector<uint64_t> seen(4, 0);
  std::thread consumer([&] {
    for (;;) {
      const bool finished = done.load();  // read before draining: nothing can follow it
      const size_t drained = reader.drain([&](const RecordView& view) {
        const uint64_t address = view.as<format::FreeEvent>().address;
        const uint64_t thread = address >> 32;
        EXPECT_EQ(address & 0xffffffff, seen[thread]) << "out of order or lost";
        seen[thread] = (address & 0xffffffff) + 1;
      });
      if (finished && drained == 0) return;
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // slower than producers
    }
  });
  std::vector<std::thread> producers;
  for (uint64_t t = 0; t < 4; ++t) {
    producers.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPerThread; ++i) ASSERT_TRUE(write_free(writer, t << 32 | i));
    });
  }
  for (auto& producer : producers) producer.join();
  done = true;
  consumer.join();
  for (uint64_t t = 0; t < 4; ++t) EXPECT_EQ(seen[t], kPerThread) << t;
  EXPECT_GT(writer.waits(), 0u);  // the ring really was full
}

TEST_F(RingTest, LostCollectorStopsRecordingAndMarksTheRingIncomplete) {
  // A collector pid that does not exist: once the ring is full, the writer gives up.
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  RingWriter writer;
  ASSERT_TRUE(writer.open(dir_.c_str(), gone, 4096));
  testing::internal::CaptureStderr();
  bool stopped = false;
  for (int i = 0; i < 1000 && !stopped; ++i) stopped = !write_free(writer, i);
  const std::string message = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(stopped);
  EXPECT_NE(message.find("collector is gone"), std::string::npos);
  RingReader reader(ring_path());
  EXPECT_NE(reader.state() & format::kRingIncomplete, 0u);
}

TEST_F(RingTest, ReaderRejectsForeignAndFutureFiles) {
  const std::string foreign = dir_ + "/foreign.ring";
  {
    std::ofstream out(foreign, std::ios::binary);
    out << std::string(sizeof(format::RingHeader) + 64, 'x');
  }
  EXPECT_THROW(RingReader{foreign}, analyzer::FormatError);

  RingWriter writer;
  ASSERT_TRUE(writer.open(dir_.c_str(), getpid(), 4096));
  std::string path;
  for (const auto& entry : fs::directory_iterator(dir_))
    if (entry.path() != foreign) path = entry.path().string();
  {
    std::fstream patch(path, std::ios::in | std::ios::out | std::ios::binary);
    const uint16_t future = format::kFormatVersion + 1;
    patch.seekp(offsetof(format::RingHeader, version));
    patch.write(reinterpret_cast<const char*>(&future), sizeof(future));
  }
  try {
    RingReader reader(path);
    FAIL() << "a future version was accepted";
  } catch (const analyzer::FormatError& error) {
    EXPECT_NE(std::string(error.what()).find("version " + std::to_string(format::kFormatVersion + 1)),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace heapscope::preload
