// Module announcements for out-of-process symbolization (see module_map.h).
#include "module_map.h"

#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <cstring>

#include "heapscope/event_format.h"
#include "ring_writer.h"
#include "self_maps.h"
#include "sys.h"

namespace heapscope::preload {
namespace {

// Copies the NT_GNU_BUILD_ID of a loaded object into `out`; returns its length (0 if none).
size_t find_build_id(const dl_phdr_info* info, uint8_t (&out)[32]) noexcept {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_NOTE) continue;
    const char* note = reinterpret_cast<const char*>(info->dlpi_addr + segment.p_vaddr);
    const char* end = note + segment.p_memsz;
    while (note + sizeof(ElfW(Nhdr)) <= end) {
      const auto* header = reinterpret_cast<const ElfW(Nhdr)*>(note);
      const char* name = note + sizeof(ElfW(Nhdr));
      const char* desc = name + ((header->n_namesz + 3) & ~3u);
      if (header->n_type == NT_GNU_BUILD_ID && header->n_namesz == 4 &&
          memcmp(name, "GNU", 4) == 0) {
        const size_t length = header->n_descsz < sizeof(out) ? header->n_descsz : sizeof(out);
        memcpy(out, desc, length);
        return length;
      }
      note = desc + ((header->n_descsz + 3) & ~3u);
    }
  }
  return 0;
}

// The absolute path of the file mapped at `address`, from /proc/self/maps, into `out`; its
// length, or 0. For modules the loader names by a relative path (dlopen("plugins/x.so"), a
// relative LD_LIBRARY_PATH): the symbolizer, in another process with another working
// directory, could not open them.
size_t mapped_file_path(uint64_t address, char (&out)[format::kMaxPath]) noexcept {
  constexpr size_t kMapsBuffer = 64 * 1024;
  char* buffer = static_cast<char*>(sys::map_anonymous(kMapsBuffer));
  if (buffer == nullptr) return 0;
  size_t length = 0;
  for_each_mapping(buffer, kMapsBuffer, [&](const Mapping& mapping) {
    if (length != 0 || address < mapping.begin || address >= mapping.end || !mapping.file_backed) return;
    if (mapping.path_length == 0 || mapping.path[0] != '/' || mapping.path_length > sizeof(out)) return;
    memcpy(out, mapping.path, mapping.path_length);
    length = mapping.path_length;
  });
  sys::unmap(buffer, kMapsBuffer);
  return length;
}

}  // namespace

void ModuleMap::keep_copy(Range& range, const void* record, uint32_t bytes) noexcept {
  range.record_bytes = 0;
  if (records_ == nullptr) records_ = static_cast<char*>(sys::map_anonymous(kRecordBytes));
  if (records_ == nullptr || records_used_ + bytes > kRecordBytes) return;
  memcpy(records_ + records_used_, record, bytes);
  range.record_offset = static_cast<uint32_t>(records_used_);
  range.record_bytes = bytes;
  records_used_ += bytes;
}

void ModuleMap::reset() noexcept {
  SpinLockGuard hold(lock_);
  count_ = 0;
  records_used_ = 0;
}

void ModuleMap::release() noexcept {
  reset();
  SpinLockGuard hold(lock_);
  sys::unmap(records_, kRecordBytes);
  records_ = nullptr;
}

void ModuleMap::announce_again(RingWriter& ring) noexcept {
  SpinLockGuard hold(lock_);
  size_t kept = 0;
  for (size_t i = 0; i < count_; ++i) {
    const Range range = ranges_[i];
    if (range.record_bytes == 0) continue;  // not copied: the loader is asked when it is needed
    auto* header = ring.reserve(range.record_bytes);
    if (header == nullptr) continue;
    // Everything after the header the ring filled in (size, flags, time) is the module's.
    memcpy(reinterpret_cast<char*>(header) + sizeof(format::EventHeader),
           records_ + range.record_offset + sizeof(format::EventHeader), range.record_bytes - sizeof(format::EventHeader));
    RingWriter::commit(header, format::EventKind::kModule);
    ranges_[kept++] = range;
  }
  count_ = kept;
}

bool ModuleMap::known(uint64_t start, uint64_t end, uint64_t bias) const noexcept {
  for (size_t i = 0; i < count_; ++i)
    if (ranges_[i].start == start && ranges_[i].end == end && ranges_[i].bias == bias) return true;
  return false;
}

bool ModuleMap::covers(const uint64_t* frames, size_t count) noexcept {
  SpinLockGuard hold(lock_);
  for (size_t f = 0; f < count; ++f) {
    bool inside = false;
    for (size_t i = 0; i < count_ && !inside; ++i)
      inside = frames[f] >= ranges_[i].start && frames[f] < ranges_[i].end;
    if (!inside) return false;
  }
  return true;
}

namespace {
// The lowest and one-past-highest address of a loaded object's PT_LOAD segments.
void load_range(const dl_phdr_info* info, uint64_t& start, uint64_t& end) noexcept {
  start = UINT64_MAX;
  end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD) continue;
    const uint64_t low = info->dlpi_addr + segment.p_vaddr;
    if (low < start) start = low;
    if (low + segment.p_memsz > end) end = low + segment.p_memsz;
  }
}
}  // namespace

void ModuleMap::add(dl_phdr_info* info) noexcept {
  uint64_t start = 0;
  uint64_t end = 0;
  load_range(info, start, end);
  if (start >= end || known(start, end, info->dlpi_addr)) return;
  Range* range = count_ < kMaxModules ? &ranges_[count_++] : nullptr;
  if (range != nullptr) *range = Range{start, end, info->dlpi_addr, true, 0, 0};

  char exe[format::kMaxPath];
  const char* path = info->dlpi_name;
  size_t path_length = path != nullptr ? sys::string_length(path) : 0;
  if (path_length == 0) {  // the main program is reported with an empty name
    const ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe));
    path = exe;
    path_length = length > 0 ? static_cast<size_t>(length) : 0;
  } else if (path[0] != '/' && !(path_length > 10 && sys::string_equal(path, "linux-vdso", 10))) {
    const size_t length = mapped_file_path(start, exe);
    if (length != 0) {
      path = exe;
      path_length = length;
    }
  }
  if (path_length > format::kMaxPath) path_length = format::kMaxPath;

  const uint32_t size = format::record_size(sizeof(format::ModuleEvent) + path_length);
  auto* header = ring_->reserve(size);
  if (header == nullptr) return;
  auto* record = reinterpret_cast<format::ModuleEvent*>(header);
  record->load_bias = info->dlpi_addr;
  record->start = start;
  record->end = end;
  record->path_bytes = static_cast<uint32_t>(path_length);
  memset(record->build_id, 0, sizeof(record->build_id));
  record->build_id_bytes = static_cast<uint32_t>(find_build_id(info, record->build_id));
  memcpy(reinterpret_cast<char*>(record + 1), path, path_length);
  if (range != nullptr) keep_copy(*range, record, size);
  RingWriter::commit(header, format::EventKind::kModule);
}

int ModuleMap::visit(dl_phdr_info* info, size_t, void* self) noexcept {
  auto& map = *static_cast<ModuleMap*>(self);
  SpinLockGuard hold(map.lock_);
  map.add(info);
  return 0;
}

int ModuleMap::mark_present(dl_phdr_info* info, size_t, void* self) noexcept {
  auto& map = *static_cast<ModuleMap*>(self);
  uint64_t start = 0;
  uint64_t end = 0;
  load_range(info, start, end);
  SpinLockGuard hold(map.lock_);
  for (size_t i = 0; i < map.count_; ++i) {
    Range& range = map.ranges_[i];
    if (range.start == start && range.end == end && range.bias == info->dlpi_addr) range.present = true;
  }
  return 0;
}

void ModuleMap::forget_unloaded(RingWriter& ring) noexcept {
  // As in refresh(): our lock is never held while the loader's is awaited. A module a
  // concurrent refresh adds meanwhile is born present.
  {
    SpinLockGuard hold(lock_);
    for (size_t i = 0; i < count_; ++i) ranges_[i].present = false;
  }
  dl_iterate_phdr(mark_present, this);
  SpinLockGuard hold(lock_);
  for (size_t i = 0; i < count_;) {
    const Range gone = ranges_[i];
    if (gone.present) {
      ++i;
      continue;
    }
    ranges_[i] = ranges_[--count_];
    auto* header = ring.reserve(sizeof(format::ModuleUnloadEvent));
    if (header == nullptr) continue;
    auto* record = reinterpret_cast<format::ModuleUnloadEvent*>(header);
    record->load_bias = gone.bias;
    record->start = gone.start;
    record->end = gone.end;
    RingWriter::commit(header, format::EventKind::kModuleUnload);
  }
}

void ModuleMap::refresh(RingWriter& ring) noexcept {
  // Two threads refreshing at once both pass the same ring: only ever the agent's one.
  ring_ = &ring;
  dl_iterate_phdr(visit, this);
}

}  // namespace heapscope::preload
