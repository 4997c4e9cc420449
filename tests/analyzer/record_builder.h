// Builds well-formed records in memory for analyzer unit tests.
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "event_reader.h"

namespace heapscope::test {

class RecordBuilder {
 public:
  template <typename T>
  analyzer::RecordView add(format::EventKind kind, T record, const std::string& payload = {}) {
    record.header.kind = static_cast<uint16_t>(kind);
    record.header.size = format::record_size(sizeof(T) + payload.size());
    auto& bytes = storage_.emplace_back(record.header.size);
    std::memcpy(bytes.data(), &record, sizeof(T));
    std::memcpy(bytes.data() + sizeof(T), payload.data(), payload.size());
    return analyzer::decode_record(record.header.kind, bytes);
  }

  analyzer::RecordView alloc(uint64_t address, uint64_t size, uint32_t stack,
                             format::Family family = format::Family::kMalloc, format::Api api = format::Api::kMalloc) {
    format::AllocEvent event{};
    event.address = address;
    event.size = size;
    event.stack_id = stack;
    event.family = static_cast<uint8_t>(family);
    event.api = static_cast<uint8_t>(api);
    return add(format::EventKind::kAlloc, event);
  }
  analyzer::RecordView free(uint64_t address, format::Api api = format::Api::kFree) {
    format::FreeEvent event{};
    event.address = address;
    event.api = static_cast<uint8_t>(api);
    return add(format::EventKind::kFree, event);
  }
  analyzer::RecordView stack(uint32_t id, const std::vector<uint64_t>& frames) {
    format::StackEvent event{};
    event.stack_id = id;
    event.frame_count = static_cast<uint32_t>(frames.size());
    return add(format::EventKind::kStack, event,
               std::string(reinterpret_cast<const char*>(frames.data()), frames.size() * 8));
  }
  analyzer::RecordView module(const std::string& path, uint64_t start, uint64_t end) {
    format::ModuleEvent event{};
    event.start = start;
    event.end = end;
    event.path_bytes = static_cast<uint32_t>(path.size());
    return add(format::EventKind::kModule, event, path);
  }

  // A scan's verdicts (kLeakKinds) for (address, kind) pairs.
  analyzer::RecordView leak_kinds(uint32_t scan, const std::vector<std::pair<uint64_t, format::LeakKind>>& kinds) {
    format::LeakKindsEvent event{};
    event.scan_id = scan;
    event.count = static_cast<uint32_t>(kinds.size());
    std::string payload;
    for (const auto& [address, kind] : kinds) {
      format::LeakKindEntry entry{address, static_cast<uint8_t>(kind), {}};
      payload.append(reinterpret_cast<const char*>(&entry), sizeof(entry));
    }
    return add(format::EventKind::kLeakKinds, event, payload);
  }
  analyzer::RecordView scan_end(uint32_t scan, uint16_t flags, format::ScanStatus status = format::ScanStatus::kDone) {
    format::LeakScanEndEvent event{};
    event.scan_id = scan;
    event.status = static_cast<uint32_t>(status);
    event.header.flags = flags;
    return add(format::EventKind::kLeakScanEnd, event);
  }
  analyzer::RecordView thread(format::EventKind kind, uint32_t tid, uint32_t parent, uint64_t time_ns) {
    format::ThreadEvent event{};
    event.thread_id = tid;
    event.parent_thread_id = parent;
    event.header.time_ns = time_ns;
    return add(kind, event);
  }

 private:
  std::vector<std::vector<std::byte>> storage_;
};

}  // namespace heapscope::test
