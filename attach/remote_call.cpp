// Remote calls in a seized thread (see remote_call.h).
#include "remote_call.h"

#include <signal.h>

#include <fmt/format.h>

#include "attach_error.h"

namespace heapscope::attach {

uint64_t remote_call(PtraceSession& thread, uint64_t function, std::initializer_list<uint64_t> arguments,
                     uint64_t stack_top, std::chrono::milliseconds timeout, const std::string& what) {
  // At a function's first instruction rsp % 16 == 8: the return address was just pushed.
  const uint64_t return_slot = (stack_top & ~uint64_t{15}) - 8;
  const uint64_t return_address = kReturnAddress;
  thread.write_memory(return_slot, &return_address, sizeof(return_address));
  regs::Registers registers = thread.saved().registers;
  regs::set_call(registers, function, arguments, return_slot);
  thread.set_registers(registers);
  const auto stop = thread.resume_until_signal(timeout);
  if (!stop)
    throw AttachError(Refusal::kInjectionFailed,
                      fmt::format("{} did not return within {} ms in thread {}", what, timeout.count(), thread.tid()));
  if (stop->exited) throw AttachError(Refusal::kNoSuchProcess, fmt::format("the process ended during {}", what));
  if (stop->signal == SIGSEGV && stop->pc == kReturnAddress) return regs::return_value(thread.registers());
  throw AttachError(Refusal::kInjectionFailed, fmt::format("{} stopped with signal {} ({}) at {:#x} in thread {}", what,
                                                           stop->signal, strsignal(stop->signal), stop->pc, thread.tid()));
}

std::string read_remote_string(const PtraceSession& thread, uint64_t address, size_t limit) {
  std::string text;
  char chunk[256];
  while (text.size() < limit) {
    // Byte by byte near a page end would be slow; a chunk that crosses into an unmapped page
    // fails as a whole, so fall back to the rest of the page.
    size_t want = sizeof(chunk);
    const uint64_t page_left = 4096 - (address + text.size()) % 4096;
    if (want > page_left) want = page_left;
    thread.read_memory(address + text.size(), chunk, want);
    for (size_t i = 0; i < want; ++i) {
      if (chunk[i] == '\0') return text;
      text.push_back(chunk[i]);
    }
  }
  return text;
}

}  // namespace heapscope::attach
