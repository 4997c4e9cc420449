// Rebuilds one traced process image from its records: who it is, its modules and stacks, the
// live heap with counts and peak, and the heap errors the agent detected. Memory is
// proportional to live blocks and distinct stacks, not to the number of events.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "address_map.h"
#include "event_reader.h"
#include "mapping_model.h"

namespace heapscope::analyzer {

struct Module {
  std::string path;
  uint64_t load_bias = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  std::string build_id;  // hex
  uint64_t loaded_ns = 0;                // when the agent announced it
  std::optional<uint64_t> unloaded_ns;   // dlclose'd (kModuleUnload)
};

struct Stack {
  std::vector<uint64_t> frames;   // return addresses, innermost first
  std::vector<int> modules;       // index into ProcessModel::modules() per frame, -1 if none
};

// What one allocation stack did over the run.
struct StackCosts {
  uint64_t allocations = 0;      // calls
  uint64_t allocated_bytes = 0;  // sum of sizes
  uint64_t live_bytes = 0;       // now (at exit: leaked)
  uint64_t peak_bytes = 0;       // live at the moment of the process's peak
  uint64_t temporary = 0;        // allocations freed before the thread allocated anything else
};

// Per-stack bookkeeping. Peak composition in one pass: a stack's value at the global peak is
// its live bytes if it has not changed since the peak, else the value saved when it first
// changed after it.
struct StackTally {
  StackCosts costs;
  uint64_t last_change = 0;    // event number
  uint64_t live_at_peak = 0;   // valid when last_change is after the peak
};

struct LiveBlock {
  uint64_t size = 0;
  uint32_t stack_id = 0;
  format::Family family = format::Family::kMalloc;
  format::Api api = format::Api::kMalloc;
  uint8_t leak_kind = 0;        // format::LeakKind from the exit scan; 0 = unclassified
  bool reported_by_check = false;  // an on-demand leak check listed it already
  StackTally* tally = nullptr;  // its stack's bookkeeping (a stable address): no lookup at free
  uint64_t time_ns = 0;         // when it was allocated (the age of a block still live at detach)
};

struct HeapError {
  format::ErrorKind kind{};
  uint64_t address = 0;
  uint64_t block_size = 0;
  int64_t bad_offset = 0;
  uint32_t stack_id = 0;
  uint32_t alloc_stack_id = 0;
  uint32_t free_stack_id = 0;
  uint8_t alloc_family = 0;
  uint8_t free_api = 0;
  bool detected_at_exit = false;
  uint16_t flags = 0;  // format::CorruptionFlags
  uint32_t thread_id = 0;
};

struct HeapCounters {
  uint64_t allocations = 0;     // successful allocation calls (realloc counts one)
  uint64_t frees = 0;           // releases (realloc counts one for the old block)
  uint64_t bytes_allocated = 0;
  uint64_t live_bytes = 0;
  uint64_t peak_live_bytes = 0;
  uint64_t unknown_frees = 0;   // frees of blocks this image never saw (inherited over fork)
  // Allocations freed before their thread made any other allocation: heaptrack's "temporary
  // allocations", the ones a stack buffer or a reused object would have avoided.
  uint64_t temporary = 0;
  uint64_t first_event_ns = 0;  // time of the first and last alloc/free
  uint64_t last_event_ns = 0;
};

// Requested sizes in power-of-two buckets: bucket 0 is size 0, bucket k holds [2^(k-1), 2^k).
struct SizeHistogram {
  static constexpr size_t kBuckets = 65;
  uint64_t count[kBuckets] = {};
  uint64_t bytes[kBuckets] = {};
  static size_t bucket_of(uint64_t size) noexcept { return size == 0 ? 0 : 64 - __builtin_clzll(size); }
};

// A phase named by the program (heapscope_mark_phase), with the heap as it began.
struct Phase {
  std::string label;
  uint64_t time_ns = 0;
  uint64_t live_bytes = 0;
  uint64_t allocations = 0;  // made before it began
};

// A thread the program started with pthread_create, and what it allocated.
struct ThreadLife {
  uint32_t thread_id = 0;
  uint32_t parent_thread_id = 0;
  uint64_t start_ns = 0;
  std::optional<uint64_t> end_ns;  // none: it was still running when the process ended
  uint64_t allocations = 0;
  uint64_t bytes_allocated = 0;
};

// One sample of the process over time, with the program's own live heap at that moment.
struct Sample {
  uint64_t time_ns = 0;
  uint64_t live_bytes = 0;
  uint64_t live_blocks = 0;
  uint64_t rss_bytes = 0;
  bool has_mallinfo = false;  // glibc's allocator: the fields below are its mallinfo2
  uint64_t arena = 0, ordblks = 0, hblks = 0, hblkhd = 0, uordblks = 0, fordblks = 0, keepcost = 0;
  // heapscope's own share of rss_bytes (format::AgentMemoryEvent; traces before format 11 and
  // rings that stopped between the two records have none).
  bool has_agent_share = false;
  uint64_t agent_tables = 0, agent_ring = 0, agent_image = 0, agent_quarantine = 0;
  uint64_t agent_headers = 0;  // headers and canaries of the live blocks, from block_layout.h
  uint64_t mapped_bytes = 0;   // the program's own mmap'd memory then (mapping_model.h)
  uint64_t agent_bytes() const noexcept {
    return agent_tables + agent_ring + agent_image + agent_quarantine + agent_headers;
  }
};

// Leaks at exit grouped by allocation stack and kind.
struct LeakGroup {
  uint32_t stack_id = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
  format::Family family = format::Family::kMalloc;
  uint8_t kind = 0;  // format::LeakKind; 0 = unclassified
  uint64_t oldest_ns = UINT64_MAX;  // allocation time of its oldest and youngest block
  uint64_t youngest_ns = 0;
};

// A session of `heapscope attach` as its agent recorded it (kRedirect, kDetach).
struct AttachSession {
  uint64_t start_ns = 0;       // the first redirection: recording began
  uint64_t end_ns = 0;         // the detach record (0: none came, the process ended first)
  uint32_t slots = 0;          // slots redirected, over all rounds
  uint32_t modules = 0;
  uint32_t program_slots = 0;
  uint32_t skipped = 0;
  uint32_t restored_slots = 0;
  uint32_t redirect_rounds = 0;  // 1 at attach, +1 per round for modules loaded later
  uint32_t reason = 0;           // format::DetachReason; 0 while none
};

// How a reachability scan went (format::LeakScanEndEvent).
struct LeakScanInfo {
  uint32_t scan_id = 0;
  uint64_t time_ns = 0;
  bool at_exit = false;
  bool stopped_by_signal = false;  // ptrace was not allowed
  format::ScanStatus status = format::ScanStatus::kDone;
  uint32_t threads = 0;
  uint32_t threads_unstopped = 0;
  uint64_t blocks = 0;
  uint64_t root_bytes = 0;
  uint64_t heap_bytes = 0;
  uint64_t duration_ns = 0;
};

// One heapscope_leak_check() call: the blocks it found lost that no earlier check had listed.
struct LeakCheck {
  LeakScanInfo scan;
  std::string phase;                // the phase the program was in, if it named one
  std::vector<LeakGroup> new_leaks;  // largest first
};

class ProcessModel {
 public:
  void apply(const RecordView& record);

  int pid() const noexcept { return pid_; }
  int parent_pid() const noexcept { return parent_pid_; }
  uint64_t start_time_ns() const noexcept { return start_time_ns_; }  // of the process record
  const std::vector<std::string>& argv() const noexcept { return argv_; }
  const std::string& exe() const noexcept { return exe_; }
  std::optional<int> exit_status() const noexcept { return exit_status_; }
  std::optional<int> fatal_signal() const noexcept { return fatal_signal_; }
  // True when the image ended by a successful exec (its heap was released by the kernel).
  bool ended_by_exec() const noexcept { return exec_pending_; }
  // The program the image exec'd into (from its last exec record).
  const std::string& exec_path() const noexcept { return exec_path_; }
  // Programs vfork children of this image exec'd: (child pid, path).
  const std::vector<std::pair<int, std::string>>& child_execs() const noexcept { return child_execs_; }

  // The peak is settled when each record is applied, except right after a realloc's new block
  // (its old block's release follows, or came just before): a model read at that point lacks it.
  const HeapCounters& counters() const noexcept { return counters_; }
  const SizeHistogram& size_histogram() const noexcept { return histogram_; }
  const AddressMap<LiveBlock>& live() const noexcept { return live_; }
  const std::vector<Module>& modules() const noexcept { return modules_; }
  const Stack* stack(uint32_t id) const noexcept;
  const std::vector<HeapError>& errors() const noexcept { return errors_; }
  const std::vector<Phase>& phases() const noexcept { return phases_; }
  const std::vector<Sample>& samples() const noexcept { return samples_; }
  // The memory the program mapped itself (mmap), by call site.
  const MappingModel& mappings() const noexcept { return mappings_; }
  // Threads started with pthread_create, in start order (a reused tid starts a new entry).
  const std::vector<ThreadLife>& threads() const noexcept { return threads_; }
  // heapscope's own cost at the end, from the agent: headers and canaries of live blocks, and
  // bytes held in the quarantine.
  uint64_t overhead_bytes() const noexcept { return overhead_bytes_; }
  uint64_t quarantine_bytes() const noexcept { return quarantine_bytes_; }
  // Live blocks the program declared intentional (heapscope_ignore_object): not leaks.
  uint64_t ignored_blocks() const noexcept { return ignored_.size(); }
  uint64_t ignored_bytes() const noexcept;

  // Live blocks grouped by allocation stack and kind, largest total first. With `min_age_ns`,
  // blocks younger than that at `now_ns` are left out (attach --min-age).
  std::vector<LeakGroup> leak_groups(uint64_t min_age_ns = 0, uint64_t now_ns = 0) const;
  // Set when the ring came from `heapscope attach`.
  const std::optional<AttachSession>& attach_session() const noexcept { return attach_; }
  // The exit scan, when one ran (its status says whether it classified).
  const std::optional<LeakScanInfo>& exit_scan() const noexcept { return exit_scan_; }
  const std::vector<LeakCheck>& leak_checks() const noexcept { return leak_checks_; }
  // Costs per allocation stack (identical stacks merged), for flame graphs.
  std::unordered_map<uint32_t, StackCosts> stack_costs() const;

 private:
  void on_process(const RecordView& record);
  void on_module(const RecordView& record);
  void on_stack(const RecordView& record);
  void on_alloc(const format::AllocEvent& event);
  void on_free(const format::FreeEvent& event);
  void on_corruption(const format::CorruptionEvent& event);
  void on_leak_kinds(const RecordView& record);
  void on_leak_scan_end(const format::LeakScanEndEvent& event);
  int module_of(uint64_t address) const noexcept;
  uint32_t canonical(uint32_t stack_id) const noexcept;
  StackTally& touch(uint32_t stack_id);
  StackTally& touch(StackTally& tally);

  int pid_ = 0;
  int parent_pid_ = 0;
  uint64_t start_time_ns_ = 0;
  std::vector<std::string> argv_;
  std::string exe_;
  std::optional<int> exit_status_;
  std::optional<int> fatal_signal_;
  bool exec_pending_ = false;
  std::string exec_path_;
  std::vector<std::pair<int, std::string>> child_execs_;
  HeapCounters counters_;
  AddressMap<LiveBlock> live_;
  std::vector<Module> modules_;
  std::unordered_map<uint32_t, Stack> stacks_;
  // The agent may, rarely, name one stack with two ids (see preload/stacks/stack_depot.h); leaks are
  // grouped by the first id seen for identical frames.
  std::unordered_map<uint64_t, std::vector<uint32_t>> ids_by_hash_;
  std::unordered_map<uint32_t, uint32_t> alias_;
  std::unordered_map<uint32_t, StackTally> tallies_;
  SizeHistogram histogram_;
  // Per thread: the address of its latest allocation, if nothing else happened on it since
  // (else kNoAllocation). Node-based, so the last one looked up is kept by pointer.
  static constexpr uint64_t kNoAllocation = UINT64_MAX;
  std::unordered_map<uint32_t, uint64_t> last_alloc_by_thread_;
  uint64_t& last_alloc_of(uint32_t thread_id);
  uint32_t cached_thread_id_ = 0;
  uint64_t* cached_last_alloc_ = nullptr;
  uint32_t cached_stack_id_ = 0;
  StackTally* cached_tally_ = nullptr;
  void note_time(uint64_t time_ns) noexcept;
  void check_peak() noexcept;
  bool realloc_pending_ = false;        // a realloc's new block came; the old one's release is next
  uint32_t realloc_pending_thread_ = 0;
  uint64_t event_number_ = 0;
  uint64_t peak_event_ = 0;
  std::vector<HeapError> errors_;
  std::vector<Phase> phases_;
  std::vector<Sample> samples_;
  uint64_t overhead_bytes_ = 0;
  uint64_t quarantine_bytes_ = 0;
  // Bytes the headers and canaries of the live blocks take (include/heapscope/block_layout.h),
  // kept as blocks come and go for each RSS sample's share of heapscope. Blocks aligned past
  // the header's 32 bytes have a wider front: kept aside (rare) so their release subtracts it.
  uint64_t header_bytes_ = 0;
  MappingModel mappings_;
  std::unordered_map<uint64_t, uint64_t> wide_fronts_;
  void add_header_bytes(uint64_t address, uint64_t size, uint32_t alignment);
  void remove_header_bytes(uint64_t address, uint64_t size);
  std::unordered_set<uint64_t> ignored_;  // addresses of live blocks
  // Verdicts of the scan in progress, applied when its end record arrives (a block whose alloc
  // record was still in flight when the scan ran is named before it appears).
  std::unordered_map<uint64_t, uint8_t> scan_kinds_;
  std::optional<LeakScanInfo> exit_scan_;
  std::vector<ThreadLife> threads_;
  std::unordered_map<uint32_t, size_t> running_thread_;  // tid -> index in threads_
  uint32_t last_thread_id_ = 0;        // the last tid looked up (0: none)
  size_t last_thread_index_ = SIZE_MAX;  // its index in threads_, SIZE_MAX if not running
  ThreadLife* running_thread(uint32_t thread_id);
  std::vector<LeakCheck> leak_checks_;
  std::optional<AttachSession> attach_;
};

}  // namespace heapscope::analyzer
