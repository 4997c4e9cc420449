// Record validation: malformed input is a FormatError with a message, never a crash.
#include "event_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

using format::EventKind;

std::vector<std::byte> bytes_of(const void* data, size_t size) {
  std::vector<std::byte> out(size);
  std::memcpy(out.data(), data, size);
  return out;
}

TEST(EventReader, AcceptsAWellFormedStack) {
  struct {
    format::StackEvent event;
    uint64_t frames[2];
  } record{};
  record.event.header.size = sizeof(record);
  record.event.stack_id = 4;
  record.event.frame_count = 2;
  record.frames[1] = 0x1234;
  const auto bytes = bytes_of(&record, sizeof(record));
  const RecordView view = decode_record(static_cast<uint16_t>(EventKind::kStack), bytes);
  EXPECT_EQ(view.kind, EventKind::kStack);
  EXPECT_EQ(view.as<format::StackEvent>().stack_id, 4u);
  EXPECT_EQ(view.payload<format::StackEvent>().size(), 16u);
}

TEST(EventReader, RejectsUnknownKinds) {
  const std::vector<std::byte> bytes(64);
  try {
    decode_record(999, bytes);
    FAIL();
  } catch (const FormatError& error) {
    EXPECT_STREQ(error.what(), "unknown record kind 999");
  }
}

TEST(EventReader, RejectsShortOrUnalignedRecords) {
  const std::vector<std::byte> short_alloc(40);
  EXPECT_THROW(decode_record(static_cast<uint16_t>(EventKind::kAlloc), short_alloc), FormatError);
  const std::vector<std::byte> odd(52);
  EXPECT_THROW(decode_record(static_cast<uint16_t>(EventKind::kAlloc), odd), FormatError);
}

TEST(EventReader, RejectsPayloadsThatDoNotFit) {
  format::StackEvent event{};
  event.frame_count = 3;  // announces 24 bytes that are not there
  EXPECT_THROW(decode_record(static_cast<uint16_t>(EventKind::kStack), bytes_of(&event, sizeof(event))),
               FormatError);
  event.frame_count = 1000;  // more than any stack may have
  std::vector<std::byte> big(sizeof(event) + 8000);
  std::memcpy(big.data(), &event, sizeof(event));
  EXPECT_THROW(decode_record(static_cast<uint16_t>(EventKind::kStack), big), FormatError);
  format::ModuleEvent module{};
  module.path_bytes = 100;
  EXPECT_THROW(decode_record(static_cast<uint16_t>(EventKind::kModule), bytes_of(&module, sizeof(module))),
               FormatError);
}

TEST(EventReader, PayloadTextIsBoundsChecked) {
  const std::vector<std::byte> payload = {std::byte{'a'}, std::byte{'b'}};
  EXPECT_EQ(payload_text(payload, 0, 2), "ab");
  EXPECT_EQ(payload_text(payload, 1, 5), "");
  EXPECT_EQ(payload_text(payload, 3, 0), "");
}

}  // namespace
}  // namespace heapscope::analyzer
