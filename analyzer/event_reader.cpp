// Record validation for the event format (see event_reader.h).
#include "event_reader.h"

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

using format::EventKind;

size_t fixed_size(EventKind kind) {
  switch (kind) {
    case EventKind::kPadding: return 8;
    case EventKind::kProcess: return sizeof(format::ProcessEvent);
    case EventKind::kModule: return sizeof(format::ModuleEvent);
    case EventKind::kStack: return sizeof(format::StackEvent);
    case EventKind::kAlloc: return sizeof(format::AllocEvent);
    case EventKind::kFree: return sizeof(format::FreeEvent);
    case EventKind::kCorruption: return sizeof(format::CorruptionEvent);
    case EventKind::kExit: return sizeof(format::ExitEvent);
    case EventKind::kExec: return sizeof(format::ExecEvent);
    case EventKind::kExecFailed: return sizeof(format::EventHeader);
    case EventKind::kAgentEnd: return sizeof(format::AgentEndEvent);
    case EventKind::kFatalSignal: return sizeof(format::FatalSignalEvent);
    case EventKind::kEnding: return sizeof(format::EndingEvent);
    case EventKind::kPhase: return sizeof(format::PhaseEvent);
    case EventKind::kIgnore: return sizeof(format::IgnoreEvent);
    case EventKind::kSample: return sizeof(format::SampleEvent);
    case EventKind::kLeakKinds: return sizeof(format::LeakKindsEvent);
    case EventKind::kLeakScanEnd: return sizeof(format::LeakScanEndEvent);
    case EventKind::kThreadStart:
    case EventKind::kThreadExit: return sizeof(format::ThreadEvent);
    case EventKind::kModuleUnload: return sizeof(format::ModuleUnloadEvent);
    case EventKind::kPacked: return sizeof(format::PackedEvent);
    case EventKind::kRedirect: return sizeof(format::RedirectEvent);
    case EventKind::kDetach: return sizeof(format::DetachEvent);
    case EventKind::kAgentMemory: return sizeof(format::AgentMemoryEvent);
    case EventKind::kMap: return sizeof(format::MapEvent);
    case EventKind::kUnmap: return sizeof(format::UnmapEvent);
  }
  return 0;
}

// Bytes of variable payload the record announces after its fixed part.
uint64_t announced_payload(const RecordView& record) {
  switch (record.kind) {
    case EventKind::kProcess: {
      const auto& r = record.as<format::ProcessEvent>();
      return uint64_t{r.argv_bytes} + r.exe_bytes;
    }
    case EventKind::kModule: return record.as<format::ModuleEvent>().path_bytes;
    case EventKind::kStack: {
      const auto& r = record.as<format::StackEvent>();
      if (r.frame_count > format::kMaxFrames)
        throw FormatError(fmt::format("stack record with {} frames (limit {})", r.frame_count,
                                      format::kMaxFrames));
      return uint64_t{r.frame_count} * 8;
    }
    case EventKind::kExec: return record.as<format::ExecEvent>().path_bytes;
    case EventKind::kLeakKinds:
      return uint64_t{record.as<format::LeakKindsEvent>().count} * sizeof(format::LeakKindEntry);
    case EventKind::kPacked: return record.as<format::PackedEvent>().bytes;
    default: return 0;
  }
}

}  // namespace

const char* kind_name(format::EventKind kind) noexcept {
  switch (kind) {
    case EventKind::kPadding: return "padding";
    case EventKind::kProcess: return "process";
    case EventKind::kModule: return "module";
    case EventKind::kStack: return "stack";
    case EventKind::kAlloc: return "alloc";
    case EventKind::kFree: return "free";
    case EventKind::kCorruption: return "corruption";
    case EventKind::kExit: return "exit";
    case EventKind::kExec: return "exec";
    case EventKind::kExecFailed: return "exec-failed";
    case EventKind::kAgentEnd: return "agent-end";
    case EventKind::kFatalSignal: return "fatal-signal";
    case EventKind::kEnding: return "ending";
    case EventKind::kPhase: return "phase";
    case EventKind::kIgnore: return "ignore";
    case EventKind::kSample: return "sample";
    case EventKind::kLeakKinds: return "leak-kinds";
    case EventKind::kLeakScanEnd: return "leak-scan-end";
    case EventKind::kThreadStart: return "thread-start";
    case EventKind::kThreadExit: return "thread-exit";
    case EventKind::kModuleUnload: return "module-unload";
    case EventKind::kPacked: return "packed";
    case EventKind::kRedirect: return "redirect";
    case EventKind::kDetach: return "detach";
    case EventKind::kAgentMemory: return "agent_memory";
    case EventKind::kMap: return "map";
    case EventKind::kUnmap: return "unmap";
  }
  return "unknown";
}

RecordView decode_record(uint16_t kind_value, std::span<const std::byte> bytes) {
  const auto kind = static_cast<EventKind>(kind_value);
  const size_t fixed = fixed_size(kind);
  if (fixed == 0) throw FormatError(fmt::format("unknown record kind {}", kind_value));
  if (bytes.size() < fixed || bytes.size() % 8 != 0)
    throw FormatError(fmt::format("{} record of {} bytes (needs at least {}, a multiple of 8)",
                                  kind_name(kind), bytes.size(), fixed));
  RecordView record{kind, bytes};
  if (kind == EventKind::kPadding) return record;
  if (fixed + announced_payload(record) > bytes.size())
    throw FormatError(fmt::format("{} record of {} bytes announces {} bytes of payload",
                                  kind_name(kind), bytes.size(), announced_payload(record)));
  return record;
}

std::string_view payload_text(std::span<const std::byte> payload, size_t offset, size_t length) {
  if (offset > payload.size() || length > payload.size() - offset) return {};
  return {reinterpret_cast<const char*>(payload.data()) + offset, length};
}

}  // namespace heapscope::analyzer
