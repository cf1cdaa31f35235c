// `trainyard governance ...`: the caller's account's built-in governance policies and what
// they did (Trainyard.DescribeGovernance / UpdateGovernance / ListGovernanceActions).
//
//   trainyard governance [show] [--max N] [--json]   policies, then recent actions, newest first
//   trainyard governance set FILE                     replace the account's policies with FILE's
//                                                     (YAML or JSON, the config's snake_case keys)
//   trainyard governance reset                        back to the server's defaults
//
// Exit codes: 0 success; 1 the server refused or failed; 2 bad arguments or no server.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace ty::cli {

// Registers the `governance` command group on `app` (in the constructor) and runs the chosen
// subcommand after parsing. Not copyable: CLI11 keeps pointers to the members.
class GovernanceCommands {
 public:
  explicit GovernanceCommands(CLI::App& app);
  GovernanceCommands(const GovernanceCommands&) = delete;
  GovernanceCommands& operator=(const GovernanceCommands&) = delete;

  // True when argv chose `governance` (valid after app.parse).
  bool chosen() const;
  // Runs the chosen subcommand; returns the exit code.
  int Run(std::ostream& out, std::ostream& err);

 private:
  int Show(std::ostream& out, std::ostream& err);
  int Set(std::ostream& out, std::ostream& err);
  int Reset(std::ostream& out, std::ostream& err);

  CLI::App* group_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* set_ = nullptr;
  CLI::App* reset_ = nullptr;
  std::string endpoint_;
  std::string file_;
  int max_ = 20;
  bool json_ = false;
};

}  // namespace ty::cli
