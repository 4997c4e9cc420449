// The agent's own loaded segments (see own_image.h).
#include "own_image.h"

#include <dlfcn.h>
#include <link.h>

namespace heapscope::preload {
namespace {

struct Search {
  uintptr_t base;
  ImageSegment* out;
  size_t capacity;
  bool writable_only;
  size_t found;
};

int visit_module(dl_phdr_info* info, size_t, void* context) noexcept {
  auto& search = *static_cast<Search*>(context);
  if (info->dlpi_addr != search.base) return 0;
  for (int i = 0; i < info->dlpi_phnum && search.found < search.capacity; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD || (search.writable_only && (segment.p_flags & PF_W) == 0)) continue;
    const uint64_t begin = info->dlpi_addr + segment.p_vaddr;
    search.out[search.found++] = {begin & ~uint64_t{4095}, (begin + segment.p_memsz + 4095) & ~uint64_t{4095}};
  }
  return 1;
}

}  // namespace

size_t find_own_segments(ImageSegment* out, size_t capacity, bool writable_only) noexcept {
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&find_own_segments), &self) == 0) return 0;
  Search search{reinterpret_cast<uintptr_t>(self.dli_fbase), out, capacity, writable_only, 0};
  dl_iterate_phdr(visit_module, &search);
  return search.found;
}

}  // namespace heapscope::preload
