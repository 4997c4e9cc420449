// Assembly of the report from process models (see report.h).
#include "report.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

constexpr size_t kTopSites = 10;

std::vector<SiteRecord> top_sites(const ProcessModel& model, const std::unordered_map<uint32_t, StackCosts>& costs,
                                  uint64_t StackCosts::*field, Symbolizer& symbolizer) {
  std::vector<std::pair<uint64_t, uint32_t>> ranked;
  for (const auto& [stack_id, cost] : costs)
    if (cost.*field > 0) ranked.emplace_back(cost.*field, stack_id);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (ranked.size() > kTopSites) ranked.resize(kTopSites);
  std::vector<SiteRecord> sites;
  for (const auto& [value, stack_id] : ranked) sites.push_back({value, symbolize_stack(model, stack_id, symbolizer)});
  return sites;
}

MappingsRecord mappings_of(const ProcessModel& model, Symbolizer& symbolizer) {
  MappingsRecord out;
  const MappingModel& mappings = model.mappings();
  const MappingCounters& counters = mappings.counters();
  out.mmap_calls = counters.maps;
  out.munmap_calls = counters.unmaps;
  out.mremap_calls = counters.remaps;
  out.peak_bytes = counters.peak_bytes;
  out.bytes_at_exit = counters.live_bytes;
  out.regions_at_exit = counters.live_regions;
  std::vector<std::pair<uint32_t, const MappingSite*>> ranked;
  for (const auto& [stack_id, site] : mappings.sites()) ranked.emplace_back(stack_id, &site);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    if (a.second->live_bytes != b.second->live_bytes) return a.second->live_bytes > b.second->live_bytes;
    if (a.second->bytes_mapped != b.second->bytes_mapped) return a.second->bytes_mapped > b.second->bytes_mapped;
    return a.first < b.first;
  });
  if (ranked.size() > kMappingSites) ranked.resize(kMappingSites);
  for (const auto& [stack_id, site] : ranked) {
    out.sites.push_back({mapping_kind_name(site->kind), site->calls, site->bytes_mapped, site->live_bytes,
                         site->live_regions, symbolize_stack(model, stack_id, symbolizer)});
  }
  return out;
}

Statistics statistics_of(const ProcessModel& model, Symbolizer& symbolizer) {
  Statistics statistics;
  const SizeHistogram& histogram = model.size_histogram();
  for (size_t bucket = 0; bucket < SizeHistogram::kBuckets; ++bucket) {
    if (histogram.count[bucket] == 0) continue;
    const uint64_t low = bucket == 0 ? 0 : uint64_t{1} << (bucket - 1);
    const uint64_t high = bucket == 0 ? 0 : bucket == 64 ? UINT64_MAX : (uint64_t{1} << bucket) - 1;
    statistics.size_histogram.emplace_back(low, high, histogram.count[bucket], histogram.bytes[bucket]);
  }
  const HeapCounters& counters = model.counters();
  statistics.temporary_allocations = counters.temporary;
  statistics.duration_seconds = static_cast<double>(counters.last_event_ns - counters.first_event_ns) / 1e9;
  // Timestamps are coarse (a few ms): below 10 ms a rate would be noise.
  if (statistics.duration_seconds >= 0.01)
    statistics.allocations_per_second = static_cast<double>(counters.allocations) / statistics.duration_seconds;
  const std::vector<Sample>& samples = model.samples();
  if (!samples.empty()) {
    statistics.latest = samples.back();
    statistics.rss_peak = *std::max_element(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) {
      return a.rss_bytes < b.rss_bytes;
    });
    const size_t step = (samples.size() + kTimelinePoints - 1) / kTimelinePoints;
    for (size_t i = 0; i < samples.size(); i += step) statistics.timeline.push_back(samples[i]);
    if ((samples.size() - 1) % step != 0) statistics.timeline.push_back(samples.back());
  }
  statistics.overhead_bytes = model.overhead_bytes();
  statistics.quarantine_bytes = model.quarantine_bytes();
  const auto costs = model.stack_costs();
  statistics.top_by_bytes = top_sites(model, costs, &StackCosts::allocated_bytes, symbolizer);
  statistics.top_by_count = top_sites(model, costs, &StackCosts::allocations, symbolizer);
  statistics.top_by_temporary = top_sites(model, costs, &StackCosts::temporary, symbolizer);
  return statistics;
}

LeakRecord leak_record(const ProcessModel& model, const LeakGroup& group, Symbolizer& symbolizer) {
  LeakRecord leak;
  leak.kind = leak_kind_name(group.kind);
  leak.blocks = group.blocks;
  leak.bytes = group.bytes;
  leak.allocator = family_name(static_cast<uint8_t>(group.family));
  leak.stack_id = group.stack_id;
  leak.stack = symbolize_stack(model, group.stack_id, symbolizer);
  return leak;
}

std::string scan_failure(format::ScanStatus status) {
  switch (status) {
    case format::ScanStatus::kDone: return "";
    case format::ScanStatus::kNoMemory: return "the leak scan could not map its work memory";
    case format::ScanStatus::kNoMemoryMap: return "the leak scan could not read /proc/self/maps";
    case format::ScanStatus::kDisabled: return "leak checking was turned off (--leak-check=no)";
    case format::ScanStatus::kAgentMemoryUnlisted:
      return "heapscope could not list all of its own memory (too many mappings), so the leak scan could not tell it "
             "from the program's";
  }
  return fmt::format("the leak scan failed (status {})", static_cast<uint32_t>(status));
}

LeakScanRecord scan_record(const LeakScanInfo& info) {
  LeakScanRecord record;
  record.ran = info.status == format::ScanStatus::kDone;
  record.not_classified_because = scan_failure(info.status);
  record.figures = info;
  if (record.ran && info.threads_unstopped > 0)
    record.not_covered = fmt::format(
        "{} of {} threads did not stop for the scan (the signal was blocked or they slept "
        "uninterruptibly): their registers were not read and their stacks were read whole",
        info.threads_unstopped, info.threads);
  return record;
}

// Why a process has no exit scan: how it ended decides.
std::string missing_scan_reason(const TracedProcess& traced) {
  if (traced.exit.signal)
    return fmt::format("the process was killed by signal {} before its exit scan could run", *traced.exit.signal);
  if (traced.incomplete) return "the agent stopped recording before the process ended";
  return "the process ended before its exit scan could run (_exit() from a signal handler that interrupted "
         "heapscope's agent, a raw exit system call, or its trace was cut)";
}

const char* detach_reason_name(uint32_t reason) {
  switch (static_cast<format::DetachReason>(reason)) {
    case format::DetachReason::kRequested: return "detach";
    case format::DetachReason::kCollectorGone: return "heapscope gone";
    case format::DetachReason::kProcessExit: return "process exit";
  }
  return "process ended";
}

AttachRecord attach_record(const TracedProcess& traced, const AttachSession& session, uint64_t end_ns,
                           const ReportOptions& options) {
  AttachRecord record;
  record.duration_seconds = end_ns > session.start_ns ? static_cast<double>(end_ns - session.start_ns) / 1e9 : 0;
  record.ended_by = detach_reason_name(session.reason);
  record.slots = session.slots;
  record.modules = session.modules;
  record.program_slots = session.program_slots;
  record.skipped = session.skipped;
  record.restored_slots = session.restored_slots;
  record.redirect_rounds = session.redirect_rounds;
  record.frees_of_older_blocks = traced.model.counters().unknown_frees;
  record.min_age_seconds = static_cast<double>(options.min_age_ns) / 1e9;
  return record;
}

ProcessReport build_process(const TracedProcess& traced, Symbolizer& symbolizer, const ReportOptions& options) {
  const ProcessModel& model = traced.model;
  ProcessReport report;
  report.pid = model.pid();
  report.modules = model.modules();
  report.parent_pid = model.parent_pid();
  report.command = model.argv();
  report.exe = model.exe();
  report.exit = traced.exit;
  report.launched = traced.launched;
  report.ended_by_exec = model.ended_by_exec();
  report.still_running = traced.still_running;
  report.complete = !traced.incomplete;
  report.ring_waits = traced.ring_waits;

  const HeapCounters& counters = model.counters();
  report.summary.allocations = counters.allocations;
  report.summary.frees = counters.frees;
  report.summary.bytes_allocated = counters.bytes_allocated;
  report.summary.peak_live_bytes = counters.peak_live_bytes;
  report.summary.live_blocks = model.live().size();
  report.summary.live_bytes = counters.live_bytes;
  report.summary.error_count = model.errors().size();
  report.statistics = statistics_of(model, symbolizer);
  report.mappings = mappings_of(model, symbolizer);
  report.phases = model.phases();
  report.threads = model.threads();
  report.first_event_ns = model.counters().first_event_ns;
  report.ignored_blocks = model.ignored_blocks();
  report.ignored_bytes = model.ignored_bytes();

  // When attached: the session's end is "now" for ages and growth.
  const std::optional<AttachSession>& session = model.attach_session();
  uint64_t session_end = 0;
  if (session) {
    session_end = session->end_ns != 0 ? session->end_ns : std::max(counters.last_event_ns, session->start_ns);
    report.attach = attach_record(traced, *session, session_end, options);
  }
  // exec releases the whole heap and a running process has not leaked yet, unless we attached
  // to it: then what it allocated meanwhile and kept is the point.
  if (!report.ended_by_exec && (!report.still_running || session)) {
    for (const LeakGroup& group : model.leak_groups(session ? options.min_age_ns : 0, session_end)) {
      LeakRecord leak = leak_record(model, group, symbolizer);
      if (session && group.blocks > 0) {
        leak.oldest_age_seconds = static_cast<double>(session_end - std::min(session_end, group.oldest_ns)) / 1e9;
        leak.youngest_age_seconds = static_cast<double>(session_end - std::min(session_end, group.youngest_ns)) / 1e9;
        const double window = report.attach->duration_seconds;
        leak.bytes_per_second = window > 0 ? static_cast<double>(group.bytes) / window : 0;
      }
      report.leaks.push_back(std::move(leak));
    }
    if (model.exit_scan()) {
      report.leak_scan = scan_record(*model.exit_scan());
    } else {
      report.leak_scan.not_classified_because = missing_scan_reason(traced);
    }
  } else {
    report.leak_scan.not_classified_because = report.ended_by_exec
        ? "the image ended by exec, which released its heap"
        : "the process was still running when heapscope stopped waiting for it";
  }
  for (const LeakCheck& check : model.leak_checks()) {
    LeakCheckRecord record;
    const uint64_t first = model.counters().first_event_ns;
    record.time_seconds = first != 0 && check.scan.time_ns > first
                              ? static_cast<double>(check.scan.time_ns - first) / 1e9 : 0;
    record.phase = check.phase;
    record.scan = scan_record(check.scan);
    for (const LeakGroup& group : check.new_leaks) record.leaks.push_back(leak_record(model, group, symbolizer));
    report.leak_checks.push_back(std::move(record));
  }
  for (const HeapError& error : model.errors()) {
    ErrorRecord record;
    record.kind = error_kind_name(error.kind);
    record.address = error.address;
    record.block_size = error.block_size;
    record.offset = error.bad_offset;
    record.allocator = family_name(error.alloc_family);
    record.release = api_name(error.free_api);
    record.detected_at_exit = error.detected_at_exit;
    if ((error.flags & format::kDetectedAtAccess) != 0)
      record.access = (error.flags & format::kAccessWasWrite) != 0 ? "write" : "read";
    record.thread_id = error.thread_id;
    record.stack = symbolize_stack(model, error.stack_id, symbolizer);
    if (error.alloc_stack_id != 0)
      record.alloc_stack = symbolize_stack(model, error.alloc_stack_id, symbolizer);
    if (error.free_stack_id != 0)
      record.free_stack = symbolize_stack(model, error.free_stack_id, symbolizer);
    report.errors.push_back(std::move(record));
  }
  return report;
}

}  // namespace

LeakKindSet LeakKindSet::parse(const std::string& list, const std::string& option) {
  LeakKindSet set;
  set.definite_ = set.indirect_ = set.possible_ = set.reachable_ = false;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string word = list.substr(start, end - start);
    if (word == "definite") set.definite_ = true;
    else if (word == "indirect") set.indirect_ = true;
    else if (word == "possible") set.possible_ = true;
    else if (word == "reachable") set.reachable_ = true;
    else if (word == "all") set.definite_ = set.indirect_ = set.possible_ = set.reachable_ = true;
    else if (word != "none")
      throw UsageError(fmt::format("{} takes definite, indirect, possible, reachable, all or none, not '{}'",
                                   option, word));
    start = end + 1;
  }
  return set;
}

bool LeakKindSet::contains(const std::string& kind) const {
  if (kind == "definite") return definite_;
  if (kind == "indirect") return indirect_;
  if (kind == "possible") return possible_;
  if (kind == "reachable") return reachable_;
  return true;
}

bool LeakKindSet::counts(const ProcessReport& process, const LeakRecord& leak) const {
  if (leak.kind == "unclassified") return !process.leak_scan.ran;
  return contains(leak.kind);
}

bool is_lost(const ProcessReport& process, const LeakRecord& leak) {
  if (leak.kind == "unclassified") return !process.leak_scan.ran;
  return leak.kind != "reachable";
}

FrameList symbolize_stack(const ProcessModel& model, uint32_t stack_id, Symbolizer& symbolizer) {
  FrameList frames;
  const Stack* stack = model.stack(stack_id);
  if (stack == nullptr) return frames;
  for (size_t i = 0; i < stack->frames.size(); ++i) {
    const int module_index = stack->modules[i];
    const Module* module = module_index >= 0 ? &model.modules()[static_cast<size_t>(module_index)] : nullptr;
    const auto& expanded = symbolizer.symbolize(module, stack->frames[i]);
    frames.insert(frames.end(), expanded.begin(), expanded.end());
  }
  return frames;
}


Report build_report(const std::vector<TracedProcess>& traced, Symbolizer& symbolizer, const ReportOptions& options) {
  Report report;
  std::vector<const TracedProcess*> order;
  for (const TracedProcess& process : traced) {
    const bool nothing_to_say = process.model.ended_by_exec() && process.model.errors().empty();
    if (!nothing_to_say) order.push_back(&process);
  }
  // The launched program's final image first; the rest in the order they started (the same
  // order whether the report comes from a live run or from trace files).
  std::stable_sort(order.begin(), order.end(), [](const TracedProcess* a, const TracedProcess* b) {
    if (a->launched != b->launched) return a->launched > b->launched;
    if (a->model.start_time_ns() != b->model.start_time_ns())
      return a->model.start_time_ns() < b->model.start_time_ns();
    return a->model.pid() < b->model.pid();
  });
  for (const TracedProcess* process : order) {
    report.processes.push_back(build_process(*process, symbolizer, options));
    report.processes.back().traced_index = static_cast<size_t>(process - traced.data());
  }
  return report;
}

const char* error_kind_name(format::ErrorKind kind) noexcept {
  switch (kind) {
    case format::ErrorKind::kOverflow: return "overflow";
    case format::ErrorKind::kUnderflow: return "underflow";
    case format::ErrorKind::kDoubleFree: return "double_free";
    case format::ErrorKind::kInvalidFree: return "invalid_free";
    case format::ErrorKind::kMismatchedFree: return "mismatched_free";
    case format::ErrorKind::kUseAfterFree: return "use_after_free";
  }
  return "unknown";
}

const char* leak_kind_name(uint8_t kind) noexcept {
  switch (static_cast<format::LeakKind>(kind)) {
    case format::LeakKind::kDefinite: return "definite";
    case format::LeakKind::kIndirect: return "indirect";
    case format::LeakKind::kPossible: return "possible";
    case format::LeakKind::kReachable: return "reachable";
  }
  return "unclassified";
}

LeakTotal& LeakTotals::of(const std::string& kind) {
  if (kind == "definite") return definite;
  if (kind == "indirect") return indirect;
  if (kind == "possible") return possible;
  if (kind == "reachable") return reachable;
  return unclassified;
}

LeakTotals leak_totals(const std::vector<LeakRecord>& leaks) {
  LeakTotals totals;
  for (const LeakRecord& leak : leaks) {
    LeakTotal& total = totals.of(leak.kind);
    total.blocks += leak.blocks;
    total.bytes += leak.bytes;
  }
  return totals;
}

const char* family_name(uint8_t family) noexcept {
  switch (static_cast<format::Family>(family)) {
    case format::Family::kMalloc: return "malloc";
    case format::Family::kNew: return "new";
    case format::Family::kNewArray: return "new[]";
  }
  return "";
}

const char* api_name(uint8_t api) noexcept {
  using format::Api;
  switch (static_cast<Api>(api)) {
    case Api::kMalloc: return "malloc";
    case Api::kCalloc: return "calloc";
    case Api::kRealloc: return "realloc";
    case Api::kReallocArray: return "reallocarray";
    case Api::kMemalign: return "memalign";
    case Api::kPosixMemalign: return "posix_memalign";
    case Api::kAlignedAlloc: return "aligned_alloc";
    case Api::kValloc: return "valloc";
    case Api::kPvalloc: return "pvalloc";
    case Api::kFree: return "free";
    case Api::kNew: return "new";
    case Api::kNewArray: return "new[]";
    case Api::kDelete: return "delete";
    case Api::kDeleteArray: return "delete[]";
  }
  return "";
}

}  // namespace heapscope::analyzer
