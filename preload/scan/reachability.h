// The classification half of a leak scan, in valgrind memcheck's sense: given the live blocks
// and the roots, decides for each block whether it is reachable, possibly lost, indirectly lost
// or definitely lost. It only reads memory it is given (roots) or proven to own (blocks), never
// allocates, and knows nothing about threads or /proc: leak_scan.cpp feeds it.
//
// The rules (docs/architecture.md, "Leak classification"):
//  - a pointer to a block's first byte is a start pointer; one to any later byte of it (not one
//    past its end) is an interior pointer; a zero-byte block is reached only by a start pointer;
//  - reachable: a chain of start pointers leads to the block from a root;
//  - possible: a chain leads to it from a root, and every chain has an interior pointer;
//  - lost blocks (no chain from a root) are then grouped: one that no other lost block points
//    to is definite, and every lost block it leads to (start or interior pointers) is indirect.
//    In a cycle of lost blocks that nothing outside points to, the block with the lowest address
//    is definite and the others indirect (memcheck's "clique leader" rule).
//  - some layouts make an interior pointer count as a start pointer. glibc's dynamic TLS vector
//    (dtv), which the thread control block points to one 16-byte entry in, with the entry count
//    in the block's first word: a thread's TLS vector is never "possibly lost" (it is in
//    memcheck's reports, for every thread alive or cached at exit). And memcheck's default leak
//    heuristics, for blocks C++ refers to by an interior pointer (docs/leak-check.md):
//    stdstring, length64, newarray, multipleinheritance.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload {

enum class Reach : uint8_t { kUnreached = 0, kPossible = 1, kReachable = 2 };

// A readable file mapping (code, constants, vtables), for the multipleinheritance heuristic.
struct FileRange {
  uint64_t begin;
  uint64_t end;
  bool executable;
};

// One live block as the scan sees it; the array is sorted by address, blocks do not overlap.
struct ScanBlock {
  uint64_t address;
  uint64_t size;
  uint32_t leader;   // lost blocks: index of the clique leader (itself: definite)
  Reach reach;
  uint8_t ignored;   // heapscope_ignore_object(): treated as a root
  uint8_t seen_lost; // an earlier scan found it lost already
  uint8_t unreadable_pages;  // part of it cannot be read (mark_unreadable): read by copy
};
static_assert(sizeof(ScanBlock) == 24);

class ReachabilityMarker {
 public:
  // `work` must hold 2 * count entries (each block enters the work list at most twice).
  ReachabilityMarker(ScanBlock* blocks, size_t count, uint32_t* work) noexcept;

  // [begin, end) cannot be read (a PROT_NONE guard page the program put inside a block: heap
  // coroutine stacks, JIT heaps). Blocks overlapping it are read by copy (process_vm_readv,
  // which fails where a read would fault) into `buffer` of `buffer_bytes` (a multiple of
  // 4096), their unreadable pages skipped. Call for every such range before any scan.
  void mark_unreadable(uint64_t begin, uint64_t end, char* buffer, size_t buffer_bytes) noexcept;
  // The process's readable file mappings, sorted by address (kept, not copied): with them, an
  // interior pointer at a vtable pointer whose block starts with one counts as a start pointer
  // (memcheck's multipleinheritance heuristic). Without, that heuristic never applies.
  void set_file_ranges(const FileRange* ranges, size_t count) noexcept {
    file_ranges_ = ranges;
    file_range_count_ = count;
  }
  // Root memory: every aligned 8-byte word in [begin, begin + bytes) that points into a block.
  void scan_root(const void* begin, size_t bytes) noexcept;
  // Root values that are not in memory (a thread's registers).
  void scan_values(const uint64_t* values, size_t count) noexcept;
  // Ignored blocks count as roots: what they point to is reachable.
  void add_ignored_blocks() noexcept;
  // Follows pointers inside reached blocks until nothing new is reached.
  void propagate() noexcept;
  // Groups the blocks nothing reached into definite leaders and indirect members.
  void group_lost() noexcept;

  // After group_lost(): the kind of block i, as format::LeakKind.
  uint8_t kind(size_t i) const noexcept;
  uint64_t heap_bytes_scanned() const noexcept { return heap_bytes_scanned_; }

  // Index of the block `value` points into, or -1; `start` says whether it is a start pointer.
  long find(uint64_t value, bool& start) const noexcept;

 private:
  static constexpr uint32_t kNoLeader = 0xffffffffu;
  void reach(uint64_t value, Reach via) noexcept;
  void scan_words(const uint64_t* words, size_t count, Reach via) noexcept;
  // Calls visit(words, count) over the block's readable content.
  template <typename Visit>
  void read_block(const ScanBlock& block, Visit visit) noexcept;
  bool first_word(const ScanBlock& block, uint64_t& word) noexcept;
  bool is_tls_vector_pointer(const ScanBlock& block, uint64_t value) noexcept;
  bool word_at(const ScanBlock& block, uint64_t offset, uint64_t& word) noexcept;
  bool heuristic_start(const ScanBlock& block, uint64_t value) noexcept;
  const FileRange* file_range(uint64_t address) const noexcept;
  bool is_vtable(uint64_t address) noexcept;

  ScanBlock* blocks_;
  size_t count_;
  uint32_t* work_;
  size_t work_size_ = 0;
  uint64_t lowest_ = 0;    // blocks_[0].address
  uint64_t highest_ = 0;   // one past the end of the last block (at least address + 1)
  uint64_t heap_bytes_scanned_ = 0;
  char* copy_buffer_ = nullptr;  // for blocks with unreadable pages
  size_t copy_bytes_ = 0;
  const FileRange* file_ranges_ = nullptr;
  size_t file_range_count_ = 0;
};

}  // namespace heapscope::preload
