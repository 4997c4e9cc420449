// Per-process reconstruction from records (see heap_model.h).
#include "heap_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "heapscope/block_layout.h"

namespace heapscope::analyzer {

using format::EventKind;

void ProcessModel::apply(const RecordView& record) {
  if (realloc_pending_ && record.kind != EventKind::kAlloc && record.kind != EventKind::kFree) check_peak();
  switch (record.kind) {
    case EventKind::kProcess: return on_process(record);
    case EventKind::kModule: return on_module(record);
    case EventKind::kStack: return on_stack(record);
    case EventKind::kAlloc: return on_alloc(record.as<format::AllocEvent>());
    case EventKind::kFree: return on_free(record.as<format::FreeEvent>());
    case EventKind::kCorruption: return on_corruption(record.as<format::CorruptionEvent>());
    case EventKind::kExit: exit_status_ = record.as<format::ExitEvent>().status; return;
    case EventKind::kExec: {
      const auto& event = record.as<format::ExecEvent>();
      std::string path(payload_text(record.payload<format::ExecEvent>(), 0, event.path_bytes));
      if (event.vfork_child_pid != 0) {
        child_execs_.emplace_back(static_cast<int>(event.vfork_child_pid), std::move(path));
        return;
      }
      exec_pending_ = true;
      exec_path_ = std::move(path);
      return;
    }
    case EventKind::kExecFailed: exec_pending_ = false; return;
    case EventKind::kAgentEnd: {
      const auto& event = record.as<format::AgentEndEvent>();
      overhead_bytes_ = event.overhead_bytes;
      quarantine_bytes_ = event.quarantine_bytes;
      return;
    }
    case EventKind::kSample: {
      const auto& event = record.as<format::SampleEvent>();
      Sample sample{event.header.time_ns, counters_.live_bytes, live_.size(), event.rss_bytes,
                    (event.header.flags & format::kSampleHasMallinfo) != 0};
      sample.arena = event.arena;
      sample.ordblks = event.ordblks;
      sample.hblks = event.hblks;
      sample.hblkhd = event.hblkhd;
      sample.uordblks = event.uordblks;
      sample.fordblks = event.fordblks;
      sample.keepcost = event.keepcost;
      sample.mapped_bytes = mappings_.counters().live_bytes;
      samples_.push_back(sample);
      return;
    }
    case EventKind::kMap: mappings_.map(record.as<format::MapEvent>()); return;
    case EventKind::kUnmap: {
      const auto& event = record.as<format::UnmapEvent>();
      mappings_.unmap(event.address, event.length, (event.header.flags & format::kUnmapByRemap) != 0);
      return;
    }
    case EventKind::kAgentMemory: {
      // Written right after its kSample, by the same thread: it completes the last sample.
      if (samples_.empty()) return;
      const auto& event = record.as<format::AgentMemoryEvent>();
      Sample& sample = samples_.back();
      sample.has_agent_share = true;
      sample.agent_tables = event.table_bytes;
      sample.agent_ring = event.ring_bytes;
      sample.agent_image = event.image_bytes;
      sample.agent_quarantine = event.quarantine_bytes;
      sample.agent_headers = (event.header.flags & format::kAgentMemoryBlockHeaders) != 0 ? header_bytes_ : 0;
      return;
    }
    case EventKind::kFatalSignal: fatal_signal_ = record.as<format::FatalSignalEvent>().signal; return;
    case EventKind::kPhase: {
      const auto& event = record.as<format::PhaseEvent>();
      const size_t length = strnlen(event.label, sizeof(event.label));
      phases_.push_back({std::string(event.label, length), event.header.time_ns, counters_.live_bytes,
                         counters_.allocations});
      return;
    }
    case EventKind::kIgnore: {
      const uint64_t address = record.as<format::IgnoreEvent>().address;
      if (live_.contains(address)) ignored_.insert(address);
      return;
    }
    case EventKind::kLeakKinds: return on_leak_kinds(record);
    case EventKind::kModuleUnload: {
      const auto& event = record.as<format::ModuleUnloadEvent>();
      for (size_t i = modules_.size(); i-- > 0;) {  // the latest module in that range
        Module& module = modules_[i];
        if (module.start == event.start && module.end == event.end && module.load_bias == event.load_bias) {
          if (!module.unloaded_ns) module.unloaded_ns = event.header.time_ns;
          break;
        }
      }
      return;
    }
    case EventKind::kRedirect: {
      const auto& event = record.as<format::RedirectEvent>();
      if (!attach_) {
        attach_.emplace();
        attach_->start_ns = event.header.time_ns;
      }
      attach_->slots += event.slots;
      attach_->modules += event.modules;
      attach_->program_slots += event.program_slots;
      attach_->skipped += event.skipped;
      ++attach_->redirect_rounds;
      return;
    }
    case EventKind::kDetach: {
      const auto& event = record.as<format::DetachEvent>();
      if (!attach_) attach_.emplace();
      attach_->end_ns = event.header.time_ns;
      attach_->restored_slots = event.restored_slots;
      attach_->reason = event.reason;
      return;
    }
    case EventKind::kThreadStart: {
      const auto& event = record.as<format::ThreadEvent>();
      running_thread_[event.thread_id] = threads_.size();
      ThreadLife thread;
      thread.thread_id = event.thread_id;
      thread.parent_thread_id = event.parent_thread_id;
      thread.start_ns = event.header.time_ns;
      threads_.push_back(thread);
      last_thread_id_ = 0;  // forget the cached lookup
      return;
    }
    case EventKind::kThreadExit: {
      const auto& event = record.as<format::ThreadEvent>();
      const auto running = running_thread_.find(event.thread_id);
      if (running == running_thread_.end()) return;
      threads_[running->second].end_ns = event.header.time_ns;
      running_thread_.erase(running);
      last_thread_id_ = 0;
      return;
    }
    case EventKind::kLeakScanEnd: return on_leak_scan_end(record.as<format::LeakScanEndEvent>());
    case EventKind::kPadding:
    case EventKind::kEnding:  // the collector's, handled by the trace reader
    case EventKind::kPacked:  // unpacked by the trace reader into alloc and free records
      return;
  }
}

void ProcessModel::on_process(const RecordView& record) {
  const auto& event = record.as<format::ProcessEvent>();
  pid_ = event.pid;
  parent_pid_ = event.parent_pid;
  start_time_ns_ = event.header.time_ns;
  const auto payload = record.payload<format::ProcessEvent>();
  const std::string_view args = payload_text(payload, 0, event.argv_bytes);
  argv_.clear();
  size_t start = 0;
  while (start < args.size()) {
    size_t end = args.find('\0', start);
    if (end == std::string_view::npos) end = args.size();
    argv_.emplace_back(args.substr(start, end - start));
    start = end + 1;
  }
  exe_ = std::string(payload_text(payload, event.argv_bytes, event.exe_bytes));
}

void ProcessModel::on_module(const RecordView& record) {
  const auto& event = record.as<format::ModuleEvent>();
  Module module;
  module.path = std::string(payload_text(record.payload<format::ModuleEvent>(), 0, event.path_bytes));
  module.load_bias = event.load_bias;
  module.start = event.start;
  module.end = event.end;
  const uint32_t id_bytes = std::min<uint32_t>(event.build_id_bytes, sizeof(event.build_id));
  for (uint32_t i = 0; i < id_bytes; ++i) module.build_id += fmt::format("{:02x}", event.build_id[i]);
  module.loaded_ns = event.header.time_ns;
  modules_.push_back(std::move(module));
}

int ProcessModel::module_of(uint64_t address) const noexcept {
  // Latest first: a range reused after dlclose/dlopen belongs to the newest module.
  for (size_t i = modules_.size(); i-- > 0;)
    if (address >= modules_[i].start && address < modules_[i].end) return static_cast<int>(i);
  return -1;
}

void ProcessModel::on_stack(const RecordView& record) {
  const auto& event = record.as<format::StackEvent>();
  Stack stack;
  stack.frames.resize(event.frame_count);
  // An empty stack has no storage to copy into (memcpy to nullptr is undefined even for 0
  // bytes; found by tests/fuzz).
  if (event.frame_count > 0)
    memcpy(stack.frames.data(), record.payload<format::StackEvent>().data(), event.frame_count * 8);
  stack.modules.reserve(stack.frames.size());
  for (uint64_t frame : stack.frames) stack.modules.push_back(module_of(frame));
  uint64_t hash = stack.frames.size();
  for (uint64_t frame : stack.frames) hash = (hash ^ frame) * 0x100000001b3ull;
  std::vector<uint32_t>& same_hash = ids_by_hash_[hash];
  for (uint32_t other : same_hash) {
    const Stack& existing = stacks_[other];
    if (existing.frames == stack.frames && existing.modules == stack.modules) {
      alias_[event.stack_id] = other;
      break;
    }
  }
  same_hash.push_back(event.stack_id);
  stacks_[event.stack_id] = std::move(stack);
  cached_tally_ = nullptr;  // a redefined id may now be an alias
}

StackTally& ProcessModel::touch(uint32_t stack_id) {
  // Allocations come in runs from one site; tallies_ is node-based, so the pointer stays valid.
  if (stack_id != cached_stack_id_ || cached_tally_ == nullptr) {
    cached_stack_id_ = stack_id;
    cached_tally_ = &tallies_[canonical(stack_id)];
  }
  return touch(*cached_tally_);
}

uint64_t& ProcessModel::last_alloc_of(uint32_t thread_id) {
  if (thread_id != cached_thread_id_ || cached_last_alloc_ == nullptr) {
    cached_thread_id_ = thread_id;
    cached_last_alloc_ = &last_alloc_by_thread_.try_emplace(thread_id, kNoAllocation).first->second;
  }
  return *cached_last_alloc_;
}

StackTally& ProcessModel::touch(StackTally& tally) {
  if (tally.last_change <= peak_event_) tally.live_at_peak = tally.costs.live_bytes;
  tally.last_change = ++event_number_;
  return tally;
}

void ProcessModel::note_time(uint64_t time_ns) noexcept {
  if (counters_.first_event_ns == 0) counters_.first_event_ns = time_ns;
  counters_.last_event_ns = std::max(counters_.last_event_ns, time_ns);
}

void ProcessModel::on_alloc(const format::AllocEvent& event) {
  if (realloc_pending_) check_peak();
  ++counters_.allocations;
  counters_.bytes_allocated += event.size;
  note_time(event.header.time_ns);
  const size_t bucket = SizeHistogram::bucket_of(event.size);
  ++histogram_.count[bucket];
  histogram_.bytes[bucket] += event.size;
  last_alloc_of(event.thread_id) = event.address;
  if (ThreadLife* thread = running_thread(event.thread_id)) {
    ++thread->allocations;
    thread->bytes_allocated += event.size;
  }
  bool fresh = false;
  LiveBlock& block = live_.try_emplace(event.address, fresh);
  if (!ignored_.empty()) ignored_.erase(event.address);  // a new block where an ignored one was
  if (!fresh) {  // a free we never saw; keep sums sane
    counters_.live_bytes -= block.size;
    touch(*block.tally).costs.live_bytes -= block.size;
    remove_header_bytes(event.address, block.size);
  }
  add_header_bytes(event.address, event.size, event.alignment);
  StackTally& tally = touch(event.stack_id);  // tallies_ is node-based: the address stays valid
  block = LiveBlock{};
  block.size = event.size;
  block.stack_id = event.stack_id;
  block.family = static_cast<format::Family>(event.family);
  block.api = static_cast<format::Api>(event.api);
  block.tally = &tally;
  block.time_ns = event.header.time_ns;
  ++tally.costs.allocations;
  tally.costs.allocated_bytes += event.size;
  tally.costs.live_bytes += event.size;
  counters_.live_bytes += event.size;
  // A moved realloc records its new block, then the old one's release: the program never holds
  // both, so the peak is checked once the old one is gone (massif and heaptrack count it so).
  if (static_cast<format::Api>(event.api) == format::Api::kRealloc ||
      static_cast<format::Api>(event.api) == format::Api::kReallocArray) {
    realloc_pending_thread_ = event.thread_id;
    realloc_pending_ = true;
    return;
  }
  check_peak();
}

void ProcessModel::add_header_bytes(uint64_t address, uint64_t size, uint32_t alignment) {
  const uint64_t front = layout::front_bytes(alignment);
  if (front != layout::kHeaderBytes) wide_fronts_[address] = front;
  header_bytes_ += front + layout::tail_bytes(size);
}

void ProcessModel::remove_header_bytes(uint64_t address, uint64_t size) {
  uint64_t front = layout::kHeaderBytes;
  if (!wide_fronts_.empty()) {
    if (const auto wide = wide_fronts_.find(address); wide != wide_fronts_.end()) {
      front = wide->second;
      wide_fronts_.erase(wide);
    }
  }
  header_bytes_ -= front + layout::tail_bytes(size);
}

void ProcessModel::check_peak() noexcept {
  realloc_pending_ = false;
  if (counters_.live_bytes > counters_.peak_live_bytes) {
    counters_.peak_live_bytes = counters_.live_bytes;
    peak_event_ = event_number_;  // every stack's current value is now its value at the peak
  }
}

ThreadLife* ProcessModel::running_thread(uint32_t thread_id) {
  if (running_thread_.empty()) return nullptr;
  // Allocations come in runs from one thread: remember the last lookup.
  if (thread_id != last_thread_id_) {
    const auto running = running_thread_.find(thread_id);
    last_thread_id_ = thread_id;
    last_thread_index_ = running == running_thread_.end() ? SIZE_MAX : running->second;
  }
  return last_thread_index_ == SIZE_MAX ? nullptr : &threads_[last_thread_index_];
}

void ProcessModel::on_free(const format::FreeEvent& event) {
  if ((event.header.flags & format::kFreeImplied) != 0) {
    // A trace's word for what on_alloc does when a block comes at a live one's address.
    if (LiveBlock* block = live_.find(event.address)) {
      counters_.live_bytes -= block->size;
      touch(*block->tally).costs.live_bytes -= block->size;
      remove_header_bytes(event.address, block->size);
      if (!ignored_.empty()) ignored_.erase(event.address);
      live_.erase(event.address);
    }
    return;
  }
  // The release that completes a moved realloc comes right after its new block, on its thread;
  // anything else first settles the peak as it stood.
  const bool completes_realloc = realloc_pending_ && event.thread_id == realloc_pending_thread_ &&
                                 (static_cast<format::Api>(event.api) == format::Api::kRealloc ||
                                  static_cast<format::Api>(event.api) == format::Api::kReallocArray);
  if (realloc_pending_ && !completes_realloc) check_peak();
  LiveBlock* block = live_.find(event.address);
  if (block == nullptr) {
    if (completes_realloc) check_peak();
    ++counters_.unknown_frees;
    return;
  }
  ++counters_.frees;
  if (!ignored_.empty()) ignored_.erase(event.address);
  note_time(event.header.time_ns);
  uint64_t& last = last_alloc_of(event.thread_id);
  const bool temporary = last == event.address;
  last = kNoAllocation;  // anything the thread does next is after this free
  if (temporary) {
    ++counters_.temporary;
    ++block->tally->costs.temporary;
  }
  counters_.live_bytes -= block->size;
  touch(*block->tally).costs.live_bytes -= block->size;
  remove_header_bytes(event.address, block->size);
  live_.erase(event.address);
  if (completes_realloc) check_peak();
}

void ProcessModel::on_corruption(const format::CorruptionEvent& event) {
  errors_.push_back(HeapError{static_cast<format::ErrorKind>(event.error), event.address,
                              event.block_size, event.bad_offset, event.stack_id,
                              event.alloc_stack_id, event.free_stack_id, event.alloc_family,
                              event.free_api, (event.header.flags & format::kDetectedAtExit) != 0,
                              event.header.flags, event.thread_id});
}

void ProcessModel::on_leak_kinds(const RecordView& record) {
  const auto& event = record.as<format::LeakKindsEvent>();
  const auto payload = record.payload<format::LeakKindsEvent>();
  for (uint32_t i = 0; i < event.count; ++i) {
    format::LeakKindEntry entry;
    memcpy(&entry, payload.data() + i * sizeof(entry), sizeof(entry));
    if (entry.kind >= static_cast<uint8_t>(format::LeakKind::kDefinite) &&
        entry.kind <= static_cast<uint8_t>(format::LeakKind::kReachable))
      scan_kinds_[entry.address] = entry.kind;
  }
}

void ProcessModel::on_leak_scan_end(const format::LeakScanEndEvent& event) {
  LeakScanInfo info{event.scan_id, event.header.time_ns, (event.header.flags & format::kScanAtExit) != 0,
                    (event.header.flags & format::kScanStoppedBySignal) != 0,
                    static_cast<format::ScanStatus>(event.status), event.threads,
                    event.threads_unstopped, event.blocks, event.root_bytes, event.heap_bytes,
                    event.duration_ns};
  const bool classified = info.status == format::ScanStatus::kDone;
  auto kind_of = [&](uint64_t address) -> uint8_t {
    const auto found = scan_kinds_.find(address);
    return found == scan_kinds_.end() ? static_cast<uint8_t>(format::LeakKind::kReachable) : found->second;
  };
  if (info.at_exit) {
    if (classified) live_.for_each_value([&](uint64_t address, LiveBlock& block) {
      block.leak_kind = kind_of(address);
    });
    exit_scan_ = info;
  } else {
    LeakCheck check;
    check.scan = info;
    if (!phases_.empty()) check.phase = phases_.back().label;
    std::unordered_map<uint64_t, LeakGroup> groups;  // by stack and kind
    if (classified) live_.for_each_value([&](uint64_t address, LiveBlock& block) {
      const uint8_t kind = kind_of(address);
      if (kind == static_cast<uint8_t>(format::LeakKind::kReachable) || block.reported_by_check) return;
      block.reported_by_check = true;
      const uint32_t stack_id = canonical(block.stack_id);
      LeakGroup& group = groups[(uint64_t{stack_id} << 8) | kind];
      group.stack_id = stack_id;
      group.kind = kind;
      group.family = block.family;
      ++group.blocks;
      group.bytes += block.size;
    });
    for (auto& [key, group] : groups) check.new_leaks.push_back(group);
    std::sort(check.new_leaks.begin(), check.new_leaks.end(), [](const LeakGroup& a, const LeakGroup& b) {
      if (a.bytes != b.bytes) return a.bytes > b.bytes;
      if (a.kind != b.kind) return a.kind < b.kind;
      return a.stack_id < b.stack_id;
    });
    leak_checks_.push_back(std::move(check));
  }
  scan_kinds_.clear();
}

const Stack* ProcessModel::stack(uint32_t id) const noexcept {
  const auto found = stacks_.find(id);
  return found == stacks_.end() ? nullptr : &found->second;
}

uint32_t ProcessModel::canonical(uint32_t stack_id) const noexcept {
  const auto found = alias_.find(stack_id);
  return found == alias_.end() ? stack_id : found->second;
}

std::unordered_map<uint32_t, StackCosts> ProcessModel::stack_costs() const {
  std::unordered_map<uint32_t, StackCosts> costs;
  for (const auto& [stack_id, tally] : tallies_) {
    StackCosts out = tally.costs;
    out.peak_bytes = tally.last_change <= peak_event_ ? tally.costs.live_bytes : tally.live_at_peak;
    costs.emplace(stack_id, out);
  }
  return costs;
}

uint64_t ProcessModel::ignored_bytes() const noexcept {
  uint64_t bytes = 0;
  for (uint64_t address : ignored_) bytes += live_.find(address)->size;
  return bytes;
}

std::vector<LeakGroup> ProcessModel::leak_groups(uint64_t min_age_ns, uint64_t now_ns) const {
  std::unordered_map<uint64_t, LeakGroup> groups;  // by stack and kind
  live_.for_each([&](uint64_t address, const LiveBlock& block) {
    if (ignored_.contains(address)) return;
    if (min_age_ns > 0 && now_ns > block.time_ns && now_ns - block.time_ns < min_age_ns) return;
    if (min_age_ns > 0 && now_ns <= block.time_ns) return;
    const uint32_t stack_id = canonical(block.stack_id);
    LeakGroup& group = groups[(uint64_t{stack_id} << 8) | block.leak_kind];
    group.stack_id = stack_id;
    group.kind = block.leak_kind;
    group.family = block.family;
    ++group.blocks;
    group.bytes += block.size;
    group.oldest_ns = std::min(group.oldest_ns, block.time_ns);
    group.youngest_ns = std::max(group.youngest_ns, block.time_ns);
  });
  std::vector<LeakGroup> sorted;
  sorted.reserve(groups.size());
  for (auto& [id, group] : groups) sorted.push_back(group);
  std::sort(sorted.begin(), sorted.end(), [](const LeakGroup& a, const LeakGroup& b) {
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.blocks != b.blocks) return a.blocks > b.blocks;
    if (a.stack_id != b.stack_id) return a.stack_id < b.stack_id;
    return a.kind < b.kind;
  });
  return sorted;
}

}  // namespace heapscope::analyzer
