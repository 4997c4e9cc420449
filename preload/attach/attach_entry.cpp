// The attach agent's one exported entry point (include/heapscope/attach_protocol.h), called
// by `heapscope attach` in a borrowed thread right after dlopen. Linked into
// libheapscope-attach.so only.
#include "attach_session.h"
#include "sys.h"

extern "C" HEAPSCOPE_EXPORT int heapscope_agent_attach(const char* session, int collector_pid, const char* options) {
  return static_cast<int>(heapscope::preload::attach_session::start(session, collector_pid, options));
}
