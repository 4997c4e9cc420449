// Fatal-signal reporting for the heapscope process (see crash_handler.h).
#include "crash_handler.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <string>

#define BOOST_STACKTRACE_LINK
#include <boost/stacktrace.hpp>

namespace heapscope::analyzer {
namespace {

// Frames are captured into static storage with the async-signal-safe safe_dump_to(); turning
// them into names is not signal-safe, but the process is dying and this is best effort.
alignas(16) char frames_dump[128 * sizeof(void*)];
alignas(16) char alternate_stack[64 * 1024];

void write_text(const char* text) { (void)!write(2, text, strlen(text)); }

void on_fatal_signal(int signal_number) {
  boost::stacktrace::safe_dump_to(1, frames_dump, sizeof(frames_dump));
  write_text("heapscope: internal error: ");
  write_text(strsignal(signal_number));
  write_text(". This is a bug in heapscope; please report it with this stack:\n");
  const auto trace = boost::stacktrace::stacktrace::from_dump(frames_dump, sizeof(frames_dump));
  const std::string text = boost::stacktrace::to_string(trace);
  write_text(text.c_str());
  // SA_RESETHAND restored the default action: re-raise so the exit status tells the truth.
  raise(signal_number);
}

}  // namespace

void install_crash_handler() {
  stack_t stack{};
  stack.ss_sp = alternate_stack;
  stack.ss_size = sizeof(alternate_stack);
  sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(signal_number, &action, nullptr);
}

}  // namespace heapscope::analyzer
