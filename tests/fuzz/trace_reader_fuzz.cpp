// libFuzzer target: any bytes given to `heapscope report` as a trace must end in a report or a
// FormatError/IoError -- never a crash, a hang, or undefined behaviour (built with ASan+UBSan).
// Exercises the trace header checks, zstd decoding, record validation, the heap model, and
// every rendering of what was read: the report, its text, its JSON and its HTML page.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"
#include "heap_model.h"
#include "report.h"
#include "report_html.h"
#include "report_json.h"
#include "report_text.h"
#include "symbolizer.h"
#include "trace_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace heapscope::analyzer;
  const int fd = memfd_create("trace", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t written = 0;
  while (written < size) {
    const ssize_t got = write(fd, data + written, size - written);
    if (got <= 0) break;
    written += static_cast<size_t>(got);
  }
  // One symbolizer for the whole run: modules it opened (the seeds name real files) stay open.
  static Symbolizer symbolizer;
  std::vector<TracedProcess> traced(1);
  traced[0].launched = true;
  try {
    read_trace("/proc/self/fd/" + std::to_string(fd),
               [&traced](const RecordView& record) { traced[0].model.apply(record); });
    (void)traced[0].model.leak_groups();
    const Report report = build_report(traced, symbolizer);
    (void)render_text(report);
    (void)json_text(to_json(report));
    (void)render_html(report, traced, symbolizer);
  } catch (const FormatError&) {
  } catch (const IoError&) {
  }
  close(fd);
  return 0;
}
