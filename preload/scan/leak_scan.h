// A whole-process leak scan: with the index frozen and the other threads stopped, reads every
// root -- writable private memory of modules and anonymous mappings (.data, .bss, relro, TLS,
// thread stacks above their stack pointers), every thread's registers -- then the heap
// transitively, and sends each live block's kind (reachability.h) to the collector.
//
// Runs in-process, at exit (from the agent's destructor, after atexit handlers and static
// destructors) or on demand (heapscope_leak_check()). Allocation-free: its arrays are mapped
// with mmap and unmapped afterwards.
#pragma once
#include <cstdint>
#include <cstddef>

struct ucontext_t;

namespace heapscope::preload {

// The top of the agent's part of the stack, for an entry point whose frame address is
// `frame`: its prologue may have saved the caller's callee-saved registers (still the
// program's values) in the bytes just below, so those are left to the scan.
inline const void* program_frames_from(const void* frame) noexcept {
  constexpr uintptr_t kSavedRegisterBytes = 64;  // six registers on x86-64, and alignment
  return static_cast<const char*>(frame) - kSavedRegisterBytes;
}

struct LeakScanRequest {
  uint16_t flags;                  // format::LeakScanFlags
  const void* caller_frame;        // the entry point's frame: the stack below is the agent's
  const ucontext_t* caller_state;  // the calling thread's registers at the entry point
  // caller_state is where a signal interrupted the thread: every register is live. Otherwise it
  // was taken at a call (exit, _exit, heapscope_leak_check), where the ABI makes the
  // caller-saved registers dead: the stale pointer a call left in rdx or rcx would make a block
  // lost just before exit look reachable (memcheck: definite). Only callee-saved ones are roots.
  bool interrupted = false;
  // heapscope_leak_check_sites(): the blocks this scan newly finds lost, as many as fit.
  struct LostBlock {
    uint32_t stack_id;
    uint64_t size;
  };
  LostBlock* newly_lost = nullptr;
  size_t newly_lost_capacity = 0;
  size_t* newly_lost_count = nullptr;
};

struct LeakScanOutcome {
  uint32_t scan_id = 0;
  uint64_t lost_blocks = 0;        // definite + indirect + possible
  uint64_t newly_lost_blocks = 0;  // of those, not reported lost by an earlier scan
  bool classified = false;
  uint64_t bytes_by_kind[5] = {0, 0, 0, 0, 0};  // indexed by format::LeakKind
};

LeakScanOutcome run_leak_scan(const LeakScanRequest& request) noexcept;

// Looks up, once at agent init, what a scan may not look up while threads are stopped (the
// loader's lock may be held by one of them): the size of glibc's static TLS area.
void init_leak_scan() noexcept;

}  // namespace heapscope::preload
