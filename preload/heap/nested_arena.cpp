// Lock-free arena for nested (reentrant) allocation calls (see nested_arena.h). Hot path for
// signal handlers: atomics and mmap only.
#include "nested_arena.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>

#include "sys.h"

namespace heapscope::preload::nested {
namespace {

constexpr size_t kMinShift = 5;                   // 32-byte blocks
constexpr size_t kMaxShift = 20;                  // 1 MiB blocks
constexpr size_t kClasses = kMaxShift - kMinShift + 1;
// Address space is mapped a segment at a time, as nested calls need it: reserving all of it at
// once failed under `ulimit -v` (RLIMIT_AS counts reserved space), and then every allocation
// in a signal handler returned NULL. Segments are never unmapped.
constexpr size_t kSegmentBytes = size_t{64} << 20;
constexpr size_t kMaxSegments = 64;                // 4 GiB in all
constexpr uint64_t kPointerMask = (uint64_t{1} << 48) - 1;

// Sits right before the user pointer; `offset` leads back to the block start. A free block's
// free-list link is its first word, which is `link` when the header starts the block (the
// usual offset of 16): never size_class or offset_state, so a second free of the block still
// reads them, finds it free (kFreed, set by compare-and-swap) and changes nothing.
struct Header {
  uint64_t link;
  uint32_t size_class;                 // log2 of the block size
  std::atomic<uint32_t> offset_state;  // user - block start, | kFreed once released
};
static_assert(sizeof(Header) == 16);
constexpr uint32_t kFreed = 0x80000000u;

std::atomic<uintptr_t> segments[kMaxSegments];       // start of each, 0 until mapped
std::atomic<uintptr_t> segment_used[kMaxSegments];   // bytes carved from each
std::atomic<size_t> segment_count{0};                // segments [0, count) are mapped
std::atomic<uint64_t> free_heads[kClasses];  // tag:16 | pointer:48

// Maps segment `count` unless another thread did. False when no segment can be added.
bool add_segment(size_t count) noexcept {
  if (count >= kMaxSegments) return false;
  void* mapped = sys::map_memory(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  if (mapped == nullptr) return segment_count.load(std::memory_order_acquire) != count;  // someone else's may be there
  uintptr_t expected = 0;
  if (!segments[count].compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(mapped), std::memory_order_acq_rel))
    sys::unmap_memory(mapped, kSegmentBytes);  // another thread won the race
  size_t current = count;
  segment_count.compare_exchange_strong(current, count + 1, std::memory_order_acq_rel);
  return true;
}

void* pop(size_t index) noexcept {
  uint64_t head = free_heads[index].load(std::memory_order_acquire);
  for (;;) {
    const uintptr_t block = head & kPointerMask;
    if (block == 0) return nullptr;
    // The block may be popped and reused concurrently; reading its link is still safe (the
    // segments are never unmapped; an atomic read, so no data race either) and the tag makes a
    // stale CAS fail.
    const uint64_t next = __atomic_load_n(reinterpret_cast<const uint64_t*>(block), __ATOMIC_RELAXED);
    const uint64_t tagged = ((head >> 48) + 1) << 48 | (next & kPointerMask);
    if (free_heads[index].compare_exchange_weak(head, tagged, std::memory_order_acq_rel))
      return reinterpret_cast<void*>(block);
  }
}

void push(size_t index, void* block) noexcept {
  uint64_t head = free_heads[index].load(std::memory_order_acquire);
  for (;;) {
    __atomic_store_n(reinterpret_cast<uint64_t*>(block), head & kPointerMask, __ATOMIC_RELAXED);
    const uint64_t tagged = ((head >> 48) + 1) << 48 | reinterpret_cast<uint64_t>(block);
    if (free_heads[index].compare_exchange_weak(head, tagged, std::memory_order_acq_rel)) return;
  }
}

void* carve(size_t shift) noexcept {
  const uintptr_t block_bytes = uintptr_t{1} << shift;
  for (;;) {
    const size_t count = segment_count.load(std::memory_order_acquire);
    if (count > 0) {
      const size_t index = count - 1;
      const uintptr_t start = segments[index].load(std::memory_order_acquire);
      uintptr_t used = segment_used[index].load(std::memory_order_relaxed);
      for (;;) {
        const uintptr_t offset = ((start + used + block_bytes - 1) & ~(block_bytes - 1)) - start;
        if (offset + block_bytes > kSegmentBytes) break;  // full: the next segment
        if (segment_used[index].compare_exchange_weak(used, offset + block_bytes, std::memory_order_relaxed))
          return reinterpret_cast<void*>(start + offset);
      }
    }
    if (!add_segment(count)) return nullptr;
  }
}

Header* header_of(const void* pointer) noexcept {
  return reinterpret_cast<Header*>(const_cast<char*>(static_cast<const char*>(pointer)) - sizeof(Header));
}

// The header of a pointer inside the arena, if it is one allocate() handed out: a class in
// range, an offset it could have used, a block start aligned as carve() aligns blocks. A
// program that wrote before its block, or frees an address inside one, gets nullptr.
Header* valid_header(const void* pointer, uint32_t& offset) noexcept {
  Header* header = header_of(pointer);
  const uint32_t shift = header->size_class;
  offset = header->offset_state.load(std::memory_order_acquire) & ~kFreed;
  if (shift < kMinShift || shift > kMaxShift || offset < sizeof(Header) || offset > 4096 ||
      (offset & (offset - 1)) != 0 || offset >= (uint32_t{1} << shift))
    return nullptr;
  const uintptr_t block = reinterpret_cast<uintptr_t>(pointer) - offset;
  if ((block & ((uintptr_t{1} << shift) - 1)) != 0) return nullptr;
  return header;
}
}  // namespace

bool owns(const void* pointer) noexcept {
  // On every free: the first segment (usually the only one) in one comparison.
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  const uintptr_t first = segments[0].load(std::memory_order_acquire);
  if (first != 0 && address - first < kSegmentBytes) return true;
  const size_t count = segment_count.load(std::memory_order_acquire);
  for (size_t i = 1; i < count; ++i) {
    const uintptr_t start = segments[i].load(std::memory_order_acquire);
    if (start != 0 && address - start < kSegmentBytes) return true;
  }
  return false;
}

void* allocate(size_t size, size_t alignment, bool zeroed) noexcept {
  if (alignment > 4096) return nullptr;
  const size_t offset = alignment > sizeof(Header) ? alignment : sizeof(Header);
  if (size > (size_t{1} << kMaxShift) - offset) return nullptr;  // nested callers stay small
  size_t shift = kMinShift;
  while ((size_t{1} << shift) < size + offset) ++shift;
  void* block = pop(shift - kMinShift);
  if (block == nullptr) block = carve(shift);
  if (block == nullptr) return nullptr;
  char* user = static_cast<char*>(block) + offset;
  auto* header = header_of(user);
  header->size_class = static_cast<uint32_t>(shift);
  header->offset_state.store(static_cast<uint32_t>(offset), std::memory_order_release);
  if (zeroed) memset(user, 0, size);
  return user;
}

Release release(void* pointer) noexcept {
  if (!owns(pointer)) return Release::kNotOurs;
  uint32_t offset = 0;
  Header* header = valid_header(pointer, offset);
  if (header == nullptr) return Release::kInvalid;
  // Only one of two racing frees of a block may put it on the free list.
  uint32_t expected = offset;
  if (!header->offset_state.compare_exchange_strong(expected, offset | kFreed, std::memory_order_acq_rel))
    return Release::kAlreadyFree;
  push(header->size_class - kMinShift, static_cast<char*>(pointer) - offset);
  return Release::kReleased;
}

size_t usable_size(const void* pointer) noexcept {
  if (!owns(pointer)) return 0;
  uint32_t offset = 0;
  const Header* header = valid_header(pointer, offset);
  return header == nullptr ? 0 : (size_t{1} << header->size_class) - offset;
}

void* reallocate(void* pointer, size_t size) noexcept {
  void* fresh = allocate(size, 16, false);
  if (fresh == nullptr) return nullptr;
  if (pointer != nullptr) {
    const size_t old_size = usable_size(pointer);
    memcpy(fresh, pointer, old_size < size ? old_size : size);
    (void)release(pointer);
  }
  return fresh;
}

}  // namespace heapscope::preload::nested
