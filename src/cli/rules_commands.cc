#include "cli/rules_commands.h"

#include <iomanip>

#include <nlohmann/json.hpp>

#include "cli/client.h"

namespace ty::cli {

using nlohmann::json;

namespace {

std::string Or(const json& j, const char* key, const std::string& fallback = "-") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

}  // namespace

RulesCommands::RulesCommands(CLI::App& app) {
  group_ = app.add_subcommand("rules", "EventBridge rules and their dead letters");
  group_->require_subcommand(1);
  group_->add_option("--endpoint-url", endpoint_, "The Trainyard server (default: AWS env)");
  list_ = group_->add_subcommand("list", "List the account's rules");
  list_->add_option("--prefix", prefix_, "Only rules whose name starts with this");
  list_->add_flag("--json", json_, "Print the ListRules response");
  describe_ = group_->add_subcommand("describe", "Show a rule and its targets");
  describe_->add_option("name", name_, "The rule's name")->required();
  describe_->add_flag("--json", json_, "Print DescribeRule and ListTargetsByRule as JSON");
  dead_ = group_->add_subcommand("dead-letters",
                                 "Deliveries that failed for good (retries or age exhausted)");
  dead_->add_option("--max", max_, "At most this many, newest first")->check(CLI::Range(1, 1000));
  dead_->add_flag("--json", json_, "Print the ListDeadLetters response");
}

bool RulesCommands::chosen() const { return group_->parsed(); }

int RulesCommands::Run(std::ostream& out, std::ostream& err) {
  auto endpoint = ResolveEndpoint(endpoint_);
  if (!endpoint.ok()) {
    err << "trainyard: no Trainyard server configured: pass --endpoint-url, set "
           "AWS_ENDPOINT_URL, or start one with `trainyard server`\n";
    return 2;
  }
  ApiClient client(*endpoint);
  auto fail = [&](const Status& s) {
    err << "trainyard: " << s.message() << "\n";
    return s.code() == StatusCode::kUnavailable ? 2 : 1;
  };
  if (list_->parsed()) {
    json rules = json::array();
    json req = json::object();
    if (!prefix_.empty()) req["NamePrefix"] = prefix_;
    for (int page = 0; page < 1000; ++page) {
      auto res = client.Call("AWSEvents.ListRules", req);
      if (!res.ok()) return fail(res.status());
      for (auto& r : (*res)["Rules"]) rules.push_back(r);
      if (!res->contains("NextToken")) break;
      req["NextToken"] = (*res)["NextToken"];
    }
    if (json_) {
      out << json{{"Rules", rules}}.dump(2) << "\n";
      return 0;
    }
    out << std::left << std::setw(32) << "NAME" << std::setw(10) << "STATE"
        << "PATTERN / SCHEDULE\n";
    for (const auto& r : rules) {
      std::string what = Or(r, "EventPattern", Or(r, "ScheduleExpression"));
      out << std::left << std::setw(32) << Or(r, "Name") << std::setw(10) << Or(r, "State") << what
          << "\n";
    }
    return 0;
  }
  if (describe_->parsed()) {
    auto rule = client.Call("AWSEvents.DescribeRule", {{"Name", name_}});
    if (!rule.ok()) return fail(rule.status());
    auto targets = client.Call("AWSEvents.ListTargetsByRule", {{"Rule", name_}});
    if (!targets.ok()) return fail(targets.status());
    if (json_) {
      out << json{{"Rule", *rule}, {"Targets", (*targets)["Targets"]}}.dump(2) << "\n";
      return 0;
    }
    out << "Name:        " << Or(*rule, "Name") << "\n"
        << "Arn:         " << Or(*rule, "Arn") << "\n"
        << "State:       " << Or(*rule, "State") << "\n";
    if (rule->contains("EventPattern")) out << "Pattern:     " << Or(*rule, "EventPattern") << "\n";
    if (rule->contains("ScheduleExpression")) {
      out << "Schedule:    " << Or(*rule, "ScheduleExpression") << "\n";
    }
    if (rule->contains("Description")) out << "Description: " << Or(*rule, "Description") << "\n";
    out << "Targets:\n";
    for (const auto& t : (*targets)["Targets"]) {
      out << "  " << Or(t, "Id") << "  " << Or(t, "Arn") << "\n";
    }
    return 0;
  }
  if (dead_->parsed()) {
    auto res = client.Call("Trainyard.ListDeadLetters", {{"MaxResults", max_}});
    if (!res.ok()) return fail(res.status());
    if (json_) {
      out << res->dump(2) << "\n";
      return 0;
    }
    const json& letters = (*res)["DeadLetters"];
    if (letters.empty()) out << "No dead letters.\n";
    for (const auto& d : letters) {
      out << Or(d, "EventId") << "  rule " << Or(d, "RuleArn") << " -> " << Or(d, "TargetArn")
          << "  attempts " << d.value("Attempts", 0) << "\n    " << Or(d, "Error") << "\n";
    }
    return 0;
  }
  return 2;
}

}  // namespace ty::cli
