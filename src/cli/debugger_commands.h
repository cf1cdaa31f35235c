// `trainyard debugger ...`: a job's debugger and profiler rules as the server evaluates them
// (Trainyard.ListRuleEvaluations).
//
//   trainyard debugger rules JOB [--output text|json]
//       each rule: status, details, the step that fired, the values that triggered it, steps
//       evaluated; json: {"TrainingJobName", "TrainingJobStatus", "Rules": [ListRuleEvaluations'
//       entries, Findings as an object, FiredStep/LastStep null when absent]}
//   trainyard debugger tensors JOB [--step N] [--name REGEX] [--max N] [--output text|json]
//       the tensors the hook saved (Trainyard.ListDebugTensors): names, steps, and at --step (or
//       each tensor's last step) its shape and min/max/mean
//
// Exit codes: 0 success; 1 the server refused or failed; 2 bad arguments or no server.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
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
  int Tensors(std::ostream& out, std::ostream& err);

  CLI::App* group_ = nullptr;
  CLI::App* rules_ = nullptr;
  CLI::App* tensors_ = nullptr;
  std::string endpoint_;
  std::string job_;
  std::string output_ = "text";
  int64_t step_ = -1;
  std::string name_regex_;
  int max_ = 100;
};

}  // namespace ty::cli
