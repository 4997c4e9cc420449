// Packing and unpacking of alloc and free events (see packed_events.h). The layout of a packed
// event, documented in docs/trace-format.md:
//   tag byte: bit 0 free (else alloc), bit 1 thread follows, bit 2 time delta follows,
//             bits 3-6 the api (format::Api), bit 7 (allocs) the info follows in full
//   [varint thread id] [varint zigzag(time - previous event's time)]
//   alloc: with bit 7, varint size, varint stack id, varint alignment, byte family: the info,
//          which then takes its slot (info_slot) in the table; else a little-endian u16: the
//          slot of its info
//   free:  varint (allocations so far - the block's ordinal + 1); 0 = a block never allocated
//          in this trace (inherited over fork, say)
#include "packed_events.h"

#include <cstring>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

using format::EventKind;

constexpr uint8_t kTagFree = 1;
constexpr uint8_t kTagThread = 2;
constexpr uint8_t kTagTime = 4;
constexpr unsigned kTagApiShift = 3;
constexpr uint8_t kTagApiMask = 0x0f;
constexpr uint8_t kTagInfo = 0x80;
constexpr size_t kMaxPackedBytes = 64 * 1024;  // per record: far under the reader's 1 MiB limit

void put_varint(std::vector<uint8_t>& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

uint64_t zigzag(int64_t value) { return (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63); }
int64_t unzigzag(uint64_t value) { return static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1); }

class PackedReader {
 public:
  explicit PackedReader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  bool done() const noexcept { return position_ == bytes_.size(); }
  uint8_t byte() {
    if (position_ == bytes_.size()) fail();
    return static_cast<uint8_t>(bytes_[position_++]);
  }
  uint64_t varint() {
    uint64_t value = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      const uint8_t next = byte();
      value |= static_cast<uint64_t>(next & 0x7f) << shift;
      if ((next & 0x80) == 0) return value;
    }
    fail();
  }
  [[noreturn]] void fail() const { throw FormatError(fmt::format("packed events cut short at byte {}", position_)); }

 private:
  std::span<const std::byte> bytes_;
  size_t position_ = 0;
};

}  // namespace

size_t info_slot(const AllocationInfo& info) noexcept {
  uint64_t hash = (info.size + 1) * 0x9e3779b97f4a7c15ull;
  hash ^= (uint64_t{info.stack_id} << 32 | info.alignment_family) * 0xc2b2ae3d27d4eb4full;
  hash ^= hash >> 29;
  return static_cast<size_t>((hash * 0x165667b19e3779f9ull) >> (64 - kInfoSlotBits));
}

namespace {

// The info of an allocation; false when it cannot have one (a slot-less, malformed info).
bool info_of(uint64_t size, uint32_t stack_id, uint32_t alignment, uint8_t family, AllocationInfo& info) {
  if (size == UINT64_MAX || alignment >= (1u << 24)) return false;
  info = AllocationInfo{size, stack_id, alignment << 8 | family};
  return true;
}

}  // namespace

uint64_t EventPacker::ordinal_of(uint64_t address) const {
  const uint64_t* ordinal = live_.find(address);
  return ordinal == nullptr ? 0 : *ordinal;
}

void EventPacker::begin_event(const format::EventHeader& header, uint8_t tag, uint32_t thread_id) {
  if (events_ == 0) first_time_ = header.time_ns;
  const bool new_thread = thread_id != last_thread_;
  const bool new_time = header.time_ns != last_time_;
  packed_.push_back(static_cast<uint8_t>(tag | (new_thread ? kTagThread : 0) | (new_time ? kTagTime : 0)));
  if (new_thread) put_varint(packed_, thread_id);
  if (new_time) put_varint(packed_, zigzag(static_cast<int64_t>(header.time_ns - last_time_)));
  last_thread_ = thread_id;
  last_time_ = header.time_ns;
  ++events_;
}

bool EventPacker::pack_alloc(const format::AllocEvent& event) {
  AllocationInfo info;
  if (event.header.flags != 0 || event.api > kTagApiMask ||
      !info_of(event.size, event.stack_id, event.alignment, event.family, info))
    return false;
  const size_t slot = info_slot(info);
  const bool known = infos_[slot] == info;
  begin_event(event.header, static_cast<uint8_t>((known ? 0 : kTagInfo) | event.api << kTagApiShift), event.thread_id);
  if (known) {
    packed_.push_back(static_cast<uint8_t>(slot));
    packed_.push_back(static_cast<uint8_t>(slot >> 8));
  } else {
    put_varint(packed_, event.size);
    put_varint(packed_, event.stack_id);
    put_varint(packed_, event.alignment);
    packed_.push_back(event.family);
    infos_[slot] = info;
  }
  bool fresh = false;
  live_.try_emplace(event.address, fresh) = ++allocations_;
  return true;
}

bool EventPacker::pack_free(const format::FreeEvent& event) {
  if (event.header.flags != 0 || event.api > kTagApiMask) return false;
  begin_event(event.header, static_cast<uint8_t>(kTagFree | event.api << kTagApiShift), event.thread_id);
  const uint64_t ordinal = ordinal_of(event.address);
  put_varint(packed_, ordinal == 0 ? 0 : allocations_ - ordinal + 1);
  if (ordinal != 0) live_.erase(event.address);
  return true;
}

// A block allocated where one is still live: the first one's free was never seen (see
// format::kFreeImplied). Said explicitly, by ordinal, so that a reader keyed by ordinals drops
// the first block as the live model drops it.
void EventPacker::emit_implied_free(const format::AllocEvent& event, uint64_t ordinal) {
  flush();
  format::FreeEvent implied{};
  implied.header.kind = static_cast<uint16_t>(EventKind::kFree);
  implied.header.size = sizeof(implied);
  implied.header.flags = format::kFreeImplied;
  implied.header.time_ns = event.header.time_ns;
  implied.address = ordinal;
  implied.thread_id = event.thread_id;
  live_.erase(event.address);
  emit_(std::as_bytes(std::span(&implied, 1)));
}

void EventPacker::add(std::span<const std::byte> record) {
  format::EventHeader header;
  memcpy(&header, record.data(), sizeof(header));
  bool packed = false;
  if (header.kind == static_cast<uint16_t>(EventKind::kAlloc) && record.size() >= sizeof(format::AllocEvent)) {
    format::AllocEvent event;
    memcpy(&event, record.data(), sizeof(event));
    if (const uint64_t still_live = ordinal_of(event.address); still_live != 0) emit_implied_free(event, still_live);
    packed = pack_alloc(event);
  } else if (header.kind == static_cast<uint16_t>(EventKind::kFree) && record.size() >= sizeof(format::FreeEvent)) {
    format::FreeEvent event;
    memcpy(&event, record.data(), sizeof(event));
    packed = pack_free(event);
  }
  if (packed) {
    if (packed_.size() >= kMaxPackedBytes) flush();
    return;
  }
  flush();  // order: everything packed before this record goes out before it
  emit_translated(record);
}

// Writes a record that is not packed, naming blocks by ordinal where it names them at all.
void EventPacker::emit_translated(std::span<const std::byte> record) {
  format::EventHeader header;
  memcpy(&header, record.data(), sizeof(header));
  const auto kind = static_cast<EventKind>(header.kind);
  if (kind != EventKind::kAlloc && kind != EventKind::kFree && kind != EventKind::kIgnore &&
      kind != EventKind::kLeakKinds) {
    emit_(record);
    return;
  }
  scratch_.assign(record.begin(), record.end());
  auto rewrite = [&](size_t offset, uint64_t ordinal) { memcpy(scratch_.data() + offset, &ordinal, sizeof(ordinal)); };
  auto address_at = [&](size_t offset) {
    uint64_t address;
    memcpy(&address, scratch_.data() + offset, sizeof(address));
    return address;
  };
  constexpr size_t kAddress = sizeof(format::EventHeader);  // alloc, free and ignore: first field
  if (kind == EventKind::kAlloc) {
    bool fresh = false;
    const uint64_t address = address_at(kAddress);
    live_.try_emplace(address, fresh) = ++allocations_;
    rewrite(kAddress, allocations_);
  } else if (kind == EventKind::kFree) {
    const uint64_t address = address_at(kAddress);
    rewrite(kAddress, ordinal_of(address));
    live_.erase(address);
  } else if (kind == EventKind::kIgnore) {
    rewrite(kAddress, ordinal_of(address_at(kAddress)));
  } else {
    format::LeakKindsEvent event;
    memcpy(&event, scratch_.data(), sizeof(event));
    for (uint64_t i = 0; i < event.count; ++i) {
      const size_t offset = sizeof(event) + i * sizeof(format::LeakKindEntry);
      if (offset + sizeof(uint64_t) > scratch_.size()) break;
      rewrite(offset, ordinal_of(address_at(offset)));
    }
  }
  emit_(scratch_);
}

void EventPacker::flush() {
  if (events_ == 0) return;
  format::PackedEvent head{};
  head.header.kind = static_cast<uint16_t>(EventKind::kPacked);
  head.header.time_ns = first_time_;
  head.bytes = static_cast<uint32_t>(packed_.size());
  head.events = events_;
  const size_t size = (sizeof(head) + packed_.size() + 7) / 8 * 8;
  head.header.size = static_cast<uint32_t>(size);
  scratch_.assign(size, std::byte{0});
  memcpy(scratch_.data(), &head, sizeof(head));
  memcpy(scratch_.data() + sizeof(head), packed_.data(), packed_.size());
  emit_(scratch_);
  packed_.clear();
  events_ = 0;
}

void EventUnpacker::unpack(const RecordView& packed, const std::function<void(const RecordView&)>& deliver) {
  const auto& head = packed.as<format::PackedEvent>();
  PackedReader reader(packed.payload<format::PackedEvent>().first(head.bytes));
  for (uint32_t i = 0; i < head.events; ++i) {
    const uint8_t tag = reader.byte();
    if ((tag & kTagThread) != 0) {
      const uint64_t thread = reader.varint();
      if (thread > UINT32_MAX) throw FormatError(fmt::format("packed event with thread id {}", thread));
      last_thread_ = static_cast<uint32_t>(thread);
    }
    if ((tag & kTagTime) != 0) last_time_ += static_cast<uint64_t>(unzigzag(reader.varint()));
    const auto api = static_cast<uint8_t>((tag >> kTagApiShift) & kTagApiMask);
    if ((tag & kTagFree) != 0) {
      const uint64_t distance = reader.varint();
      if (distance > allocations_ + 1) throw FormatError(fmt::format("packed free of a block {} allocations ago", distance));
      format::FreeEvent event{};
      event.header = {static_cast<uint16_t>(format::EventKind::kFree), 0, sizeof(event), last_time_};
      event.address = distance == 0 ? 0 : allocations_ - distance + 1;
      event.thread_id = last_thread_;
      event.api = api;
      deliver(RecordView{format::EventKind::kFree, std::as_bytes(std::span(&event, 1))});
    } else {
      AllocationInfo info;
      if ((tag & kTagInfo) != 0) {
        const uint64_t size = reader.varint();
        const uint64_t stack = reader.varint();
        const uint64_t alignment = reader.varint();
        const uint8_t family = reader.byte();
        if (stack > UINT32_MAX || alignment > UINT32_MAX ||
            !info_of(size, static_cast<uint32_t>(stack), static_cast<uint32_t>(alignment), family, info))
          throw FormatError("packed allocation info out of range");
        infos_[info_slot(info)] = info;
      } else {
        const size_t slot = reader.byte();
        info = infos_[slot | size_t{reader.byte()} << 8];
        if (info.size == UINT64_MAX) throw FormatError(fmt::format("packed allocation names empty info slot {}", slot));
      }
      format::AllocEvent event{};
      event.header = {static_cast<uint16_t>(format::EventKind::kAlloc), 0, sizeof(event), last_time_};
      event.address = ++allocations_;
      event.size = info.size;
      event.stack_id = info.stack_id;
      event.thread_id = last_thread_;
      event.alignment = info.alignment_family >> 8;
      event.api = api;
      event.family = static_cast<uint8_t>(info.alignment_family);
      deliver(RecordView{format::EventKind::kAlloc, std::as_bytes(std::span(&event, 1))});
    }
    ++events_;
  }
  if (!reader.done()) throw FormatError("packed events record has bytes after its last event");
}

}  // namespace heapscope::analyzer
