// Raw system services for the agent (see sys.h). Uses only async-signal-safe libc wrappers.
#include "sys.h"

#include <atomic>

#include <dlfcn.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char** environ;

namespace heapscope::preload::sys {
namespace {
// initial-exec: a general-dynamic TLS access may call __tls_get_addr, which may call malloc.
[[gnu::tls_model("initial-exec")]] thread_local uint32_t cached_thread_id = 0;
}  // namespace

uint32_t thread_id() noexcept {
  if (cached_thread_id == 0) cached_thread_id = static_cast<uint32_t>(syscall(SYS_gettid));
  return cached_thread_id;
}

void forget_thread_id() noexcept { cached_thread_id = 0; }

uint64_t now_ns() noexcept {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
}

namespace {
using ClockGettime = int (*)(clockid_t, timespec*);
ClockGettime vdso_clock_gettime = nullptr;
}  // namespace

void init_clock() noexcept {
  // glibc lists the vDSO among the loaded objects under this name; RTLD_NOLOAD only looks it up.
  void* vdso = dlopen("linux-vdso.so.1", RTLD_NOLOAD | RTLD_LAZY);
  if (vdso == nullptr) return;
  auto found = reinterpret_cast<ClockGettime>(dlsym(vdso, "__vdso_clock_gettime"));
  timespec probe{};
  if (found != nullptr && found(CLOCK_MONOTONIC_COARSE, &probe) == 0) vdso_clock_gettime = found;
}

uint64_t coarse_now_ns() noexcept {
  timespec now{};
  if (vdso_clock_gettime != nullptr) vdso_clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  else clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
}

namespace {
// glibc's syscall() is no cancellation point; it sets errno on failure, which we put back.
template <typename... Args>
long quiet_syscall(long number, Args... arguments) noexcept {
  const int saved_errno = errno;
  long result = syscall(number, arguments...);
  if (result < 0) result = -errno;
  errno = saved_errno;
  return result;
}
}  // namespace

void sleep_ns(uint64_t ns) noexcept {
  timespec pause{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
  quiet_syscall(SYS_nanosleep, &pause, nullptr);
}

bool process_alive(int pid) noexcept { return pid > 0 && quiet_syscall(SYS_kill, pid, 0) != -ESRCH; }

int open_file(const char* path, int flags, int mode) noexcept {
  const long fd = quiet_syscall(SYS_openat, AT_FDCWD, path, flags, mode);
  return fd < 0 ? -1 : static_cast<int>(fd);
}

long read_some(int fd, void* buffer, size_t bytes) noexcept {
  for (;;) {
    const long got = quiet_syscall(SYS_read, fd, buffer, bytes);
    if (got != -EINTR) return got < 0 ? -1 : got;
  }
}

long pread_some(int fd, void* buffer, size_t bytes, uint64_t offset) noexcept {
  for (;;) {
    const long got = quiet_syscall(SYS_pread64, fd, buffer, bytes, offset);
    if (got != -EINTR) return got < 0 ? -1 : got;
  }
}

void close_file(int fd) noexcept { quiet_syscall(SYS_close, fd); }

namespace {
// The agent's mappings: lock-free slots (a slot is claimed by CAS on `begin`), since fork() or
// a signal may interrupt a thread anywhere. A few hundred are live at once (index shards,
// depot levels, quarantine, a scan's arrays); past the capacity a mapping goes unlisted, which
// only costs a scan some reading.
struct AgentMapping {
  std::atomic<uint64_t> begin;
  std::atomic<uint64_t> end;
};
constexpr size_t kAgentMappings = 2048;
constinit AgentMapping agent_mappings[kAgentMappings] = {};
std::atomic<uint64_t> unlisted{0};  // mappings the full list could not take, still mapped

void remember_mapping(uint64_t begin, uint64_t end) noexcept {
  for (AgentMapping& slot : agent_mappings) {
    uint64_t expected = 0;
    if (slot.begin.load(std::memory_order_relaxed) == 0 &&
        slot.begin.compare_exchange_strong(expected, begin, std::memory_order_acq_rel)) {
      slot.end.store(end, std::memory_order_release);
      return;
    }
  }
  unlisted.fetch_add(1, std::memory_order_relaxed);
}

void forget_mapping(uint64_t begin) noexcept {
  for (AgentMapping& slot : agent_mappings) {
    if (slot.begin.load(std::memory_order_acquire) != begin) continue;
    slot.end.store(0, std::memory_order_relaxed);
    slot.begin.store(0, std::memory_order_release);
    return;
  }
  unlisted.fetch_sub(1, std::memory_order_relaxed);  // it was one the list could not take
}
}  // namespace

// Under ThreadSanitizer (tests/CMakeLists.txt: preload_tsan_test) the agent's code is linked
// into a test, not preloaded, and TSan must see mappings come and go: it forgets the accesses
// to an unmapped range by intercepting munmap, and reported a table mapped where another had
// been unmapped as racing with it.
#if defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerSeesMappings = true;
#else
constexpr bool kSanitizerSeesMappings = false;
#endif

void* map_memory(void* hint, size_t bytes, int protection, int flags, int fd, uint64_t offset) noexcept {
  const int saved_errno = errno;
  const long address = kSanitizerSeesMappings
                           ? reinterpret_cast<long>(mmap(hint, bytes, protection, flags, fd, static_cast<off_t>(offset)))
                           : syscall(SYS_mmap, hint, bytes, protection, flags, fd, offset);
  errno = saved_errno;
  // The kernel returns -4095..-1 for errors; syscall() turned that into -1 and errno, as mmap()
  // returns MAP_FAILED, which is -1.
  return address == -1 ? nullptr : reinterpret_cast<void*>(address);
}

bool unmap_memory(void* address, size_t bytes) noexcept {
  const int saved_errno = errno;
  const long result = kSanitizerSeesMappings ? munmap(address, bytes) : syscall(SYS_munmap, address, bytes);
  errno = saved_errno;
  return result == 0;
}

bool protect_memory(void* address, size_t bytes, int protection) noexcept {
  const int saved_errno = errno;
  const long result = syscall(SYS_mprotect, address, bytes, protection);
  errno = saved_errno;
  return result == 0;
}

void* map_anonymous(size_t bytes) noexcept {
  void* address = map_memory(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  if (address == nullptr) return nullptr;
  const auto begin = reinterpret_cast<uint64_t>(address);
  remember_mapping(begin, begin + bytes);
  return address;
}

void unmap(void* address, size_t bytes) noexcept {
  if (address == nullptr) return;
  forget_mapping(reinterpret_cast<uint64_t>(address));
  unmap_memory(address, bytes);
}

size_t agent_mapping_count() noexcept {
  size_t count = 0;
  for (const AgentMapping& slot : agent_mappings) count += slot.begin.load(std::memory_order_relaxed) != 0 ? 1 : 0;
  return count;
}

uint64_t unlisted_mappings() noexcept { return unlisted.load(std::memory_order_relaxed); }

void* map_unlisted(size_t bytes) noexcept {
  return map_memory(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
}

void unmap_unlisted(void* address, size_t bytes) noexcept {
  if (address != nullptr) unmap_memory(address, bytes);
}

void for_each_agent_mapping(void (*visit)(uint64_t, uint64_t, void*), void* context) noexcept {
  for (const AgentMapping& slot : agent_mappings) {
    const uint64_t begin = slot.begin.load(std::memory_order_acquire);
    const uint64_t end = slot.end.load(std::memory_order_acquire);
    if (begin != 0 && end > begin) visit(begin, end, context);
  }
}

void write_all(int fd, const char* data, size_t bytes) noexcept {
  while (bytes > 0) {
    const long written = quiet_syscall(SYS_write, fd, data, bytes);
    if (written < 0) {
      if (written == -EINTR) continue;
      return;
    }
    data += written;
    bytes -= static_cast<size_t>(written);
  }
}

size_t string_length(const char* text) noexcept {
  size_t length = 0;
  while (text[length] != '\0') ++length;
  return length;
}

bool string_equal(const char* a, const char* b, size_t bytes) noexcept {
  for (size_t i = 0; i < bytes; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

const char* get_env(const char* name) noexcept {
  if (environ == nullptr) return nullptr;
  const size_t length = string_length(name);
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (string_equal(*entry, name, length) && (*entry)[length] == '=') return *entry + length + 1;
  }
  return nullptr;
}

}  // namespace heapscope::preload::sys
