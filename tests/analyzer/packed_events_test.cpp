// Packing of alloc and free events for trace files: what goes in comes back out, blocks named
// by ordinal; other records pass through in order, their block addresses made ordinals too;
// malformed packed data is refused with a FormatError, never read past its end.
#include "heap_model.h"
#include "packed_events.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "errors.h"
#include "record_builder.h"

namespace heapscope::analyzer {
namespace {

using format::EventKind;

struct Seen {
  EventKind kind;
  std::vector<std::byte> bytes;
};

// Packs `records`, then unpacks what came out, returning every record the reader would see.
std::vector<Seen> round_trip(const std::vector<RecordView>& records, size_t* written_bytes = nullptr) {
  std::vector<std::vector<std::byte>> written;
  EventPacker packer([&](std::span<const std::byte> record) { written.emplace_back(record.begin(), record.end()); });
  for (const RecordView& record : records) packer.add(record.bytes);
  packer.flush();
  std::vector<Seen> seen;
  EventUnpacker unpacker;
  size_t total = 0;
  for (const auto& bytes : written) {
    total += bytes.size();
    uint16_t kind;
    memcpy(&kind, bytes.data(), sizeof(kind));
    const RecordView record = decode_record(kind, bytes);
    auto keep = [&](const RecordView& r) { seen.push_back({r.kind, {r.bytes.begin(), r.bytes.end()}}); };
    if (record.kind == EventKind::kPacked) {
      unpacker.unpack(record, keep);
    } else {
      if (record.kind == EventKind::kAlloc) unpacker.note_unpacked_alloc();  // as read_trace does
      keep(record);
    }
  }
  if (written_bytes != nullptr) *written_bytes = total;
  return seen;
}

template <typename T>
T as(const Seen& seen) {
  T value;
  memcpy(&value, seen.bytes.data(), sizeof(T));
  return value;
}

TEST(PackedEvents, AllocsAndFreesComeBackWithOrdinalsTimesThreadsAndInfos) {
  test::RecordBuilder records;
  std::vector<RecordView> in;
  for (uint64_t i = 0; i < 6; ++i) {
    format::AllocEvent event{};
    event.header.time_ns = 1000 + (i / 2) * 7;  // changes every other event
    event.address = 0x5000 + i * 0x100;
    event.size = i % 2 == 0 ? 24 : 4096;          // two infos, used again and again
    event.stack_id = 7;
    event.thread_id = i < 3 ? 11 : 12;
    event.alignment = i == 5 ? 64 : 0;            // a third info
    event.api = static_cast<uint8_t>(format::Api::kNew);
    event.family = static_cast<uint8_t>(format::Family::kNew);
    in.push_back(records.add(EventKind::kAlloc, event));
  }
  format::FreeEvent free_event{};
  free_event.header.time_ns = 990;  // time may step back across threads
  free_event.address = 0x5100;      // the second allocation
  free_event.thread_id = 12;
  free_event.api = static_cast<uint8_t>(format::Api::kDelete);
  in.push_back(records.add(EventKind::kFree, free_event));
  free_event.address = 0x9999;  // never allocated here (inherited over fork)
  in.push_back(records.add(EventKind::kFree, free_event));

  const std::vector<Seen> out = round_trip(in);
  ASSERT_EQ(out.size(), 8u);
  for (uint64_t i = 0; i < 6; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(out[i].kind, EventKind::kAlloc);
    const auto original = in[i].as<format::AllocEvent>();
    const auto back = as<format::AllocEvent>(out[i]);
    EXPECT_EQ(back.address, i + 1);
    EXPECT_EQ(back.header.time_ns, original.header.time_ns);
    EXPECT_EQ(back.size, original.size);
    EXPECT_EQ(back.stack_id, original.stack_id);
    EXPECT_EQ(back.thread_id, original.thread_id);
    EXPECT_EQ(back.alignment, original.alignment);
    EXPECT_EQ(back.api, original.api);
    EXPECT_EQ(back.family, original.family);
  }
  const auto first_free = as<format::FreeEvent>(out[6]);
  EXPECT_EQ(out[6].kind, EventKind::kFree);
  EXPECT_EQ(first_free.address, 2u);
  EXPECT_EQ(first_free.header.time_ns, 990u);
  EXPECT_EQ(first_free.thread_id, 12u);
  EXPECT_EQ(first_free.api, static_cast<uint8_t>(format::Api::kDelete));
  EXPECT_EQ(as<format::FreeEvent>(out[7]).address, 0u);  // unknown: no block of this trace
}

// A block allocated at the address of one still live (its free went through a slot not yet
// redirected, during an attach): the live model drops the first block; a trace, which names
// blocks by ordinal, must say so, or the first block stays live forever in every report made
// from the trace (AttachE2E.TheTraceOfASessionGivesTheSameReport failed a run in ten).
TEST(PackedEvents, AnAllocationAtALiveBlocksAddressImpliesItsFreeAndTheModelsAgree) {
  test::RecordBuilder records;
  std::vector<RecordView> in;
  format::AllocEvent event{};
  event.address = 0x7000;
  event.size = 100;
  event.stack_id = 3;
  event.thread_id = 5;
  in.push_back(records.add(EventKind::kAlloc, event));
  event.size = 40;  // the same address again, with no free between
  in.push_back(records.add(EventKind::kAlloc, event));

  const std::vector<Seen> out = round_trip(in);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].kind, EventKind::kAlloc);
  ASSERT_EQ(out[1].kind, EventKind::kFree);
  const auto implied = as<format::FreeEvent>(out[1]);
  EXPECT_EQ(implied.header.flags, format::kFreeImplied);
  EXPECT_EQ(implied.address, 1u);  // the first block, by ordinal
  EXPECT_EQ(as<format::AllocEvent>(out[2]).address, 2u);

  ProcessModel live;
  for (const RecordView& record : in) live.apply(record);
  ProcessModel from_trace;
  for (const Seen& seen : out) from_trace.apply(decode_record(static_cast<uint16_t>(seen.kind), seen.bytes));
  EXPECT_EQ(from_trace.counters().allocations, live.counters().allocations);
  EXPECT_EQ(from_trace.counters().frees, live.counters().frees);  // an implied free is no free of the program's
  EXPECT_EQ(from_trace.counters().live_bytes, live.counters().live_bytes);
  EXPECT_EQ(from_trace.counters().live_bytes, 40u);
  EXPECT_EQ(from_trace.counters().peak_live_bytes, live.counters().peak_live_bytes);
}

TEST(PackedEvents, OtherRecordsKeepTheirPlaceAndNameBlocksByOrdinal) {
  test::RecordBuilder records;
  std::vector<RecordView> in;
  in.push_back(records.alloc(0x1000, 10, 1));
  in.push_back(records.stack(2, {0x400100, 0x400200}));  // not packed: splits the run
  in.push_back(records.alloc(0x2000, 20, 2));
  format::IgnoreEvent ignore{};
  ignore.address = 0x2000;
  in.push_back(records.add(EventKind::kIgnore, ignore));
  format::LeakKindsEvent kinds{};
  kinds.count = 2;
  format::LeakKindEntry entries[2]{};
  entries[0].address = 0x1000;
  entries[0].kind = static_cast<uint8_t>(format::LeakKind::kDefinite);
  entries[1].address = 0x2000;
  entries[1].kind = static_cast<uint8_t>(format::LeakKind::kReachable);
  in.push_back(records.add(EventKind::kLeakKinds, kinds, std::string(reinterpret_cast<const char*>(entries), sizeof(entries))));
  format::AllocEvent flagged{};  // a record the packer does not understand goes out whole
  flagged.header.flags = 0x8000;
  flagged.address = 0x3000;
  flagged.size = 30;
  in.push_back(records.add(EventKind::kAlloc, flagged));
  in.push_back(records.free(0x3000));

  const std::vector<Seen> out = round_trip(in);
  ASSERT_EQ(out.size(), in.size());
  const EventKind kinds_in_order[] = {EventKind::kAlloc, EventKind::kStack, EventKind::kAlloc, EventKind::kIgnore,
                                      EventKind::kLeakKinds, EventKind::kAlloc, EventKind::kFree};
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].kind, kinds_in_order[i]) << i;
  EXPECT_EQ(as<format::IgnoreEvent>(out[3]).address, 2u);
  format::LeakKindEntry back[2];
  memcpy(back, out[4].bytes.data() + sizeof(format::LeakKindsEvent), sizeof(back));
  EXPECT_EQ(back[0].address, 1u);
  EXPECT_EQ(back[0].kind, entries[0].kind);
  EXPECT_EQ(back[1].address, 2u);
  EXPECT_EQ(as<format::AllocEvent>(out[5]).address, 3u);
  EXPECT_EQ(as<format::AllocEvent>(out[5]).header.flags, 0x8000);
  EXPECT_EQ(as<format::FreeEvent>(out[6]).address, 3u);
}

TEST(PackedEvents, ManyEventsPackSmall) {
  test::RecordBuilder records;
  std::vector<RecordView> in;
  size_t raw = 0;
  for (uint64_t i = 0; i < 20000; ++i) {
    in.push_back(records.alloc(0x10000 + (i % 64) * 0x40, 16 + (i % 5) * 16, 1 + i % 3));
    in.push_back(records.free(0x10000 + (i % 64) * 0x40));
    raw += in[in.size() - 2].bytes.size() + in.back().bytes.size();
  }
  size_t written = 0;
  const std::vector<Seen> out = round_trip(in, &written);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_LT(written * 10, raw);  // at least ten times smaller before any compression
  for (size_t i = 0; i < out.size(); i += 2) {
    ASSERT_EQ(as<format::AllocEvent>(out[i]).address, i / 2 + 1);
    ASSERT_EQ(as<format::FreeEvent>(out[i + 1]).address, i / 2 + 1);
  }
}

// A PackedEvent record around `payload`, as a reader would get it.
std::vector<std::byte> packed_record(const std::vector<uint8_t>& payload, uint32_t events) {
  format::PackedEvent head{};
  head.header.kind = static_cast<uint16_t>(EventKind::kPacked);
  head.bytes = static_cast<uint32_t>(payload.size());
  head.events = events;
  head.header.size = format::record_size(sizeof(head) + payload.size());
  std::vector<std::byte> bytes(head.header.size);
  memcpy(bytes.data(), &head, sizeof(head));
  memcpy(bytes.data() + sizeof(head), payload.data(), payload.size());
  return bytes;
}

TEST(PackedEvents, MalformedDataIsRefused) {
  auto unpack = [](const std::vector<uint8_t>& payload, uint32_t events) {
    const std::vector<std::byte> bytes = packed_record(payload, events);
    EventUnpacker unpacker;
    unpacker.unpack(decode_record(static_cast<uint16_t>(EventKind::kPacked), bytes), [](const RecordView&) {});
  };
  EXPECT_THROW(unpack({0x00, 0x05, 0x00}, 1), FormatError);        // an alloc naming an empty info slot
  EXPECT_THROW(unpack({0x00, 0x05}, 1), FormatError);              // its slot number cut short
  EXPECT_THROW(unpack({0x80, 0x80}, 1), FormatError);              // an info's varint cut short
  EXPECT_THROW(unpack({0x80, 0x08, 0x01, 0x80, 0x80, 0x80, 0x08, 0x01}, 1), FormatError);  // alignment 2^24
  EXPECT_THROW(unpack({0x01, 0x07}, 1), FormatError);              // a free 7 allocations ago, of none
  EXPECT_THROW(unpack({0x80, 0x08, 0x01, 0x00, 0x01}, 2), FormatError);        // one event, two announced
  EXPECT_THROW(unpack({0x80, 0x08, 0x01, 0x00, 0x01, 0x00}, 1), FormatError);  // bytes left over
  EXPECT_NO_THROW(unpack({0x80, 0x08, 0x01, 0x00, 0x01, 0x01, 0x01}, 2));      // alloc, then its free
}

}  // namespace
}  // namespace heapscope::analyzer
