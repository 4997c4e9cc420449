// Diagnostics for heapscope's own crashes: a memory debugger that dies silently is the worst
// outcome for its user. On a fatal signal, prints what happened and heapscope's own stack
// (Boost.Stacktrace), then lets the signal kill the process as it would have.
#pragma once

namespace heapscope::analyzer {

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT, on an alternate stack so
// a stack overflow is reported too. Call once, early in main().
void install_crash_handler();

}  // namespace heapscope::analyzer
