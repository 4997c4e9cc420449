// Allocation-free parser for HEAPSCOPE_OPTIONS (see options.h). Runs during agent init, before
// the allocator is usable, so it works on the raw string in place.
#include <cstddef>

#include "options.h"
#include "raw_log.h"
#include "sys.h"

namespace heapscope::preload {
namespace {

struct Token {
  const char* data;
  size_t length;
  bool equals(const char* word) const noexcept {
    return sys::string_length(word) == length && sys::string_equal(data, word, length);
  }
};

bool parse_value(Token value, bool& out) noexcept {
  if (value.equals("1") || value.equals("true") || value.equals("yes")) return out = true, true;
  if (value.equals("0") || value.equals("false") || value.equals("no")) return out = false, true;
  return false;
}

bool parse_value(Token value, uint32_t& out) noexcept {
  if (value.length == 0 || value.length > 9) return false;
  uint32_t result = 0;
  for (size_t i = 0; i < value.length; ++i) {
    if (value.data[i] < '0' || value.data[i] > '9') return false;
    result = result * 10 + static_cast<uint32_t>(value.data[i] - '0');
  }
  out = result;
  return true;
}

void clamp(Options& options) noexcept {
  if (options.max_frames < 1) options.max_frames = 1;
  if (options.max_frames > 64) options.max_frames = 64;
  if (options.ring_mib < 1) options.ring_mib = 1;
  if (options.ring_mib > 1024) options.ring_mib = 1024;
}

}  // namespace

int parse_options(const char* text, Options& options) noexcept {
  int problems = 0;
  while (text != nullptr && *text != '\0') {
    const char* end = text;
    while (*end != '\0' && *end != ':') ++end;
    const char* equals = text;
    while (equals < end && *equals != '=') ++equals;
    const Token key{text, static_cast<size_t>(equals - text)};
    const Token value{equals < end ? equals + 1 : end,
                      static_cast<size_t>(equals < end ? end - equals - 1 : 0)};
    bool known = false;
    bool valid = false;
    if (key.equals("output_dir")) {
      known = true;
      valid = value.length > 0;
      options.output_dir = value.data;
      options.output_dir_length = value.length;
    }
#define HEAPSCOPE_OPTION(type, name, default_value, help) \
  if (!known && key.equals(#name)) {                      \
    known = true;                                         \
    valid = parse_value(value, options.name);             \
  }
#include "heapscope/agent_options.inc"
#undef HEAPSCOPE_OPTION
    if (key.length > 0 && (!known || !valid)) {
      ++problems;
      char shown[128];
      size_t length = static_cast<size_t>(end - text) < sizeof(shown) - 1
                          ? static_cast<size_t>(end - text) : sizeof(shown) - 1;
      for (size_t i = 0; i < length; ++i) shown[i] = text[i];
      shown[length] = '\0';
      RawLine().text(known ? "heapscope: bad value in option '" : "heapscope: unknown option '")
          .text(shown).text("' ignored").emit();
    }
    text = *end == ':' ? end + 1 : end;
  }
  clamp(options);
  return problems;
}

}  // namespace heapscope::preload
