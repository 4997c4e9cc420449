// Plain-text rendering of the report (see report_text.h).
#include "report_text.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

// ANSI styling that collapses to nothing without color.
struct Style {
  bool on;
  std::string wrap(const std::string& text, const char* code) const {
    return on ? fmt::format("\x1b[{}m{}\x1b[0m", code, text) : text;
  }
  std::string bold(const std::string& text) const { return wrap(text, "1"); }
  std::string red(const std::string& text) const { return wrap(text, "1;31"); }
  std::string yellow(const std::string& text) const { return wrap(text, "1;33"); }
  std::string green(const std::string& text) const { return wrap(text, "32"); }
  std::string dim(const std::string& text) const { return wrap(text, "2"); }
};

// 12712 -> "12,712": byte counts are read by people.
std::string grouped(uint64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

std::string plural(uint64_t count, const char* one, const char* many) {
  return fmt::format("{} {}", grouped(count), count == 1 ? one : many);
}

std::string command_line(const ProcessReport& process) {
  std::string line;
  for (const std::string& argument : process.command) {
    if (!line.empty()) line += ' ';
    line += argument;
  }
  return line.empty() ? process.exe : line;
}

std::string exit_text(const ProcessReport& process) {
  if (process.attach && process.still_running)
    return fmt::format("attached for {:.1f} s, detached; it runs on", process.attach->duration_seconds);
  if (process.still_running) return "still running";
  if (process.ended_by_exec) return "replaced by exec";
  if (process.exit.signal) return fmt::format("killed by signal {}", *process.exit.signal);
  if (process.exit.code) return fmt::format("exit code {}", *process.exit.code);
  return "exit status unknown";
}

void append_stack(std::string& out, const FrameList& frames, const Style& style) {
  if (frames.empty()) {
    out += "        (no stack recorded)\n";
    return;
  }
  for (size_t i = 0; i < frames.size(); ++i) {
    const SymbolizedFrame& frame = frames[i];
    std::string where;
    if (!frame.file.empty())
      where = frame.line > 0 ? fmt::format(" ({}:{})", frame.file, frame.line) : fmt::format(" ({})", frame.file);
    else if (!frame.module.empty() && !frame.function.empty())
      where = fmt::format(" (in {})", frame.module);
    else if (!frame.module.empty())  // a stripped library: where in it, the same in every run
      where = fmt::format(" (in {}+{:#x})", frame.module, frame.module_offset);
    out += fmt::format("        #{:<2} {} {}{}{}\n", i, style.dim(fmt::format("{:#x}", frame.address)),
                       style.bold(frame.function.empty() ? "???" : frame.function),
                       frame.inlined ? " [inlined]" : "", where);
  }
}

std::string error_headline(const ErrorRecord& error) {
  const std::string size = fmt::format("{}-byte", grouped(error.block_size));
  if (!error.access.empty()) {  // --guard-pages: the access faulted
    if (error.kind == "use_after_free")
      return fmt::format("use after free: a {} of byte {} of a freed {} block at {:#x}, caught by its inaccessible pages",
                         error.access, error.offset, size, error.address);
    if (error.kind == "overflow")
      return fmt::format("heap overflow: a {} {} past the end of a {} block at {:#x}, caught by its guard page",
                         error.access, plural(static_cast<uint64_t>(error.offset) - error.block_size + 1, "byte", "bytes"),
                         size, error.address);
  }
  if (error.kind == "overflow")
    return fmt::format("heap overflow: a write {} past the end of a {} block at {:#x}",
                       plural(static_cast<uint64_t>(error.offset) - error.block_size + 1, "byte", "bytes"),
                       size, error.address);
  if (error.kind == "underflow")
    return fmt::format("heap underflow: a write {} before the start of a {} block at {:#x}",
                       plural(static_cast<uint64_t>(-error.offset), "byte", "bytes"), size, error.address);
  if (error.kind == "double_free")
    return fmt::format("double free of a {} block at {:#x} by {}()", size, error.address, error.release);
  if (error.kind == "invalid_free")
    return fmt::format("invalid free: {:#x} was not returned by an allocation function ({}())",
                       error.address, error.release);
  if (error.kind == "mismatched_free")
    return fmt::format("mismatched free: a {} block allocated by {} released by {} at {:#x}", size,
                       error.allocator, error.release, error.address);
  if (error.kind == "use_after_free")
    return fmt::format("write after free: byte {} of a freed {} block at {:#x} was changed",
                       error.offset, size, error.address);
  return error.kind;
}

// memcheck's LEAK SUMMARY, or why the blocks could not be classified.
void append_leak_summary(std::string& out, const ProcessReport& process, const Style& style) {
  const LeakTotals totals = leak_totals(process.leaks);
  if (!process.leak_scan.ran) {
    out += fmt::format("   leaks not classified: {}\n", process.leak_scan.not_classified_because);
    return;
  }
  auto line = [&](const char* label, const LeakTotal& total) {
    out += fmt::format("      {:>15}: {} in {}\n", label, plural(total.bytes, "byte", "bytes"),
                       plural(total.blocks, "block", "blocks"));
  };
  out += fmt::format("   {}\n", style.bold("LEAK SUMMARY:"));
  line("definitely lost", totals.definite);
  line("indirectly lost", totals.indirect);
  line("possibly lost", totals.possible);
  line("still reachable", totals.reachable);
  if (totals.unclassified.blocks > 0) line("allocated after the scan", totals.unclassified);
  if (!process.leak_scan.not_covered.empty())
    out += fmt::format("   {}: {}\n", style.yellow("scan incomplete"), process.leak_scan.not_covered);
  if (process.leak_scan.figures.stopped_by_signal)
    out += "   note: ptrace was not allowed, so the leak scan stopped threads with a signal\n";
}

// Leak records of the kinds asked for, numbered, with stacks (up to 50 unless verbose).
void append_leak_records(std::string& out, const std::vector<LeakRecord>& leaks, const TextOptions& options,
                         const std::string& label) {
  const Style style{options.color};
  const size_t limit = options.detail == Detail::kVerbose ? leaks.size() : 50;
  size_t shown = 0;
  size_t hidden_by_kind = 0;
  size_t over_limit = 0;
  for (const LeakRecord& leak : leaks) {
    if (!options.show_kinds.contains(leak.kind)) {
      ++hidden_by_kind;
      continue;
    }
    if (shown == limit) {
      ++over_limit;
      continue;
    }
    ++shown;
    std::string age;
    if (leak.oldest_age_seconds && leak.youngest_age_seconds && leak.bytes_per_second)
      age = fmt::format(", aged {:.2f} to {:.2f} s, +{}/s", *leak.youngest_age_seconds, *leak.oldest_age_seconds,
                        plural(static_cast<uint64_t>(*leak.bytes_per_second), "byte", "bytes"));
    out += fmt::format("\n   {}: {} in {} allocated by {} ({}{})\n", style.yellow(fmt::format("{} {}", label, shown)),
                       plural(leak.bytes, "byte", "bytes"), plural(leak.blocks, "block", "blocks"),
                       leak.allocator, leak.kind, age);
    append_stack(out, leak.stack, style);
  }
  if (over_limit > 0)
    out += fmt::format("\n   ... and {} more leak records (see --verbose or --json)\n", over_limit);
  if (hidden_by_kind > 0 && options.detail != Detail::kQuiet)
    out += fmt::format("\n   ({} of other kinds not shown: --show-leak-kinds=all lists them)\n",
                       plural(hidden_by_kind, "leak record", "leak records"));
}

void append_process(std::string& out, const ProcessReport& process, const TextOptions& options) {
  const Style style{options.color};
  const ProcessSummary& s = process.summary;
  out += fmt::format("== heapscope: pid {}: {} ({})\n", process.pid, style.bold(command_line(process)),
                     exit_text(process));
  out += fmt::format("   {}, {}, {} allocated, peak {} live\n",
                     plural(s.allocations, "allocation", "allocations"), plural(s.frees, "free", "frees"),
                     plural(s.bytes_allocated, "byte", "bytes"), plural(s.peak_live_bytes, "byte", "bytes"));
  uint64_t live_bytes = 0;
  uint64_t live_blocks = 0;
  std::set<uint32_t> stacks;  // a stack's blocks may be of several kinds: one record each
  for (const LeakRecord& leak : process.leaks) {
    live_bytes += leak.bytes;
    live_blocks += leak.blocks;
    stacks.insert(leak.stack_id);
  }
  if (process.attach) {
    const AttachRecord& a = *process.attach;
    out += fmt::format("   attach: {} redirected in {} ({} in the program), {} left to another allocator; "
                       "{} from before the attach released meanwhile\n",
                       plural(a.slots, "allocation slot", "allocation slots"), plural(a.modules, "module", "modules"),
                       a.program_slots, a.skipped, plural(a.frees_of_older_blocks, "block", "blocks"));
    out += fmt::format("   live at {}, allocated since the attach{}: {} in {} from {}; {}\n",
                       process.still_running ? "detach" : "the end",
                       a.min_age_seconds > 0 ? fmt::format(" and older than {} s", a.min_age_seconds) : "",
                       plural(live_bytes, "byte", "bytes"), plural(live_blocks, "block", "blocks"),
                       plural(stacks.size(), "allocation stack", "allocation stacks"),
                       plural(s.error_count, "heap error", "heap errors"));
    append_leak_summary(out, process, style);
  } else if (process.still_running) {
    out += fmt::format("   {} in {} live when heapscope stopped waiting\n",
                       plural(s.live_bytes, "byte", "bytes"), plural(s.live_blocks, "block", "blocks"));
  } else {
    out += fmt::format("   {}: {} in {} from {}; {}\n",
                       process.ended_by_exec ? "live at exec" : "live at exit",
                       plural(live_bytes, "byte", "bytes"), plural(live_blocks, "block", "blocks"),
                       plural(stacks.size(), "allocation stack", "allocation stacks"),
                       plural(s.error_count, "heap error", "heap errors"));
    if (!process.ended_by_exec) append_leak_summary(out, process, style);
  }
  if (options.detail == Detail::kVerbose && s.allocations > 0) {
    const Statistics& st = process.statistics;
    out += fmt::format("   temporary allocations: {} ({:.1f}%)", grouped(st.temporary_allocations),
                       100.0 * static_cast<double>(st.temporary_allocations) / static_cast<double>(s.allocations));
    if (st.allocations_per_second > 0)
      out += fmt::format(", {} allocations/s over {:.2f} s", grouped(static_cast<uint64_t>(st.allocations_per_second)),
                         st.duration_seconds);
    if (st.latest && st.latest->has_mallinfo) {
      const Sample& m = *st.latest;
      out += fmt::format("\n   allocator (mallinfo2, last sample): arena {}, mmapped {} in {}, in use {}, free {} in {} chunks,"
                         " releasable {}; rss {}",
                         grouped(m.arena), grouped(m.hblkhd), plural(m.hblks, "region", "regions"), grouped(m.uordblks),
                         grouped(m.fordblks), grouped(m.ordblks), grouped(m.keepcost), grouped(m.rss_bytes));
    }
    if (st.rss_peak && st.rss_peak->has_agent_share) {
      const Sample& m = *st.rss_peak;
      out += fmt::format("\n   heapscope's share of the rss at its highest sample: {} of {}: tables {}, ring {}, code {},"
                         " quarantine {}, headers and canaries {}",
                         grouped(m.agent_bytes()), grouped(m.rss_bytes), grouped(m.agent_tables), grouped(m.agent_ring),
                         grouped(m.agent_image), grouped(m.agent_quarantine), grouped(m.agent_headers));
    }
    out += fmt::format("\n   heapscope overhead at the end: {} of headers and canaries, {} in the quarantine",
                       plural(st.overhead_bytes, "byte", "bytes"), plural(st.quarantine_bytes, "byte", "bytes"));
    out += "\n   sizes:";
    for (const auto& [low, high, count, bytes] : st.size_histogram)
      out += fmt::format(" [{}..{}]:{}", grouped(low), high == UINT64_MAX ? "max" : grouped(high), grouped(count));
    out += "\n";
  }
  if (options.detail == Detail::kVerbose && !process.threads.empty()) {
    const size_t ended = static_cast<size_t>(std::count_if(process.threads.begin(), process.threads.end(),
                                                           [](const ThreadLife& t) { return t.end_ns.has_value(); }));
    const ThreadLife& busiest = *std::max_element(process.threads.begin(), process.threads.end(),
        [](const ThreadLife& a, const ThreadLife& b) { return a.allocations < b.allocations; });
    out += fmt::format("   threads: {} started, {} ended; most allocations: thread {} ({})\n",
                       grouped(process.threads.size()), grouped(ended), busiest.thread_id,
                       plural(busiest.allocations, "allocation", "allocations"));
  }
  if (!process.phases.empty()) {
    out += "   phases:";
    for (size_t i = 0; i < process.phases.size(); ++i)
      out += fmt::format("{} {} ({} live)", i == 0 ? "" : ",", process.phases[i].label,
                         plural(process.phases[i].live_bytes, "byte", "bytes"));
    out += "\n";
  }
  const MappingsRecord& mappings = process.mappings;
  if (mappings.mmap_calls + mappings.munmap_calls + mappings.mremap_calls > 0) {
    out += fmt::format("   mapped with mmap: {} still mapped at exit in {}; peak {} ({}, {}, {})\n",
                       plural(mappings.bytes_at_exit, "byte", "bytes"), plural(mappings.regions_at_exit, "region", "regions"),
                       plural(mappings.peak_bytes, "byte", "bytes"), plural(mappings.mmap_calls, "mmap", "mmaps"),
                       plural(mappings.munmap_calls, "munmap", "munmaps"), plural(mappings.mremap_calls, "mremap", "mremaps"));
    if (options.detail == Detail::kVerbose) {
      for (const MappingSiteRecord& site : mappings.sites) {
        out += fmt::format("   mapped {} ({}) by {}, {} still mapped at exit, at\n",
                           plural(site.bytes_mapped, "byte", "bytes"), site.kind, plural(site.calls, "call", "calls"),
                           plural(site.bytes_at_exit, "byte", "bytes"));
        append_stack(out, site.stack, style);
      }
    }
  }
  if (process.ignored_blocks > 0)
    out += fmt::format("   ignored (heapscope_ignore_object): {} in {}\n", plural(process.ignored_bytes, "byte", "bytes"),
                       plural(process.ignored_blocks, "block", "blocks"));
  if (process.suppressed_blocks > 0)
    out += fmt::format("   suppressed: {} in {}\n", plural(process.suppressed_bytes, "byte", "bytes"),
                       plural(process.suppressed_blocks, "block", "blocks"));
  if (!process.complete)
    out += "   warning: recording stopped early (collector lost); this report is incomplete\n";

  if (options.detail == Detail::kQuiet) return;
  for (size_t i = 0; i < process.errors.size(); ++i) {
    const ErrorRecord& error = process.errors[i];
    out += fmt::format("\n   {}: {}\n", style.red(fmt::format("error {}", i + 1)), error_headline(error));
    if (error.detected_at_exit) {
      out += "      detected at exit\n";
    } else if (!error.access.empty()) {
      out += fmt::format("      the {} at\n", error.access);
      append_stack(out, error.stack, style);
    } else {
      out += "      detected at\n";
      append_stack(out, error.stack, style);
    }
    if (error.alloc_stack) {
      out += fmt::format("      allocated by {} at\n", error.allocator);
      append_stack(out, *error.alloc_stack, style);
    }
    if (error.free_stack) {
      out += "      freed at\n";
      append_stack(out, *error.free_stack, style);
    }
  }
  append_leak_records(out, process.leaks, options, "leak");
  for (size_t i = 0; i < process.leak_checks.size(); ++i) {
    const LeakCheckRecord& check = process.leak_checks[i];
    const LeakTotals totals = leak_totals(check.leaks);
    const uint64_t bytes = totals.definite.bytes + totals.indirect.bytes + totals.possible.bytes;
    const uint64_t blocks = totals.definite.blocks + totals.indirect.blocks + totals.possible.blocks;
    out += fmt::format("\n   {} at {:.3f} s{}: {} in {} newly lost\n",
                       style.bold(fmt::format("leak check {}", i + 1)), check.time_seconds,
                       check.phase.empty() ? "" : fmt::format(" (phase {})", check.phase),
                       plural(bytes, "byte", "bytes"), plural(blocks, "block", "blocks"));
    append_leak_records(out, check.leaks, options, fmt::format("check {} leak", i + 1));
  }
  out += "\n";
}

}  // namespace

std::string render_text(const Report& report, const TextOptions& options) {
  std::string out;
  for (const UntracedProcess& untraced : report.untraced)
    out += fmt::format("== heapscope: pid {}: {} was not traced: {}\n", untraced.pid, untraced.exe, untraced.reason);
  if (report.processes.empty()) out += "== heapscope: no traced process recorded anything\n";
  // A section for the launched program and for every process with something to report; the
  // rest (a shell's many helpers) in one line, unless --verbose.
  uint64_t quiet_processes = 0;
  for (const ProcessReport& process : report.processes) {
    const bool lost = std::any_of(process.leaks.begin(), process.leaks.end(),
                                  [&](const LeakRecord& leak) { return is_lost(process, leak); });
    const bool worth_a_section = process.launched || !process.errors.empty() || lost ||
                                 !process.complete || options.detail == Detail::kVerbose;
    if (worth_a_section) {
      append_process(out, process, options);
    } else {
      ++quiet_processes;
    }
  }
  if (quiet_processes > 0)
    out += fmt::format("== heapscope: {} with no heap error and no leak (--verbose lists them)\n",
                       plural(quiet_processes, "more process", "more processes"));
  uint64_t errors = 0;
  uint64_t leaked = 0;
  for (const ProcessReport& process : report.processes) {
    errors += process.errors.size();
    for (const LeakRecord& leak : process.leaks)
      if (is_lost(process, leak)) leaked += leak.bytes;
  }
  const Style style{options.color};
  const std::string error_text = plural(errors, "heap error", "heap errors");
  const std::string leak_text = plural(leaked, "byte", "bytes") + " leaked";
  out += fmt::format("== heapscope: {} traced, {}, {}\n", plural(report.processes.size(), "process", "processes"),
                     errors > 0 ? style.red(error_text) : style.green(error_text),
                     leaked > 0 ? style.yellow(leak_text) : style.green(leak_text));
  return out;
}

bool decide_color(const std::string& choice, int fd) {
  if (choice == "always") return true;
  if (choice == "never") return false;
  if (choice != "auto") throw UsageError(fmt::format("--color takes always, never or auto, not '{}'", choice));
  const char* no_color = getenv("NO_COLOR");
  const char* term = getenv("TERM");
  return isatty(fd) && (no_color == nullptr || *no_color == '\0') && !(term != nullptr && std::string(term) == "dumb");
}

}  // namespace heapscope::analyzer
