// Trace files: what TraceWriter writes, read_trace gives back, record for record.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "errors.h"
#include "record_builder.h"
#include "trace_reader.h"
#include "trace_writer.h"

namespace heapscope::analyzer {
namespace {

std::string fresh_path(const char* name) {
  const std::string path = testing::TempDir() + "/" + name;
  std::filesystem::remove(path);
  return path;
}

format::EndingEvent ending_with(int code) {
  format::EndingEvent ending{};
  ending.header.kind = static_cast<uint16_t>(format::EventKind::kEnding);
  ending.header.size = sizeof(ending);
  ending.header.flags = format::kEndingLaunched;
  ending.exit_code = code;
  return ending;
}

TEST(Trace, RoundTripsRecordsInOrderAcrossFlushes) {
  const std::string path = fresh_path("heapscope-roundtrip.trace.zst");
  test::RecordBuilder records;
  {
    TraceWriter writer(path, 42);
    for (uint64_t i = 1; i <= 20000; ++i) writer.append(records.alloc(i * 16, i, 1).bytes);  // ~1 MiB: flushes
    writer.finish(ending_with(3));
  }
  uint64_t expected = 1;
  const TraceSummary summary = read_trace(path, [&](const RecordView& record) {
    if (record.kind == format::EventKind::kAlloc) {
      // Packed: a block is named by its ordinal, and its size and stack come back as written.
      EXPECT_EQ(record.as<format::AllocEvent>().address, expected);
      EXPECT_EQ(record.as<format::AllocEvent>().size, expected++);
    }
  });
  EXPECT_EQ(expected, 20001u);
  EXPECT_EQ(summary.records, 20001u);
  ASSERT_TRUE(summary.ending.has_value());
  EXPECT_EQ(summary.ending->exit_code, 3);
  EXPECT_FALSE(summary.truncated);
}

TEST(Trace, WriterRefusesToOverwriteOrFollowSymlinks) {
  const std::string path = fresh_path("heapscope-exists.trace.zst");
  std::ofstream(path) << "x";
  EXPECT_THROW(TraceWriter(path, 1), IoError);
  const std::string link = fresh_path("heapscope-link.trace.zst");
  std::filesystem::create_symlink("/tmp/heapscope-link-target", link);
  EXPECT_THROW(TraceWriter(link, 1), IoError);
}

TEST(Trace, CutShortTraceHasNoEnding) {
  const std::string path = fresh_path("heapscope-cut.trace.zst");
  test::RecordBuilder records;
  {
    TraceWriter writer(path, 7);
    writer.append(records.free(0x10).bytes);
    // no finish(): the collector died before writing the ending
  }
  const TraceSummary summary = read_trace(path, [](const RecordView&) {});
  EXPECT_FALSE(summary.ending.has_value());
}

// Version 8 traces (records unpacked, blocks by address) read as they always did; anything
// older or newer is refused.
TEST(Trace, ReadsVersionsFromTheOldestKeptToTheCurrent) {
  const std::string path = fresh_path("heapscope-versions.trace.zst");
  test::RecordBuilder records;
  {
    TraceWriter writer(path, 9);
    writer.append(records.alloc(0x1000, 10, 1).bytes);
    writer.finish(ending_with(0));
  }
  auto read_as = [&](uint16_t version) {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(offsetof(format::TraceFileHeader, version));
    file.write(reinterpret_cast<const char*>(&version), sizeof(version));
    file.close();
    uint64_t allocations = 0;
    read_trace(path, [&](const RecordView& record) { allocations += record.kind == format::EventKind::kAlloc; });
    return allocations;
  };
  EXPECT_EQ(read_as(format::kOldestTraceVersion), 1u);
  EXPECT_EQ(read_as(format::kFormatVersion), 1u);
  EXPECT_THROW(read_as(format::kOldestTraceVersion - 1), FormatError);
  EXPECT_THROW(read_as(format::kFormatVersion + 1), FormatError);
}

}  // namespace
}  // namespace heapscope::analyzer
