// /proc/self/maps read and parsed without allocating: for the leak scan's roots and for the
// attach agent's check that a module's RELRO is in force. Not hot-path code.
#pragma once
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "sys.h"

namespace heapscope::preload {

// One line of /proc/self/maps, parsed without allocating.
struct Mapping {
  uint64_t begin = 0;
  uint64_t end = 0;
  bool readable = false, writable = false, executable = false, is_private = false;
  bool file_backed = false;   // inode != 0
  bool device = false;        // a /dev path other than /dev/zero: never read
  bool brk_heap = false;      // [heap]: the program break, glibc's main arena
  const char* path = nullptr; // the file or [name], into the reader's buffer: valid during visit
  size_t path_length = 0;
};

inline uint64_t parse_hex(const char*& p) noexcept {
  uint64_t value = 0;
  for (;; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9') value = value * 16 + static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f') value = value * 16 + static_cast<uint64_t>(c - 'a' + 10);
    else return value;
  }
}

inline bool parse_mapping(const char* line, const char* end, Mapping& out) noexcept {
  const char* p = line;
  out.begin = parse_hex(p);
  if (*p++ != '-') return false;
  out.end = parse_hex(p);
  if (*p++ != ' ' || end - p < 4) return false;
  out.readable = p[0] == 'r';
  out.writable = p[1] == 'w';
  out.executable = p[2] == 'x';
  out.is_private = p[3] == 'p';
  p += 4;
  // offset, device, inode
  for (int field = 0; field < 3; ++field) {
    while (p < end && *p == ' ') ++p;
    const char* start = p;
    while (p < end && *p != ' ') ++p;
    if (field == 2) out.file_backed = !(p - start == 1 && *start == '0');
  }
  while (p < end && *p == ' ') ++p;
  out.device = end - p >= 5 && sys::string_equal(p, "/dev/", 5) &&
               !(end - p == 9 && sys::string_equal(p, "/dev/zero", 9));
  out.brk_heap = end - p == 6 && sys::string_equal(p, "[heap]", 6);
  out.path = p;
  out.path_length = static_cast<size_t>(end - p);
  return true;
}

// Calls visit(mapping) for each line of /proc/self/maps; false if it could not be read.
// System calls, not libc's open and read: those are cancellation points (a thread cancelled
// inside the agent would die holding what it holds), and errno is the program's.
template <typename Visit>
bool for_each_mapping(char* buffer, size_t buffer_size, Visit visit) noexcept {
  const int saved_errno = errno;
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (fd < 0) {
    errno = saved_errno;
    return false;
  }
  size_t held = 0;
  for (;;) {
    const ssize_t got = syscall(SYS_read, fd, buffer + held, buffer_size - held);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    held += static_cast<size_t>(got);
    size_t consumed = 0;
    for (size_t i = 0; i < held; ++i) {
      if (buffer[i] != '\n') continue;
      Mapping mapping;
      if (parse_mapping(buffer + consumed, buffer + i, mapping)) visit(mapping);
      consumed = i + 1;
    }
    for (size_t i = consumed; i < held; ++i) buffer[i - consumed] = buffer[i];
    held -= consumed;
    if (held == buffer_size) held = 0;  // a line longer than the buffer: drop it
  }
  syscall(SYS_close, fd);
  errno = saved_errno;
  return true;
}

}  // namespace heapscope::preload
