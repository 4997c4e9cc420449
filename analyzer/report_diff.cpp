// Report comparison (see report_diff.h).
#include "report_diff.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

using nlohmann::json;

struct ProgramFigures {
  std::map<std::string, int64_t> leak_bytes;  // by site
  int64_t peak = 0;
  int64_t errors = 0;
};

std::string program_of(const json& process) {
  std::string program = process.value("command", json::array()).empty()
                            ? process.value("exe", std::string("?"))
                            : process["command"][0].get<std::string>();
  return program.substr(program.rfind('/') + 1);
}

// Function names, innermost first; unknown frames by module file name.
std::string site_of(const json& leak) {
  std::string site;
  for (const json& frame : leak.value("stack", json::array())) {
    std::string name;
    if (frame["function"].is_string()) {
      name = frame["function"];
    } else if (frame["module"].is_string()) {
      const std::string module = frame["module"];
      name = "?@" + module.substr(module.rfind('/') + 1);
    } else {
      name = "?";
    }
    site += (site.empty() ? "" : " < ") + name;
  }
  return site.empty() ? "[no stack]" : site;
}

std::map<std::string, ProgramFigures> figures_of(const json& report, const char* which) {
  if (!report.is_object() || report.value("schema", "") != "heapscope.report")
    throw FormatError(fmt::format("{} is not a heapscope JSON report", which));
  if (report.value("schema_version", 0) != 1)
    throw FormatError(fmt::format("{} has schema_version {}; this heapscope reads version 1", which,
                                  report.value("schema_version", 0)));
  std::map<std::string, ProgramFigures> programs;
  for (const json& process : report.value("processes", json::array())) {
    ProgramFigures& figures = programs[program_of(process)];
    figures.peak = std::max<int64_t>(figures.peak, process["summary"].value("peak_live_bytes", int64_t{0}));
    figures.errors += static_cast<int64_t>(process.value("errors", json::array()).size());
    // Blocks still reachable at exit are not leaks (and unclassified ones might be).
    for (const json& leak : process.value("leaks", json::array()))
      if (leak.value("kind", "") != "reachable") figures.leak_bytes[site_of(leak)] += leak.value("bytes", int64_t{0});
  }
  return programs;
}

}  // namespace

bool DiffResult::regressed() const noexcept {
  return std::any_of(findings.begin(), findings.end(), [](const DiffFinding& f) { return f.regression; });
}

DiffResult diff_reports(const json& base, const json& current, const DiffOptions& options) {
  const auto before = figures_of(base, "the base report");
  const auto after = figures_of(current, "the new report");
  DiffResult diff;
  static const ProgramFigures kNothing;
  for (const auto& [program, now] : after) {
    const auto found = before.find(program);
    const ProgramFigures& then = found == before.end() ? kNothing : found->second;
    for (const auto& [site, bytes] : now.leak_bytes) {
      const auto old = then.leak_bytes.find(site);
      if (old == then.leak_bytes.end()) {
        diff.findings.push_back({"new_leak", program, site, 0, bytes, true});
      } else if (bytes > old->second) {
        diff.findings.push_back({"grown_leak", program, site, old->second, bytes, true});
      } else if (bytes < old->second) {
        diff.findings.push_back({"shrunk_leak", program, site, old->second, bytes, false});
      }
    }
    for (const auto& [site, bytes] : then.leak_bytes)
      if (!now.leak_bytes.contains(site)) diff.findings.push_back({"fixed_leak", program, site, bytes, 0, false});
    if (now.errors > then.errors) diff.findings.push_back({"new_errors", program, "", then.errors, now.errors, true});
    const double allowed = static_cast<double>(then.peak) * (1.0 + options.peak_tolerance_percent / 100.0);
    if (found != before.end() && static_cast<double>(now.peak) > allowed)
      diff.findings.push_back({"peak_growth", program, "", then.peak, now.peak, true});
  }
  std::stable_sort(diff.findings.begin(), diff.findings.end(),
                   [](const DiffFinding& a, const DiffFinding& b) { return a.regression > b.regression; });
  return diff;
}

std::string render_diff_text(const DiffResult& diff) {
  if (diff.findings.empty()) return "== heapscope diff: no change in leaks, errors or peaks\n";
  std::string out;
  for (const DiffFinding& f : diff.findings) {
    const char* mark = f.regression ? "REGRESSION" : "improved";
    if (f.kind == "new_errors") {
      out += fmt::format("{}: {}: heap errors {} -> {}\n", mark, f.program, f.base, f.current);
    } else if (f.kind == "peak_growth") {
      out += fmt::format("{}: {}: peak {} -> {} bytes (+{:.1f}%)\n", mark, f.program, f.base, f.current,
                         f.base > 0 ? 100.0 * static_cast<double>(f.current - f.base) / static_cast<double>(f.base) : 100.0);
    } else {
      out += fmt::format("{}: {}: {} leak {} -> {} bytes at {}\n", mark, f.program, f.kind.substr(0, f.kind.find('_')),
                         f.base, f.current, f.site);
    }
  }
  out += fmt::format("== heapscope diff: {}\n", diff.regressed() ? "regressions found" : "no regression");
  return out;
}

json diff_to_json(const DiffResult& diff) {
  json findings = json::array();
  for (const DiffFinding& f : diff.findings) {
    findings.push_back({{"kind", f.kind}, {"program", f.program}, {"site", f.site.empty() ? json(nullptr) : json(f.site)},
                        {"base", f.base}, {"current", f.current}, {"regression", f.regression}});
  }
  return {{"schema", "heapscope.diff"}, {"schema_version", 1}, {"regressed", diff.regressed()},
          {"findings", std::move(findings)}};
}

}  // namespace heapscope::analyzer
