// sigaction() and signal(), interposed so the agent's watchers of terminating signals (agent.cpp,
// watch_fatal_signals) stay invisible: where the program asks what a watched signal's handler
// is, it learns SIG_DFL, as it would without heapscope, and decides as it would (CPython
// installs its KeyboardInterrupt handler only over SIG_DFL). A handler the program installs
// replaces the watcher. Calls through raw system calls (rt_sigaction) see the watcher.
#include <signal.h>

#include "agent.h"
#include "sys.h"

namespace agent = heapscope::preload::agent;

extern "C" {

HEAPSCOPE_EXPORT int sigaction(int signal_number, const struct sigaction* action, struct sigaction* old) {
  const bool watched = agent::signal_watched(signal_number);
  const int result = agent::call_real_sigaction(signal_number, action, old);
  if (result != 0 || !watched) return result;
  if (old != nullptr && agent::is_signal_watcher(*old)) {
    old->sa_handler = SIG_DFL;
    old->sa_flags = 0;
    sigemptyset(&old->sa_mask);
  }
  if (action != nullptr) agent::signal_released(signal_number);
  return result;
}

// glibc's signal() has BSD semantics: SA_RESTART, the handler stays installed (siginterrupt()'s
// per-signal exception is not kept).
HEAPSCOPE_EXPORT sighandler_t signal(int signal_number, sighandler_t handler) {
  struct sigaction action {};
  struct sigaction old {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, signal_number);
  action.sa_flags = SA_RESTART;
  if (sigaction(signal_number, &action, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

}  // extern "C"
