// Argument parsing and the `run` command (see cli.h).
#include "cli.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include <filesystem>

#include "collector.h"
#include "errors.h"
#include "trace_reader.h"
#include "report_json.h"
#include "report_collapsed.h"
#include "report_diff.h"
#include "report_html.h"
#include "report_text.h"
#include "suppressions.h"

namespace heapscope::analyzer {
namespace {

constexpr const char* kVersion = "0.1.0";

struct AgentFlag {
  const char* name;  // as in agent_options.inc, underscores
  const char* type;
  const char* default_value;
  const char* help;
};

constexpr AgentFlag kAgentFlags[] = {
#define HEAPSCOPE_OPTION(type, name, default_value, help) {#name, #type, #default_value, help},
#include "heapscope/agent_options.inc"
#undef HEAPSCOPE_OPTION
};

std::string flag_name(const char* option) {
  std::string name = option;
  for (char& c : name)
    if (c == '_') c = '-';
  return "--" + name;
}

int parse_int(const std::string& text, const std::string& option) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0 || value > 255)
    throw UsageError(fmt::format("{} needs a number from 0 to 255, not '{}'", option, text));
  return value;
}

// A byte count: digits with an optional K, M or G suffix (powers of 1024).
uint64_t parse_bytes(const std::string& text, const std::string& option) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::string suffix(end, text.data() + text.size());
  int shift = -1;
  if (suffix.empty()) shift = 0;
  else if (suffix == "K" || suffix == "k") shift = 10;
  else if (suffix == "M" || suffix == "m") shift = 20;
  else if (suffix == "G" || suffix == "g") shift = 30;
  if (error != std::errc() || shift < 0 || value > (UINT64_MAX >> shift))
    throw UsageError(fmt::format("{} needs a byte count like 4096, 64K or 2M, not '{}'", option, text));
  return value << shift;
}

// Checks that an output file can be written before the program runs, so a typo does not cost
// the user the run they just recorded.
void check_writable(const std::string& path, const char* what) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(fmt::format("cannot write the {} to {}: {}", what, path, strerror(errno)));
  close(fd);
}

void write_file(const std::string& path, const std::string& content, const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.flush();
  if (!out) throw IoError(fmt::format("cannot write the {} to {}: {}", what, path, strerror(errno)));
}

}  // namespace

std::string agent_library(const char* name) {
  if (const char* forced = getenv("HEAPSCOPE_AGENT"); forced != nullptr && *forced != '\0') {
    if (std::strcmp(name, "libheapscope.so") == 0) return forced;
    const std::string directory(forced, std::string_view(forced).rfind('/') + 1);
    return directory + name;
  }
  char self[PATH_MAX];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length <= 0) throw IoError("cannot find heapscope's own location in /proc/self/exe");
  std::string bin(self, static_cast<size_t>(length));
  bin = bin.substr(0, bin.rfind('/'));
  // The build tree keeps the agents in bin/../lib; an installed heapscope finds them where
  // `cmake --install` put them, relative to its own directory (HEAPSCOPE_AGENT_DIR_FROM_BINDIR,
  // from CMakeLists.txt), whatever the prefix.
  std::string path = bin.substr(0, bin.rfind('/')) + "/lib/" + name;
#ifdef HEAPSCOPE_AGENT_DIR_FROM_BINDIR
  if (access(path.c_str(), R_OK) != 0) {
    std::string installed = bin + "/" HEAPSCOPE_AGENT_DIR_FROM_BINDIR "/" + name;
    if (char resolved[PATH_MAX]; realpath(installed.c_str(), resolved) != nullptr) installed = resolved;
    path = installed;
  }
#endif
  if (access(path.c_str(), R_OK) != 0)
    throw IoError(fmt::format("the agent library {} is missing (set HEAPSCOPE_AGENT to its path)", path));
  if (path.find(' ') != std::string::npos || path.find(':') != std::string::npos)
    throw IoError(fmt::format("the agent path {} contains a space or colon, which LD_PRELOAD cannot carry", path));
  return path;
}

namespace {

// Handles an option common to run and report; false if `option` is not one of them.
template <typename ValueFn>
bool parse_output_option(const std::string& option, bool has_inline, ValueFn value, OutputArguments& output) {
  if (option == "--json") {
    output.json_path = value();
  } else if (option == "--log-file") {
    output.log_path = value();
  } else if (option == "--html") {
    output.html_path = value();
  } else if (option == "--error-exitcode") {
    output.error_exitcode = parse_int(value(), option);
  } else if (option == "--suppressions") {
    output.suppression_files.push_back(value());
  } else if (option == "--default-suppressions") {
    const std::string answer = has_inline ? value() : "yes";
    if (answer != "yes" && answer != "no")
      throw UsageError(fmt::format("--default-suppressions takes yes or no, not '{}'", answer));
    output.default_suppressions = answer == "yes";
  } else if (option == "--gen-suppressions" && !has_inline) {
    output.gen_suppressions = true;
  } else if (option == "--fail-on-leak-bytes") {
    output.fail_on_leak_bytes = parse_bytes(value(), option);
  } else if (option == "--max-peak") {
    output.max_peak = parse_bytes(value(), option);
  } else if (option == "--color") {
    output.color = has_inline ? value() : "always";
    decide_color(output.color, 2);  // validates the word now, before anything runs
  } else if (option == "--quiet" && !has_inline) {
    output.detail = 0;
  } else if (option == "--verbose" && !has_inline) {
    output.detail = 2;
  } else if (option == "--show-leak-kinds") {
    output.show_leak_kinds = value();
    LeakKindSet::parse(output.show_leak_kinds, option);  // validated now, before anything runs
  } else if (option == "--errors-for-leak-kinds") {
    output.errors_for_leak_kinds = value();
    LeakKindSet::parse(output.errors_for_leak_kinds, option);
  } else if (option == "--collapsed") {
    output.collapsed_path = value();
  } else if (option == "--cost") {
    output.collapsed_cost = value();
    if (!parse_collapsed_cost(output.collapsed_cost))
      throw UsageError(fmt::format("--cost takes leaked, peak, allocated or count, not '{}'", output.collapsed_cost));
  } else {
    return false;
  }
  return true;
}

}  // namespace

// Before anything runs: output files writable, suppression files valid.
Suppressions prepare_output(const OutputArguments& output) {
  if (output.json_path) check_writable(*output.json_path, "JSON report");
  if (output.log_path) check_writable(*output.log_path, "text report");
  if (output.html_path) check_writable(*output.html_path, "HTML report");
  if (output.collapsed_path) check_writable(*output.collapsed_path, "collapsed stacks");
  Suppressions suppressions;
  if (output.default_suppressions) suppressions.add_defaults();
  for (const std::string& file : output.suppression_files) suppressions.load(file);
  return suppressions;
}

// Applies suppressions, writes the reports, and returns whether the gate trips.
bool finish_report(Report& report, const std::vector<TracedProcess>& traced, Symbolizer& symbolizer,
                   Suppressions& suppressions, const OutputArguments& output, std::ostream& text_stream,
                   bool print_text) {
  suppressions.apply(report);
  TextOptions text_options;
  // Color only where a person reads it: the stream we print to, never a --log-file.
  text_options.color = !output.log_path && decide_color(output.color, &text_stream == &std::cout ? 1 : 2);
  text_options.detail = output.detail == 0 ? Detail::kQuiet : output.detail == 2 ? Detail::kVerbose : Detail::kNormal;
  text_options.show_kinds = LeakKindSet::parse(output.show_leak_kinds, "--show-leak-kinds");
  const LeakKindSet counted = LeakKindSet::parse(output.errors_for_leak_kinds, "--errors-for-leak-kinds");
  if (output.collapsed_path) {
    write_file(*output.collapsed_path,
               render_collapsed(traced, symbolizer, *parse_collapsed_cost(output.collapsed_cost)), "collapsed stacks");
  }
  std::string text = render_text(report, text_options);
  if (output.gen_suppressions) {
    text += "== heapscope: suppressions for the leaks above (paste into a --suppressions file):\n";
    for (const ProcessReport& process : report.processes)
      for (const LeakRecord& leak : process.leaks)
        if (counted.counts(process, leak))
          if (const std::string entry = suggested_suppression(leak); !entry.empty()) text += entry + "\n";
  }
  // A report file that cannot be written (a full disk, /dev/full) must not cost the run its
  // report or the program its exit status: say so, and put the text on stderr instead.
  auto write_or_warn = [](const std::string& path, const std::string& content, const char* what) {
    try {
      write_file(path, content, what);
      return true;
    } catch (const IoError& error) {
      std::cerr << "heapscope: " << error.what() << "\n";
      return false;
    }
  };
  if (output.log_path) {
    if (!write_or_warn(*output.log_path, text, "text report")) std::cerr << "heapscope: the text report follows\n" << text;
  } else if (print_text) {
    text_stream << text << std::flush;
  }
  if (output.json_path) write_or_warn(*output.json_path, json_text(to_json(report), 2) + "\n", "JSON report");
  if (output.html_path) write_or_warn(*output.html_path, render_html(report, traced, symbolizer), "HTML report");

  // The gate: errors always count; leaks of the --errors-for-leak-kinds kinds (definite and
  // possible by default, and unclassified ones where no scan ran) above --fail-on-leak-bytes
  // (any by default); a
  // peak above --max-peak. Without --error-exitcode only the thresholds trip it.
  uint64_t errors = 0;
  uint64_t leaked = 0;
  uint64_t peak = 0;
  for (const ProcessReport& process : report.processes) {
    errors += process.errors.size();
    for (const LeakRecord& leak : process.leaks)
      if (counted.counts(process, leak)) leaked += leak.bytes;
    peak = std::max(peak, process.summary.peak_live_bytes);
  }
  const bool thresholds = output.fail_on_leak_bytes || output.max_peak;
  const bool leak_trips = leaked > output.fail_on_leak_bytes.value_or(0);
  const bool peak_trips = output.max_peak && peak > *output.max_peak;
  if (peak_trips) std::cerr << fmt::format("heapscope: peak {} bytes is above --max-peak {}\n", peak, *output.max_peak);
  if (thresholds && leak_trips && output.fail_on_leak_bytes)
    std::cerr << fmt::format("heapscope: {} bytes leaked is above --fail-on-leak-bytes {}\n", leaked,
                             *output.fail_on_leak_bytes);
  if (output.error_exitcode) return errors > 0 || leak_trips || peak_trips;
  return thresholds && ((output.fail_on_leak_bytes && leak_trips) || peak_trips);
}

int gate_status(const OutputArguments& output) { return output.error_exitcode.value_or(kExitGateDefault); }

namespace {

int run_command(const std::vector<std::string>& arguments) {
  const RunArguments run = parse_run_arguments(arguments);
  Suppressions suppressions = prepare_output(run.output);

  CollectOptions collect;
  collect.command = run.command;
  collect.agent_path = agent_library("libheapscope.so");
  collect.agent_options = run.agent_options;
  if (run.output_dir) collect.output_dir = *run.output_dir;
  CollectResult result;
  try {
    result = run_and_collect(collect);
  } catch (const LaunchError& error) {
    std::cerr << "heapscope: " << error.what() << "\n";
    return error.exit_code();
  }

  Symbolizer symbolizer;
  Report report = build_report(result.processes, symbolizer);
  report.untraced = result.untraced;
  const bool gate = finish_report(report, result.processes, symbolizer, suppressions, run.output, std::cerr, true);
  for (const std::string& trace : result.trace_paths) std::cerr << "heapscope: trace written to " << trace << "\n";

  if (gate) return gate_status(run.output);
  if (result.launched_exit.signal) return 128 + *result.launched_exit.signal;
  return result.launched_exit.code.value_or(kExitToolFailure);
}

// One trace file as a TracedProcess, with how it ended from the collector's kEnding record.
TracedProcess load_trace(const std::string& path) {
  TracedProcess process;
  // On a terminal, big traces show how far the analysis is; piped output stays clean.
  TraceProgress progress;
  if (isatty(2)) {
    progress = [&path](uint64_t done, uint64_t total) {
      std::cerr << fmt::format("\rheapscope: reading {}: {:.0f}% ", path, total ? 100.0 * done / total : 0.0)
                << std::flush;
    };
  }
  bool shown = false;
  const TraceSummary summary = read_trace(
      path, [&process](const RecordView& record) { process.model.apply(record); },
      progress ? TraceProgress([&](uint64_t done, uint64_t total) { shown = true; progress(done, total); }) : progress);
  if (shown) std::cerr << "\r\x1b[K" << std::flush;  // clear the progress line
  if (summary.ending) {
    const format::EndingEvent& ending = *summary.ending;
    process.launched = (ending.header.flags & format::kEndingLaunched) != 0;
    process.still_running = (ending.header.flags & format::kEndingStillRunning) != 0;
    process.incomplete = (ending.header.flags & format::kEndingIncomplete) != 0;
    if (ending.exit_code >= 0) process.exit.code = ending.exit_code;
    if (ending.signal > 0) process.exit.signal = ending.signal;
    process.ring_waits = ending.ring_waits;
  } else {
    // Cut short: the collector died. Everything before the cut is real; say it is partial.
    std::cerr << "heapscope: " << path << " ends " << (summary.truncated ? "inside a record" : "early")
              << " (the collector stopped); reporting what it holds\n";
    process.incomplete = true;
    process.exit = exit_of(process, {});
  }
  return process;
}

std::vector<std::string> expand_traces(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code error;
    if (std::filesystem::is_directory(input, error)) {
      std::vector<std::string> found;
      for (const auto& entry : std::filesystem::directory_iterator(input, error))
        if (entry.path().string().ends_with(".trace.zst")) found.push_back(entry.path().string());
      if (found.empty()) throw UsageError(fmt::format("no *.trace.zst files in {}", input));
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(input);
    }
  }
  return files;
}

int report_command(const std::vector<std::string>& arguments) {
  const ReportArguments args = parse_report_arguments(arguments);
  Suppressions suppressions = prepare_output(args.output);
  std::vector<TracedProcess> traced;
  for (const std::string& path : expand_traces(args.traces)) traced.push_back(load_trace(path));
  Symbolizer symbolizer;
  Report report = build_report(traced, symbolizer);
  const bool print_text = !args.output.json_path || args.text;
  if (finish_report(report, traced, symbolizer, suppressions, args.output, std::cout, print_text))
    return gate_status(args.output);
  return 0;
}

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("cannot read {}: {}", path, strerror(errno)));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& error) {
    throw FormatError(fmt::format("{} is not valid JSON ({})", path, error.what()));
  }
}

// heapscope diff BASE.json NEW.json: 0 no regression, 1 regression, 125 bad input.
int diff_command(const std::vector<std::string>& arguments) {
  std::vector<std::string> files;
  std::optional<std::string> json_path;
  DiffOptions options;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (!argument.starts_with("--")) {
      files.push_back(argument);
      continue;
    }
    const size_t equals = argument.find('=');
    const std::string option = argument.substr(0, equals);
    auto value = [&]() -> std::string {
      if (equals != std::string::npos) return argument.substr(equals + 1);
      if (i + 1 >= arguments.size()) throw UsageError(fmt::format("{} needs a value", option));
      return arguments[++i];
    };
    if (option == "--json") {
      json_path = value();
    } else if (option == "--peak-tolerance") {
      const std::string text = value();
      char* end = nullptr;
      options.peak_tolerance_percent = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || options.peak_tolerance_percent < 0)
        throw UsageError(fmt::format("--peak-tolerance needs a percentage, not '{}'", text));
    } else {
      throw UsageError(fmt::format("unknown option '{}' for diff (see heapscope --help)", option));
    }
  }
  if (files.size() != 2) throw UsageError("diff needs two reports (usage: heapscope diff BASE.json NEW.json)");
  if (json_path) check_writable(*json_path, "diff");
  const DiffResult diff = diff_reports(load_json(files[0]), load_json(files[1]), options);
  std::cout << render_diff_text(diff) << std::flush;
  if (json_path) write_file(*json_path, json_text(diff_to_json(diff), 2) + "\n", "diff");
  return diff.regressed() ? 1 : 0;
}

}  // namespace

ReportArguments parse_report_arguments(const std::vector<std::string>& arguments) {
  ReportArguments report;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (!argument.starts_with("--")) {
      report.traces.push_back(argument);
      continue;
    }
    const size_t equals = argument.find('=');
    const std::string option = argument.substr(0, equals);
    const bool has_inline = equals != std::string::npos;
    auto value = [&]() -> std::string {
      if (has_inline) return argument.substr(equals + 1);
      if (i + 1 >= arguments.size()) throw UsageError(fmt::format("{} needs a value", option));
      return arguments[++i];
    };
    if (parse_output_option(option, has_inline, value, report.output)) continue;
    if (option == "--text" && !has_inline) report.text = true;
    else throw UsageError(fmt::format("unknown option '{}' for report (see heapscope --help)", option));
  }
  if (report.traces.empty()) throw UsageError("no trace given (usage: heapscope report [OPTIONS] TRACE|DIR...)");
  return report;
}

std::string usage_text() {
  std::string text =
      "usage: heapscope run [OPTIONS] [--] PROGRAM [ARGS...]\n"
      "       heapscope attach [OPTIONS] PID\n"
      "       heapscope report [REPORT OPTIONS] [--text] TRACE|DIR...\n"
      "       heapscope diff [--json FILE] [--peak-tolerance PERCENT] BASE.json NEW.json\n"
      "       heapscope default-suppressions\n"
      "       heapscope --help | --version\n\n"
      "run: runs PROGRAM with the heapscope agent, then reports heap errors and leaks.\n"
      "attach: records the running process PID (no restart, no gdb) until --for SECONDS have\n"
      "  passed or heapscope gets Ctrl-C, SIGINT or SIGTERM; then detaches, leaving it as it was,\n"
      "  and reports the blocks it allocated meanwhile and still holds, classified by reachability.\n"
      "report: rebuilds the reports from trace files written by run --output.\n"
      "diff: lists new and grown leak sites, new heap errors and peak growth; exit 1 on a regression.\n\n"
      "Report options:\n"
      "  --json FILE            write the JSON report (schema heapscope.report v1) to FILE\n"
      "  --log-file FILE        write the text report to FILE instead of stderr\n"
      "  --html FILE            write the HTML report (one self-contained page) to FILE\n"
      "  --error-exitcode N     exit N (0..255) when a heap error or a counted leak was found\n"
      "  --show-leak-kinds K    leak records the text shows: definite,indirect,possible,reachable,\n"
      "                         all or none (default definite,possible; unclassified always)\n"
      "  --errors-for-leak-kinds K  leaks that count for the exit status (default definite,possible)\n"
      "  --suppressions FILE    LSan-style 'leak:PATTERN' lines hiding matching leaks (repeatable)\n"
      "  --gen-suppressions     print a ready-to-paste suppression for each leak\n"
      "  --default-suppressions[=yes|no]  hide the C library's own blocks (default yes; the list:\n"
      "                         heapscope default-suppressions)\n"
      "  --fail-on-leak-bytes N counted leaks trip the exit status only above N bytes in all (64K, 2M...)\n"
      "  --max-peak BYTES       fail when a process's peak heap exceeds BYTES\n"
      "  --color[=WHEN]         colors: always, never, auto (default: on a terminal, unless NO_COLOR)\n"
      "  --quiet, --verbose     summaries only / every leak record\n"
      "  --collapsed FILE       collapsed stacks for flamegraph.pl/speedscope\n"
      "  --cost KIND            what --collapsed weighs: leaked, peak (default), allocated, count\n"
      "  --output DIR           (run) write one trace per process to DIR (heapscope.PROG.PID.trace.zst)\n"
      "  --text                 (report) print the text report on stdout even with --json\n"
      "  --for SECONDS          (attach) detach after SECONDS (default: at Ctrl-C, SIGINT, SIGTERM)\n"
      "  --min-age SECONDS      (attach) only blocks older than SECONDS at detach are leak suspects\n"
      "  --no-follow-children   (run) trace only the launched program (same as --follow-children=no)\n\n"
      "Agent options (also settable as HEAPSCOPE_OPTIONS=key=value:...):\n";
  for (const AgentFlag& flag : kAgentFlags) {
    const std::string value = std::strcmp(flag.type, "bool") == 0 ? "[=yes|no]" : " N";
    text += fmt::format("  {:<22} {} (default {})\n", flag_name(flag.name) + value, flag.help,
                        flag.default_value);
  }
  text +=
      "  (attach takes --max-frames, --fast-unwind, --free-stacks, --abort-on-error, --ring-mib,\n"
      "   --sample-ms and --leak-check; an attached process keeps its allocator's own pointers)\n"
      "\nExit status: the program's own; 128+N if it was killed by signal N; N of\n"
      "--error-exitcode when something was found (23 when only a threshold was given);\n"
      "126 if PROGRAM cannot be executed,\n"
      "127 if it is not found; 125 if heapscope itself failed.\n"
      "attach: 0, or the gate's status; 119 the process ended while attached (its report is\n"
      "written); 120 no such process; 121 ptrace not permitted; 122 a process heapscope cannot\n"
      "attach to (stopped, traced, static, attached already); 123 the agent could not be loaded.\n";
  return text;
}

namespace {

// An agent option (`--max-frames 16`, `--free-stacks=no`) as HEAPSCOPE_OPTIONS's `key=value`.
// Throws UsageError for an unknown option or a bad value.
template <typename ValueFn>
std::string agent_setting(const std::string& option, bool has_inline, const std::string& inline_value, ValueFn value_of) {
  const AgentFlag* flag = nullptr;
  for (const AgentFlag& candidate : kAgentFlags)
    if (flag_name(candidate.name) == option) flag = &candidate;
  if (flag == nullptr) throw UsageError(fmt::format("unknown option '{}' (see heapscope --help)", option));
  std::string value;
  if (std::strcmp(flag->type, "bool") == 0) {
    value = has_inline ? inline_value : "yes";
    if (value != "yes" && value != "no" && value != "true" && value != "false" && value != "1" && value != "0")
      throw UsageError(fmt::format("{} takes yes or no, not '{}'", option, value));
  } else {
    value = value_of();
    if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 9)
      throw UsageError(fmt::format("{} needs a whole number, not '{}'", option, value));
  }
  return fmt::format("{}={}", flag->name, value);
}

std::string joined_settings(const std::vector<std::string>& settings) {
  std::string joined;
  for (const std::string& setting : settings) joined += (joined.empty() ? "" : ":") + setting;
  return joined;
}

double parse_seconds(const std::string& text, const std::string& option) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(value >= 0) || value > 1e7)
    throw UsageError(fmt::format("{} needs a number of seconds like 30 or 0.5, not '{}'", option, text));
  return value;
}

}  // namespace

RunArguments parse_run_arguments(const std::vector<std::string>& arguments) {
  RunArguments run;
  std::vector<std::string> agent_settings;
  size_t i = 0;
  auto value_of = [&](const std::string& option, const std::string& inline_value, bool has_inline) {
    if (has_inline) return inline_value;
    if (i + 1 >= arguments.size()) throw UsageError(fmt::format("{} needs a value", option));
    return arguments[++i];
  };
  for (; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") {
      ++i;
      break;
    }
    // Among run's own options, not the program's: the parser alone knows which words are
    // option values and where the program starts.
    if (argument == "--help" || argument == "-h") throw HelpRequested{};
    if (!argument.starts_with("--")) break;  // the program starts here
    const size_t equals = argument.find('=');
    const std::string option = argument.substr(0, equals);
    const bool has_inline = equals != std::string::npos;
    const std::string inline_value = has_inline ? argument.substr(equals + 1) : "";
    if (parse_output_option(option, has_inline, [&] { return value_of(option, inline_value, has_inline); },
                            run.output)) {
      continue;
    }
    if (option == "--output") {
      run.output_dir = value_of(option, inline_value, has_inline);
    } else if (option == "--no-follow-children" && !has_inline) {
      agent_settings.push_back("follow_children=no");
    } else {
      agent_settings.push_back(
          agent_setting(option, has_inline, inline_value, [&] { return value_of(option, inline_value, has_inline); }));
    }
  }
  run.command.assign(arguments.begin() + static_cast<std::ptrdiff_t>(std::min(i, arguments.size())), arguments.end());
  if (run.command.empty()) throw UsageError("no program given to run (usage: heapscope run [OPTIONS] -- PROGRAM [ARGS...])");
  run.agent_options = joined_settings(agent_settings);
  return run;
}

AttachArguments parse_attach_arguments(const std::vector<std::string>& arguments) {
  AttachArguments attach;
  std::vector<std::string> agent_settings;
  std::optional<std::string> pid_text;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (!argument.starts_with("--")) {
      if (pid_text) throw UsageError(fmt::format("attach takes one process id, not '{}' as well", argument));
      pid_text = argument;
      continue;
    }
    const size_t equals = argument.find('=');
    const std::string option = argument.substr(0, equals);
    const bool has_inline = equals != std::string::npos;
    const std::string inline_value = has_inline ? argument.substr(equals + 1) : "";
    auto value = [&]() -> std::string {
      if (has_inline) return inline_value;
      if (i + 1 >= arguments.size()) throw UsageError(fmt::format("{} needs a value", option));
      return arguments[++i];
    };
    if (parse_output_option(option, has_inline, value, attach.output)) continue;
    if (option == "--output") {
      attach.output_dir = value();
    } else if (option == "--for") {
      attach.for_seconds = parse_seconds(value(), option);
    } else if (option == "--min-age") {
      attach.min_age_seconds = parse_seconds(value(), option);
    } else if (option == "--canaries" || option == "--quarantine-mib" || option == "--follow-children" ||
               option == "--no-follow-children") {
      throw UsageError(fmt::format("{} does not apply to attach: an attached process keeps the pointers its own "
                                   "allocator returned (no canaries, no quarantine), and its children are not followed",
                                   option));
    } else {
      agent_settings.push_back(agent_setting(option, has_inline, inline_value, value));
    }
  }
  if (!pid_text) throw UsageError("no process given (usage: heapscope attach [OPTIONS] PID)");
  const std::string& text = *pid_text;
  int pid = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (error != std::errc() || end != text.data() + text.size() || pid <= 0)
    throw UsageError(fmt::format("'{}' is not a process id", text));
  attach.pid = pid;
  attach.agent_options = joined_settings(agent_settings);
  return attach;
}

// `heapscope collect --session DIR --pid PID --trace FILE`: started by the agent when it is
// preloaded without `heapscope run` (preload/record/standalone.cpp). Drains the process's ring into
// its trace, silently: the agent prints the summary, `heapscope report` the rest.
int collect_command(const std::vector<std::string>& arguments) {
  std::string session, trace;
  int pid = 0;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& option = arguments[i];
    if (i + 1 >= arguments.size()) throw UsageError(fmt::format("{} needs a value", option));
    const std::string& value = arguments[++i];
    if (option == "--session") session = value;
    else if (option == "--pid") pid = std::atoi(value.c_str());
    else if (option == "--trace") trace = value;
    else throw UsageError(fmt::format("unknown option '{}' for collect", option));
  }
  if (session.empty() || pid <= 0 || trace.empty())
    throw UsageError("collect needs --session DIR, --pid PID and --trace FILE");
  // Interrupts go to the program's terminal group, which includes us: the program's Ctrl-C
  // must not cost its trace.
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  collect_existing(session, pid, trace);
  return 0;
}

// `heapscope COMMAND --help`: the parts of usage_text() about COMMAND, so there is one text.
// Option lines marked "(run)", "(report)" or "(attach)" belong to that command only; agent
// options to run and attach.
std::string command_usage_text(const std::string& command) {
  std::istringstream lines(usage_text());
  std::string line, out;
  enum class Part { kSynopsis, kDescriptions, kReportOptions, kAgentOptions, kExitStatus } part = Part::kSynopsis;
  bool describing = false;
  const bool has_options = command == "run" || command == "report" || command == "attach";
  const bool has_agent_options = command == "run" || command == "attach";
  while (std::getline(lines, line)) {
    if (line.rfind("Report options:", 0) == 0) part = Part::kReportOptions;
    else if (line.rfind("Agent options", 0) == 0) part = Part::kAgentOptions;
    else if (line.rfind("Exit status", 0) == 0) part = Part::kExitStatus;
    else if (part == Part::kSynopsis && line.empty()) part = Part::kDescriptions;
    switch (part) {
      case Part::kSynopsis:
        if (line.find("heapscope " + command + " ") != std::string::npos)
          out += "usage: " + line.substr(line.find("heapscope ")) + "\n\n";
        break;
      case Part::kDescriptions:
        if (line.rfind(command + ": ", 0) == 0) describing = true;
        else if (line.empty() || line[0] != ' ') describing = false;
        if (describing) out += line + "\n";
        break;
      case Part::kReportOptions: {
        if (!has_options) break;
        bool other = false;
        for (const char* marker : {"(run)", "(report)", "(attach)"})
          if (line.find(std::string(" ") + marker + " ") != std::string::npos && marker != "(" + command + ")") other = true;
        if (!other) out += (line.rfind("Report options:", 0) == 0 ? "\nOptions:" : line) + "\n";
        break;
      }
      case Part::kAgentOptions:
        if (has_agent_options) out += line + "\n";
        break;
      case Part::kExitStatus:
        if (has_options) out += line + "\n";
        break;
    }
  }
  return out;
}

namespace {

// --help among the options of a command that runs no program (run's parser decides for run:
// after its program, or after `--`, the word is the program's).
bool asks_for_help(const std::vector<std::string>& arguments) {
  for (size_t i = 1; i < arguments.size(); ++i) {
    if (arguments[i] == "--") return false;
    if (arguments[i] == "--help" || arguments[i] == "-h") return true;
  }
  return false;
}

}  // namespace

int run_cli(int argc, char** argv) {
  const std::vector<std::string> arguments(argv + 1, argv + argc);
  try {
    if (arguments.empty()) {
      std::cerr << usage_text();
      return kExitToolFailure;
    }
    const std::string& command = arguments[0];
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << usage_text();
      return 0;
    }
    if (command == "--version") {
      std::cout << "heapscope " << kVersion << "\n";
      return 0;
    }
    if ((command == "report" || command == "diff" || command == "attach" || command == "default-suppressions") &&
        asks_for_help(arguments)) {
      std::cout << command_usage_text(command);
      return 0;
    }
    if (command == "run") return run_command({arguments.begin() + 1, arguments.end()});
    if (command == "report") return report_command({arguments.begin() + 1, arguments.end()});
    if (command == "diff") return diff_command({arguments.begin() + 1, arguments.end()});
    if (command == "collect") return collect_command({arguments.begin() + 1, arguments.end()});
    if (command == "default-suppressions") {
      std::cout << default_suppressions_text();
      return 0;
    }
    if (command == "attach") return attach_command({arguments.begin() + 1, arguments.end()});
    throw UsageError(fmt::format("unknown command '{}' (see heapscope --help)", command));
  } catch (const HelpRequested&) {
    std::cout << command_usage_text(arguments[0]);
    return 0;
  } catch (const UsageError& error) {
    std::cerr << "heapscope: " << error.what() << "\n";
  } catch (const FormatError& error) {
    std::cerr << "heapscope: " << error.what() << "\n";
  } catch (const IoError& error) {
    std::cerr << "heapscope: " << error.what() << "\n";
  } catch (const std::exception& error) {
    std::cerr << "heapscope: internal error: " << error.what() << "\n";
  }
  return kExitToolFailure;
}

}  // namespace heapscope::analyzer
