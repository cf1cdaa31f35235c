#include "cli/governance_commands.h"

#include <iomanip>

#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "common/clock.h"
#include "events/governance_policy.h"
#include "server/bounded_yaml.h"

namespace ty::cli {
namespace {

using nlohmann::json;

Result<std::unique_ptr<ApiClient>> ConnectTo(const std::string& endpoint_flag) {
  auto endpoint = ResolveEndpoint(endpoint_flag);
  if (!endpoint.ok()) {
    if (endpoint.status().code() == StatusCode::kNotFound) {
      return NotFound(
          "no Trainyard server configured: pass --endpoint-url, set AWS_ENDPOINT_URL, "
          "or start one with `trainyard server`");
    }
    return endpoint.status();
  }
  return std::make_unique<ApiClient>(*endpoint);
}

std::string Time(const json& seconds) {
  if (!seconds.is_number()) return "-";
  return FormatHuman(FromEpochMillis(static_cast<int64_t>(seconds.get<double>() * 1000)));
}

// The policies in the config's spelling, one per line (what a user would put in the config).
void PrintPolicies(const json& response, std::ostream& out) {
  out << "Policies ("
      << (response.value("Source", "") == "account" ? "set by this account"
                                                    : "the server's defaults")
      << (response.value("AccountUpdatesAllowed", true) ? "" : "; only the server config sets them")
      << "):\n";
  auto parsed =
      events::ParsePolicies(response.value("Policies", json::object()), events::PolicyKeys::kApi);
  if (!parsed.ok()) {
    out << "  " << response.value("Policies", json::object()).dump() << "\n";
    return;
  }
  json doc = events::RenderPolicies(*parsed, events::PolicyKeys::kConfig);
  if (doc.empty()) out << "  none\n";
  for (const auto& [key, value] : doc.items()) out << "  " << key << ": " << value.dump() << "\n";
}

}  // namespace

GovernanceCommands::GovernanceCommands(CLI::App& app) {
  group_ = app.add_subcommand("governance",
                              "Show or change the account's built-in governance policies and "
                              "what they did");
  group_->add_option("--endpoint-url", endpoint_, "Server URL");
  group_->add_option("--max", max_, "Recent actions to show (default 20, at most 100)");
  group_->add_flag("--json", json_, "Print the responses as JSON");
  show_ = group_->add_subcommand("show", "Show the policies and recent actions (the default)");
  set_ = group_->add_subcommand("set", "Replace the account's policies with a file's");
  set_->add_option("file", file_, "YAML or JSON policies, keys as in the server config")
      ->required();
  reset_ = group_->add_subcommand("reset", "Return the account to the server's default policies");
}

bool GovernanceCommands::chosen() const { return group_->parsed(); }

int GovernanceCommands::Run(std::ostream& out, std::ostream& err) {
  if (*set_) return Set(out, err);
  if (*reset_) return Reset(out, err);
  return Show(out, err);
}

int GovernanceCommands::Show(std::ostream& out, std::ostream& err) {
  auto client = ConnectTo(endpoint_);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto policies = (*client)->Call("Trainyard.DescribeGovernance", json::object());
  if (!policies.ok()) return err << "trainyard: " << policies.status().message() << "\n", 1;
  auto actions = (*client)->Call("Trainyard.ListGovernanceActions",
                                 {{"MaxResults", std::clamp(max_, 1, 100)}});
  if (!actions.ok()) return err << "trainyard: " << actions.status().message() << "\n", 1;
  if (json_) {
    out << json{{"Governance", *policies}, {"Actions", (*actions)["Actions"]}}.dump(2) << "\n";
    return 0;
  }
  PrintPolicies(*policies, out);
  const json& list = (*actions)["Actions"];
  out << "\nRecent actions (newest first):\n";
  if (list.empty()) out << "  none\n";
  for (const auto& a : list) {
    out << "  " << Time(a.value("Time", json())) << "  " << std::left << std::setw(14)
        << a.value("Policy", "") << std::setw(11) << a.value("Action", "")
        << a.value("TrainingJobName", "");
    if (a.contains("CloneTrainingJobName")) {
      out << " -> " << a["CloneTrainingJobName"].get<std::string>();
    }
    out << "\n      " << a.value("Message", "") << "\n";
  }
  return 0;
}

int GovernanceCommands::Set(std::ostream& out, std::ostream& err) {
  auto node = server::LoadYamlFile(file_);
  if (!node.ok()) return err << "trainyard: " << node.status().message() << "\n", 2;
  auto doc = server::YamlToJson(*node);
  if (!doc.ok()) return err << "trainyard: " << file_ << ": " << doc.status().message() << "\n", 2;
  // A config excerpt may keep its `governance:` key around the policies.
  if (doc->is_object() && doc->size() == 1 && doc->contains("governance")) {
    *doc = json((*doc)["governance"]);
  }
  auto parsed = events::ParsePolicies(*doc, events::PolicyKeys::kConfig);
  if (!parsed.ok())
    return err << "trainyard: " << file_ << ": " << parsed.status().message() << "\n", 2;
  auto client = ConnectTo(endpoint_);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r =
      (*client)->Call("Trainyard.UpdateGovernance",
                      {{"Policies", events::RenderPolicies(*parsed, events::PolicyKeys::kApi)}});
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  if (json_) return out << r->dump(2) << "\n", 0;
  PrintPolicies(*r, out);
  return 0;
}

int GovernanceCommands::Reset(std::ostream& out, std::ostream& err) {
  auto client = ConnectTo(endpoint_);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r = (*client)->Call("Trainyard.UpdateGovernance", {{"UseServerDefaults", true}});
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  if (json_) return out << r->dump(2) << "\n", 0;
  PrintPolicies(*r, out);
  return 0;
}

}  // namespace ty::cli
