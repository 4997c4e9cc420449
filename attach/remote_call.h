// A function call made in a seized thread of another process, writing no code: the registers
// are set as for a call, the return address pushed is kReturnAddress (0), and the call's return
// faults there, which stops the thread for us with the result in rax (Frida's technique). The
// fault is never delivered to the program.
#pragma once
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "ptrace_session.h"

namespace heapscope::attach {

inline constexpr uint64_t kReturnAddress = 0;

// Calls `function` with `arguments` on the stack whose top (highest address, exclusive) is
// `stack_top`, and returns its integer result. `what` names the call in errors. Throws
// AttachError: kInjectionFailed if it faults elsewhere or does not return within `timeout`,
// kNoSuchProcess if the process ends meanwhile.
uint64_t remote_call(PtraceSession& thread, uint64_t function, std::initializer_list<uint64_t> arguments,
                     uint64_t stack_top, std::chrono::milliseconds timeout, const std::string& what);

// Reads a NUL-terminated string of at most `limit` bytes at `address` in the target.
std::string read_remote_string(const PtraceSession& thread, uint64_t address, size_t limit = 4096);

}  // namespace heapscope::attach
