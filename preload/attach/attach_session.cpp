// The attach agent's session and its thread (see attach_session.h). Not hot-path code: this
// runs at attach, every 20 ms on the agent's thread, and at detach.
#include "attach_session.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>

#include "agent.h"
#include "got_patch.h"
#include "reentrancy_guard.h"
#include "fast_unwind.h"
#include "rule_cache.h"
#include "sys.h"

namespace heapscope::preload::attach_session {
namespace {

constexpr uint64_t kPollNs = 20 * 1000 * 1000;
std::atomic<bool> thread_running{false};

format::RedirectEvent as_event(const got::PatchCounts& counts) noexcept {
  format::RedirectEvent event{};
  event.slots = counts.slots;
  event.modules = counts.modules;
  event.program_slots = counts.program_slots;
  event.skipped = counts.skipped;
  return event;
}

// Scan first, while frees are still recorded; then put every slot back; then the last records.
// Whoever begins detaching first (this thread, or the thread running exit) does it all.
void end_session(format::DetachReason reason, const void* caller_frame, bool process_exiting) noexcept {
  if (!agent::begin_detaching()) return;
  agent::scan_before_detach(caller_frame);
  const got::PatchCounts restored = got::restore_all();
  agent::end_attached(reason, restored.slots, process_exiting);
}

void* run(void*) {
  // Whatever this thread allocates (nothing on purpose) is the agent's, never the program's.
  ReentrancyGuard guard;
  for (uint64_t round = 1;; ++round) {
    sys::sleep_ns(kPollNs);
    if (round % 25 == 0) unwind::reap_thread_walks(false);  // every 0.5 s: tables of ended threads
    if (!agent::allocations_tracked()) break;  // the process's exit ended the session
    if (agent::detach_requested()) {
      const bool asked = agent::attached_collector() <= 0 || sys::process_alive(agent::attached_collector());
      end_session(asked ? format::DetachReason::kRequested : format::DetachReason::kCollectorGone,
                  __builtin_frame_address(0), false);
      break;
    }
    // Modules loaded since the last round (dlopen, or the C library's own NSS and gconv loads,
    // which no dlopen hook would see): redirect their slots too. Unloaded ones: their cached
    // unwind rules must go. Hooking dlopen instead would change its caller, and with it the
    // RUNPATH and $ORIGIN the program's dlopen searches (memray 53d00c19).
    if (got::modules_changed_since_patch()) {
      unwind::forget_rules();
      const got::PatchCounts counts = got::patch_new_modules();
      agent::modules_changed();
      if (counts.slots > 0) agent::emit_redirect(as_event(counts));
    }
  }
  thread_running.store(false, std::memory_order_release);
  return nullptr;
}

}  // namespace

format::AttachStatus start(const char* session, int collector_pid, const char* options) noexcept {
  // The previous session's thread may still be on its way out: the collector saw the session
  // finish (kRingFinished) before the thread returned. Give it a second to go, rather than
  // turn away an attach that comes right after a detach; a new thread would race it.
  for (int wait = 0; wait < 100 && thread_running.load(std::memory_order_acquire); ++wait)
    sys::sleep_ns(10 * 1000 * 1000);
  if (thread_running.load(std::memory_order_acquire)) return format::AttachStatus::kAlreadyAttached;
  const format::AttachStatus begun = agent::begin_attached(session, collector_pid, options);
  if (begun != format::AttachStatus::kOk) return begun;
  auto abandon = [](format::AttachStatus status) {
    if (agent::begin_detaching()) {
      const got::PatchCounts restored = got::restore_all();
      agent::end_attached(format::DetachReason::kRequested, restored.slots, false);
    }
    return status;
  };
  // The thread is made before any slot is redirected: glibc allocates its TLS vector with the
  // real allocator then, and frees it the same way when the thread ends, after detach. The
  // borrowed thread's signal mask blocks all asynchronous signals (the attacher set it): the
  // agent's thread inherits it, so the program's signals never land on it. It starts with a
  // sleep, by which time the slots below are redirected.
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  thread_running.store(true, std::memory_order_release);
  pthread_t thread;
  const int created = pthread_create(&thread, &attributes, run, nullptr);
  pthread_attr_destroy(&attributes);
  if (created != 0) {
    thread_running.store(false, std::memory_order_release);
    return abandon(format::AttachStatus::kNoThread);
  }
  const got::PatchCounts counts = got::patch_new_modules();
  // With nothing redirected the session ends on its own: the thread sees it at its first round.
  if (counts.slots == 0) return abandon(format::AttachStatus::kNotRedirected);
  agent::emit_redirect(as_event(counts));
  return format::AttachStatus::kOk;
}

void end_at_exit(const void* caller_frame) noexcept {
  end_session(format::DetachReason::kProcessExit, caller_frame, true);
}

}  // namespace heapscope::preload::attach_session
