// Leak suppressions (see suppressions.h).
#include "suppressions.h"

#include <fstream>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

std::string trimmed(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  const size_t last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

// Matches `pattern` (only `*` special) against `text` starting exactly at its beginning and,
// if `to_end`, ending exactly at its end; otherwise a prefix match.
bool glob(const char* pattern, const char* text, bool to_end) {
  if (*pattern == '\0') return !to_end || *text == '\0';
  if (*pattern == '*') {
    for (const char* rest = text;; ++rest) {
      if (glob(pattern + 1, rest, to_end)) return true;
      if (*rest == '\0') return false;
    }
  }
  return *text != '\0' && *pattern == *text && glob(pattern + 1, text + 1, to_end);
}

bool frame_matches(const std::string& pattern, const SymbolizedFrame& frame) {
  return pattern_matches(pattern, frame.function) || pattern_matches(pattern, frame.file) ||
         pattern_matches(pattern, frame.module);
}

}  // namespace

bool pattern_matches(const std::string& pattern, const std::string& text) {
  if (pattern.empty() || text.empty()) return false;
  std::string body = pattern;
  const bool at_start = body.front() == '^';
  if (at_start) body.erase(0, 1);
  const bool at_end = !body.empty() && body.back() == '$';
  if (at_end) body.pop_back();
  if (at_start) return glob(body.c_str(), text.c_str(), at_end);
  for (size_t start = 0; start < text.size(); ++start)
    if (glob(body.c_str(), text.c_str() + start, at_end)) return true;
  return false;
}

void Suppressions::add_defaults() {
  for (const DefaultSuppression& entry : kDefaultSuppressions) add(entry.pattern, "built-in");
}

std::string default_suppressions_text() {
  std::string text = "# heapscope's built-in suppressions (off with --default-suppressions=no)\n";
  for (const DefaultSuppression& entry : kDefaultSuppressions)
    text += std::string("# ") + entry.why + "\nleak:" + entry.pattern + "\n";
  return text;
}

void Suppressions::add(const std::string& pattern, const std::string& origin) {
  entries_.push_back(Suppression{pattern, origin});
}

void Suppressions::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("cannot read suppressions {}", path));
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string text = trimmed(line);
    if (text.empty() || text[0] == '#') continue;
    if (!text.starts_with("leak:") || trimmed(text.substr(5)).empty())
      throw UsageError(fmt::format("{}:{}: expected 'leak:PATTERN', got '{}'", path, number, text));
    add(trimmed(text.substr(5)), fmt::format("{}:{}", path, number));
  }
}

void Suppressions::apply(Report& report) {
  for (ProcessReport& process : report.processes) {
    std::vector<LeakRecord> kept;
    for (LeakRecord& leak : process.leaks) {
      Suppression* hit = nullptr;
      for (Suppression& entry : entries_) {
        for (const SymbolizedFrame& frame : leak.stack) {
          if (frame_matches(entry.pattern, frame)) {
            hit = &entry;
            break;
          }
        }
        if (hit != nullptr) break;
      }
      if (hit == nullptr) {
        kept.push_back(std::move(leak));
        continue;
      }
      ++hit->hits;
      hit->blocks += leak.blocks;
      hit->bytes += leak.bytes;
      process.suppressed_blocks += leak.blocks;
      process.suppressed_bytes += leak.bytes;
    }
    process.leaks = std::move(kept);
  }
  report.suppressions.clear();
  for (const Suppression& entry : entries_)
    report.suppressions.push_back({entry.pattern, entry.origin, entry.hits, entry.blocks, entry.bytes});
}

std::string suggested_suppression(const LeakRecord& leak) {
  for (const SymbolizedFrame& frame : leak.stack) {
    if (frame.function.empty()) continue;
    if (frame.module.find("/libc.so") != std::string::npos) continue;  // malloc wrappers like strdup
    // The function name up to its parameter list, so overloads and argument changes still match.
    const std::string name = frame.function.substr(0, frame.function.find('('));
    return fmt::format("leak:{}", name);
  }
  return leak.stack.empty() || leak.stack[0].module.empty() ? "" : fmt::format("leak:{}", leak.stack[0].module);
}

}  // namespace heapscope::analyzer
