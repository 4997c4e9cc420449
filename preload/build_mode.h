// Which agent this object code is linked into: libheapscope.so (preloaded at start, blocks
// wrapped in headers and canaries) or libheapscope-attach.so (loaded into a running process by
// `heapscope attach`: pointers exactly as the real allocator returned them, so that blocks
// stay valid after detach). Both libraries are linked from the same objects plus one of
// build_mode_preload.cpp / build_mode_attach.cpp; link-time optimization folds the constant.
#pragma once

namespace heapscope::preload {

extern const bool kAttachBuild;

}  // namespace heapscope::preload
