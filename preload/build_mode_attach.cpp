// Linked into libheapscope-attach.so only (see build_mode.h).
#include "build_mode.h"

namespace heapscope::preload {
extern const bool kAttachBuild = true;
}  // namespace heapscope::preload
