// `trainyard functions ...`: the Lambda functions of the caller's account on a Trainyard server
// (endpoint and credentials as for every client command, cli/client.h).
//
//   trainyard functions list [--json]
//   trainyard functions describe NAME [--json]
//   trainyard functions invoke NAME [--payload JSON] [--log]
//   trainyard functions logs NAME [--limit N]
//
// Exit codes: 0 success; 1 the call failed or (invoke) the function raised; 2 bad arguments.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace ty::cli {

// Registers the `functions` command group on `app`; Run runs the chosen subcommand.
// Not copyable: CLI11 keeps pointers to the members.
class FunctionsCommands {
 public:
  explicit FunctionsCommands(CLI::App& app);
  FunctionsCommands(const FunctionsCommands&) = delete;
  FunctionsCommands& operator=(const FunctionsCommands&) = delete;

  bool chosen() const;
  int Run(std::ostream& out, std::ostream& err);

 private:
  CLI::App* group_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* describe_ = nullptr;
  CLI::App* invoke_ = nullptr;
  CLI::App* logs_ = nullptr;
  std::string endpoint_url_;
  std::string name_;
  std::string payload_ = "{}";
  bool as_json_ = false;
  bool show_log_ = false;
  int limit_ = 1000;
};

}  // namespace ty::cli
