// The human-readable report printed at the end of `heapscope run`: per process a short
// summary, then the heap errors, then the leaks grouped by allocation stack, largest first.
#pragma once
#include <string>

#include "report.h"

namespace heapscope::analyzer {

struct TextOptions {
  size_t max_leak_records = 50;  // per process; the rest are summarized in one line
};

std::string render_text(const Report& report, const TextOptions& options = {});

}  // namespace heapscope::analyzer
