// Trace file writing with zstd streaming compression (see trace_writer.h).
#include "trace_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {

TraceWriter::TraceWriter(const std::string& path, int pid) : path_(path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw IoError(fmt::format("cannot create trace {}: {}", path, strerror(errno)));
  file_ = fdopen(fd, "wb");
  if (file_ == nullptr) {
    close(fd);
    throw IoError(fmt::format("cannot open trace {}: {}", path, strerror(errno)));
  }
  stream_ = ZSTD_createCCtx();
  // Level 3 keeps up with the ring on one core and shrinks records several times over.
  ZSTD_CCtx_setParameter(stream_, ZSTD_c_compressionLevel, 3);
  buffer_.resize(ZSTD_CStreamOutSize());
  format::TraceFileHeader header{};
  memcpy(header.magic, format::kTraceMagic, sizeof(header.magic));
  header.version = format::kFormatVersion;
  header.header_size = sizeof(header);
  header.compression = 1;
  header.pid = pid;
  // On disk at once: a trace whose writer is killed right after must still be recognizable.
  if (fwrite(&header, sizeof(header), 1, file_) != 1 || fflush(file_) != 0)
    throw IoError(fmt::format("cannot write trace {}: {}", path, strerror(errno)));
}

TraceWriter::~TraceWriter() {
  if (stream_ != nullptr) ZSTD_freeCCtx(stream_);
  if (file_ != nullptr) fclose(file_);
}

void TraceWriter::compress(const void* data, size_t bytes, Boundary boundary) {
  if (file_ == nullptr) throw IoError(fmt::format("trace {} is already finished", path_));
  const ZSTD_EndDirective directive =
      boundary == Boundary::kEnd ? ZSTD_e_end : boundary == Boundary::kFlush ? ZSTD_e_flush : ZSTD_e_continue;
  ZSTD_inBuffer input{data, bytes, 0};
  for (;;) {
    ZSTD_outBuffer output{buffer_.data(), buffer_.size(), 0};
    const size_t remaining = ZSTD_compressStream2(stream_, &output, &input, directive);
    if (ZSTD_isError(remaining))
      throw IoError(fmt::format("cannot compress trace {}: {}", path_, ZSTD_getErrorName(remaining)));
    if (output.pos > 0 && fwrite(buffer_.data(), 1, output.pos, file_) != output.pos)
      throw IoError(fmt::format("cannot write trace {}: {}", path_, strerror(errno)));
    const bool done = boundary == Boundary::kNone ? input.pos == input.size : remaining == 0;
    if (done) break;
  }
  if (boundary == Boundary::kFlush && fflush(file_) != 0)
    throw IoError(fmt::format("cannot write trace {}: {}", path_, strerror(errno)));
}

void TraceWriter::append(std::span<const std::byte> record) {
  // Counted as the records arrive, before packing: what a dying collector can lose stays
  // bounded in events, however well they pack.
  unflushed_ += record.size();
  packer_.add(record);
  if (unflushed_ >= kFlushBytes) {
    packer_.flush();
    unflushed_ = 0;
    last_flush_ = std::chrono::steady_clock::now();
    compress(nullptr, 0, Boundary::kFlush);
  }
}

void TraceWriter::write(std::span<const std::byte> record) { compress(record.data(), record.size(), Boundary::kNone); }

void TraceWriter::flush_if_stale() {
  if (file_ == nullptr || (unflushed_ == 0 && !packer_.pending())) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_flush_ < std::chrono::seconds(1)) return;
  packer_.flush();
  unflushed_ = 0;
  last_flush_ = now;
  compress(nullptr, 0, Boundary::kFlush);
}

void TraceWriter::finish(const format::EndingEvent& ending) {
  packer_.flush();
  compress(&ending, sizeof(ending), Boundary::kEnd);
  if (fclose(file_) != 0) {
    file_ = nullptr;
    throw IoError(fmt::format("cannot write trace {}: {}", path_, strerror(errno)));
  }
  file_ = nullptr;
}

}  // namespace heapscope::analyzer
