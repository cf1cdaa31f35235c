// `trainyard rules ...`: the account's EventBridge rules and what became of their deliveries,
// through the server's API (the same ApiClient endpoint and credentials as `trainyard jobs`).
//
//   trainyard rules list [--prefix P] [--json]       rules with state, pattern or schedule
//   trainyard rules describe NAME [--json]            one rule and its targets
//   trainyard rules dead-letters [--max N] [--json]   deliveries that failed for good, newest first
//
// Exit codes: 0 success; 1 the server refused (no such rule); 2 bad arguments or no server.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace ty::cli {

// Registers the `rules` command group on `app` (in the constructor); Run runs the chosen
// subcommand after parsing. Not copyable: CLI11 keeps pointers to the members.
class RulesCommands {
 public:
  explicit RulesCommands(CLI::App& app);
  RulesCommands(const RulesCommands&) = delete;
  RulesCommands& operator=(const RulesCommands&) = delete;

  bool chosen() const;
  int Run(std::ostream& out, std::ostream& err);

 private:
  CLI::App* group_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* describe_ = nullptr;
  CLI::App* dead_ = nullptr;
  std::string endpoint_;
  std::string prefix_;
  std::string name_;
  int max_ = 50;
  bool json_ = false;
};

}  // namespace ty::cli
