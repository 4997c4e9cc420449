// The one exception type of attach/: which kind of refusal or failure, and a message for the
// user. The CLI maps each kind to a documented exit status (docs/cli.md).
#pragma once
#include <stdexcept>
#include <string>

namespace heapscope::attach {

enum class Refusal {
  kNoSuchProcess,    // no process with that pid
  kNotPermitted,     // the kernel refused ptrace (Yama, another user, no CAP_SYS_PTRACE)
  kUnsuitable,       // stopped, already traced, static, no allocator to redirect, already attached
  kInjectionFailed,  // the target could not load or start the agent; it was left as it was
};

class AttachError : public std::runtime_error {
 public:
  AttachError(Refusal refusal, const std::string& message) : std::runtime_error(message), refusal_(refusal) {}
  Refusal refusal() const noexcept { return refusal_; }

 private:
  Refusal refusal_;
};

}  // namespace heapscope::attach
