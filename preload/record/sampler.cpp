// RSS and allocator statistics samples (see sampler.h).
#include "sampler.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>

#include "agent_memory.h"
#include "build_mode.h"
#include "heapscope/event_format.h"
#include "ring_writer.h"
#include "sys.h"

namespace heapscope::preload {
namespace {

using Mallinfo2Fn = struct mallinfo2 (*)();

Mallinfo2Fn mallinfo2_fn = nullptr;
uint64_t (*quarantine_hold)() noexcept = nullptr;
uint64_t interval_ns = 0;
std::atomic<uint64_t> next_sample_ns{0};
uint64_t page_size = 4096;

// Resident pages from /proc/self/statm ("size resident shared ..."): open/read/close only.
uint64_t resident_bytes() noexcept {
  const int fd = sys::open_file("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[128];
  const long got = sys::read_some(fd, text, sizeof(text) - 1);
  sys::close_file(fd);
  if (got <= 0) return 0;
  text[got] = '\0';
  const char* p = text;
  while (*p != ' ' && *p != '\0') ++p;  // skip "size"
  while (*p == ' ') ++p;
  uint64_t pages = 0;
  for (; *p >= '0' && *p <= '9'; ++p) pages = pages * 10 + static_cast<uint64_t>(*p - '0');
  return pages * page_size;
}

}  // namespace

void init_sampler(uint32_t interval_ms, uint64_t (*quarantine_bytes)() noexcept) noexcept {
  interval_ns = uint64_t{interval_ms} * 1000000;
  quarantine_hold = quarantine_bytes;
  init_agent_memory();
  page_size = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  // mallinfo2 describes glibc's arenas: only meaningful when glibc's malloc is the one we wrap
  // (not jemalloc, tcmalloc or mimalloc, whose own statistics it would not see).
  void* real_malloc = dlsym(RTLD_NEXT, "malloc");
  Dl_info where{};
  if (real_malloc != nullptr && dladdr(real_malloc, &where) != 0 && where.dli_fname != nullptr) {
    const char* name = where.dli_fname;
    const size_t length = sys::string_length(name);
    const char* kLibc = "/libc.so.6";
    const size_t libc_length = sys::string_length(kLibc);
    if (length >= libc_length && sys::string_equal(name + length - libc_length, kLibc, libc_length))
      mallinfo2_fn = reinterpret_cast<Mallinfo2Fn>(dlsym(RTLD_NEXT, "mallinfo2"));
  }
}

// Everything is read before the record is reserved: a reservation is never held across a
// system call (a thread that died there, or blocked, would hold up every record after it).
HEAPSCOPE_COLD void sample_now(RingWriter& ring) noexcept {
  const uint64_t rss = resident_bytes();
  struct mallinfo2 info {};
  if (mallinfo2_fn != nullptr) info = mallinfo2_fn();
  auto* header = ring.reserve(sizeof(format::SampleEvent));
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::SampleEvent*>(header);
  record->rss_bytes = rss;
  record->arena = info.arena;
  record->ordblks = info.ordblks;
  record->hblks = info.hblks;
  record->hblkhd = info.hblkhd;
  record->uordblks = info.uordblks;
  record->fordblks = info.fordblks;
  record->keepcost = info.keepcost;
  if (mallinfo2_fn != nullptr) header->flags = format::kSampleHasMallinfo;
  RingWriter::commit(header, format::EventKind::kSample);

  const format::AgentMemoryEvent measured =
      measure_agent_memory(ring, quarantine_hold != nullptr ? quarantine_hold() : 0);
  header = ring.reserve(sizeof(format::AgentMemoryEvent));
  if (header == nullptr) return;
  auto* share = reinterpret_cast<format::AgentMemoryEvent*>(header);
  share->table_bytes = measured.table_bytes;
  share->ring_bytes = measured.ring_bytes;
  share->image_bytes = measured.image_bytes;
  share->quarantine_bytes = measured.quarantine_bytes;
  header->flags = kAttachBuild ? 0 : format::kAgentMemoryBlockHeaders;
  RingWriter::commit(header, format::EventKind::kAgentMemory);
}

HEAPSCOPE_HOT void maybe_sample(RingWriter& ring, uint64_t now_ns) noexcept {
  if (interval_ns == 0) return;
  uint64_t due = next_sample_ns.load(std::memory_order_relaxed);
  if (now_ns < due) return;
  // One thread wins the interval; the others carry on.
  if (!next_sample_ns.compare_exchange_strong(due, now_ns + interval_ns, std::memory_order_relaxed)) return;
  sample_now(ring);
}

}  // namespace heapscope::preload
