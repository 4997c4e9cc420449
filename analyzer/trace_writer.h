// Writes one process image's trace file (format in include/heapscope/event_format.h): header,
// then its records through a zstd stream, alloc and free events packed (packed_events.h).
// Files are created 0600 without following symlinks.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "heapscope/event_format.h"
#include "packed_events.h"

struct ZSTD_CCtx_s;

namespace heapscope::analyzer {

class TraceWriter {
 public:
  // Creates `path` (must not exist). Throws IoError.
  TraceWriter(const std::string& path, int pid);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  void append(std::span<const std::byte> record);  // one whole record; throws IoError
  // Makes everything appended so far decodable from the file if a second has passed since the
  // last flush: a quiet process (a shell waiting for its child) must not lose its records when
  // heapscope is killed.
  void flush_if_stale();
  // Appends the kEnding record and closes the stream. Further appends are errors.
  void finish(const format::EndingEvent& ending);
  const std::string& path() const noexcept { return path_; }

 private:
  enum class Boundary { kNone, kFlush, kEnd };
  void write(std::span<const std::byte> record);
  void compress(const void* data, size_t bytes, Boundary boundary);
  std::string path_;
  std::FILE* file_ = nullptr;
  ZSTD_CCtx_s* stream_ = nullptr;
  std::string buffer_;  // compressed output staging
  // Bytes of records (as they came, before packing) since the last flush. Flushing every
  // kFlushBytes makes everything before it decodable even if the collector dies mid-run (a
  // compressed block is all or nothing).
  size_t unflushed_ = 0;
  static constexpr size_t kFlushBytes = 256 * 1024;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
  EventPacker packer_{[this](std::span<const std::byte> record) { write(record); }};
};

}  // namespace heapscope::analyzer
