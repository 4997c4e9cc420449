// The HTML report: one self-contained file (no network fetches) with, per process, summary
// cards, the heap over time, a flame graph (allocated, peak, leaked bytes or calls; zoom and
// search), leak and error tables with expandable stacks, the size histogram, top sites and the
// allocator's statistics. The page is static markup and script (report_html_page.cpp) plus one
// JSON payload built here, aggregated: its size follows distinct stacks, never events.
#pragma once
#include <string>
#include <vector>

#include "report.h"

namespace heapscope::analyzer {

// `traced` are the models the report was built from (ProcessReport::traced_index points into
// it), for the per-stack costs of the flame graph.
std::string render_html(const Report& report, const std::vector<TracedProcess>& traced, Symbolizer& symbolizer);

// The page around the payload: everything before it and everything after it.
extern const char* const kHtmlPageHead;
extern const char* const kHtmlPageTail;

}  // namespace heapscope::analyzer
