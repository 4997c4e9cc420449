// Command-line interface of the `heapscope` program: argument parsing and the `run` command.
// main.cpp only calls run_cli() and returns its status. Exit statuses are documented in
// docs/cli.md.
#pragma once
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "report.h"

namespace heapscope::analyzer {

inline constexpr int kExitToolFailure = 125;  // heapscope itself failed (usage, I/O, bad input)
inline constexpr int kExitGateDefault = 23;    // a threshold tripped without --error-exitcode (as LSan)
// `heapscope attach` (docs/cli.md): the process ended while attached (its report is written);
// no such process; ptrace not permitted; a process that cannot be attached to (stopped, traced,
// static, no allocator to redirect, attached already); the agent could not be loaded or
// started (the process was left as it was).
inline constexpr int kExitTargetEnded = 119;
inline constexpr int kExitNoSuchProcess = 120;
inline constexpr int kExitNotPermitted = 121;
inline constexpr int kExitCannotAttach = 122;
inline constexpr int kExitInjectionFailed = 123;

// Options that shape the report, shared by `run` and `report`.
struct OutputArguments {
  std::optional<std::string> json_path;
  std::optional<std::string> log_path;
  std::optional<std::string> html_path;         // --html: the self-contained HTML report
  std::optional<int> error_exitcode;
  std::vector<std::string> suppression_files;  // --suppressions, repeatable
  bool default_suppressions = true;            // --default-suppressions=no: without the built-in list
  bool gen_suppressions = false;               // print a suppression for each leak record
  std::optional<uint64_t> fail_on_leak_bytes;  // leaks count only above this many bytes in all
  std::optional<uint64_t> max_peak;            // any process's peak above this trips the gate
  std::string color = "auto";                  // --color=always|never|auto
  int detail = 1;                              // 0 --quiet, 1 normal, 2 --verbose
  std::optional<std::string> collapsed_path;   // --collapsed: flame-graph input
  std::string collapsed_cost = "peak";          // --cost leaked|peak|allocated|count
  std::string show_leak_kinds = "definite,possible";        // leak records the text shows
  std::string errors_for_leak_kinds = "definite,possible";  // leaks the exit status counts
};

struct RunArguments {
  std::vector<std::string> command;
  OutputArguments output;
  std::string agent_options;  // "key=value:..." built from the agent option flags
  std::optional<std::string> output_dir;  // --output: one trace file per process image
};

struct AttachArguments {
  int pid = 0;
  OutputArguments output;
  std::string agent_options;              // "key=value:..." built from the agent option flags
  std::optional<std::string> output_dir;  // --output: the process's trace
  double for_seconds = 0;                 // --for; 0: until Ctrl-C, SIGINT or SIGTERM
  double min_age_seconds = 0;             // --min-age: younger blocks are not leak suspects
};

struct ReportArguments {
  std::vector<std::string> traces;  // files, or directories whose *.trace.zst are read
  OutputArguments output;
  bool text = false;  // --text: the text report on stdout even with --json
};

// Parses the arguments after `report`. Throws UsageError.
ReportArguments parse_report_arguments(const std::vector<std::string>& arguments);

// Parses the arguments after `run`. Throws UsageError with a message naming the problem.
RunArguments parse_run_arguments(const std::vector<std::string>& arguments);

// Parses the arguments after `attach`. Throws UsageError.
AttachArguments parse_attach_arguments(const std::vector<std::string>& arguments);

// Shared by the commands (cli.cpp, attach_command.cpp).
class Suppressions;
// Checks before anything runs that every output file can be written, and loads suppressions.
Suppressions prepare_output(const OutputArguments& output);
// Applies suppressions, writes the reports, and returns whether the gate trips.
bool finish_report(Report& report, const std::vector<TracedProcess>& traced, Symbolizer& symbolizer,
                   Suppressions& suppressions, const OutputArguments& output, std::ostream& text_stream,
                   bool print_text);
int gate_status(const OutputArguments& output);
// The agent beside heapscope (../lib/NAME from its own binary), or HEAPSCOPE_AGENT's
// directory's NAME when that is set. Throws IoError when it is missing.
std::string agent_library(const char* name);
// `heapscope attach` (attach_command.cpp).
int attach_command(const std::vector<std::string>& arguments);

// The whole program: dispatches the subcommand, prints errors, returns the exit status.
int run_cli(int argc, char** argv);

std::string usage_text();
// `heapscope COMMAND --help`: the synopsis, description, options and exit status of COMMAND.
std::string command_usage_text(const std::string& command);

}  // namespace heapscope::analyzer
