// The HTML report's payload and assembly (see report_html.h).
#include "report_html.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "report_collapsed.h"
#include "report_json.h"

namespace heapscope::analyzer {
namespace {

using nlohmann::json;

// Tables list the largest records; the rest are counted (the JSON report has them all).
constexpr size_t kMaxRecords = 500;

// The flame graph's call tree, outermost frame at the root's children. Each node carries the
// inclusive costs of every stack through it: allocated bytes, bytes live at the peak, bytes
// live at exit, allocation calls.
struct FlameNode {
  explicit FlameNode(std::string label) : name(std::move(label)) {}

  std::string name;
  uint64_t costs[4] = {0, 0, 0, 0};
  std::map<std::string, size_t> index;  // child name -> position in children
  std::vector<FlameNode> children;

  FlameNode& child(const std::string& label) {
    const auto [found, inserted] = index.emplace(label, children.size());
    if (inserted) children.emplace_back(label);
    return children[found->second];
  }
  void add(const StackCosts& stack) {
    costs[0] += stack.allocated_bytes;
    costs[1] += stack.peak_bytes;
    costs[2] += stack.live_bytes;
    costs[3] += stack.allocations;
  }
  // [name, [allocated, peak, leaked, calls], [children, largest allocated first]]
  json to_json() const {
    std::vector<const FlameNode*> order;
    for (const FlameNode& node : children) order.push_back(&node);
    std::sort(order.begin(), order.end(), [](const FlameNode* a, const FlameNode* b) {
      return a->costs[0] != b->costs[0] ? a->costs[0] > b->costs[0] : a->name < b->name;
    });
    json kids = json::array();
    for (const FlameNode* node : order) kids.push_back(node->to_json());
    return json::array({name, json::array({costs[0], costs[1], costs[2], costs[3]}), std::move(kids)});
  }
};

json flame_of(const ProcessModel& model, Symbolizer& symbolizer) {
  FlameNode root("all");
  for (const auto& [stack_id, costs] : model.stack_costs()) {
    if (costs.allocations == 0) continue;
    root.add(costs);
    FlameNode* node = &root;
    const FrameList frames = symbolize_stack(model, stack_id, symbolizer);
    if (frames.empty()) node = &node->child("[no stack]");
    for (auto frame = frames.rbegin(); frame != frames.rend(); ++frame) {
      node = &node->child(frame_label(*frame));
      node->add(costs);
    }
    if (frames.empty()) node->add(costs);
  }
  return root.to_json();
}

// Keeps the first kMaxRecords entries of an array field, noting how many were left out.
void cap(json& object, const char* field) {
  json& records = object[field];
  if (!records.is_array() || records.size() <= kMaxRecords) return;
  object[std::string(field) + "_not_shown"] = records.size() - kMaxRecords;
  records.erase(records.begin() + static_cast<std::ptrdiff_t>(kMaxRecords), records.end());
}

// The payload sits in a <script> element. "</script>" inside a string would close it, and
// "<!--<script>" would put the parser in a state where the real "</script>" no longer closes it
// (the page renders blank), so every <, > and & is written as a JSON escape; so are U+2028 and
// U+2029, which end a line in older JavaScript. Outside strings JSON has none of them.
std::string script_safe(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else if (c == '\xe2' && i + 2 < text.size() && text[i + 1] == '\x80' && (text[i + 2] == '\xa8' || text[i + 2] == '\xa9')) {
      out += text[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string render_html(const Report& report, const std::vector<TracedProcess>& traced, Symbolizer& symbolizer) {
  json payload = to_json(report);
  json& processes = payload["processes"];
  for (size_t i = 0; i < report.processes.size(); ++i) {
    json& process = processes[i];
    cap(process, "leaks");
    cap(process, "errors");
    for (json& check : process["leak_checks"]) cap(check, "leaks");
    process.erase("modules");  // not shown; the JSON report has them
    process["flame"] = flame_of(traced[report.processes[i].traced_index].model, symbolizer);
  }
  std::string page = kHtmlPageHead;
  page += script_safe(json_text(payload));
  page += kHtmlPageTail;
  return page;
}

}  // namespace heapscope::analyzer
