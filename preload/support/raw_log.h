// Diagnostics from inside the target process: formats into a stack buffer and write(2)s to
// stderr. Never uses printf or FILE*, never allocates: safe on the hot path and in handlers.
#pragma once
#include <cstdint>

namespace heapscope::preload {

// Builds one line in a fixed buffer; excess text is truncated. Usage:
//   RawLine().text("heapscope: ring full, pid ").number(pid).emit();
class RawLine {
 public:
  RawLine& text(const char* text) noexcept;
  RawLine& number(int64_t value) noexcept;
  RawLine& hex(uint64_t value) noexcept;
  void emit() noexcept;  // appends '\n', writes to fd 2
  void emit_to(int fd) noexcept;  // appends '\n', writes to `fd`

 private:
  void put(char c) noexcept;
  char buffer_[512];
  unsigned length_ = 0;
};

// A broken internal invariant: log and abort. Never returns.
[[noreturn]] void fatal(const char* message) noexcept;

}  // namespace heapscope::preload

#define HEAPSCOPE_CHECK(condition)                                                 \
  do {                                                                             \
    if (__builtin_expect(!(condition), 0))                                         \
      ::heapscope::preload::fatal("check failed: " #condition " at " __FILE__);    \
  } while (0)
