// `heapscope diff BASE.json NEW.json`: what got worse between two JSON reports. Leak sites are
// matched by program name and the function names of their stack (addresses change from run to
// run); peaks and heap errors are compared per program.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace heapscope::analyzer {

struct DiffOptions {
  double peak_tolerance_percent = 10.0;  // peak growth allowed before it is a regression
};

struct DiffFinding {
  std::string kind;     // "new_leak", "grown_leak", "peak_growth", "new_errors", "fixed_leak", "shrunk_leak"
  std::string program;
  std::string site;     // leak site: functions, innermost first, joined by " < "
  int64_t base = 0;     // bytes (or count for errors)
  int64_t current = 0;
  bool regression = false;
};

struct DiffResult {
  std::vector<DiffFinding> findings;
  bool regressed() const noexcept;
};

// Throws FormatError when either document is not a heapscope report of a known version.
DiffResult diff_reports(const nlohmann::json& base, const nlohmann::json& current, const DiffOptions& options);

std::string render_diff_text(const DiffResult& diff);
nlohmann::json diff_to_json(const DiffResult& diff);

}  // namespace heapscope::analyzer
