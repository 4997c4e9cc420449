// The report, as data: per traced process its identity, exit, counters, leaks grouped by
// allocation stack and heap errors, all stacks symbolized. Built once from ProcessModels, then
// rendered by report_json.cpp (the public contract) and report_text.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "heap_model.h"
#include "symbolizer.h"

namespace heapscope::analyzer {

struct ExitInfo {
  std::optional<int> code;    // exit status, when the process exited
  std::optional<int> signal;  // terminating signal, when it was killed
};

// One traced process image as the collector saw it.
struct TracedProcess {
  ProcessModel model;
  ExitInfo exit;
  bool launched = false;       // the process `heapscope run` started
  bool still_running = false;  // had not ended when heapscope stopped waiting
  bool incomplete = false;     // the agent stopped recording before the end
  uint64_t ring_waits = 0;
};

using FrameList = std::vector<SymbolizedFrame>;

struct LeakRecord {
  std::string kind = "unclassified";
  uint64_t blocks = 0;
  uint64_t bytes = 0;
  std::string allocator;  // "malloc", "new" or "new[]"
  uint32_t stack_id = 0;
  FrameList stack;
  // Attach only: the ages of its oldest and youngest block when the session ended, and what
  // the site gained per second of the session (its bytes over the session's length).
  std::optional<double> oldest_age_seconds;
  std::optional<double> youngest_age_seconds;
  std::optional<double> bytes_per_second;
};

// Blocks and bytes of one leak kind.
struct LeakTotal {
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

// Totals per kind over a list of leak records.
struct LeakTotals {
  LeakTotal definite, indirect, possible, reachable, unclassified;
  LeakTotal& of(const std::string& kind);
};
LeakTotals leak_totals(const std::vector<LeakRecord>& leaks);

// How the reachability scan of a process went, for the report.
struct LeakScanRecord {
  bool ran = false;              // a scan classified the blocks live at exit
  std::string not_classified_because;  // when !ran: why every leak is "unclassified"
  std::string not_covered;       // when ran: what the scan could not see ("" = everything)
  LeakScanInfo figures;          // the scan's own record (zero when none ran)
};

// One heapscope_leak_check() call with the lost blocks it listed first.
struct LeakCheckRecord {
  double time_seconds = 0;       // since the process's first event
  std::string phase;
  LeakScanRecord scan;
  std::vector<LeakRecord> leaks;
};

struct ErrorRecord {
  std::string kind;                  // overflow, underflow, double_free, ...
  uint64_t address = 0;
  uint64_t block_size = 0;
  int64_t offset = 0;                // first damaged byte relative to address
  std::string allocator;             // family of the allocation, "" when not ours
  std::string release;               // the call that released or tried to ("free", "delete"...)
  bool detected_at_exit = false;
  // --guard-pages: "read" or "write" when the access itself faulted (stack is the access's);
  // "" when a check found the damage later.
  std::string access;
  uint32_t thread_id = 0;
  FrameList stack;                   // where it was detected (empty when at exit)
  std::optional<FrameList> alloc_stack;
  std::optional<FrameList> free_stack;
};

struct ProcessSummary {
  uint64_t allocations = 0;
  uint64_t frees = 0;
  uint64_t bytes_allocated = 0;
  uint64_t peak_live_bytes = 0;
  uint64_t live_blocks = 0;
  uint64_t live_bytes = 0;
  uint64_t error_count = 0;
};

// A site (allocation stack) ranked by one of its costs.
struct SiteRecord {
  uint64_t value = 0;
  FrameList stack;
};

struct Statistics {
  std::vector<Sample> timeline;  // at most kTimelinePoints, evenly picked from the samples
  std::optional<Sample> latest;  // the last sample (at exit when the agent ended cleanly)
  std::optional<Sample> rss_peak;  // the sample with the highest RSS (heapscope's share at it)
  uint64_t overhead_bytes = 0;   // heapscope's headers and canaries of live blocks, at the end
  uint64_t quarantine_bytes = 0; // freed bytes heapscope still held, at the end
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> size_histogram;  // min, max, count, bytes
  uint64_t temporary_allocations = 0;
  double duration_seconds = 0;
  double allocations_per_second = 0;
  std::vector<SiteRecord> top_by_bytes;      // bytes allocated
  std::vector<SiteRecord> top_by_count;      // allocation calls
  std::vector<SiteRecord> top_by_temporary;  // temporary allocations
};

inline constexpr size_t kTimelinePoints = 500;

// The memory the program mapped itself with mmap, by call site (mapping_model.h).
struct MappingSiteRecord {
  std::string kind;  // mapping_kind_name
  uint64_t calls = 0;
  uint64_t bytes_mapped = 0;
  uint64_t bytes_at_exit = 0;
  uint64_t regions_at_exit = 0;
  FrameList stack;
};

struct MappingsRecord {
  uint64_t mmap_calls = 0, munmap_calls = 0, mremap_calls = 0;
  uint64_t peak_bytes = 0;
  uint64_t bytes_at_exit = 0;    // at the end of the trace (at exit, for a process that exited)
  uint64_t regions_at_exit = 0;
  std::vector<MappingSiteRecord> sites;  // most still mapped first, then most mapped; at most kMappingSites
};
inline constexpr size_t kMappingSites = 50;

// A `heapscope attach` session, for the report.
struct AttachRecord {
  double duration_seconds = 0;      // from the first redirection to the detach (or the last event)
  std::string ended_by;             // "detach", "heapscope gone", "process exit", "process ended"
  uint32_t slots = 0;               // allocation slots redirected
  uint32_t modules = 0;             // in this many modules
  uint32_t program_slots = 0;       // of the slots, in the main program
  uint32_t skipped = 0;             // bound to another allocator or namespace: left alone
  uint32_t restored_slots = 0;      // put back at detach
  uint32_t redirect_rounds = 0;     // 1 + rounds for modules loaded while attached
  uint64_t frees_of_older_blocks = 0;  // blocks from before the attach released while attached
  double min_age_seconds = 0;       // --min-age: younger blocks are not in the leak records
};

struct ProcessReport {
  int pid = 0;
  size_t traced_index = 0;  // the TracedProcess it was built from
  Statistics statistics;
  std::vector<Module> modules;  // every ELF object the process loaded, in load order
  int parent_pid = 0;
  std::vector<std::string> command;
  std::string exe;
  ExitInfo exit;
  bool launched = false;
  bool ended_by_exec = false;
  bool still_running = false;
  bool complete = true;  // the agent recorded to the end
  uint64_t ring_waits = 0;  // times the program waited for heapscope to drain its ring
  ProcessSummary summary;
  std::vector<Phase> phases;       // named by the program, times relative to its first event
  std::vector<ThreadLife> threads; // started with pthread_create, in start order
  uint64_t first_event_ns = 0;
  uint64_t ignored_blocks = 0;     // declared intentional with heapscope_ignore_object
  uint64_t ignored_bytes = 0;
  uint64_t suppressed_blocks = 0;  // leak records hidden by suppressions
  uint64_t suppressed_bytes = 0;
  std::vector<LeakRecord> leaks;
  LeakScanRecord leak_scan;
  std::vector<LeakCheckRecord> leak_checks;
  std::vector<ErrorRecord> errors;
  MappingsRecord mappings;
  std::optional<AttachRecord> attach;  // the process was attached to, not started
};

struct SuppressionUse {
  std::string pattern;
  std::string origin;
  uint64_t hits = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

// A process heapscope could not trace (the agent never started in it), and why.
struct UntracedProcess {
  int pid = 0;
  std::string exe;
  std::string reason;
};

struct Report {
  std::vector<ProcessReport> processes;
  std::vector<UntracedProcess> untraced;  // the launched program, or an image a traced one exec'd
  std::vector<SuppressionUse> suppressions;  // every suppression given, with what it hid
};

// A set of leak kinds, as --show-leak-kinds and --errors-for-leak-kinds take it: a comma list
// of definite, indirect, possible, reachable, or all / none. "unclassified" (no scan could
// run) is always in: nothing is known to excuse those blocks.
class LeakKindSet {
 public:
  LeakKindSet() = default;
  // Throws UsageError naming `option` on a word it does not know.
  static LeakKindSet parse(const std::string& list, const std::string& option);
  bool contains(const std::string& kind) const;
  // Whether `leak` counts in `process`: its kind is in the set. Unclassified records count
  // only where no scan ran; after a scan they are blocks allocated once it was over (threads
  // still running at exit), which no scan saw lost.
  bool counts(const ProcessReport& process, const LeakRecord& leak) const;

 private:
  bool definite_ = true, indirect_ = false, possible_ = true, reachable_ = false;
};
// Lost blocks: definite, indirect, possible, and unclassified ones where no scan ran. What
// "leaked" means in totals.
bool is_lost(const ProcessReport& process, const LeakRecord& leak);

struct ReportOptions {
  uint64_t min_age_ns = 0;  // attach --min-age: blocks younger than this at detach are not suspects
};

// Builds the report; the launched process comes first. Images that ended by exec with nothing
// to report are left out (their heap was released by exec).
Report build_report(const std::vector<TracedProcess>& traced, Symbolizer& symbolizer,
                    const ReportOptions& options = {});

// A stack's frames, innermost first, inlined calls expanded (empty if the id is unknown).
FrameList symbolize_stack(const ProcessModel& model, uint32_t stack_id, Symbolizer& symbolizer);

const char* error_kind_name(format::ErrorKind kind) noexcept;
const char* leak_kind_name(uint8_t kind) noexcept;  // format::LeakKind; 0: "unclassified"
const char* family_name(uint8_t family) noexcept;
const char* api_name(uint8_t api) noexcept;

}  // namespace heapscope::analyzer
