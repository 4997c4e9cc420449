// `heapscope run` argument parsing.
#include "cli.h"

#include <gtest/gtest.h>

#include "errors.h"

namespace heapscope::analyzer {
namespace {

TEST(Cli, ReportOptionsAndProgram) {
  const RunArguments run =
      parse_run_arguments({"--json", "r.json", "--log-file=t.txt", "--error-exitcode", "42", "--", "prog", "--json"});
  EXPECT_EQ(run.output.json_path, "r.json");
  EXPECT_EQ(run.output.log_path, "t.txt");
  EXPECT_EQ(run.output.error_exitcode, 42);
  EXPECT_EQ(run.command, (std::vector<std::string>{"prog", "--json"}));  // after --: the program's
}

TEST(Cli, ProgramStartsAtFirstNonOption) {
  const RunArguments run = parse_run_arguments({"ls", "-l"});
  EXPECT_EQ(run.command, (std::vector<std::string>{"ls", "-l"}));
}

TEST(Cli, AgentOptionsComeFromTheTable) {
  const RunArguments run = parse_run_arguments({"--max-frames", "8", "--canaries=no", "--abort-on-error", "prog"});
  EXPECT_EQ(run.agent_options, "max_frames=8:canaries=no:abort_on_error=yes");
}

TEST(Cli, NoFollowChildrenIsTheAgentOption) {
  EXPECT_EQ(parse_run_arguments({"--no-follow-children", "prog"}).agent_options, "follow_children=no");
  EXPECT_EQ(parse_run_arguments({"--follow-children=no", "prog"}).agent_options, "follow_children=no");
}

TEST(Cli, BadArgumentsAreUsageErrors) {
  EXPECT_THROW(parse_run_arguments({}), UsageError);
  EXPECT_THROW(parse_run_arguments({"--json"}), UsageError);
  EXPECT_THROW(parse_run_arguments({"--bogus", "prog"}), UsageError);
  EXPECT_THROW(parse_run_arguments({"--error-exitcode", "300", "prog"}), UsageError);
  EXPECT_THROW(parse_run_arguments({"--max-frames", "-1", "prog"}), UsageError);
  EXPECT_THROW(parse_run_arguments({"--canaries=perhaps", "prog"}), UsageError);
}

// issue 14: --help among run's options asks for run's help; after the program, or after --,
// it is the program's argument (a value of an option is never taken for it).
TEST(Cli, RunsHelpIsRunsOwnOptionOnly) {
  EXPECT_THROW(parse_run_arguments({"--help"}), HelpRequested);
  EXPECT_THROW(parse_run_arguments({"--json", "r.json", "-h", "prog"}), HelpRequested);
  EXPECT_EQ(parse_run_arguments({"prog", "--help"}).command, (std::vector<std::string>{"prog", "--help"}));
  EXPECT_EQ(parse_run_arguments({"--", "--help"}).command, (std::vector<std::string>{"--help"}));
  EXPECT_EQ(parse_run_arguments({"--log-file", "--help", "prog"}).command, (std::vector<std::string>{"prog"}));
  const std::string run = command_usage_text("run");
  EXPECT_EQ(run.rfind("usage: heapscope run", 0), 0u) << run;
  EXPECT_NE(run.find("--guard-pages"), std::string::npos);
  EXPECT_EQ(run.find("--min-age"), std::string::npos) << "attach's only";
  EXPECT_EQ(command_usage_text("diff").find("Options:"), std::string::npos) << "diff takes none of those";
}

TEST(Cli, HelpListsEveryAgentOption) {
  const std::string help = usage_text();
  for (const char* flag : {"--max-frames", "--canaries", "--quarantine-mib", "--free-stacks", "--abort-on-error",
                           "--ring-mib", "--json", "--log-file", "--error-exitcode"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace heapscope::analyzer
