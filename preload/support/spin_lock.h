// A test-and-test-and-set lock for the agent's short critical sections. Not a mutex: it never
// calls into libc, so it is safe on the hot path. It is NOT safe to take from a signal handler
// that interrupted its holder; the ReentrancyGuard keeps nested calls away from every SpinLock.
//
// It knows its owner (the thread pointer, which a fork child's thread keeps), because fork()
// may be called from a signal handler that interrupted this very thread inside the agent: the
// atfork handlers must then leave alone the locks the interrupted frame holds (waiting for them
// would wait forever) and take only the others (lock_for_fork / unlock_after_fork).
#pragma once
#include <atomic>
#include <cstdint>
#include <sched.h>

namespace heapscope::preload {

class SpinLock {
 public:
  void lock() noexcept {
    const uintptr_t me = self();
    for (unsigned spins = 0;; ++spins) {
      uintptr_t expected = 0;
      if (holder_.compare_exchange_weak(expected, me, std::memory_order_acquire, std::memory_order_relaxed)) return;
      while (holder_.load(std::memory_order_relaxed) != 0) {
        if (++spins > 64) sched_yield();  // holder may be descheduled (2 cores, many threads)
      }
    }
  }
  void unlock() noexcept { holder_.store(0, std::memory_order_release); }
  bool held_by_this_thread() const noexcept { return holder_.load(std::memory_order_relaxed) == self(); }

  // atfork prepare: takes the lock unless this thread already holds it (a fork from a signal
  // handler that interrupted the holder). The interrupted frame releases it in both processes.
  void lock_for_fork() noexcept {
    if (held_by_this_thread()) return;
    lock();
    taken_for_fork_ = true;
  }
  // atfork parent and child: releases only what lock_for_fork took.
  void unlock_after_fork() noexcept {
    if (!taken_for_fork_) return;
    taken_for_fork_ = false;
    unlock();
  }

 private:
  static uintptr_t self() noexcept { return reinterpret_cast<uintptr_t>(__builtin_thread_pointer()); }
  std::atomic<uintptr_t> holder_{0};
  bool taken_for_fork_ = false;  // only the forking thread touches it, between its handlers
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
