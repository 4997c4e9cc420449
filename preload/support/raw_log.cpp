// Fixed-buffer logging for the agent (see raw_log.h).
#include "raw_log.h"

#include <cstdlib>

#include "sys.h"

namespace heapscope::preload {

void RawLine::put(char c) noexcept {
  if (length_ < sizeof(buffer_) - 1) buffer_[length_++] = c;
}

RawLine& RawLine::text(const char* text) noexcept {
  while (*text != '\0') put(*text++);
  return *this;
}

RawLine& RawLine::number(int64_t value) noexcept {
  char digits[24];
  unsigned count = 0;
  uint64_t magnitude = value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  do {
    digits[count++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0) put('-');
  while (count > 0) put(digits[--count]);
  return *this;
}

RawLine& RawLine::hex(uint64_t value) noexcept {
  put('0');
  put('x');
  bool started = false;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const unsigned nibble = (value >> shift) & 0xf;
    if (nibble != 0 || started || shift == 0) {
      put("0123456789abcdef"[nibble]);
      started = true;
    }
  }
  return *this;
}

void RawLine::emit() noexcept {
  buffer_[length_++] = '\n';
  sys::write_all(2, buffer_, length_);
  length_ = 0;
}

void RawLine::emit_to(int fd) noexcept {
  buffer_[length_++] = '\n';
  sys::write_all(fd, buffer_, length_);
  length_ = 0;
}

void fatal(const char* message) noexcept {
  RawLine().text("heapscope: fatal: ").text(message).emit();
  abort();
}

}  // namespace heapscope::preload
