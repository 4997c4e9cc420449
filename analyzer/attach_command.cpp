// `heapscope attach PID`: the one place where the CLI drives attach/ (injecting the agent) and
// the collector and reports of analyzer/ together. attach/ itself never includes analyzer/.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

#include "attach_error.h"
#include "cli.h"
#include "collector.h"
#include "errors.h"
#include "heapscope/attach_protocol.h"
#include "inject.h"
#include "report.h"
#include "suppressions.h"

namespace heapscope::analyzer {
namespace {

int exit_status_of(attach::Refusal refusal) {
  switch (refusal) {
    case attach::Refusal::kNoSuchProcess: return kExitNoSuchProcess;
    case attach::Refusal::kNotPermitted: return kExitNotPermitted;
    case attach::Refusal::kUnsuitable: return kExitCannotAttach;
    case attach::Refusal::kInjectionFailed: return kExitInjectionFailed;
  }
  return kExitToolFailure;
}

std::string process_name(int pid) {
  char buffer[256] = {};
  FILE* comm = fopen(fmt::format("/proc/{}/comm", pid).c_str(), "r");
  if (comm == nullptr) return "?";
  if (fgets(buffer, sizeof(buffer), comm) == nullptr) buffer[0] = '\0';
  fclose(comm);
  std::string name(buffer);
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

}  // namespace

int attach_command(const std::vector<std::string>& arguments) {
  const AttachArguments args = parse_attach_arguments(arguments);
  Suppressions suppressions = prepare_output(args.output);
  const std::string agent = agent_library(format::kAttachAgentFile);
  const std::string name = process_name(args.pid);

  AttachCollectOptions options;
  options.pid = args.pid;
  options.duration = std::chrono::milliseconds(static_cast<int64_t>(std::llround(args.for_seconds * 1000)));
  if (args.output_dir) options.output_dir = *args.output_dir;
  AttachCollectResult result;
  try {
    attach::check_attachable(args.pid, agent);
    result = attach_and_collect(options, [&](const std::string& session) {
      // The agent creates its ring in the session directory as the process's user: a process
      // of another user (a service's own, attached by root) must be able to write there. The
      // directory stays private to that user and us.
      struct stat owner {};
      if (stat(fmt::format("/proc/{}", args.pid).c_str(), &owner) == 0 && owner.st_uid != geteuid() &&
          chown(session.c_str(), owner.st_uid, owner.st_gid) != 0)
        throw IoError(fmt::format("cannot hand the session directory {} to user {}: {}", session, owner.st_uid,
                                  strerror(errno)));
      attach::InjectRequest request;
      request.pid = args.pid;
      request.agent_path = agent;
      request.session_dir = session;
      request.collector_pid = getpid();
      request.agent_options = args.agent_options;
      const attach::InjectResult injected = attach::inject_agent(request);
      if (args.output.detail >= 2)
        for (const std::string& note : injected.notes) std::cerr << "heapscope: " << note << "\n";
      if (args.output.detail >= 1) {
        const std::string until = args.for_seconds > 0 ? fmt::format("for {} s", args.for_seconds)
                                                       : std::string("until Ctrl-C, SIGINT or SIGTERM");
        std::cerr << fmt::format("heapscope: attached to process {} ({}) through thread {} ({}), held {:.1f} ms; "
                                 "recording {}\n",
                                 args.pid, name, injected.tid, injected.thread_state, injected.held.count() / 1000.0,
                                 until);
      }
    });
  } catch (const attach::AttachError& error) {
    std::cerr << "heapscope: " << error.what() << "\n";
    return exit_status_of(error.refusal());
  }
  if (args.output.detail >= 1) {
    switch (result.end) {
      case AttachEnd::kDetached:
        std::cerr << fmt::format("heapscope: detached from process {} ({}); it runs on as before\n", args.pid, name);
        break;
      case AttachEnd::kProcessEnded:
        std::cerr << fmt::format("heapscope: process {} ({}) ended while attached\n", args.pid, name);
        break;
      case AttachEnd::kDetachTimedOut:
        std::cerr << fmt::format("heapscope: process {} ({}) did not confirm the detach in time; its agent ends "
                                 "the session on its own once it sees heapscope gone\n",
                                 args.pid, name);
        break;
    }
  }

  ReportOptions report_options;
  report_options.min_age_ns = static_cast<uint64_t>(std::llround(args.min_age_seconds * 1e9));
  Symbolizer symbolizer;
  Report report = build_report(result.collected.processes, symbolizer, report_options);
  const bool gate = finish_report(report, result.collected.processes, symbolizer, suppressions, args.output, std::cerr,
                                  true);
  for (const std::string& trace : result.collected.trace_paths)
    std::cerr << "heapscope: trace written to " << trace << "\n";
  if (gate) return gate_status(args.output);
  if (result.end == AttachEnd::kProcessEnded) return kExitTargetEnded;
  return 0;
}

}  // namespace heapscope::analyzer
