// Producer side of the event ring (see ring_writer.h). Hot path: one CAS per record.
#include "ring_writer.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "raw_log.h"
#include "sys.h"

namespace heapscope::preload {
namespace {

// Appends the decimal digits of `value` to `out`.
char* put_number(char* out, uint64_t value) noexcept {
  char digits[24];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

}  // namespace

void RingWriter::close() noexcept {
  if (ring_ == nullptr) return;
  format::RingHeader* ring = ring_;
  ring_ = nullptr;
  sys::unmap_memory(ring, sizeof(format::RingHeader) + ring->capacity);
  data_ = nullptr;
  collector_lost_ = false;
  seen_read_pos_.store(0, std::memory_order_relaxed);
}

void RingWriter::stop_in_fork_child() noexcept {
  if (ring_ == nullptr) return;
  collector_lost_ = true;  // first: a reserve in progress returns at its next check
  const size_t total = sizeof(format::RingHeader) + mask_ + 1;
  // ring_ stays valid whatever happens: an interrupted reserve may be reading it. Replacing a
  // range we own fails only without memory for the kernel's bookkeeping.
  if (sys::map_memory(ring_, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) == nullptr) return;
  ring_->capacity = mask_ + 1;  // for close()
}

uint32_t RingWriter::state() const noexcept {
  return ring_ == nullptr ? 0 : ring_->state.load(std::memory_order_acquire);
}

bool RingWriter::open(const char* session_dir, int collector_pid, size_t capacity_bytes) noexcept {
  char path[512];
  const size_t dir_length = sys::string_length(session_dir);
  if (dir_length > sizeof(path) - 64) return false;
  const uint64_t nonce = sys::now_ns();
  char* out = path;
  for (size_t i = 0; i < dir_length; ++i) *out++ = session_dir[i];
  *out++ = '/';
  out = put_number(out, static_cast<uint64_t>(getpid()));
  *out++ = '-';
  out = put_number(out, nonce);
  const char* suffix = ".ring";
  while (*suffix != '\0') *out++ = *suffix++;
  *out = '\0';

  const int fd = sys::open_file(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const size_t total = sizeof(format::RingHeader) + capacity_bytes;
  const int saved_errno = errno;
  const bool sized = ftruncate(fd, static_cast<off_t>(total)) == 0;
  void* mapping = sized ? sys::map_memory(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd) : nullptr;
  errno = saved_errno;
  sys::close_file(fd);
  if (mapping == nullptr) return false;
  auto* ring = static_cast<format::RingHeader*>(mapping);
  ring->version = format::kFormatVersion;
  ring->header_size = sizeof(format::RingHeader);
  ring->capacity = capacity_bytes;
  ring->pid = getpid();
  ring->collector_pid = collector_pid;
  ring->nonce = nonce;
  // Magic last: the collector ignores a ring whose header is not complete yet.
  __atomic_store_n(&ring->magic, format::kRingMagic, __ATOMIC_RELEASE);
  ring_ = ring;
  data_ = static_cast<char*>(mapping) + sizeof(format::RingHeader);
  mask_ = capacity_bytes - 1;
  collector_lost_ = false;
  seen_read_pos_.store(0, std::memory_order_relaxed);
  return true;
}

HEAPSCOPE_COLD void RingWriter::wait_for_space() noexcept {
  // The ring is full. Waiting is safe: the collector is another process and needs none of the
  // program's locks. A dropped free would surface later as a false leak, so we never drop.
  ring_->waits.fetch_add(1, std::memory_order_relaxed);
  static thread_local unsigned rounds [[gnu::tls_model("initial-exec")]] = 0;
  if (++rounds % 4096 == 0 && !sys::process_alive(ring_->collector_pid)) {
    collector_lost_ = true;
    set_state(format::kRingIncomplete);
    RawLine().text("heapscope: collector is gone; recording stopped, the trace is incomplete").emit();
    return;
  }
  sys::sleep_ns(20000);
}

HEAPSCOPE_HOT format::EventHeader* RingWriter::reserve(uint32_t size) noexcept {
  if (ring_ == nullptr || collector_lost_) return nullptr;
  const uint64_t capacity = mask_ + 1;
  for (;;) {
    uint64_t position = ring_->write_pos.load(std::memory_order_relaxed);
    const uint64_t offset = position & mask_;
    const uint64_t padding = offset + size > capacity ? capacity - offset : 0;
    const uint64_t needed = padding + size;
    // Acquire/release on the cached copy too: a producer trusting another's copy must also see
    // the collector's zeroing of the slots that copy freed (on x86 both are plain moves).
    if (position + needed - seen_read_pos_.load(std::memory_order_acquire) > capacity) {
      const uint64_t read = ring_->read_pos.load(std::memory_order_acquire);
      seen_read_pos_.store(read, std::memory_order_release);
      if (position + needed - read > capacity) {
        wait_for_space();
        if (collector_lost_) return nullptr;
        continue;
      }
    }
    if (!ring_->write_pos.compare_exchange_weak(position, position + needed,
                                                std::memory_order_relaxed)) {
      continue;
    }
    if (padding != 0) {
      // The record would wrap: fill the tail with a padding record (only its first 8 bytes
      // are read, which always fit since offsets are multiples of 8).
      auto* pad = reinterpret_cast<format::EventHeader*>(data_ + offset);
      pad->size = static_cast<uint32_t>(padding);
      commit(pad, format::EventKind::kPadding);
    }
    auto* record = reinterpret_cast<format::EventHeader*>(data_ + ((position + padding) & mask_));
    record->size = size;
    record->flags = 0;
    record->time_ns = sys::coarse_now_ns();
    return record;
  }
}

HEAPSCOPE_HOT void RingWriter::commit(format::EventHeader* record, format::EventKind kind) noexcept {
  __atomic_store_n(&record->kind, static_cast<uint16_t>(kind), __ATOMIC_RELEASE);
}

void RingWriter::set_state(uint32_t bits) noexcept {
  if (ring_ != nullptr) ring_->state.fetch_or(bits, std::memory_order_release);
}

uint64_t RingWriter::waits() const noexcept {
  return ring_ == nullptr ? 0 : ring_->waits.load(std::memory_order_relaxed);
}

}  // namespace heapscope::preload
