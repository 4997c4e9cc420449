// JSON rendering of the report (see report_json.h and docs/report-json.md).
#include "report_json.h"

#include <fmt/format.h>

namespace heapscope::analyzer {
namespace {

using nlohmann::json;

std::string hex(uint64_t value) { return fmt::format("{:#x}", value); }

json frame_json(const SymbolizedFrame& frame) {
  json out = {{"address", hex(frame.address)},
              {"function", frame.function.empty() ? json(nullptr) : json(frame.function)},
              {"file", frame.file.empty() ? json(nullptr) : json(frame.file)},
              {"line", frame.line > 0 ? json(frame.line) : json(nullptr)},
              {"module", frame.module.empty() ? json(nullptr) : json(frame.module)},
              {"module_offset", frame.module.empty() ? json(nullptr) : json(hex(frame.module_offset))}};
  if (frame.inlined) out["inlined"] = true;
  return out;
}

json stack_json(const FrameList& frames) {
  json out = json::array();
  for (const SymbolizedFrame& frame : frames) out.push_back(frame_json(frame));
  return out;
}

json optional_stack(const std::optional<FrameList>& frames) {
  return frames.has_value() ? stack_json(*frames) : json(nullptr);
}

json exit_json(const ExitInfo& exit) {
  return {{"code", exit.code.has_value() ? json(*exit.code) : json(nullptr)},
          {"signal", exit.signal.has_value() ? json(*exit.signal) : json(nullptr)}};
}

json sites_json(const std::vector<SiteRecord>& sites, const char* value_name) {
  json out = json::array();
  for (const SiteRecord& site : sites) out.push_back({{value_name, site.value}, {"stack", stack_json(site.stack)}});
  return out;
}

json mallinfo_json(const Sample& sample) {
  if (!sample.has_mallinfo) return nullptr;
  return {{"arena", sample.arena},       {"ordblks", sample.ordblks},   {"hblks", sample.hblks},
          {"hblkhd", sample.hblkhd},     {"uordblks", sample.uordblks}, {"fordblks", sample.fordblks},
          {"keepcost", sample.keepcost}};
}

// heapscope's share of the RSS at a sample, by part, and the RSS then (null for traces that did
// not measure it).
json agent_share_json(const Sample* sample, uint64_t first_event_ns) {
  if (sample == nullptr || !sample->has_agent_share) return nullptr;
  const uint64_t since = first_event_ns != 0 && sample->time_ns > first_event_ns ? sample->time_ns - first_event_ns : 0;
  return {{"rss_bytes", sample->rss_bytes},
          {"time_seconds", static_cast<double>(since) / 1e9},
          {"total", sample->agent_bytes()},
          {"tables", sample->agent_tables},
          {"ring", sample->agent_ring},
          {"image", sample->agent_image},
          {"quarantine", sample->agent_quarantine},
          {"headers_and_canaries", sample->agent_headers}};
}

json statistics_json(const Statistics& statistics, uint64_t first_event_ns) {
  json timeline = json::array();
  for (const Sample& sample : statistics.timeline) {
    const uint64_t since = first_event_ns != 0 && sample.time_ns > first_event_ns ? sample.time_ns - first_event_ns : 0;
    timeline.push_back({{"time_seconds", static_cast<double>(since) / 1e9},
                        {"live_bytes", sample.live_bytes},
                        {"live_blocks", sample.live_blocks},
                        {"rss_bytes", sample.rss_bytes},
                        {"allocator_bytes", sample.has_mallinfo ? json(sample.arena + sample.hblkhd) : json(nullptr)},
                        {"agent_bytes", sample.has_agent_share ? json(sample.agent_bytes()) : json(nullptr)},
                        {"mapped_bytes", sample.mapped_bytes}});
  }
  json histogram = json::array();
  for (const auto& [low, high, count, bytes] : statistics.size_histogram)
    histogram.push_back({{"min", low}, {"max", high}, {"count", count}, {"bytes", bytes}});
  return {{"timeline", std::move(timeline)},
          {"allocator", statistics.latest ? mallinfo_json(*statistics.latest) : json(nullptr)},
          {"rss_bytes", statistics.latest ? json(statistics.latest->rss_bytes) : json(nullptr)},
          {"agent_rss", agent_share_json(statistics.rss_peak ? &*statistics.rss_peak : nullptr, first_event_ns)},
          {"overhead", {{"headers_and_canaries", statistics.overhead_bytes}, {"quarantine", statistics.quarantine_bytes}}},
          {"size_histogram", std::move(histogram)},
          {"temporary_allocations", statistics.temporary_allocations},
          {"duration_seconds", statistics.duration_seconds},
          {"allocations_per_second", statistics.allocations_per_second},
          {"top_sites", {{"by_bytes", sites_json(statistics.top_by_bytes, "bytes")},
                         {"by_count", sites_json(statistics.top_by_count, "allocations")},
                         {"by_temporary", sites_json(statistics.top_by_temporary, "temporary")}}}};
}

json mappings_json(const MappingsRecord& mappings) {
  json sites = json::array();
  for (const MappingSiteRecord& site : mappings.sites) {
    sites.push_back({{"kind", site.kind},
                     {"calls", site.calls},
                     {"bytes_mapped", site.bytes_mapped},
                     {"at_exit", {{"regions", site.regions_at_exit}, {"bytes", site.bytes_at_exit}}},
                     {"stack", stack_json(site.stack)}});
  }
  return {{"calls", {{"mmap", mappings.mmap_calls}, {"munmap", mappings.munmap_calls}, {"mremap", mappings.mremap_calls}}},
          {"peak_bytes", mappings.peak_bytes},
          {"at_exit", {{"regions", mappings.regions_at_exit}, {"bytes", mappings.bytes_at_exit}}},
          {"sites", std::move(sites)}};
}

json phases_json(const ProcessReport& process) {
  json out = json::array();
  for (const Phase& phase : process.phases) {
    const uint64_t since = phase.time_ns > process.first_event_ns && process.first_event_ns != 0
                               ? phase.time_ns - process.first_event_ns : 0;
    out.push_back({{"label", phase.label}, {"time_seconds", static_cast<double>(since) / 1e9},
                   {"live_bytes", phase.live_bytes}, {"allocations", phase.allocations}});
  }
  return out;
}

// Threads in start order, with times like the phases': seconds after the first allocation.
json threads_json(const ProcessReport& process) {
  json out = json::array();
  auto since = [&](uint64_t time_ns) {
    return static_cast<double>(time_ns > process.first_event_ns && process.first_event_ns != 0
                                   ? time_ns - process.first_event_ns : 0) / 1e9;
  };
  for (const ThreadLife& thread : process.threads) {
    out.push_back({{"thread_id", thread.thread_id},
                   {"parent_thread_id", thread.parent_thread_id},
                   {"start_seconds", since(thread.start_ns)},
                   {"end_seconds", thread.end_ns ? json(since(*thread.end_ns)) : json(nullptr)},
                   {"allocations", thread.allocations},
                   {"bytes_allocated", thread.bytes_allocated}});
  }
  return out;
}

json leaks_json(const std::vector<LeakRecord>& records) {
  json leaks = json::array();
  for (const LeakRecord& leak : records) {
    json record = {{"kind", leak.kind}, {"blocks", leak.blocks}, {"bytes", leak.bytes},
                   {"allocator", leak.allocator}, {"stack", stack_json(leak.stack)}};
    // Attach only: ages at detach and growth over the session.
    if (leak.oldest_age_seconds && leak.youngest_age_seconds) {
      record["age_seconds"] = {{"oldest", *leak.oldest_age_seconds}, {"youngest", *leak.youngest_age_seconds}};
    }
    if (leak.bytes_per_second) record["bytes_per_second"] = *leak.bytes_per_second;
    leaks.push_back(std::move(record));
  }
  return leaks;
}

json leak_totals_json(const std::vector<LeakRecord>& records) {
  LeakTotals totals = leak_totals(records);
  json out = json::object();
  for (const char* kind : {"definite", "indirect", "possible", "reachable", "unclassified"}) {
    const LeakTotal& total = totals.of(kind);
    out[kind] = {{"blocks", total.blocks}, {"bytes", total.bytes}};
  }
  return out;
}

json scan_json(const LeakScanRecord& scan) {
  const LeakScanInfo& figures = scan.figures;
  return {{"classified", scan.ran},
          {"reason", scan.ran ? json(nullptr) : json(scan.not_classified_because)},
          {"not_covered", scan.not_covered.empty() ? json(nullptr) : json(scan.not_covered)},
          {"stop_method", scan.ran ? json(figures.stopped_by_signal ? "signal" : "ptrace") : json(nullptr)},
          {"threads", figures.threads},
          {"threads_not_stopped", figures.threads_unstopped},
          {"blocks", figures.blocks},
          {"root_bytes", figures.root_bytes},
          {"heap_bytes", figures.heap_bytes},
          {"duration_seconds", static_cast<double>(figures.duration_ns) / 1e9}};
}

json leak_checks_json(const ProcessReport& process) {
  json out = json::array();
  for (const LeakCheckRecord& check : process.leak_checks) {
    out.push_back({{"time_seconds", check.time_seconds},
                   {"phase", check.phase.empty() ? json(nullptr) : json(check.phase)},
                   {"scan", scan_json(check.scan)},
                   {"new_leaks", leak_totals_json(check.leaks)},
                   {"leaks", leaks_json(check.leaks)}});
  }
  return out;
}

json attach_json(const std::optional<AttachRecord>& attach) {
  if (!attach) return nullptr;
  return {{"duration_seconds", attach->duration_seconds},
          {"ended_by", attach->ended_by},
          {"redirected_slots", attach->slots},
          {"redirected_modules", attach->modules},
          {"program_slots", attach->program_slots},
          {"skipped_slots", attach->skipped},
          {"restored_slots", attach->restored_slots},
          {"redirect_rounds", attach->redirect_rounds},
          {"frees_of_older_blocks", attach->frees_of_older_blocks},
          {"min_age_seconds", attach->min_age_seconds}};
}

json process_json(const ProcessReport& process) {
  const ProcessSummary& s = process.summary;
  json leaks = leaks_json(process.leaks);
  json errors = json::array();
  for (const ErrorRecord& error : process.errors) {
    errors.push_back({{"kind", error.kind},
                      {"address", hex(error.address)},
                      {"block_size", error.block_size},
                      {"offset", error.offset},
                      {"allocator", error.allocator.empty() ? json(nullptr) : json(error.allocator)},
                      {"release", error.release.empty() ? json(nullptr) : json(error.release)},
                      {"detected_at_exit", error.detected_at_exit},
                      {"access", error.access.empty() ? json(nullptr) : json(error.access)},
                      {"thread_id", error.thread_id},
                      {"stack", stack_json(error.stack)},
                      {"alloc_stack", optional_stack(error.alloc_stack)},
                      {"free_stack", optional_stack(error.free_stack)}});
  }
  json modules = json::array();
  for (const Module& module : process.modules) {
    auto since = [&](uint64_t time_ns) {
      return static_cast<double>(time_ns > process.first_event_ns && process.first_event_ns != 0
                                     ? time_ns - process.first_event_ns : 0) / 1e9;
    };
    modules.push_back({{"path", module.path}, {"start", hex(module.start)}, {"end", hex(module.end)},
                       {"load_bias", hex(module.load_bias)},
                       {"build_id", module.build_id.empty() ? json(nullptr) : json(module.build_id)},
                       {"loaded_seconds", since(module.loaded_ns)},
                       {"unloaded_seconds", module.unloaded_ns ? json(since(*module.unloaded_ns)) : json(nullptr)}});
  }
  return {{"pid", process.pid},
          {"parent_pid", process.parent_pid},
          {"command", process.command},
          {"exe", process.exe},
          {"launched", process.launched},
          {"exit", exit_json(process.exit)},
          {"ended_by_exec", process.ended_by_exec},
          {"still_running", process.still_running},
          {"attach", attach_json(process.attach)},
          {"complete", process.complete},
          {"ring_waits", process.ring_waits},
          {"summary",
           {{"allocations", s.allocations},
            {"frees", s.frees},
            {"bytes_allocated", s.bytes_allocated},
            {"peak_live_bytes", s.peak_live_bytes},
            {"live_at_exit", {{"blocks", s.live_blocks}, {"bytes", s.live_bytes}}},
            {"error_count", s.error_count},
            {"leaks", leak_totals_json(process.leaks)}}},
          {"leak_scan", scan_json(process.leak_scan)},
          {"leak_checks", leak_checks_json(process)},
          {"suppressed", {{"blocks", process.suppressed_blocks}, {"bytes", process.suppressed_bytes}}},
          {"statistics", statistics_json(process.statistics, process.first_event_ns)},
          {"ignored", {{"blocks", process.ignored_blocks}, {"bytes", process.ignored_bytes}}},
          {"phases", phases_json(process)},
          {"threads", threads_json(process)},
          {"leaks", std::move(leaks)},
          {"errors", std::move(errors)},
          {"mappings", mappings_json(process.mappings)},
          {"modules", std::move(modules)}};
}

}  // namespace

nlohmann::json to_json(const Report& report) {
  json processes = json::array();
  for (const ProcessReport& process : report.processes) processes.push_back(process_json(process));
  json suppressions = json::array();
  for (const SuppressionUse& use : report.suppressions) {
    suppressions.push_back({{"pattern", use.pattern}, {"origin", use.origin}, {"hits", use.hits},
                            {"blocks", use.blocks}, {"bytes", use.bytes}});
  }
  json untraced = json::array();
  for (const UntracedProcess& process : report.untraced)
    untraced.push_back({{"pid", process.pid}, {"exe", process.exe}, {"reason", process.reason}});
  return {{"schema", "heapscope.report"},
          {"schema_version", kJsonSchemaVersion},
          {"processes", std::move(processes)},
          {"untraced_processes", std::move(untraced)},
          {"suppressions", std::move(suppressions)}};
}

}  // namespace heapscope::analyzer
