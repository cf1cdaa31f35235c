#include "cli/debugger_commands.h"

#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "common/clock.h"

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

}  // namespace

DebuggerCommands::DebuggerCommands(CLI::App& app) {
  group_ = app.add_subcommand("debugger", "Show a training job's debugger and profiler rules");
  group_->add_option("--endpoint-url", endpoint_, "Server URL");
  group_->require_subcommand(1);
  rules_ = group_->add_subcommand(
      "rules", "Each rule's status, the step that fired and the values that triggered it");
  rules_->add_option("job", job_, "Training job name")->required();
  rules_->add_option("--output", output_, "text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
}

bool DebuggerCommands::chosen() const { return group_->parsed(); }

int DebuggerCommands::Run(std::ostream& out, std::ostream& err) {
  if (*rules_) return Rules(out, err);
  return 2;
}

int DebuggerCommands::Rules(std::ostream& out, std::ostream& err) {
  auto client = ConnectTo(endpoint_);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r = (*client)->Call("Trainyard.ListRuleEvaluations", {{"TrainingJobName", job_}});
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  const json& rules = r->value("RuleEvaluations", json::array());
  if (output_ == "json") {
    // The API's entries, with Findings as JSON and FiredStep/LastStep always present.
    json list = json::array();
    for (json e : rules) {
      auto findings = json::parse(e.value("Findings", "{}"), nullptr, false);
      e["Findings"] = findings.is_discarded() ? json::object() : findings;
      if (!e.contains("FiredStep")) e["FiredStep"] = nullptr;
      if (!e.contains("LastStep")) e["LastStep"] = nullptr;
      list.push_back(std::move(e));
    }
    out << json{{"TrainingJobName", r->value("TrainingJobName", job_)},
                {"TrainingJobStatus", r->value("TrainingJobStatus", "")},
                {"Rules", std::move(list)}}
               .dump(2)
        << "\n";
    return 0;
  }
  out << "Training job " << r->value("TrainingJobName", job_) << " ("
      << r->value("TrainingJobStatus", "") << "): " << rules.size() << " rule(s)\n";
  for (const auto& e : rules) {
    out << "\n"
        << e.value("RuleConfigurationName", "") << " (" << e.value("RuleKind", "") << " rule "
        << e.value("RuleToInvoke", "") << ")\n";
    out << "  status:          " << e.value("RuleEvaluationStatus", "") << " (since "
        << Time(e.value("LastModifiedTime", json())) << ")\n";
    if (!e.value("StatusDetails", "").empty()) {
      out << "  details:         " << e.value("StatusDetails", "") << "\n";
    }
    if (e.contains("FiredStep")) out << "  fired at step:   " << e["FiredStep"].dump() << "\n";
    auto findings = json::parse(e.value("Findings", "{}"), nullptr, false);
    if (findings.is_object() && !findings.empty()) {
      out << "  triggered by:\n";
      for (const auto& [k, v] : findings.items()) out << "    " << k << ": " << v.dump() << "\n";
    }
    out << "  steps evaluated: " << e.value("StepsEvaluated", 0);
    if (e.contains("LastStep")) out << " (through step " << e["LastStep"].dump() << ")";
    out << "\n  evaluation job:  " << e.value("RuleEvaluationJobArn", "") << "\n";
  }
  return 0;
}

}  // namespace ty::cli
