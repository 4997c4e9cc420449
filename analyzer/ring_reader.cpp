// Ring consumer (see ring_reader.h).
#include "ring_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {

RingReader::RingReader(const std::string& path) : path_(path) {
  const int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw IoError(fmt::format("cannot open ring {}: {}", path, strerror(errno)));
  struct stat info {};
  if (fstat(fd, &info) != 0 || info.st_size < static_cast<off_t>(sizeof(format::RingHeader))) {
    close(fd);
    return;  // header not written yet
  }
  mapping_bytes_ = static_cast<size_t>(info.st_size);
  mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    throw IoError(fmt::format("cannot map ring {}: {}", path, strerror(errno)));
  }
  auto* ring = static_cast<format::RingHeader*>(mapping_);
  const uint32_t magic = __atomic_load_n(&ring->magic, __ATOMIC_ACQUIRE);
  if (magic == 0) return;  // the agent has not published the header yet
  if (magic != format::kRingMagic)
    throw FormatError(fmt::format("{} is not a heapscope ring (magic {:#x})", path, magic));
  if (ring->version != format::kFormatVersion)
    throw FormatError(fmt::format("{} has event format version {}; this heapscope reads version {}",
                                  path, ring->version, format::kFormatVersion));
  const uint64_t capacity = ring->capacity;
  if (ring->header_size != sizeof(format::RingHeader) || capacity == 0 ||
      (capacity & (capacity - 1)) != 0 || sizeof(format::RingHeader) + capacity > mapping_bytes_)
    throw FormatError(fmt::format("{} has an inconsistent ring header", path));
  ring_ = ring;
  data_ = static_cast<std::byte*>(mapping_) + sizeof(format::RingHeader);
  mask_ = capacity - 1;
}

RingReader::RingReader(format::RingHeader* mapped) : path_("(mapped ring)") {
  ring_ = mapped;
  data_ = reinterpret_cast<std::byte*>(mapped) + sizeof(format::RingHeader);
  mask_ = mapped->capacity - 1;
}

RingReader::~RingReader() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_bytes_);
}

int RingReader::pid() const noexcept { return ring_ == nullptr ? 0 : ring_->pid; }
uint32_t RingReader::state() const noexcept {
  return ring_ == nullptr ? 0 : ring_->state.load(std::memory_order_acquire);
}
void RingReader::set_state_bits(uint32_t bits) noexcept {
  if (ring_ != nullptr) ring_->state.fetch_or(bits, std::memory_order_acq_rel);
}

uint64_t RingReader::waits() const noexcept {
  return ring_ == nullptr ? 0 : ring_->waits.load(std::memory_order_relaxed);
}

size_t RingReader::drain(const std::function<void(const RecordView&)>& deliver) {
  if (ring_ == nullptr) return 0;
  const uint64_t capacity = mask_ + 1;
  uint64_t position = ring_->read_pos.load(std::memory_order_relaxed);
  uint64_t published = position;
  const uint64_t kPublishBytes = std::min<uint64_t>(capacity / 8, 256 * 1024);
  size_t delivered = 0;
  for (;;) {
    const uint64_t offset = position & mask_;
    auto* kind_slot = reinterpret_cast<uint16_t*>(data_ + offset);
    const uint16_t kind = __atomic_load_n(kind_slot, __ATOMIC_ACQUIRE);
    if (kind == 0) break;  // not committed yet: a torn or empty tail
    uint32_t size = 0;
    memcpy(&size, data_ + offset + 4, sizeof(size));
    if (size < 8 || size % 8 != 0 || size > capacity - offset)
      throw FormatError(fmt::format("ring {}: record of {} bytes at offset {}", path_, size, offset));
    if (kind != static_cast<uint16_t>(format::EventKind::kPadding)) {
      deliver(decode_record(kind, std::span<const std::byte>(data_ + offset, size)));
      ++delivered;
    }
    // Zero the slot before publishing read_pos: a producer reusing it must find kind == 0.
    memset(data_ + offset, 0, size);
    position += size;
    // Publish in batches: every store pulls the line away from producers checking for room.
    if (position - published >= kPublishBytes) {
      ring_->read_pos.store(position, std::memory_order_release);
      published = position;
    }
  }
  if (published != position) ring_->read_pos.store(position, std::memory_order_release);
  return delivered;
}

size_t RingReader::drain_abandoned(const std::function<void(const RecordView&)>& deliver) {
  if (ring_ == nullptr) return 0;
  const uint64_t capacity = mask_ + 1;
  size_t delivered = drain(deliver);
  const uint64_t written = ring_->write_pos.load(std::memory_order_acquire);
  uint64_t position = ring_->read_pos.load(std::memory_order_relaxed);
  while (position < written) {
    const uint64_t offset = position & mask_;
    uint16_t kind = 0;
    memcpy(&kind, data_ + offset, sizeof(kind));
    if (kind != 0) {  // a committed record after the hole
      ring_->read_pos.store(position, std::memory_order_release);
      delivered += drain(deliver);
      position = ring_->read_pos.load(std::memory_order_relaxed);
      continue;
    }
    uint32_t size = 0;
    memcpy(&size, data_ + offset + 4, sizeof(size));
    const bool sized = size >= 8 && size % 8 == 0 && size <= capacity - offset && position + size <= written;
    const uint64_t skip = sized ? size : 8;
    ++torn_records_;
    memset(data_ + offset, 0, skip);
    position += skip;
    // A hole with no size is zero all along: count it once, where it starts.
    while (!sized && position < written && (position & mask_) != 0) {
      uint64_t word = 0;
      memcpy(&word, data_ + (position & mask_), sizeof(word));
      if (word != 0) break;
      position += 8;
    }
  }
  ring_->read_pos.store(position, std::memory_order_release);
  return delivered;
}

}  // namespace heapscope::analyzer
