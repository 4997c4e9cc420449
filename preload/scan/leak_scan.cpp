// Whole-process leak scan (see leak_scan.h).
#include "leak_scan.h"

#include "build_mode.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>

#include "agent.h"
#include "block_header.h"
#include "reachability.h"
#include "real_alloc.h"
#include "self_maps.h"
#include "sys.h"
#include "fast_unwind.h"
#include "own_image.h"
#include "thread_stop.h"

namespace heapscope::preload {
namespace {

struct Range {
  uint64_t begin;
  uint64_t end;
};

// A mapping of the scan's own (zeroed, unmapped on scope exit).
template <typename T>
class ScratchArray {
 public:
  explicit ScratchArray(size_t count) noexcept
      : bytes_(count == 0 ? 4096 : count * sizeof(T)),
        data_(static_cast<T*>(sys::map_anonymous(bytes_))) {}
  ~ScratchArray() { sys::unmap(data_, bytes_); }
  ScratchArray(const ScratchArray&) = delete;
  ScratchArray& operator=(const ScratchArray&) = delete;
  T* data() const noexcept { return data_; }

 private:
  size_t bytes_;
  T* data_;
};

// Ranges no scan may read as roots, besides the blocks: the agent's tables and the scan's own
// arrays (they hold every block's address), the walker's per-thread tables, the agent's own
// data, and the dead part of each stopped stack. Sized for what exists at the scan, never
// a fixed capacity a busy process could overflow into a different result.
constexpr size_t kOwnExclusions = 8;  // the agent's data segments, slack

// Gathering from the index in one pass: live blocks into `blocks` (with the bytes in front of
// each in `leader`, unused until the marker starts), quarantined blocks' real ranges at the
// end of `tracked`, which tracked_ranges() then fills from the front.
struct Gathered {
  ScanBlock* blocks;
  Range* tracked;
  size_t capacity;         // of both arrays
  size_t block_count = 0;
  size_t quarantined = 0;
};

Range real_range(uint64_t address, uint64_t size, uint64_t front) noexcept {
  // The attach agent's blocks have no header or tail: the bytes after them may be another block's.
  if (kAttachBuild) return {address, address + size};
  return {address - front, address + size + block::tail_bytes(size)};
}

void gather_entry(const BlockEntry& entry, void* context) noexcept {
  auto& gathered = *static_cast<Gathered*>(context);
  if (entry.state != BlockState::kLive) {
    gathered.tracked[gathered.capacity - ++gathered.quarantined] = real_range(entry.address, entry.size, front_bytes(entry));
    return;
  }
  ScanBlock& block = gathered.blocks[gathered.block_count++];
  block.address = entry.address;
  block.size = entry.size;
  block.leader = entry.front;  // encoded, as in the index (see front_bytes)
  block.ignored = (entry.flags & kBlockIgnored) != 0 ? 1 : 0;
  block.seen_lost = (entry.flags & kBlockSeenLost) != 0 ? 1 : 0;
}

// Every tracked block's whole real allocation, in address order: the sorted live blocks merged
// with the sorted quarantined ranges at the end of the array. Writing from the front never
// overtakes the quarantined ranges still to be read. Returns the count.
size_t tracked_ranges(const Gathered& gathered) noexcept {
  Range* quarantined = gathered.tracked + (gathered.capacity - gathered.quarantined);
  std::sort(quarantined, quarantined + gathered.quarantined,
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  size_t live = 0;
  size_t held = 0;
  size_t out = 0;
  while (live < gathered.block_count || held < gathered.quarantined) {
    const ScanBlock* block = live < gathered.block_count ? &gathered.blocks[live] : nullptr;
    if (block != nullptr && (held == gathered.quarantined || block->address < quarantined[held].begin)) {
      gathered.tracked[out++] = real_range(block->address, block->size, front_bytes(BlockEntry{0, 0, 0, 0, block->leader, 0, BlockState::kLive, 0, 0}));
      ++live;
    } else {
      gathered.tracked[out++] = quarantined[held++];
    }
  }
  return out;
}

struct Exclusions {
  Range* ranges = nullptr;
  size_t count = 0;
  size_t capacity = 0;
  void add(Range range) noexcept {
    if (count < capacity && range.end > range.begin) ranges[count++] = range;
  }
};

void exclude_mapping(uint64_t begin, uint64_t end, void* context) noexcept {
  static_cast<Exclusions*>(context)->add({begin, end});
}

// Reads root memory for the marker. Memory that may vanish or fault under us (file-backed
// pages past the end of a file, mappings a thread we could not stop may unmap) is copied with
// process_vm_readv, which fails instead of faulting; the rest is read in place.
//
// Pages never touched are skipped (the kernel's pagemap says which pages are present or
// swapped): a program may reserve gigabytes it never uses, and reading them would only map
// zero pages.
class RootReader {
 public:
  RootReader(ReachabilityMarker& marker, char* copy_buffer, size_t copy_size) noexcept
      : marker_(marker), buffer_(copy_buffer), buffer_size_(copy_size),
        pagemap_(sys::open_file("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) {}
  ~RootReader() {
    if (pagemap_ >= 0) sys::close_file(pagemap_);
  }
  RootReader(const RootReader&) = delete;
  RootReader& operator=(const RootReader&) = delete;

  void scan(uint64_t begin, uint64_t end, bool copy) noexcept {
    constexpr uint64_t kPage = 4096;
    constexpr size_t kEntries = 512;  // pagemap entries read at once: 2 MiB of address space
    if (end <= begin) return;
    if (pagemap_ < 0 || end - begin < 16 * kPage) return scan_touched(begin, end, copy);
    uint64_t entries[kEntries];
    uint64_t run_begin = 0;  // start of the current run of touched pages, 0 = none
    for (uint64_t page = begin & ~(kPage - 1); page < end;) {
      const size_t want = static_cast<size_t>((end - page + kPage - 1) / kPage < kEntries
                                                  ? (end - page + kPage - 1) / kPage : kEntries);
      const long got = sys::pread_some(pagemap_, entries, want * 8, page / kPage * 8);
      if (got <= 0) {  // no pagemap after all: read the rest
        scan_touched(run_begin != 0 ? run_begin : (page > begin ? page : begin), end, copy);
        return;
      }
      for (size_t i = 0; i < static_cast<size_t>(got) / 8; ++i, page += kPage) {
        const bool touched = (entries[i] >> 62) != 0;  // bit 63 present, bit 62 swapped
        const uint64_t at = page > begin ? page : begin;
        if (touched && run_begin == 0) run_begin = at;
        if (!touched && run_begin != 0) {
          scan_touched(run_begin, at, copy);
          run_begin = 0;
        }
      }
    }
    if (run_begin != 0) scan_touched(run_begin, end, copy);
  }
  uint64_t bytes() const noexcept { return bytes_; }

 private:
  void scan_touched(uint64_t begin, uint64_t end, bool copy) noexcept {
    if (end <= begin) return;
    bytes_ += end - begin;
    if (!copy || copy_refused_) {
      marker_.scan_root(reinterpret_cast<const void*>(begin), end - begin);
      return;
    }
    const pid_t self = getpid();
    for (uint64_t at = begin; at < end;) {
      const size_t chunk = end - at < buffer_size_ ? end - at : buffer_size_;
      iovec local{buffer_, chunk};
      iovec remote{reinterpret_cast<void*>(at), chunk};
      const ssize_t got = process_vm_readv(self, &local, 1, &remote, 1, 0);
      if (got < 0 && (errno == EPERM || errno == ENOSYS)) {
        // A seccomp filter forbids the call: reading in place risks a fault on a page past a
        // file's end, skipping would miss module data (.data) and call live blocks lost.
        copy_refused_ = true;
        marker_.scan_root(reinterpret_cast<const void*>(at), end - at);
        return;
      }
      if (got > 0) marker_.scan_root(buffer_, static_cast<size_t>(got));
      // A page that cannot be read is skipped, the rest of the range still scanned.
      at += got > 0 ? static_cast<uint64_t>(got) : 4096 - (at & 4095);
    }
  }

  ReachabilityMarker& marker_;
  char* buffer_;
  size_t buffer_size_;
  int pagemap_;
  uint64_t bytes_ = 0;
  bool copy_refused_ = false;  // process_vm_readv is forbidden here: read in place
};

// The part of [begin, end) from the first tracked allocation in it to the end of the last one;
// empty (end <= begin) when none lies in it.
Range tracked_span(const Range* tracked, size_t count, uint64_t begin, uint64_t end) noexcept {
  const Range* first = std::lower_bound(tracked, tracked + count, begin,
                                        [](const Range& r, uint64_t value) { return r.begin < value; });
  const Range* last = std::lower_bound(first, tracked + count, end,
                                       [](const Range& r, uint64_t value) { return r.begin < value; });
  if (first == last) return {0, 0};
  return {first->begin, (last - 1)->end < end ? (last - 1)->end : end};
}

// Scans [begin, end) minus the excluded ranges (sorted by begin; they may overlap).
void scan_gaps(RootReader& reader, uint64_t begin, uint64_t end, bool copy, const Range* excluded,
               size_t excluded_count) noexcept {
  uint64_t cursor = begin;
  for (size_t i = 0; i < excluded_count && cursor < end; ++i) {
    const Range& skip = excluded[i];
    if (skip.end <= cursor) continue;
    if (skip.begin >= end) break;
    if (skip.begin > cursor) reader.scan(cursor, skip.begin, copy);
    cursor = skip.end;
  }
  if (cursor < end) reader.scan(cursor, end, copy);
}

// Scans [begin, end) minus the tracked blocks (sorted, disjoint) and the excluded ranges: for
// the attach agent, whose scan counts all memory it did not hand out as roots, the heap from
// before the attach included (a block reachable from an old block is never lost).
void scan_outside_blocks(RootReader& reader, uint64_t begin, uint64_t end, bool copy, const Range* tracked,
                         size_t tracked_count, const Range* excluded, size_t excluded_count) noexcept {
  const Range* block = std::lower_bound(tracked, tracked + tracked_count, begin,
                                        [](const Range& r, uint64_t value) { return r.end <= value; });
  uint64_t cursor = begin;
  for (; block != tracked + tracked_count && block->begin < end && cursor < end; ++block) {
    if (block->begin > cursor) scan_gaps(reader, cursor, block->begin, copy, excluded, excluded_count);
    if (block->end > cursor) cursor = block->end;
  }
  if (cursor < end) scan_gaps(reader, cursor, end, copy, excluded, excluded_count);
}

constinit uint32_t scans_run = 0;
// The agent's own writable data (.data, .bss): never a root. It holds copies of what the
// program passed it (the registers at exit, with the dead caller-saved ones a lost block's
// address may linger in) and nothing the program could reach a block through.
constexpr size_t kMaxOwnSegments = 4;
constinit ImageSegment own_data[kMaxOwnSegments] = {};
constinit size_t own_data_count = 0;
constexpr uint64_t kGlibcArenaBytes = uint64_t{64} << 20;  // HEAP_MAX_SIZE on 64-bit
constinit size_t static_tls_bytes = 0;  // glibc's static TLS + thread control block; 0 unknown

// A stack glibc keeps cached after its thread ended still holds the dead thread's frames,
// whose stale pointers would make lost blocks look reachable; only its control block and
// static TLS at the top are live (glibc reuses them, and they point to the thread's TLS
// vector). Recognized on x86-64 by the control block's self pointers (tcbhead_t: tcb, dtv,
// self) near the top, with `dtv` pointing into a live block (its TLS vector, reachability.h),
// in a mapping right above a guard page (how glibc maps thread stacks).
// Returns where scanning should start, or `begin` when this is not such a stack.
uint64_t dead_stack_live_part(uint64_t begin, uint64_t end, const ReachabilityMarker& marker) noexcept {
#if defined(__x86_64__)
  constexpr uint64_t kSearch = 16 * 1024;
  if (static_tls_bytes == 0 || end - begin < 2 * kSearch) return begin;
  for (uint64_t at = (end - 24) & ~uint64_t{7}; at >= end - kSearch; at -= 8) {
    const auto* words = reinterpret_cast<const uint64_t*>(at);
    if (words[0] != at || words[2] != at) continue;
    bool start = false;
    if (marker.find(words[1], start) < 0) continue;
    const uint64_t control_block = end - at;  // the TCB runs to the top (less alignment slack)
    const uint64_t tls = static_tls_bytes > control_block ? static_tls_bytes - control_block : 0;
    return at - tls > begin ? at - tls : begin;
  }
#else
  (void)end;
  (void)marker;
#endif
  return begin;
}

// Sends the verdicts; counts blocks per kind and the lost ones no earlier scan saw lost (marked
// in the index so the next on-demand check does not count them again).
void send_kinds(uint32_t scan_id, const ReachabilityMarker& marker, const ScanBlock* blocks,
                size_t count, uint64_t (&tally)[5], uint64_t (&bytes)[5], uint64_t& newly_lost,
                const LeakScanRequest& request) noexcept {
  constexpr size_t kBatch = 255;
  format::LeakKindEntry batch[kBatch];
  size_t held = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t kind = marker.kind(i);
    ++tally[kind];
    bytes[kind] += blocks[i].size;
    if (kind == static_cast<uint8_t>(format::LeakKind::kReachable)) continue;  // the default
    if (blocks[i].seen_lost == 0) {
      ++newly_lost;
      agent::index().add_flags_locked(blocks[i].address, kBlockSeenLost);
      if (request.newly_lost_count != nullptr && *request.newly_lost_count < request.newly_lost_capacity) {
        request.newly_lost[(*request.newly_lost_count)++] = {agent::index().alloc_stack_locked(blocks[i].address),
                                                             blocks[i].size};
      }
    }
    batch[held] = format::LeakKindEntry{blocks[i].address, kind, {}};
    if (++held == kBatch) {
      agent::emit_leak_kinds(scan_id, batch, held);
      held = 0;
    }
  }
  if (held > 0) agent::emit_leak_kinds(scan_id, batch, held);
}

}  // namespace

void init_leak_scan() noexcept {
  if (own_data_count == 0) own_data_count = find_own_segments(own_data, kMaxOwnSegments, /*writable_only=*/true);
  // GLIBC_PRIVATE, but stable since 2.0 and what sanitizers use for the same purpose.
  using StaticInfo = void (*)(size_t*, size_t*);
  auto info = reinterpret_cast<StaticInfo>(dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info"));
  if (info == nullptr) return;
  size_t size = 0;
  size_t alignment = 0;
  info(&size, &alignment);
  static_tls_bytes = size;
}

LeakScanOutcome run_leak_scan(const LeakScanRequest& request) noexcept {
  sys::KeepErrno keep_errno;  // heapscope_leak_check() is the program's call
  LeakScanOutcome outcome;
  outcome.scan_id = ++scans_run;
  format::LeakScanEndEvent end{};
  end.scan_id = outcome.scan_id;
  BlockIndex& index = agent::index();

  const uint64_t started = sys::now_ns();
  // Frozen index: no block comes or goes while we look, and no thread is stopped holding a
  // shard lock (we hold them all). Threads that allocate meanwhile wait at the lock.
  index.lock_all();
  const size_t entries = index.size_locked();
  ScratchArray<ScanBlock> blocks(entries);
  ScratchArray<Range> tracked(entries);
  ScratchArray<uint32_t> work(2 * entries + 1);
  const size_t slot_capacity = count_threads() + 64;
  ScratchArray<StoppedThread> slots(slot_capacity);
  constexpr size_t kMapsBuffer = 64 * 1024;
  ScratchArray<char> maps_buffer(kMapsBuffer);
  constexpr size_t kCopyBuffer = 256 * 1024;
  ScratchArray<char> copy_buffer(kCopyBuffer);
  constexpr size_t kBlockCopyBuffer = 64 * 1024;  // the marker's own (it reads while roots are)
  ScratchArray<char> block_copy_buffer(kBlockCopyBuffer);
  // Counted now, mapped before any thread stops; threads may still map tables meanwhile, so
  // with room to spare (a table mapped after the count is excluded if room remains; a scan
  // that could not list them all says so rather than read them as roots).
  const size_t exclusion_capacity = sys::agent_mapping_count() + unwind::thread_table_count() + kOwnExclusions + 256;
  ScratchArray<Range> exclusion_ranges(exclusion_capacity);
  Exclusions extra{exclusion_ranges.data(), 0, exclusion_capacity};
  if (blocks.data() == nullptr || tracked.data() == nullptr || work.data() == nullptr ||
      slots.data() == nullptr || maps_buffer.data() == nullptr || copy_buffer.data() == nullptr ||
      block_copy_buffer.data() == nullptr || exclusion_ranges.data() == nullptr) {
    index.unlock_all();
    end.status = static_cast<uint32_t>(format::ScanStatus::kNoMemory);
    agent::emit_leak_scan_end(end, request.flags);
    return outcome;
  }
  Gathered gathered{blocks.data(), tracked.data(), entries};
  index.for_each_locked(gather_entry, &gathered);
  std::sort(blocks.data(), blocks.data() + gathered.block_count,
            [](const ScanBlock& a, const ScanBlock& b) { return a.address < b.address; });
  const size_t tracked_count = tracked_ranges(gathered);
  // The index's tables and the scan's own arrays are among the agent's mappings.
  sys::for_each_agent_mapping(exclude_mapping, &extra);
  unwind::for_each_thread_table(exclude_mapping, &extra);
  for (size_t i = 0; i < own_data_count; ++i) extra.add({own_data[i].begin, own_data[i].end});
  const bool all_excluded = extra.count < extra.capacity && sys::unlisted_mappings() == 0;

  // ptrace first: it interrupts nothing the program sees. Signals where it is refused.
  StopResult stop;
  PtraceStop ptrace_stop;
  SignalStop signal_stop;
  const bool by_ptrace = ptrace_stop.stop_others(slots.data(), slot_capacity, stop);
  if (!by_ptrace) signal_stop.stop_others(slots.data(), slot_capacity, stop);
  uint16_t flags = request.flags;
  if (!by_ptrace) flags |= format::kScanStoppedBySignal;
  const bool all_stopped = stop.unstopped == 0;
  ReachabilityMarker marker(blocks.data(), gathered.block_count, work.data());
  RootReader reader(marker, copy_buffer.data(), kCopyBuffer);
  // Pages the program made inaccessible inside its blocks (a heap coroutine stack's guard page)
  // are known before any block is read.
  size_t file_mappings = 0;
  for_each_mapping(maps_buffer.data(), kMapsBuffer, [&](const Mapping& mapping) {
    if (!mapping.readable) marker.mark_unreadable(mapping.begin, mapping.end, block_copy_buffer.data(), kBlockCopyBuffer);
    if (mapping.readable && mapping.file_backed && !mapping.device) ++file_mappings;
  });
  // The readable file mappings (code, constants, vtables), in address order as maps lists
  // them, for the multipleinheritance heuristic (reachability.h). Sized from the count above,
  // with room for the few a thread that did not stop may add.
  const size_t file_capacity = file_mappings + 64;
  ScratchArray<FileRange> file_ranges(file_capacity);
  if (file_ranges.data() != nullptr) {
    size_t filled = 0;
    bool complete = true;
    for_each_mapping(maps_buffer.data(), kMapsBuffer, [&](const Mapping& mapping) {
      if (!mapping.readable || !mapping.file_backed || mapping.device) return;
      if (filled == file_capacity) {
        complete = false;
        return;
      }
      file_ranges.data()[filled++] = {mapping.begin, mapping.end, mapping.executable};
    });
    if (complete) marker.set_file_ranges(file_ranges.data(), filled);
  }

  // The live threads' own stacks, from the registry of thread stacks (fast_unwind.h): a thread
  // running a coroutine (swapcontext) or a handler on an alternate signal stack has its stack
  // pointer elsewhere, and its own stack, whose frames are live, must not be taken for the
  // stack of a thread that ended.
  ScratchArray<Range> live_stacks(slot_capacity + 1);
  size_t live_stack_count = 0;
  if (live_stacks.data() != nullptr) {
    auto add_stack = [&](uint32_t tid) {
      Range range{};
      if (unwind::thread_stack(tid, range.begin, range.end)) live_stacks.data()[live_stack_count++] = range;
    };
    add_stack(sys::thread_id());
    for (size_t i = 0; i < stop.slots_used; ++i)
      if (slots.data()[i].stopped.load(std::memory_order_acquire) == kThreadStopped) add_stack(slots.data()[i].tid);
  }

  // Each stack is read from its stack pointer up (x86-64 leaf functions may keep data in the
  // 128 bytes below it); ours from the entry point's frame up: below are the agent's frames.
  // A thread that did not stop has its whole stack read.
  Mapping previous;
  auto live_part = [&](const Mapping& mapping) {
    uint64_t from = mapping.begin;
    const auto own = reinterpret_cast<uint64_t>(request.caller_frame);
    if (own >= mapping.begin && own < mapping.end) from = own;
    bool has_live_thread = from != mapping.begin;
    for (size_t i = 0; i < live_stack_count && !has_live_thread; ++i)
      has_live_thread = live_stacks.data()[i].begin < mapping.end && live_stacks.data()[i].end > mapping.begin;
    for (size_t i = 0; i < stop.slots_used; ++i) {
      const StoppedThread& thread = slots.data()[i];
      if (thread.stopped.load(std::memory_order_acquire) != kThreadStopped) continue;
      const uint64_t sp = thread.stack_pointer - 128;
      if (thread.stack_pointer < mapping.begin || thread.stack_pointer >= mapping.end) continue;
      has_live_thread = true;
      if (sp > from) from = sp;
    }
    // A thread we could not stop may live in any stack: then no stack is taken for dead.
    const bool above_guard = previous.end == mapping.begin && !previous.readable && !previous.writable;
    if (!has_live_thread && all_stopped && !mapping.file_backed && above_guard)
      from = dead_stack_live_part(mapping.begin, mapping.end, marker);
    return from;
  };
  std::sort(extra.ranges, extra.ranges + extra.count,
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  const bool attach_roots = (request.flags & format::kScanAtDetach) != 0;
  const bool mapped = for_each_mapping(maps_buffer.data(), kMapsBuffer, [&](const Mapping& mapping) {
    // Read-only anonymous memory too: a program may seal a table of pointers with
    // mprotect(PROT_READ), and memcheck reads it. (Read-only file mappings are code, constants
    // and relocated-then-sealed data, which hold no heap address; the kernel's named ones, such
    // as [vvar], are not the program's and may fault when read.)
    const bool sealed = mapping.readable && !mapping.writable && !mapping.file_backed && mapping.path_length == 0;
    if (mapping.readable && (mapping.writable || sealed) && mapping.is_private && !mapping.device) {
      const bool copy = mapping.file_backed || !all_stopped;
      const uint64_t from = live_part(mapping);
      // Between its first and last block, a mapping is taken for the allocator's: the gaps are
      // free chunks and its bookkeeping, full of stale pointers (old headers of merged chunks)
      // that would make lost blocks look reachable. Only what lies outside that span is
      // scanned, unless the allocator is known: glibc's main arena ([heap]) and its thread
      // arenas (mappings aligned to their 64 MiB reservation) are its own whole, and elsewhere
      // it owns exactly its mmapped chunks.
      if (attach_roots) {
        scan_outside_blocks(reader, from, mapping.end, copy, tracked.data(), tracked_count, extra.ranges, extra.count);
        previous = mapping;
        return;
      }
      Range span = tracked_span(tracked.data(), tracked_count, mapping.begin, mapping.end);
      const bool glibc_arena = mapping.brk_heap || (mapping.begin & (kGlibcArenaBytes - 1)) == 0;
      if (span.end > span.begin && glibc_arena) span = {mapping.begin, mapping.end};
      if (span.end > span.begin && !glibc_arena && real::is_glibc()) {
        // Over glibc, blocks outside its arenas are chunks it mmapped one by one: nothing of the
        // allocator's lies between them, and the kernel may have merged them with the program's
        // own mappings, whose memory is a root like any other.
        scan_outside_blocks(reader, from, mapping.end, copy, tracked.data(), tracked_count, extra.ranges, extra.count);
        previous = mapping;
        return;
      }
      if (span.end <= span.begin) {
        scan_gaps(reader, from, mapping.end, copy, extra.ranges, extra.count);
      } else {
        if (from < span.begin) scan_gaps(reader, from, span.begin, copy, extra.ranges, extra.count);
        scan_gaps(reader, span.end > from ? span.end : from, mapping.end, copy, extra.ranges, extra.count);
      }
    }
    previous = mapping;
  });
  for (size_t i = 0; i < stop.slots_used; ++i) {
    const StoppedThread& thread = slots.data()[i];
    if (thread.stopped.load(std::memory_order_acquire) != kThreadStopped) continue;
    marker.scan_values(thread.registers, thread.register_count);
    // A stack the program gave the thread from the heap (pthread_attr_setstack) is a block:
    // its live part is a root all the same.
    bool start = false;
    const long holder = marker.find(thread.stack_pointer, start);
    if (holder >= 0) {
      const ScanBlock& block = blocks.data()[holder];
      const uint64_t from = thread.stack_pointer - 128 > block.address ? thread.stack_pointer - 128 : block.address;
      reader.scan(from, block.address + block.size, /*copy=*/block.unreadable_pages != 0);
    }
  }
#if defined(__x86_64__)
  if (request.caller_state != nullptr) {
    const greg_t* registers = request.caller_state->uc_mcontext.gregs;
    if (request.interrupted) {
      marker.scan_values(reinterpret_cast<const uint64_t*>(registers), NGREG);
    } else {
      const uint64_t callee_saved[] = {static_cast<uint64_t>(registers[REG_RBX]), static_cast<uint64_t>(registers[REG_RBP]),
                                       static_cast<uint64_t>(registers[REG_R12]), static_cast<uint64_t>(registers[REG_R13]),
                                       static_cast<uint64_t>(registers[REG_R14]), static_cast<uint64_t>(registers[REG_R15])};
      marker.scan_values(callee_saved, sizeof(callee_saved) / sizeof(callee_saved[0]));
    }
  }
#elif defined(__aarch64__)
  if (request.caller_state != nullptr) {
    // x19..x29 are callee-saved.
    if (request.interrupted) marker.scan_values(request.caller_state->uc_mcontext.regs, 31);
    else marker.scan_values(request.caller_state->uc_mcontext.regs + 19, 11);
  }
#endif
  marker.add_ignored_blocks();
  marker.propagate();
  marker.group_lost();
  if (by_ptrace) {
    ptrace_stop.resume_others();
  } else {
    signal_stop.resume_others();
  }

  if (!mapped) {
    end.status = static_cast<uint32_t>(format::ScanStatus::kNoMemoryMap);
  } else if (!all_excluded) {
    end.status = static_cast<uint32_t>(format::ScanStatus::kAgentMemoryUnlisted);
  } else {
    uint64_t tally[5] = {0, 0, 0, 0, 0};
    send_kinds(outcome.scan_id, marker, blocks.data(), gathered.block_count, tally,
               outcome.bytes_by_kind, outcome.newly_lost_blocks, request);
    outcome.classified = true;
    outcome.lost_blocks = tally[1] + tally[2] + tally[3];
  }
  end.threads = static_cast<uint32_t>(stop.stopped + stop.unstopped + 1);
  end.threads_unstopped = static_cast<uint32_t>(stop.unstopped);
  end.blocks = gathered.block_count;
  end.root_bytes = reader.bytes();
  end.heap_bytes = marker.heap_bytes_scanned();
  end.duration_ns = sys::now_ns() - started;
  agent::emit_leak_scan_end(end, flags);
  index.unlock_all();
  return outcome;
}

}  // namespace heapscope::preload
