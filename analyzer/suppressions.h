// LeakSanitizer-compatible suppressions: `leak:PATTERN` lines (and `#` comments) that hide a
// leak record when PATTERN matches the function, file or module of any frame of its stack.
// PATTERN is a substring match where `*` matches any run of characters, a leading `^` anchors
// at the start and a trailing `$` at the end -- LSan's rules, so existing files work as they are.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "report.h"

namespace heapscope::analyzer {

struct Suppression {
  std::string pattern;
  std::string origin;   // "file:line", for messages
  uint64_t hits = 0;    // leak records it hid
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

class Suppressions {
 public:
  // Reads a suppression file. Throws IoError if unreadable, UsageError on a line that is not
  // `leak:PATTERN`, a comment or blank (naming file and line).
  void load(const std::string& path);
  void add(const std::string& pattern, const std::string& origin);
  // The built-in list (kDefaultSuppressions), applied unless --default-suppressions=no.
  void add_defaults();

  // Removes suppressed leak records from every process, counting them per suppression and in
  // each process's `suppressed` totals.
  void apply(Report& report);
  const std::vector<Suppression>& entries() const noexcept { return entries_; }
  bool empty() const noexcept { return entries_.empty(); }

 private:
  std::vector<Suppression> entries_;
};

// Blocks the C library and its loader keep for the life of the process and that a scan cannot
// tell from leaks: memcheck hides the same ones with its default suppressions (glibc-2.X.supp)
// and freeres. Each with why. `heapscope default-suppressions` prints them as a file.
struct DefaultSuppression {
  const char* pattern;
  const char* why;
};
inline constexpr DefaultSuppression kDefaultSuppressions[] = {
    {"_dl_find_object_update",
     "glibc >= 2.35: the loader's table for _dl_find_object, allocated at the first dlopen and kept; it is "
     "referred to by an interior pointer only, so it looks possibly lost in every process that calls dlopen"},
};

// The built-in list in suppression-file form, each entry after a comment saying why.
std::string default_suppressions_text();

// LSan's matcher (see above). Exposed for tests.
bool pattern_matches(const std::string& pattern, const std::string& text);

// A ready-to-paste suppression for a leak: its innermost named frame that is not in libc.
std::string suggested_suppression(const LeakRecord& leak);

}  // namespace heapscope::analyzer
