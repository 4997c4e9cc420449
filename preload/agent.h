// The agent's process-wide state and its event emitters: init on first use, fork and exit
// handling, and the functions heap_ops uses to record what happens. Everything reachable from
// an interposed call is hot-path code: no malloc, no locks a signal handler could deadlock on,
// no exceptions.
#pragma once
#include <cstddef>
#include <cstdint>

#include <signal.h>
#include <ucontext.h>

#include "block_index.h"
#include "heapscope/attach_protocol.h"
#include "heapscope/event_format.h"
#include "options.h"
#include "quarantine.h"

namespace heapscope::preload::agent {

// True when allocations are being tracked. The first call initializes the agent; other threads
// calling meanwhile wait for it. False when init failed or no session is configured, in which
// case every call passes straight through to the real allocator.
bool ready() noexcept;

const Options& options() noexcept;
BlockIndex& index() noexcept;
Quarantine& quarantine() noexcept;

// Captures the caller's stack and returns its depot id (0 if none), emitting its definition
// (and any new modules) the first time it is seen.
uint32_t capture_stack_id() noexcept;
// The same for a stack that starts at instruction `pc` with stack pointer `sp` and frame
// pointer `fp` (a faulting instruction, from a signal's context).
uint32_t capture_stack_id_at(uint64_t pc, uint64_t sp, uint64_t fp) noexcept;

void emit_alloc(uint64_t address, uint64_t size, uint32_t stack_id, uint32_t alignment,
                format::Api api, format::Family family) noexcept;
void emit_free(uint64_t address, format::Api api) noexcept;
// The program's own mappings (interpose_mmap.cpp); stack_id 0 for an unmap.
void emit_map(uint64_t address, uint64_t length, uint32_t stack_id, int protection, int map_flags,
              uint16_t flags) noexcept;
void emit_unmap(uint64_t address, uint64_t length, uint16_t flags = 0) noexcept;

struct ErrorReport {
  format::ErrorKind kind;
  uint64_t address = 0;
  uint64_t block_size = 0;
  int64_t bad_offset = 0;
  uint32_t stack_id = 0;
  uint32_t alloc_stack_id = 0;
  uint32_t free_stack_id = 0;
  uint8_t alloc_family = 0;
  uint8_t free_api = 0;
  uint16_t flags = 0;
};
// Records a heap error; aborts afterwards if the abort_on_error option is set.
void report_error(const ErrorReport& report) noexcept;
// The innermost frames of stack `id` (0 past its end), as captured; false if not kept.
inline constexpr size_t kStackHeadFrames = 4;
bool stack_head(uint32_t id, uint64_t (&frames)[kStackHeadFrames]) noexcept;
// Heap errors this process image has reported so far (heapscope_error_count()).
uint64_t errors_reported() noexcept;

void emit_phase(const char* label) noexcept;   // label may be nullptr
void emit_leak_kinds(uint32_t scan_id, const format::LeakKindEntry* entries, size_t count) noexcept;
void emit_leak_scan_end(const format::LeakScanEndEvent& end, uint16_t flags) noexcept;
void emit_ignore(uint64_t address) noexcept;
void emit_exec(const char* path) noexcept;
// dlopen or dlclose returned: announce modules loaded, and those gone, now.
void modules_changed() noexcept;
// kThreadStart or kThreadExit for the calling thread.
void emit_thread(format::EventKind kind, uint32_t parent_thread_id) noexcept;
// The calling thread is about to end the process with `status`: the program's frames lie at
// `frame_top` and above, and `registers` are its registers there. The exit leak scan starts
// there. After a vfork child's exit() consumed this process's exit handlers, it finishes here.
void note_exit_point(const void* frame_top, const ucontext_t& registers, int status) noexcept;
void emit_exec_failed() noexcept;
// The atfork handlers, for the ways to make a process that run none: _Fork() and clone()
// without CLONE_VM (interpose_fork.cpp). Without them the child would record into this
// process's ring.
void fork_prepare() noexcept;
void fork_parent() noexcept;
void fork_child() noexcept;
// The process is about to end by _exit() or _Exit(), which run no exit handler and no
// destructor: records the status and runs what the destructor would (the final sweeps, the exit
// leak scan) from the caller's frame. Does nothing in a vfork child, from a signal handler that
// interrupted the agent, or once done.
void finish_before_immediate_exit(int status, const void* caller_frame, const ucontext_t& caller_state) noexcept;

// The watched terminating signals (agent.cpp): whether our watcher is signal N's handler now;
// whether `action` is our watcher; the program replaced it (interpose_signal.cpp).
bool signal_watched(int signal_number) noexcept;
bool is_signal_watcher(const struct sigaction& action) noexcept;
void signal_released(int signal_number) noexcept;
// The C library's sigaction, looked up once at init: sigaction is async-signal-safe, so the
// interposer must not dlsym from inside a program's signal handler.
int call_real_sigaction(int signal_number, const struct sigaction* action, struct sigaction* old) noexcept;

// The attach agent's gate (build_mode.h): every tracked call enters it before it touches the
// agent's state and leaves it after, so that detach can wait until no call is inside before it
// unmaps the ring and the index. Counts are striped by thread over cache lines: one
// uncontended atomic add each way. enter() is false, and leaves nothing entered, when no
// session is recording.
namespace attach_gate {
bool enter() noexcept;
bool enter_release() noexcept;  // also while detaching: frees are still recorded then
void leave() noexcept;
}  // namespace attach_gate

// An attached session (attach_session.cpp drives these; include/heapscope/attach_protocol.h).
// Starts recording: options parsed over the attach defaults, tables set up afresh, the ring
// opened in `session`, the process and its modules announced. Call before any redirection.
format::AttachStatus begin_attached(const char* session, int collector_pid, const char* options) noexcept;
// True while allocations are recorded (not while a session ends).
bool allocations_tracked() noexcept;
// True when the collector asked to end the session, or is gone.
bool detach_requested() noexcept;
int attached_collector() noexcept;
void emit_redirect(const format::RedirectEvent& counts) noexcept;
// Ending a session, in this order: begin_detaching (false if it is not recording, or another
// thread is ending it), scan_before_detach (the leak scan: frees are still recorded, new
// allocations no longer), undo the redirections, end_attached (final records; then, once no
// tracked call is inside, the ring and the index are unmapped, unless the process is exiting).
bool begin_detaching() noexcept;
void scan_before_detach(const void* caller_frame) noexcept;
void end_attached(format::DetachReason reason, uint32_t restored_slots, bool process_exiting) noexcept;
}  // namespace heapscope::preload::agent
