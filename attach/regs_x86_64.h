// The x86-64 System V calling convention, applied to a stopped thread's saved registers: how a
// remote call is set up and where its result is. The only architecture-specific attach code.
#pragma once
#include <sys/user.h>

#include <cstdint>
#include <initializer_list>

namespace heapscope::attach::regs {

using Registers = user_regs_struct;

inline uint64_t pc(const Registers& r) { return r.rip; }
inline uint64_t stack_pointer(const Registers& r) { return r.rsp; }
inline uint64_t return_value(const Registers& r) { return r.rax; }

// Bytes below the stack pointer a leaf function may use without moving it (the red zone).
inline constexpr uint64_t kRedZone = 128;

// Sets up a call of `function` with up to six integer arguments, returning to `return_address`
// which must be pushed at `return_slot` by the caller (return_slot % 16 == 8, as at any
// function entry). orig_rax = -1: the kernel must not take the thread for one stopped inside a
// system call and "restart" it by rewinding rip (gdb's amd64_linux_write_pc does the same).
inline void set_call(Registers& r, uint64_t function, std::initializer_list<uint64_t> arguments,
                     uint64_t return_slot) {
  unsigned long long* slots[] = {&r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9};
  int i = 0;
  for (uint64_t argument : arguments)
    if (i < 6) *slots[i++] = argument;
  r.rip = function;
  r.rsp = return_slot;
  r.rax = 0;  // also the vector-register count for variadic callees
  r.orig_rax = static_cast<unsigned long long>(-1);
}

// The syscall number the thread was stopped in (orig_rax), -1 outside one.
inline long interrupted_syscall(const Registers& r) { return static_cast<long>(r.orig_rax); }

}  // namespace heapscope::attach::regs
