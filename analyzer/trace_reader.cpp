// Trace file reading (see trace_reader.h).
#include "trace_reader.h"

#include "packed_events.h"

#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
struct StreamFreer {
  void operator()(ZSTD_DCtx* stream) const { ZSTD_freeDCtx(stream); }
};

}  // namespace

TraceSummary read_trace(const std::string& path, const std::function<void(const RecordView&)>& deliver,
                        const TraceProgress& progress) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw IoError(fmt::format("cannot open trace {}: {}", path, strerror(errno)));
  format::TraceFileHeader header{};
  const size_t got = std::fread(&header, 1, sizeof(header), file.get());
  if (got == 0) throw FormatError(fmt::format("{} is empty, not a heapscope trace", path));
  if (got < sizeof(header) || memcmp(header.magic, format::kTraceMagic, sizeof(header.magic)) != 0)
    throw FormatError(fmt::format("{} is not a heapscope trace", path));
  if (header.version < format::kOldestTraceVersion || header.version > format::kFormatVersion)
    throw FormatError(fmt::format("{} was written with event format version {}; this heapscope reads versions {} to {}",
                                  path, header.version, format::kOldestTraceVersion, format::kFormatVersion));
  if (header.header_size != sizeof(header) || header.compression != 1)
    throw FormatError(fmt::format("{} has an inconsistent trace header", path));

  std::unique_ptr<ZSTD_DCtx, StreamFreer> stream(ZSTD_createDCtx());
  std::vector<char> input(ZSTD_DStreamInSize());
  // Records are parsed where zstd writes them; only a record cut by the end of a chunk is moved
  // to the front of the buffer (a few bytes), never the whole chunk.
  const size_t chunk = ZSTD_DStreamOutSize();
  std::vector<std::byte> buffer(chunk + (1u << 20));  // room for a chunk after a partial record
  size_t filled = 0;      // bytes of buffer holding undecoded-by-us records
  TraceSummary summary;
  EventUnpacker unpacker;
  uint64_t offset = 0;    // of buffer[0] in the decompressed stream
  size_t frame_remaining = 0;

  auto consume = [&] {
    size_t position = 0;
    while (filled - position >= 8) {
      uint16_t kind = 0;
      uint32_t size = 0;
      memcpy(&kind, buffer.data() + position, sizeof(kind));
      memcpy(&size, buffer.data() + position + 4, sizeof(size));
      if (size < 8 || size % 8 != 0 || size > (1u << 20))
        throw FormatError(fmt::format("{}: corrupt record at byte {} of the stream (size {})", path,
                                      offset + position, size));
      if (filled - position < size) break;
      const std::span<const std::byte> bytes(buffer.data() + position, size);
      RecordView record = [&] {
        try {
          return decode_record(kind, bytes);
        } catch (const FormatError& error) {
          throw FormatError(fmt::format("{}: {} at byte {} of the stream", path, error.what(), offset + position));
        }
      }();
      if (record.kind == format::EventKind::kEnding) summary.ending = record.as<format::EndingEvent>();
      if (record.kind == format::EventKind::kPacked) {
        const uint64_t before = unpacker.events();
        try {
          unpacker.unpack(record, deliver);
        } catch (const FormatError& error) {
          throw FormatError(fmt::format("{}: {} at byte {} of the stream", path, error.what(), offset + position));
        }
        summary.records += unpacker.events() - before;
      } else {
        if (record.kind == format::EventKind::kAlloc) unpacker.note_unpacked_alloc();
        deliver(record);
        ++summary.records;
      }
      position += size;
    }
    memmove(buffer.data(), buffer.data() + position, filled - position);
    filled -= position;
    offset += position;
  };

  std::fseek(file.get(), 0, SEEK_END);
  const uint64_t file_size = static_cast<uint64_t>(std::ftell(file.get()));
  std::fseek(file.get(), sizeof(header), SEEK_SET);
  uint64_t file_read = sizeof(header);
  constexpr uint64_t kProgressStep = 4ull << 20;  // of the file: a second or so of reading
  uint64_t next_progress = kProgressStep;
  for (;;) {
    const size_t read = std::fread(input.data(), 1, input.size(), file.get());
    if (read == 0) break;
    file_read += read;
    if (progress && file_read >= next_progress) {
      progress(file_read, file_size);
      next_progress = file_read + kProgressStep;
    }
    ZSTD_inBuffer in{input.data(), read, 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer out{buffer.data() + filled, std::min(chunk, buffer.size() - filled), 0};
      frame_remaining = ZSTD_decompressStream(stream.get(), &out, &in);
      if (ZSTD_isError(frame_remaining))
        throw FormatError(fmt::format("{}: corrupt compressed data ({})", path, ZSTD_getErrorName(frame_remaining)));
      filled += out.pos;
      consume();
    }
  }
  if (std::ferror(file.get())) throw IoError(fmt::format("cannot read trace {}: {}", path, strerror(errno)));
  // Leftover bytes, or a compressed frame that never ended: the writer was cut off mid-way.
  summary.truncated = filled != 0 || frame_remaining != 0;
  return summary;
}

}  // namespace heapscope::analyzer
