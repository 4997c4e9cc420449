// The JSON report, schema "heapscope.report" version 1 (docs/report-json.md). Public contract:
// fields may be added, never renamed or dropped.
#pragma once
#include <nlohmann/json.hpp>

#include "report.h"

namespace heapscope::analyzer {

inline constexpr int kJsonSchemaVersion = 1;

nlohmann::json to_json(const Report& report);

// JSON text of `value`. Strings come from the program (argv, paths, symbols) and need not be
// UTF-8: each invalid byte is written as U+FFFD instead of failing the whole report.
inline std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace heapscope::analyzer
