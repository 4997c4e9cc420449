// Collapsed-stack output (see report_collapsed.h).
#include "report_collapsed.h"

#include <algorithm>

#include <fmt/format.h>

namespace heapscope::analyzer {
namespace {

uint64_t cost_of(const StackCosts& costs, CollapsedCost cost) {
  switch (cost) {
    case CollapsedCost::kLeaked: return costs.live_bytes;
    case CollapsedCost::kPeak: return costs.peak_bytes;
    case CollapsedCost::kAllocated: return costs.allocated_bytes;
    case CollapsedCost::kCount: return costs.allocations;
  }
  return 0;
}

// A frame as one token: ';' separates frames and a line ends at a newline, so neither may
// appear inside one.
std::string frame_name(const SymbolizedFrame& frame) {
  std::string name;
  if (!frame.function.empty()) {
    name = frame.function;
  } else if (!frame.module.empty()) {
    name = fmt::format("{:#x} ({})", frame.address, frame.module.substr(frame.module.rfind('/') + 1));
  } else {
    name = fmt::format("{:#x}", frame.address);
  }
  std::replace(name.begin(), name.end(), ';', ':');
  std::replace(name.begin(), name.end(), '\n', ' ');
  return name;
}

std::string process_root(const ProcessModel& model) {
  std::string program = model.argv().empty() ? model.exe() : model.argv()[0];
  program = program.substr(program.rfind('/') + 1);
  return frame_name(SymbolizedFrame{0, fmt::format("{}[{}]", program, model.pid()), "", 0, "", false});
}

}  // namespace

std::optional<CollapsedCost> parse_collapsed_cost(const std::string& name) {
  if (name == "leaked") return CollapsedCost::kLeaked;
  if (name == "peak") return CollapsedCost::kPeak;
  if (name == "allocated") return CollapsedCost::kAllocated;
  if (name == "count") return CollapsedCost::kCount;
  return std::nullopt;
}

std::string render_collapsed(const std::vector<TracedProcess>& traced, Symbolizer& symbolizer, CollapsedCost cost) {
  std::string out;
  for (const TracedProcess& process : traced) {
    const ProcessModel& model = process.model;
    if (model.ended_by_exec() && cost == CollapsedCost::kLeaked) continue;  // exec released it
    std::vector<std::pair<uint64_t, uint32_t>> stacks;  // (value, stack id)
    for (const auto& [stack_id, costs] : model.stack_costs())
      if (const uint64_t value = cost_of(costs, cost); value > 0) stacks.emplace_back(value, stack_id);
    std::sort(stacks.begin(), stacks.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    const std::string root = process_root(model);
    for (const auto& [value, stack_id] : stacks) {
      std::vector<std::string> names;  // innermost first
      if (const Stack* stack = model.stack(stack_id)) {
        for (size_t i = 0; i < stack->frames.size(); ++i) {
          const int module = stack->modules[i];
          const Module* where = module >= 0 ? &model.modules()[static_cast<size_t>(module)] : nullptr;
          for (const SymbolizedFrame& frame : symbolizer.symbolize(where, stack->frames[i]))
            names.push_back(frame_name(frame));
        }
      } else {
        names.push_back("[no stack]");
      }
      out += root;
      for (auto name = names.rbegin(); name != names.rend(); ++name) out += ";" + *name;
      out += fmt::format(" {}\n", value);
    }
  }
  return out;
}

}  // namespace heapscope::analyzer
