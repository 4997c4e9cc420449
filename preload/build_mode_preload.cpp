// Linked into libheapscope.so only (see build_mode.h).
#include "build_mode.h"

namespace heapscope::preload {
extern const bool kAttachBuild = false;
}  // namespace heapscope::preload
