// `trainyard debugger ...`: a job's debugger and profiler rules as the server evaluates them
// (Trainyard.ListRuleEvaluations).
//
//   trainyard debugger rules JOB [--output text|json]
//       each rule: status, details, the step that fired, the values that triggered it, steps
//       evaluated; json: {"TrainingJobName", "TrainingJobStatus", "Rules": [ListRuleEvaluations'
//       entries, Findings as an object, FiredStep/LastStep null when absent]}
//
// Exit codes: 0 success; 1 the server refused or failed; 2 bad arguments or no server.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace ty::cli {

// Registers the `debugger` command group on `app` (in the constructor) and runs the chosen
// subcommand after parsing. Not copyable: CLI11 keeps pointers to the members.
class DebuggerCommands {
 public:
  explicit DebuggerCommands(CLI::App& app);
  DebuggerCommands(const DebuggerCommands&) = delete;
  DebuggerCommands& operator=(const DebuggerCommands&) = delete;

  // True when argv chose `debugger` (valid after app.parse).
  bool chosen() const;
  // Runs the chosen subcommand; returns the exit code.
  int Run(std::ostream& out, std::ostream& err);

 private:
  int Rules(std::ostream& out, std::ostream& err);

  CLI::App* group_ = nullptr;
  CLI::App* rules_ = nullptr;
  std::string endpoint_;
  std::string job_;
  std::string output_ = "text";
};

}  // namespace ty::cli
