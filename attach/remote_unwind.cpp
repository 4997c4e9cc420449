// Unwinding a ptrace-stopped thread with libdwfl (see remote_unwind.h).
#include "remote_unwind.h"

#include <elfutils/libdwfl.h>

namespace heapscope::attach {
namespace {

const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = nullptr,
};

struct Walk {
  std::vector<uint64_t> pcs;
  size_t limit;
};

int on_frame(Dwfl_Frame* frame, void* argument) {
  auto& walk = *static_cast<Walk*>(argument);
  Dwarf_Addr pc = 0;
  bool activation = false;
  if (!dwfl_frame_pc(frame, &pc, &activation)) return DWARF_CB_ABORT;
  walk.pcs.push_back(pc);
  return walk.pcs.size() >= walk.limit ? DWARF_CB_ABORT : DWARF_CB_OK;
}

}  // namespace

RemoteUnwinder::RemoteUnwinder(int pid) : pid_(pid) {
  dwfl_ = dwfl_begin(&kCallbacks);
  if (dwfl_ == nullptr) return;
  if (dwfl_linux_proc_report(dwfl_, pid) != 0 || dwfl_report_end(dwfl_, nullptr, nullptr) != 0) return;
  // assume_ptrace_stopped: libdwfl must neither attach nor detach; heapscope holds the thread.
  attached_ = dwfl_linux_proc_attach(dwfl_, pid, true) == 0;
}

RemoteUnwinder::~RemoteUnwinder() {
  if (dwfl_ != nullptr) dwfl_end(dwfl_);
}

std::optional<std::vector<uint64_t>> RemoteUnwinder::frames(int tid, size_t limit) {
  if (!attached_) return std::nullopt;
  Walk walk{{}, limit};
  // A non-zero result means the walk stopped early (an unknown frame, the limit): what it
  // found so far is still the thread's real innermost frames.
  dwfl_getthread_frames(dwfl_, tid, on_frame, &walk);
  if (walk.pcs.empty()) return std::nullopt;
  return walk.pcs;
}

}  // namespace heapscope::attach
