// Exceptions for fatal problems in the analyzer and the CLI; main() catches them once and maps
// them to documented exit codes (docs/cli.md).
#pragma once
#include <stdexcept>
#include <string>

namespace heapscope::analyzer {

// Input that is not what the format says: bad magic, unknown version, malformed record.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file or system call that failed; the message names what and why.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The user asked for something that cannot be done (bad option, missing program...).
// `heapscope COMMAND --help` found among COMMAND's own options by its parser: not an error.
struct HelpRequested {};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace heapscope::analyzer
