// The agent's options, one field per row of include/heapscope/agent_options.inc.
#pragma once
#include <cstdint>

namespace heapscope::preload {

struct Options {
#define HEAPSCOPE_OPTION(type, name, default_value, help) type name = default_value;
#include "heapscope/agent_options.inc"
#undef HEAPSCOPE_OPTION
};

// Parses "key=value:key=value" into `options` without allocating. Unknown keys and bad values
// are reported through raw_log and skipped. Values are clamped to their documented ranges.
// Returns the number of problems found.
int parse_options(const char* text, Options& options) noexcept;

}  // namespace heapscope::preload
