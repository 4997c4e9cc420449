// An attached session's life in the target (the attach agent, build_mode.h): started by the
// attacher through heapscope_agent_attach (attach_entry.cpp) in a thread it borrows for a few
// milliseconds, then run by a thread of the agent's own that redirects the slots of modules
// loaded later and ends the session when the collector asks or is gone.
#pragma once
#include "heapscope/attach_protocol.h"

namespace heapscope::preload::attach_session {

// Begins recording, redirects the allocation slots of every loaded module, and starts the
// agent's thread. Returns at once; on failure nothing stays redirected or running.
format::AttachStatus start(const char* session, int collector_pid, const char* options) noexcept;

// The process is exiting while attached (the agent's destructor): ends the session from here.
void end_at_exit(const void* caller_frame) noexcept;

}  // namespace heapscope::preload::attach_session
