// Which agent this object code is compiled for: libheapscope.so (preloaded at start, blocks
// wrapped in headers and canaries) or libheapscope-attach.so (loaded into a running process by
// `heapscope attach`: pointers exactly as the real allocator returned them, so that blocks stay
// valid after detach). preload/CMakeLists.txt compiles the shared sources once for each, with
// HEAPSCOPE_ATTACH_BUILD set: every `if (kAttachBuild)` is decided by the compiler, and the
// preload agent's hot path is compiled as if the attach paths did not exist.
#pragma once

#ifndef HEAPSCOPE_ATTACH_BUILD
#define HEAPSCOPE_ATTACH_BUILD 0
#endif

namespace heapscope::preload {

inline constexpr bool kAttachBuild = HEAPSCOPE_ATTACH_BUILD != 0;

}  // namespace heapscope::preload
