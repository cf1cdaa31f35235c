// `trainyard topics ...` and `trainyard alarms ...`: SNS topics and CloudWatch metric alarms of
// the caller's account, on the server the other commands reach (--endpoint-url, else
// AWS_ENDPOINT_URL, else ~/.trainyard).
//
//   trainyard topics list                 topic ARNs with their subscription counts
//   trainyard topics describe NAME|ARN    attributes, subscriptions, recent delivery failures
//   trainyard alarms list [--state S]     name, state, metric, threshold
//   trainyard alarms describe NAME [--json]
//                                         configuration, state, reason and recent history
//
// SNS speaks only the AWS query protocol, so topics are read with a form-encoded, SigV4-signed
// request and its XML answer; alarms through the JSON client (CloudWatch's JSON 1.0).
// Exit codes: 0 success; 1 the server refused or failed; 2 bad arguments or no server.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace ty::cli {

// Registers the `topics` and `alarms` groups on `app` (in the constructor). Not copyable:
// CLI11 keeps pointers to the members.
class AlarmsCommands {
 public:
  explicit AlarmsCommands(CLI::App& app);
  AlarmsCommands(const AlarmsCommands&) = delete;
  AlarmsCommands& operator=(const AlarmsCommands&) = delete;

  // True when argv chose `topics` or `alarms` (valid after app.parse).
  bool chosen() const;
  // Runs the chosen subcommand; returns the exit code.
  int Run(std::ostream& out, std::ostream& err);

 private:
  CLI::App* topics_ = nullptr;
  CLI::App* topics_list_ = nullptr;
  CLI::App* topics_describe_ = nullptr;
  CLI::App* alarms_ = nullptr;
  CLI::App* alarms_list_ = nullptr;
  CLI::App* alarms_describe_ = nullptr;
  std::string endpoint_;
  std::string name_;
  std::string state_;
  bool as_json_ = false;
};

// Reads an AWS query (XML) response into JSON: an element with children becomes an object,
// <member> lists become arrays, <entry><key/><value/></entry> maps become objects, text
// becomes a string. Bounded: at most 64 levels deep. Exposed for tests.
bool QueryXmlToJson(const std::string& xml, std::string* json_text, std::string* error);

}  // namespace ty::cli
