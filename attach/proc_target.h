// What /proc tells about a process before heapscope touches it: its state, its tracer, its
// threads and what each is blocked in, and its mappings. Read-only: nothing here stops or
// changes the target.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace heapscope::attach {

struct Mapping {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t offset = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  std::string path;  // empty for anonymous memory; "[stack]", "[vdso]", ... for the kernel's
};

struct ProcessStatus {
  std::string name;   // Name:
  char state = '?';   // first letter of State: R, S, D, T, t, Z, X
  int tracer_pid = 0; // TracerPid:
  int uid = -1;       // real uid
  int seccomp = 0;    // Seccomp: 0 none, 1 strict, 2 filter
};

// A thread and the system call it is blocked in, from /proc/PID/task/TID/syscall.
struct ThreadSyscall {
  int tid = 0;
  bool running = false;        // "running": on a CPU, in no system call
  long number = -1;            // system call number, -1 when blocked outside one
  uint64_t stack_pointer = 0;  // when not running
  uint64_t pc = 0;
};

// Throws std::system_error (ENOENT when the process is gone).
ProcessStatus read_status(int pid);
std::vector<Mapping> read_maps(int pid);
std::vector<int> list_threads(int pid);
// nullopt when the thread ended meanwhile or the kernel refuses (no ptrace access).
std::optional<ThreadSyscall> read_thread_syscall(int pid, int tid);

// The mapping holding `address`, or nullptr.
const Mapping* mapping_of(const std::vector<Mapping>& maps, uint64_t address);

// A loaded object found in the maps: its path, its load bias (address of file offset 0) and
// the range of its executable segments.
struct LoadedObject {
  std::string path;
  uint64_t base = 0;
  uint64_t text_begin = 0;
  uint64_t text_end = 0;
};

// The first mapped object whose file name (after the last '/') starts with `prefix`, e.g.
// "libc.so." or "ld-linux".
std::optional<LoadedObject> find_object(const std::vector<Mapping>& maps, const std::string& prefix);

}  // namespace heapscope::attach
