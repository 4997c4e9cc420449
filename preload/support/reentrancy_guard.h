// Marks "this thread is inside the agent". Nested calls -- from a signal handler, the unwinder,
// dlsym or our own init -- see active() and take the pass-through path instead of recursing.
#pragma once
#include <atomic>

namespace heapscope::preload {

class ReentrancyGuard {
 public:
  ReentrancyGuard() noexcept {
    ++depth_;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  ~ReentrancyGuard() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    --depth_;
  }
  ReentrancyGuard(const ReentrancyGuard&) = delete;
  ReentrancyGuard& operator=(const ReentrancyGuard&) = delete;
  static bool active() noexcept { return depth_ != 0; }

 private:
  // initial-exec: see sys.cpp; a few bytes only, the attach path's dlopen draws on static TLS.
  [[gnu::tls_model("initial-exec")]] static inline thread_local int depth_ = 0;
};

}  // namespace heapscope::preload
