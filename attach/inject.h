// Loads the attach agent into a running process and starts its session: the preflight checks
// (read-only), the choice of a thread at a safe point, and the remote calls dlopen -> dlsym ->
// heapscope_agent_attach on a stack mapped for the purpose. The thread is held for
// milliseconds and left exactly as it was (registers, FPU/SIMD state, signal mask, the system
// call it was blocked in); the process's other threads never stop.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace heapscope::attach {

struct InjectRequest {
  int pid = 0;
  std::string agent_path;     // absolute path of libheapscope-attach.so
  std::string session_dir;    // where the agent creates its ring
  int collector_pid = 0;      // the attacher: the agent ends its session if it is gone
  std::string agent_options;  // "key=value:..." (agent_options.inc)
  std::chrono::milliseconds call_timeout{30000};  // for dlopen in the target
};

struct InjectResult {
  int tid = 0;                          // the thread that was borrowed
  std::string thread_state;             // what it was doing ("blocked in read", "running", ...)
  std::chrono::microseconds held{0};    // from seize to detach
  std::vector<std::string> notes;       // things the user should know (threads skipped, ...)
};

// Throws AttachError with the refusal's kind and a one-line message; the target is untouched
// by every refusal made before a thread is seized, and restored by those after.
InjectResult inject_agent(const InjectRequest& request);

// The preflight alone: refuses (AttachError) what cannot be attached to; nothing is changed.
void check_attachable(int pid, const std::string& agent_path);

}  // namespace heapscope::attach
