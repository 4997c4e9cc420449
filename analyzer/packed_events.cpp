// Packing and unpacking of alloc and free events (see packed_events.h). The layout of a packed
// event, documented in docs/trace-format.md:
//   tag byte: bit 0 free (else alloc), bit 1 thread follows, bit 2 time delta follows,
//             bits 3-7 the api (format::Api)
//   [varint thread id] [varint zigzag(time - previous event's time)]
//   alloc: varint info number; 0 = a new info follows (varint size, varint stack id,
//          varint alignment, byte family), numbered 1, 2, ... in order of appearance
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

size_t EventPacker::InfoHash::operator()(const Info& info) const noexcept {
  uint64_t hash = info.size * 0x9e3779b97f4a7c15ull;
  hash ^= (uint64_t{info.stack_id} << 32 | info.alignment) + 0x165667b19e3779f9ull + (hash << 6) + (hash >> 2);
  return static_cast<size_t>(hash ^ info.family);
}

uint64_t EventPacker::ordinal_of(uint64_t address) const {
  const uint64_t* ordinal = live_.find(address);
  return ordinal == nullptr ? 0 : *ordinal;
}

void EventPacker::begin_event(const format::EventHeader& header, bool free, uint8_t api, uint32_t thread_id) {
  if (events_ == 0) first_time_ = header.time_ns;
  const bool new_thread = thread_id != last_thread_;
  const bool new_time = header.time_ns != last_time_;
  packed_.push_back(static_cast<uint8_t>((free ? kTagFree : 0) | (new_thread ? kTagThread : 0) |
                                         (new_time ? kTagTime : 0) | (api << kTagApiShift)));
  if (new_thread) put_varint(packed_, thread_id);
  if (new_time) put_varint(packed_, zigzag(static_cast<int64_t>(header.time_ns - last_time_)));
  last_thread_ = thread_id;
  last_time_ = header.time_ns;
  ++events_;
}

bool EventPacker::pack_alloc(const format::AllocEvent& event) {
  if (event.header.flags != 0 || event.api >= 32) return false;
  begin_event(event.header, false, event.api, event.thread_id);
  const Info info{event.size, event.stack_id, event.alignment, event.family};
  const auto [found, added] = infos_.try_emplace(info, static_cast<uint32_t>(infos_.size() + 1));
  if (added) {
    put_varint(packed_, 0);
    put_varint(packed_, info.size);
    put_varint(packed_, info.stack_id);
    put_varint(packed_, info.alignment);
    packed_.push_back(info.family);
  } else {
    put_varint(packed_, found->second);
  }
  bool fresh = false;
  live_.try_emplace(event.address, fresh) = ++allocations_;
  return true;
}

bool EventPacker::pack_free(const format::FreeEvent& event) {
  if (event.header.flags != 0 || event.api >= 32) return false;
  begin_event(event.header, true, event.api, event.thread_id);
  const uint64_t ordinal = ordinal_of(event.address);
  put_varint(packed_, ordinal == 0 ? 0 : allocations_ - ordinal + 1);
  if (ordinal != 0) live_.erase(event.address);
  return true;
}

void EventPacker::add(std::span<const std::byte> record) {
  format::EventHeader header;
  memcpy(&header, record.data(), sizeof(header));
  bool packed = false;
  if (header.kind == static_cast<uint16_t>(EventKind::kAlloc) && record.size() >= sizeof(format::AllocEvent)) {
    format::AllocEvent event;
    memcpy(&event, record.data(), sizeof(event));
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
    const auto api = static_cast<uint8_t>(tag >> kTagApiShift);
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
      const uint64_t number = reader.varint();
      if (number == 0) {
        Info info{};
        info.size = reader.varint();
        const uint64_t stack = reader.varint();
        const uint64_t alignment = reader.varint();
        if (stack > UINT32_MAX || alignment > UINT32_MAX) throw FormatError("packed allocation info out of range");
        info.stack_id = static_cast<uint32_t>(stack);
        info.alignment = static_cast<uint32_t>(alignment);
        info.family = reader.byte();
        infos_.push_back(info);
      } else if (number > infos_.size()) {
        throw FormatError(fmt::format("packed allocation names info {} of {}", number, infos_.size()));
      }
      const Info& info = number == 0 ? infos_.back() : infos_[number - 1];
      format::AllocEvent event{};
      event.header = {static_cast<uint16_t>(format::EventKind::kAlloc), 0, sizeof(event), last_time_};
      event.address = ++allocations_;
      event.size = info.size;
      event.stack_id = info.stack_id;
      event.thread_id = last_thread_;
      event.alignment = info.alignment;
      event.api = api;
      event.family = info.family;
      deliver(RecordView{format::EventKind::kAlloc, std::as_bytes(std::span(&event, 1))});
    }
    ++events_;
  }
  if (!reader.done()) throw FormatError("packed events record has bytes after its last event");
}

}  // namespace heapscope::analyzer
