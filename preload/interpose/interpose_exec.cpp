// The exec family, interposed only to mark where a process image ends: exec releases the whole
// heap, so blocks live at that point are not leaks. Each wrapper records kExec, calls the real
// function, and records kExecFailed if it returns. posix_spawn and system() need nothing: their
// child runs no allocator calls before its own exec.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>

#include "agent.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;

namespace {

template <typename Fn>
Fn next_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

using ExecveFn = int (*)(const char*, char* const[], char* const[]);
using ExecvFn = int (*)(const char*, char* const[]);
using FexecveFn = int (*)(int, char* const[], char* const[]);

int run_execve(const char* path, char* const argv[], char* const envp[]) {
  static const auto real = next_symbol<ExecveFn>("execve");
  agent::emit_exec(path);
  const int result = real(path, argv, envp);
  agent::emit_exec_failed();
  return result;
}

int run_execvpe(const char* file, char* const argv[], char* const envp[]) {
  static const auto real = next_symbol<ExecveFn>("execvpe");
  agent::emit_exec(file);
  const int result = real(file, argv, envp);
  agent::emit_exec_failed();
  return result;
}

int run_execvp(const char* file, char* const argv[]) {
  static const auto real = next_symbol<ExecvFn>("execvp");
  agent::emit_exec(file);
  const int result = real(file, argv);
  agent::emit_exec_failed();
  return result;
}

// Counts the variadic arguments of execl* up to the terminating NULL.
size_t count_arguments(const char* first, va_list args) {
  size_t count = 1;
  va_list copy;
  va_copy(copy, args);
  if (first != nullptr)
    while (va_arg(copy, const char*) != nullptr) ++count;
  va_end(copy);
  return first == nullptr ? 0 : count;
}

// Copies execl*'s NULL-terminated argument list into an argv on this frame's stack (no malloc),
// consumes the terminating NULL so that `args` points at what follows it (execle's envp), and
// calls run(argv) while the copy is alive.
template <typename Run>
int with_argument_list(const char* first, va_list& args, Run run) {
  const size_t count = count_arguments(first, args);
  const char* argv[count + 1];
  argv[0] = first;
  for (size_t i = 1; i < count; ++i) argv[i] = va_arg(args, const char*);
  if (first != nullptr) (void)va_arg(args, const char*);  // the NULL after the last argument
  argv[count] = nullptr;
  return run(const_cast<char* const*>(argv));
}

}  // namespace

extern "C" {

extern char** environ;

HEAPSCOPE_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  return run_execve(path, argv, envp);
}
HEAPSCOPE_EXPORT int execv(const char* path, char* const argv[]) {
  return run_execve(path, argv, environ);
}
HEAPSCOPE_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return run_execvpe(file, argv, envp);
}
HEAPSCOPE_EXPORT int execvp(const char* file, char* const argv[]) { return run_execvp(file, argv); }

HEAPSCOPE_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  static const auto real = next_symbol<FexecveFn>("fexecve");
  agent::emit_exec("(fexecve)");
  const int result = real(fd, argv, envp);
  agent::emit_exec_failed();
  return result;
}

// execl, execlp, execle: the argument list is copied to the stack (no malloc) and passed on.
HEAPSCOPE_EXPORT int execl(const char* path, const char* arg, ...) {
  va_list args;
  va_start(args, arg);
  const int result = with_argument_list(arg, args, [&](char* const* argv) { return run_execve(path, argv, environ); });
  va_end(args);
  return result;
}

HEAPSCOPE_EXPORT int execlp(const char* file, const char* arg, ...) {
  va_list args;
  va_start(args, arg);
  const int result = with_argument_list(arg, args, [&](char* const* argv) { return run_execvp(file, argv); });
  va_end(args);
  return result;
}

HEAPSCOPE_EXPORT int execle(const char* path, const char* arg, ...) {
  va_list args;
  va_start(args, arg);
  // envp follows the NULL that ends the arguments; with_argument_list leaves `args` there.
  const int result = with_argument_list(arg, args, [&](char* const* argv) {
    char* const* envp = va_arg(args, char* const*);
    return run_execve(path, argv, envp);
  });
  va_end(args);
  return result;
}

}  // extern "C"
