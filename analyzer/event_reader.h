// Decodes and validates records of the event format (include/heapscope/event_format.h) from a
// byte span. The only reader of the format: the ring reader and future trace readers use it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "heapscope/event_format.h"

namespace heapscope::analyzer {

// A validated record: `kind` is known, `bytes` holds the whole record (header included), and
// the fixed part plus any variable payload it announces fit inside it.
struct RecordView {
  format::EventKind kind;
  std::span<const std::byte> bytes;

  template <typename T>
  const T& as() const noexcept { return *reinterpret_cast<const T*>(bytes.data()); }
  // The variable part after the fixed struct T.
  template <typename T>
  std::span<const std::byte> payload() const noexcept { return bytes.subspan(sizeof(T)); }
  const format::EventHeader& header() const noexcept { return as<format::EventHeader>(); }
};

// Validates one committed record of `kind` spanning `bytes`. Throws FormatError with a message
// naming the problem when the record is malformed or of a kind this version does not know.
RecordView decode_record(uint16_t kind, std::span<const std::byte> bytes);

// Helpers for variable payloads.
std::string_view payload_text(std::span<const std::byte> payload, size_t offset, size_t length);

const char* kind_name(format::EventKind kind) noexcept;

}  // namespace heapscope::analyzer
