// Collapsed stacks ("root;caller;callee value" per line) for flamegraph.pl, speedscope and
// other flame-graph viewers. One root frame per process ("program[pid]"), outermost frame first.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "report.h"

namespace heapscope::analyzer {

enum class CollapsedCost {
  kLeaked,     // bytes still live at exit
  kPeak,       // bytes live at the moment of the process's peak
  kAllocated,  // bytes allocated over the whole run
  kCount,      // number of allocation calls
};

std::optional<CollapsedCost> parse_collapsed_cost(const std::string& name);

// A frame as one token: its function, else its address and module. ';' separates frames and a
// line ends at a newline, so neither appears inside one.
std::string frame_label(const SymbolizedFrame& frame);

// Lines for every stack with a non-zero cost, largest first within each process.
std::string render_collapsed(const std::vector<TracedProcess>& traced, Symbolizer& symbolizer, CollapsedCost cost);

}  // namespace heapscope::analyzer
