// Mark phase and lost-block grouping of a leak scan (see reachability.h).
#include "reachability.h"

#include <sys/uio.h>
#include <unistd.h>

#include "heapscope/event_format.h"

namespace heapscope::preload {

ReachabilityMarker::ReachabilityMarker(ScanBlock* blocks, size_t count, uint32_t* work) noexcept
    : blocks_(blocks), count_(count), work_(work) {
  for (size_t i = 0; i < count; ++i) {
    blocks_[i].reach = Reach::kUnreached;
    blocks_[i].leader = kNoLeader;
    blocks_[i].unreadable_pages = 0;
  }
  if (count > 0) {
    lowest_ = blocks_[0].address;
    const ScanBlock& last = blocks_[count - 1];
    highest_ = last.address + (last.size > 0 ? last.size : 1);
  }
}

long ReachabilityMarker::find(uint64_t value, bool& start) const noexcept {
  if (value < lowest_ || value >= highest_) return -1;  // most words: one comparison pair
  size_t low = 0;
  size_t high = count_;  // the answer is the last block with address <= value
  while (high - low > 1) {
    const size_t middle = low + (high - low) / 2;
    if (blocks_[middle].address <= value) {
      low = middle;
    } else {
      high = middle;
    }
  }
  const ScanBlock& block = blocks_[low];
  start = value == block.address;
  if (start || value - block.address < block.size) return static_cast<long>(low);
  return -1;
}

void ReachabilityMarker::mark_unreadable(uint64_t begin, uint64_t end, char* buffer, size_t buffer_bytes) noexcept {
  copy_buffer_ = buffer;
  copy_bytes_ = buffer_bytes;
  if (count_ == 0 || end <= lowest_ || begin >= highest_) return;
  // The first block ending after `begin`, then every block starting before `end`.
  size_t low = 0;
  size_t high = count_;
  while (low < high) {
    const size_t middle = low + (high - low) / 2;
    if (blocks_[middle].address + blocks_[middle].size <= begin) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  for (size_t i = low; i < count_ && blocks_[i].address < end; ++i) blocks_[i].unreadable_pages = 1;
}

template <typename Visit>
void ReachabilityMarker::read_block(const ScanBlock& block, Visit visit) noexcept {
  if (block.unreadable_pages == 0 || copy_buffer_ == nullptr) {
    visit(reinterpret_cast<const uint64_t*>(block.address), block.size / 8);
    return;
  }
  // Page by page at most a buffer at a time: a page that cannot be read is skipped, as
  // memcheck skips what is not addressable. Block addresses are 8-aligned, so chunks are too.
  const uint64_t end = block.address + block.size / 8 * 8;
  const pid_t self = getpid();
  for (uint64_t at = block.address; at < end;) {
    const uint64_t page_end = (at | 4095) + 1;
    const uint64_t chunk = end - at < copy_bytes_ ? end - at : copy_bytes_;
    iovec local{copy_buffer_, static_cast<size_t>(chunk)};
    iovec remote{reinterpret_cast<void*>(at), static_cast<size_t>(chunk)};
    const ssize_t got = process_vm_readv(self, &local, 1, &remote, 1, 0);
    // A read stops at the first page that faults: what came before it is whole words.
    if (got >= 8) {
      visit(reinterpret_cast<const uint64_t*>(copy_buffer_), static_cast<size_t>(got) / 8);
      at += static_cast<uint64_t>(got) / 8 * 8;
    } else {
      at = page_end;  // unreadable (or the call is refused): this page says nothing
    }
  }
}

bool ReachabilityMarker::word_at(const ScanBlock& block, uint64_t offset, uint64_t& word) noexcept {
  if (offset + 8 > block.size) return false;
  bool read = false;
  read_block(ScanBlock{block.address + offset, 8, 0, Reach::kUnreached, 0, 0, block.unreadable_pages},
             [&](const uint64_t* words, size_t count) {
               if (count == 0 || read) return;
               word = words[0];
               read = true;
             });
  return read;
}

bool ReachabilityMarker::first_word(const ScanBlock& block, uint64_t& word) noexcept { return word_at(block, 0, word); }

const FileRange* ReachabilityMarker::file_range(uint64_t address) const noexcept {
  size_t low = 0;
  size_t high = file_range_count_;
  while (low < high) {
    const size_t middle = low + (high - low) / 2;
    if (file_ranges_[middle].end <= address) low = middle + 1;
    else high = middle;
  }
  return low < file_range_count_ && file_ranges_[low].begin <= address ? &file_ranges_[low] : nullptr;
}

// memcheck's test (mc_leakcheck.c): in a readable file mapping, and among its first 20 words,
// two non-null ones before any that is not a pointer into executable file-mapped code. Read
// by copy: a file mapping may end past the end of its file.
bool ReachabilityMarker::is_vtable(uint64_t address) noexcept {
  if ((address & 7) != 0 || address < 4096) return false;
  const FileRange* range = file_range(address);
  if (range == nullptr) return false;
  uint64_t words[20];
  const uint64_t bytes = range->end - address < sizeof(words) ? range->end - address : sizeof(words);
  iovec local{words, static_cast<size_t>(bytes)};
  iovec remote{reinterpret_cast<void*>(address), static_cast<size_t>(bytes)};
  const ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (got < 16) return false;
  int functions = 0;
  for (size_t i = 0; i < static_cast<size_t>(got) / 8; ++i) {
    if (words[i] == 0) continue;
    const FileRange* code = file_range(words[i]);
    if (code == nullptr || !code->executable) return false;
    if (++functions == 2) return true;
  }
  return false;
}

// memcheck's default leak heuristics (mc_leakcheck.c, heuristic_reachedness): layouts in
// which C++ programs keep only an interior pointer to a block they still use.
bool ReachabilityMarker::heuristic_start(const ScanBlock& block, uint64_t value) noexcept {
  const uint64_t offset = value - block.address;
  uint64_t first = 0;
  if (!first_word(block, first)) return false;
  // stdstring: length, capacity, refcount, then the characters and a NUL (the pre-C++11
  // libstdc++ string); the pointer is at the characters.
  uint64_t capacity = 0;
  if (offset == 24 && word_at(block, 8, capacity) && capacity < block.size && 24 + capacity + 1 == block.size &&
      first <= capacity)
    return true;
  if (offset == 8 && first > 0) {
    // length64: a 64-bit length of the rest, then the data (sqlite3's allocator).
    if (block.size - 8 == first) return true;
    // newarray: new[] of a type with a destructor stores the element count first.
    if ((block.size - 8) % first == 0) return true;
  }
  // multipleinheritance: the pointer is at a vtable pointer (a base other than the first), and
  // the block starts with one too.
  uint64_t inner = 0;
  if (file_range_count_ != 0 && (offset & 7) == 0 && word_at(block, offset, inner) && is_vtable(inner) &&
      is_vtable(first))
    return true;
  return false;
}

// glibc allocates a dtv as (count + 2) entries of 16 bytes, stores count in entry 0 and keeps a
// pointer to entry 1 (elf/dl-tls.c: allocate_dtv, _dl_resize_dtv).
bool ReachabilityMarker::is_tls_vector_pointer(const ScanBlock& block, uint64_t value) noexcept {
  constexpr uint64_t kEntry = 16;
  if (value - block.address != kEntry || block.size < 2 * kEntry) return false;
  uint64_t count = 0;
  if (!first_word(block, count)) return false;
  return count < (uint64_t{1} << 32) && (count + 2) * kEntry == block.size;
}

void ReachabilityMarker::reach(uint64_t value, Reach via) noexcept {
  bool start = false;
  const long found = find(value, start);
  if (found < 0) return;
  if (!start) start = is_tls_vector_pointer(blocks_[found], value) || heuristic_start(blocks_[found], value);
  // A chain is as strong as its weakest link: an interior pointer anywhere makes it "possible".
  const Reach strength = start ? via : Reach::kPossible;
  ScanBlock& block = blocks_[found];
  if (static_cast<uint8_t>(strength) <= static_cast<uint8_t>(block.reach)) return;
  block.reach = strength;
  work_[work_size_++] = static_cast<uint32_t>(found);
}

void ReachabilityMarker::scan_words(const uint64_t* words, size_t count, Reach via) noexcept {
  for (size_t i = 0; i < count; ++i) {
    const uint64_t value = words[i];
    if (value >= lowest_ && value < highest_) reach(value, via);
  }
}

void ReachabilityMarker::scan_root(const void* begin, size_t bytes) noexcept {
  auto first = (reinterpret_cast<uintptr_t>(begin) + 7) & ~uintptr_t{7};
  const uintptr_t end = (reinterpret_cast<uintptr_t>(begin) + bytes) & ~uintptr_t{7};
  if (end <= first) return;
  scan_words(reinterpret_cast<const uint64_t*>(first), (end - first) / 8, Reach::kReachable);
}

void ReachabilityMarker::scan_values(const uint64_t* values, size_t count) noexcept {
  scan_words(values, count, Reach::kReachable);
}

void ReachabilityMarker::add_ignored_blocks() noexcept {
  for (size_t i = 0; i < count_; ++i) {
    if (blocks_[i].ignored == 0 || blocks_[i].reach == Reach::kReachable) continue;
    blocks_[i].reach = Reach::kReachable;
    work_[work_size_++] = static_cast<uint32_t>(i);
  }
}

void ReachabilityMarker::propagate() noexcept {
  while (work_size_ > 0) {
    const ScanBlock& block = blocks_[work_[--work_size_]];
    // Scanned with its strength now: a block first reached as possible and later as reachable
    // is scanned twice, so what it leads to ends up reachable too.
    heap_bytes_scanned_ += block.size;
    const Reach via = block.reach;  // scanning may raise it: that pushes the block again
    read_block(block, [&](const uint64_t* words, size_t count) { scan_words(words, count, via); });
  }
}

void ReachabilityMarker::group_lost() noexcept {
  // Address order makes the lowest block of a lost cycle its leader, as the rule says.
  for (size_t i = 0; i < count_; ++i) {
    ScanBlock& candidate = blocks_[i];
    if (candidate.reach != Reach::kUnreached || candidate.leader != kNoLeader) continue;
    const auto leader = static_cast<uint32_t>(i);
    candidate.leader = leader;
    work_size_ = 0;
    work_[work_size_++] = leader;
    while (work_size_ > 0) {
      const ScanBlock& block = blocks_[work_[--work_size_]];
      heap_bytes_scanned_ += block.size;
      read_block(block, [&](const uint64_t* words, size_t count) {
        for (size_t w = 0; w < count; ++w) {
          bool start = false;
          const long found = find(words[w], start);
          if (found < 0 || static_cast<uint32_t>(found) == leader) continue;
          ScanBlock& target = blocks_[found];
          if (target.reach != Reach::kUnreached) continue;
          if (target.leader == kNoLeader) {
            target.leader = leader;
            work_[work_size_++] = static_cast<uint32_t>(found);
          } else if (target.leader == static_cast<uint32_t>(found)) {
            // An earlier leader this clique points to is not definite after all; its members
            // were grouped already, so it is not walked again.
            target.leader = leader;
          }
        }
      });
    }
  }
}

uint8_t ReachabilityMarker::kind(size_t i) const noexcept {
  const ScanBlock& block = blocks_[i];
  switch (block.reach) {
    case Reach::kReachable: return static_cast<uint8_t>(format::LeakKind::kReachable);
    case Reach::kPossible: return static_cast<uint8_t>(format::LeakKind::kPossible);
    case Reach::kUnreached: break;
  }
  return static_cast<uint8_t>(block.leader == i ? format::LeakKind::kDefinite : format::LeakKind::kIndirect);
}

}  // namespace heapscope::preload
