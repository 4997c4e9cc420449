// Blocks against inaccessible pages (see guarded_pages.h). Not the default path: reached only
// with --guard-pages, through raw system calls (the program's interposed mmap never sees them).
#include "guarded_pages.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>

#include "block_header.h"
#include "raw_log.h"
#include "sys.h"

namespace heapscope::preload::guarded {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMaxTail = 32;
std::atomic<bool> warned{false};

// Each guarded block takes two of the kernel's memory areas (its pages, its guard page), and
// the process may have vm.max_map_count of them in all. Past that every mmap fails: the
// allocator's, the agent's tables', the leak scan's; so guarding stops with room left for them.
constexpr uint64_t kAreasKeptFree = 8192;
std::atomic<uint64_t> guarded_blocks{0};
std::atomic<uint64_t> block_budget{0};  // 0: not read yet

uint64_t read_block_budget() noexcept {
  uint64_t areas = 65530;  // the kernel's default
  const int fd = sys::open_file("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char text[32];
    const long got = sys::read_some(fd, text, sizeof(text) - 1);
    sys::close_file(fd);
    uint64_t value = 0;
    for (long i = 0; i < got && text[i] >= '0' && text[i] <= '9'; ++i) value = value * 10 + static_cast<uint64_t>(text[i] - '0');
    if (value > 0) areas = value;
  }
  return areas > 2 * kAreasKeptFree ? (areas - kAreasKeptFree) / 2 : areas / 4;
}

constexpr uint64_t round_up(uint64_t value, uint64_t to) noexcept { return (value + to - 1) & ~(to - 1); }

// Bytes from the mapping's start to the guard page, for a block whose user bytes start `front`
// bytes in: the user bytes end in the last data page, at most 15 (or alignment - 1) before it.
uint64_t data_bytes(uint64_t size, uint64_t front) noexcept { return round_up(front + size, kPage); }

HEAPSCOPE_COLD void warn_once(uint64_t guarded) noexcept {
  if (warned.exchange(true, std::memory_order_relaxed)) return;
  RawLine()
      .text("heapscope: --guard-pages: ")
      .number(static_cast<int64_t>(guarded))
      .text(" blocks have guard pages, as many as vm.max_map_count leaves room for (or no memory"
            " could be mapped); further blocks get the ordinary layout until some are freed")
      .emit();
}

}  // namespace

void* map_block(size_t size, size_t alignment, size_t& front) noexcept {
  const uint64_t align = alignment < block::kDefaultAlignment ? block::kDefaultAlignment : alignment;
  if (align > kPage || size > (uint64_t{1} << 46)) return nullptr;
  const uint64_t span = round_up(size == 0 ? 1 : size, align);  // user bytes and tail
  const uint64_t data = round_up(layout::kHeaderBytes + span, kPage);
  uint64_t budget = block_budget.load(std::memory_order_relaxed);
  if (budget == 0) {
    budget = read_block_budget();
    block_budget.store(budget, std::memory_order_relaxed);
  }
  const uint64_t guarded = guarded_blocks.fetch_add(1, std::memory_order_relaxed);
  if (guarded >= budget) {
    guarded_blocks.fetch_sub(1, std::memory_order_relaxed);
    warn_once(guarded);
    return nullptr;
  }
  auto* mapping = static_cast<char*>(
      sys::map_memory(nullptr, data + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE));
  if (mapping != nullptr && !sys::protect_memory(mapping + data, kPage, PROT_NONE)) {
    sys::unmap_memory(mapping, data + kPage);
    mapping = nullptr;
  }
  if (mapping == nullptr) {
    warn_once(guarded_blocks.fetch_sub(1, std::memory_order_relaxed) - 1);
    return nullptr;
  }
  front = data - span;
  return mapping + front;
}

size_t tail_bytes(uint64_t user, uint64_t size) noexcept {
  const uint64_t gap = round_up(user + size, kPage) - (user + size);
  return gap < kMaxTail ? gap : kMaxTail;
}

void retire(uint64_t user, uint64_t size, uint64_t front) noexcept {
  auto* mapping = reinterpret_cast<char*>(user - front);
  const uint64_t data = data_bytes(size, front);
  // MADV_DONTNEED first: a private anonymous page it drops reads back as zero, never as the
  // freed bytes, should the protection be lifted by anyone.
  const int saved_errno = errno;
  madvise(mapping, data, MADV_DONTNEED);
  errno = saved_errno;
  sys::protect_memory(mapping, data, PROT_NONE);
}

void unmap_block(uint64_t user, uint64_t size, uint64_t front) noexcept {
  sys::unmap_memory(reinterpret_cast<void*>(user - front), data_bytes(size, front) + kPage);
  guarded_blocks.fetch_sub(1, std::memory_order_relaxed);
}

Span span_of(uint64_t user, uint64_t size, uint64_t front) noexcept {
  return {user - front, user - front + data_bytes(size, front) + kPage};
}

}  // namespace heapscope::preload::guarded
