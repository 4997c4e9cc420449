// Session and collector for the agent preloaded alone (see standalone.h).
#include "standalone.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heapscope/event_format.h"
#include "raw_log.h"
#include "sys.h"

extern char** environ;
extern char* program_invocation_short_name;

namespace heapscope::preload::standalone {
namespace {

constexpr size_t kPath = 4096;
char directory_buffer[kPath];
char trace_buffer[kPath];
char collector_buffer[kPath];

// Appends `text` to `out` (capacity kPath). False if it does not fit.
bool append(char* out, const char* text) noexcept {
  size_t at = sys::string_length(out);
  for (; *text != '\0'; ++text) {
    if (at + 1 >= kPath) return false;
    out[at++] = *text;
  }
  out[at] = '\0';
  return true;
}

bool append_number(char* out, uint64_t value) noexcept {
  char digits[24];
  size_t length = 0;
  do {
    digits[length++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  char text[24];
  for (size_t i = 0; i < length; ++i) text[i] = digits[length - 1 - i];
  text[length] = '\0';
  return append(out, text);
}

const char* temporary_directory() noexcept {
  const char* base = sys::get_env("TMPDIR");
  return base != nullptr && *base != '\0' ? base : "/tmp";
}

// Where the session directory goes (see format::kRingDirEnv); as the collector's
// ring_base_directory (analyzer/collector.cpp), which this layer cannot share.
const char* ring_base_directory() noexcept {
  const char* chosen = sys::get_env(format::kRingDirEnv);
  if (chosen != nullptr && *chosen != '\0') return chosen;
  if (access(format::kSharedMemoryDir, W_OK | X_OK) == 0) return format::kSharedMemoryDir;
  return temporary_directory();
}

// Where this code was loaded from: libheapscope.so, or a program linking the agent's code (its
// unit tests), which never starts a collector.
const char* own_file() noexcept {
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&own_file), &self) == 0 || self.dli_fname == nullptr) return nullptr;
  constexpr const char* kLibrary = "/libheapscope.so";
  const size_t length = sys::string_length(self.dli_fname), suffix = sys::string_length(kLibrary);
  if (length < suffix || !sys::string_equal(self.dli_fname + length - suffix, kLibrary, suffix)) return nullptr;
  return self.dli_fname;
}

// heapscope beside the library: in a build tree <build>/lib/libheapscope.so ->
// <build>/bin/heapscope; installed, the path from the agents' directory to the binaries'
// (HEAPSCOPE_BINDIR_FROM_AGENT_DIR, from CMakeLists.txt: ../../bin under <prefix>/lib/heapscope).
bool collector_at(const char* library, const char* relative) noexcept {
  collector_buffer[0] = '\0';
  if (!append(collector_buffer, library)) return false;
  char* slash = collector_buffer + sys::string_length(collector_buffer);
  while (slash > collector_buffer && *slash != '/') --slash;
  *slash = '\0';
  return append(collector_buffer, relative) && access(collector_buffer, X_OK) == 0;
}

bool find_collector(const char* library) noexcept {
  if (collector_at(library, "/../bin/heapscope")) return true;
#ifdef HEAPSCOPE_BINDIR_FROM_AGENT_DIR
  return collector_at(library, "/" HEAPSCOPE_BINDIR_FROM_AGENT_DIR "/heapscope");
#else
  return false;
#endif
}

// <output_dir, or cwd, or TMPDIR>/heapscope.<program>.<pid>.trace.zst, numbered if taken (as
// `heapscope run`). Every child of a program preloaded by hand writes where output_dir says,
// not into whatever directory it runs in.
bool choose_trace_path(const char* output_dir, size_t output_dir_length) noexcept {
  char directory[kPath];
  directory[0] = '\0';
  if (output_dir != nullptr && output_dir_length > 0 && output_dir_length < sizeof(directory)) {
    for (size_t i = 0; i < output_dir_length; ++i) directory[i] = output_dir[i];
    directory[output_dir_length] = '\0';
    if (access(directory, W_OK | X_OK) != 0) {
      RawLine().text("heapscope: output_dir ").text(directory).text(" is not a writable directory; the trace goes "
                                                                   "to the working directory").emit();
      directory[0] = '\0';
    }
  }
  if (directory[0] == '\0' && (getcwd(directory, sizeof(directory)) == nullptr || access(directory, W_OK | X_OK) != 0)) {
    directory[0] = '\0';
    if (!append(directory, temporary_directory())) return false;
  }
  char program[256] = "program";
  if (program_invocation_short_name != nullptr && *program_invocation_short_name != '\0') {
    size_t i = 0;
    for (const char* c = program_invocation_short_name; *c != '\0' && i + 1 < sizeof(program); ++c, ++i) {
      const bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                         *c == '-' || *c == '_' || *c == '.';
      program[i] = plain ? *c : '_';
    }
    program[i] = '\0';
  }
  for (int image = 0; image < 100; ++image) {
    trace_buffer[0] = '\0';
    bool fits = append(trace_buffer, directory) && append(trace_buffer, "/heapscope.") &&
                append(trace_buffer, program) && append(trace_buffer, ".") && append_number(trace_buffer, getpid());
    if (image > 0) fits = fits && append(trace_buffer, ".") && append_number(trace_buffer, image);
    if (!fits || !append(trace_buffer, ".trace.zst")) return false;
    if (access(trace_buffer, F_OK) != 0) return true;
  }
  return false;
}

// Starts the collector as a grandchild: the middle process exits at once, so the collector
// is nobody's child of ours. Both are created with exit signal 0 (no SIGCHLD to the program,
// invisible to its wait()); until execve they only make system calls.
int spawn_collector() noexcept {
  char pid_text[24] = "";
  append_number(pid_text, static_cast<uint64_t>(getpid()));
  const char* argv[] = {collector_buffer, "collect", "--session", directory_buffer, "--pid", pid_text,
                        "--trace", trace_buffer, nullptr};
  // The collector's environment: ours without the preload (it must not trace itself).
  static const char* environment[1024];
  size_t kept = 0;
  for (char** entry = environ; entry != nullptr && *entry != nullptr && kept + 1 < 1024; ++entry) {
    if (sys::string_equal(*entry, "LD_PRELOAD=", 11)) continue;
    environment[kept++] = *entry;
  }
  environment[kept] = nullptr;

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return -1;
  const long middle = syscall(SYS_clone, 0, nullptr, nullptr, nullptr, 0);
  if (middle == 0) {
    const long collector = syscall(SYS_clone, 0, nullptr, nullptr, nullptr, 0);
    if (collector == 0) {
      setsid();  // out of the program's terminal group: its Ctrl-C is not ours
      // None of the program's descriptors: a pipe it was started on (a shell's $(...)) would
      // stay open in us until we end, and the reader would wait for us. The collector writes
      // nothing the program's streams should carry: /dev/null takes 0, 1 and 2.
      const int null_device = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR));
      for (int stream = 0; stream < 3 && null_device >= 0; ++stream) syscall(SYS_dup2, null_device, stream);
      if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < 65536; ++fd) syscall(SYS_close, fd);  // kernels before 5.9
      }
      // The system call itself: our own execve wrapper would wait for the agent's init, which
      // this copy of the process is in the middle of.
      syscall(SYS_execve, argv[0], argv, environment);
      syscall(SYS_exit_group, 127);
    }
    const int value = static_cast<int>(collector);
    (void)!write(report[1], &value, sizeof(value));
    syscall(SYS_exit_group, 0);
  }
  close(report[1]);
  int collector = -1;
  if (middle > 0) {
    if (read(report[0], &collector, sizeof(collector)) != sizeof(collector)) collector = -1;
    int status = 0;
    while (syscall(SYS_wait4, middle, &status, __WALL, nullptr) < 0 && errno == EINTR) {
    }
  }
  close(report[0]);
  return collector;
}

}  // namespace

namespace {

// Where stderr went when the process started. Many programs close it before they exit (every
// coreutils program does, at exit): the summary then goes to that file or terminal, opened
// again by its path for the one line. (A pipe cannot be opened again: its summary is lost, the
// trace keeps everything.) No descriptor is kept open meanwhile: the program owns them all.
char stderr_path[256];
dev_t stderr_device = 0;
ino_t stderr_inode = 0;

void remember_stderr() noexcept {
  struct stat status {};
  if (fstat(2, &status) != 0) return;
  stderr_device = status.st_dev;
  stderr_inode = status.st_ino;
  const ssize_t length = readlink("/proc/self/fd/2", stderr_path, sizeof(stderr_path) - 1);
  stderr_path[length > 0 && stderr_path[0] == '/' ? length : 0] = '\0';
}

int summary_descriptor() noexcept {
  struct stat status {};
  if (fstat(2, &status) == 0 && status.st_dev == stderr_device && status.st_ino == stderr_inode) return 2;
  if (stderr_path[0] == '\0') return -1;
  return sys::open_file(stderr_path, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC);
}

}  // namespace

bool start(Session& session, const char* output_dir, size_t output_dir_length) noexcept {
  remember_stderr();
  const char* library = own_file();
  if (library == nullptr) return false;
  if (!find_collector(library)) {
    RawLine().text("heapscope: preloaded without `heapscope run`, and bin/heapscope is not beside the "
                   "library to collect; this process is not traced").emit();
    return false;
  }
  directory_buffer[0] = '\0';
  if (!append(directory_buffer, ring_base_directory()) || !append(directory_buffer, "/heapscope.XXXXXX") ||
      mkdtemp(directory_buffer) == nullptr) {
    RawLine().text("heapscope: cannot create a session directory in ").text(ring_base_directory())
        .text("; this process is not traced").emit();
    return false;
  }
  if (!choose_trace_path(output_dir, output_dir_length)) {
    rmdir(directory_buffer);
    RawLine().text("heapscope: no writable place for the trace; this process is not traced").emit();
    return false;
  }
  const int collector = spawn_collector();
  if (collector <= 0) {
    rmdir(directory_buffer);
    RawLine().text("heapscope: cannot start ").text(collector_buffer).text("; this process is not traced").emit();
    return false;
  }
  session.directory = directory_buffer;
  session.trace_path = trace_buffer;
  session.collector_pid = collector;
  return true;
}

void print_summary(const Session& session, const ExitFigures& figures) noexcept {
  const int fd = summary_descriptor();
  if (fd < 0) return;
  RawLine line;
  line.text("heapscope: pid ").number(getpid()).text(": ")
      .number(static_cast<int64_t>(figures.live_bytes)).text(" bytes in ").number(static_cast<int64_t>(figures.live_blocks)).text(" blocks live at exit");
  if (figures.classified) {
    line.text(" (definitely lost ").number(static_cast<int64_t>(figures.definite_bytes)).text(", indirectly ")
        .number(static_cast<int64_t>(figures.indirect_bytes)).text(", possibly ").number(static_cast<int64_t>(figures.possible_bytes)).text(")");
  }
  line.text(", ").number(static_cast<int64_t>(figures.errors)).text(" heap errors; full report: heapscope report ")
      .text(session.trace_path).emit_to(fd);
  if (fd != 2) sys::close_file(fd);
}

}  // namespace heapscope::preload::standalone
