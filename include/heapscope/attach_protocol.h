// What `heapscope attach` and the attach agent (libheapscope-attach.so, built from preload/)
// agree on: the entry point the attacher calls in the target, its results, and how a session
// ends. Plain data only.
#pragma once
#include <cstdint>

namespace heapscope::format {

// File name of the agent that `heapscope attach` loads (beside libheapscope.so).
inline constexpr const char* kAttachAgentFile = "libheapscope-attach.so";

// int heapscope_agent_attach(const char* session_dir, int collector_pid, const char* options):
// called by the attacher in a borrowed thread of the target, right after dlopen. Starts a
// session: opens the ring in session_dir, redirects the allocation API, starts the agent's
// thread, and returns at once with one of these.
inline constexpr const char* kAttachEntry = "heapscope_agent_attach";
enum class AttachStatus : int32_t {
  kOk = 0,
  kAlreadyAttached = 1,  // another heapscope is attached now
  kNoAllocator = 2,      // the allocator's entry points could not be found
  kNoRing = 3,           // the ring could not be created in session_dir
  kNoMemory = 4,         // the agent's tables could not be mapped
  kNoThread = 5,         // the agent's thread could not be started
  kNotRedirected = 6,    // no module calls the allocator through a slot heapscope can redirect
};

// The session ends when the collector sets kRingDetachRequested in the ring's state (ring
// header, event_format.h), or when the collector process is gone: the agent thread then scans
// for leaks, undoes every redirection, writes kDetached and kAgentEnd, sets kRingFinished and
// ends. The library stays loaded, inert, for the next attach.

}  // namespace heapscope::format
