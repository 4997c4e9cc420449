// The human-readable report printed at the end of `heapscope run`: per process a short
// summary, then the heap errors, then the leaks grouped by allocation stack, largest first.
#pragma once
#include <string>

#include "report.h"

namespace heapscope::analyzer {

enum class Detail {
  kQuiet,    // per-process summaries and the totals only
  kNormal,   // plus errors and up to 50 leak records per process, with stacks
  kVerbose,  // plus every leak record
};

struct TextOptions {
  bool color = false;  // ANSI colors (decided by the caller: terminal, NO_COLOR, --color)
  Detail detail = Detail::kNormal;
  LeakKindSet show_kinds;  // leak records listed (--show-leak-kinds)
};

// Whether to color output written to `fd`: --color=always|never|auto (auto: a terminal, and no
// NO_COLOR in the environment, and TERM is not "dumb"). Throws UsageError on another value.
bool decide_color(const std::string& choice, int fd);

std::string render_text(const Report& report, const TextOptions& options = {});

}  // namespace heapscope::analyzer
