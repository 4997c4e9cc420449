// The agent's options, one field per row of include/heapscope/agent_options.inc.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

struct Options {
#define HEAPSCOPE_OPTION(type, name, default_value, help) type name = default_value;
#include "heapscope/agent_options.inc"
#undef HEAPSCOPE_OPTION
  // output_dir=DIR (HEAPSCOPE_OPTIONS only, not a `heapscope run` option: run has --output):
  // where an agent preloaded alone writes its trace, instead of each process's working
  // directory. Points into the environment string; a path may not contain ':'.
  const char* output_dir = nullptr;
  size_t output_dir_length = 0;
};

// Parses "key=value:key=value" into `options` without allocating. Unknown keys and bad values
// are reported through raw_log and skipped. Values are clamped to their documented ranges.
// Returns the number of problems found.
int parse_options(const char* text, Options& options) noexcept;

}  // namespace heapscope::preload
