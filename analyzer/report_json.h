// The JSON report, schema "heapscope.report" version 1 (docs/report-json.md). Public contract:
// fields may be added, never renamed or dropped.
#pragma once
#include <nlohmann/json.hpp>

#include "report.h"

namespace heapscope::analyzer {

inline constexpr int kJsonSchemaVersion = 1;

nlohmann::json to_json(const Report& report);

}  // namespace heapscope::analyzer
