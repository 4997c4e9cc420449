// libFuzzer target: any bytes given to `heapscope report` as a trace must end in a report or a
// FormatError/IoError -- never a crash, a hang, or undefined behaviour (built with ASan+UBSan).
// Exercises the trace header checks, zstd decoding, record validation, and the heap model.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "errors.h"
#include "heap_model.h"
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
  ProcessModel model;
  try {
    read_trace("/proc/self/fd/" + std::to_string(fd), [&model](const RecordView& record) { model.apply(record); });
    (void)model.leak_groups();
  } catch (const FormatError&) {
  } catch (const IoError&) {
  }
  close(fd);
  return 0;
}
