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

}  // namespace

std::string frame_label(const SymbolizedFrame& frame) {
  std::string name;
  if (!frame.function.empty()) {
    name = frame.function;
  } else if (!frame.module.empty()) {  // a stripped library: module+offset, the same in every run
    name = fmt::format("{}+{:#x}", frame.module.substr(frame.module.rfind('/') + 1), frame.module_offset);
  } else {
    name = fmt::format("{:#x}", frame.address);
  }
  std::replace(name.begin(), name.end(), ';', ':');
  std::replace(name.begin(), name.end(), '\n', ' ');
  return name;
}

namespace {

std::string process_root(const ProcessModel& model) {
  std::string program = model.argv().empty() ? model.exe() : model.argv()[0];
  program = program.substr(program.rfind('/') + 1);
  return frame_label(SymbolizedFrame{0, fmt::format("{}[{}]", program, model.pid()), "", 0, "", false});
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
      const FrameList frames = symbolize_stack(model, stack_id, symbolizer);  // innermost first
      out += root;
      if (frames.empty()) out += ";[no stack]";
      for (auto frame = frames.rbegin(); frame != frames.rend(); ++frame) out += ";" + frame_label(*frame);
      out += fmt::format(" {}\n", value);
    }
  }
  return out;
}

}  // namespace heapscope::analyzer
