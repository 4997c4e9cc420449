// Memory for calls that arrive while the thread is already inside the agent: a signal handler
// that interrupted us, the unwinder, our own init (dlsym, atfork, on_exit). They must never
// reach the real allocator: the interrupted frame may be inside it, and glibc's malloc is not
// reentrant (in a single-threaded process it takes no lock at all, so a nested call corrupts
// its heap).
//
// Lock-free and async-signal-safe: power-of-two size classes carved from 64 MiB segments
// mapped as needed (MAP_NORESERVE, up to 4 GiB), each class with a Treiber free list whose head
// carries an ABA tag in its top 16 bits. Nested callers allocate little; a request above 1 MiB
// fails (ENOMEM). A pointer is ours if it lies in a segment -- range checks, never a read
// before proof.
#pragma once
#include <cstddef>
#include <cstdint>

namespace heapscope::preload::nested {

// `alignment` <= 4096 and size up to ~1 MiB; larger requests and exhaustion return nullptr.
void* allocate(size_t size, size_t alignment, bool zeroed) noexcept;
// Releases a block from allocate(). kNotOurs: not in the arena (nothing read). kAlreadyFree:
// a double free, and kInvalid: an address allocate() never returned or a header the program
// overwrote; both change nothing.
enum class Release : uint8_t { kNotOurs, kReleased, kAlreadyFree, kInvalid };
Release release(void* pointer) noexcept;
bool owns(const void* pointer) noexcept;
// Usable size of a block from allocate(); 0 if not ours.
size_t usable_size(const void* pointer) noexcept;
void* reallocate(void* pointer, size_t size) noexcept;

}  // namespace heapscope::preload::nested
