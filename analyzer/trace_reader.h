// Reads a trace file written by TraceWriter: checks the header, decompresses, validates every
// record (event_reader) and hands it on. Memory stays bounded: records stream through a small
// window, whatever the size of the trace.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "event_reader.h"

namespace heapscope::analyzer {

struct TraceSummary {
  uint64_t records = 0;
  std::optional<format::EndingEvent> ending;  // absent: the trace was cut short
  bool truncated = false;                     // the data stops inside a record
};

// Throws IoError (unreadable), FormatError (not a trace, a version we do not read, a corrupt
// stream or record), each with a message naming the file.
// `progress`, when given, is called about every 4 MiB of the file with the bytes of the file
// read so far and its size.
using TraceProgress = std::function<void(uint64_t file_bytes_read, uint64_t file_size)>;
TraceSummary read_trace(const std::string& path, const std::function<void(const RecordView&)>& deliver,
                        const TraceProgress& progress = {});

}  // namespace heapscope::analyzer
