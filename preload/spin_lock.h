// A test-and-test-and-set lock for the agent's short critical sections. Not a mutex: it never
// calls into libc, so it is safe on the hot path. It is NOT safe to take from a signal handler
// that interrupted its holder; the ReentrancyGuard keeps nested calls away from every SpinLock.
#pragma once
#include <atomic>
#include <sched.h>

namespace heapscope::preload {

class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) sched_yield();  // holder may be descheduled (2 cores, many threads)
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }
  // Only for a fork child, where the holder no longer exists.
  void reset() noexcept { locked_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> locked_{false};
};

class SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock& lock) noexcept : lock_(lock) { lock_.lock(); }
  ~SpinLockGuard() { lock_.unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace heapscope::preload
