#include "cli/debugger_commands.h"

#include <algorithm>

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
  tensors_ = group_->add_subcommand(
      "tensors", "The tensors the job's debugger hook saved: steps, shapes and values");
  tensors_->add_option("job", job_, "Training job name")->required();
  tensors_->add_option("--step", step_,
                       "Only tensors saved at this global step (and their values there)");
  tensors_->add_option("--name", name_regex_, "Only tensor names matching this regex");
  tensors_->add_option("--max", max_, "At most this many tensors (default 100, at most 1000)");
  tensors_->add_option("--output", output_, "text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
}

bool DebuggerCommands::chosen() const { return group_->parsed(); }

int DebuggerCommands::Run(std::ostream& out, std::ostream& err) {
  if (*rules_) return Rules(out, err);
  if (*tensors_) return Tensors(out, err);
  return 2;
}

int DebuggerCommands::Tensors(std::ostream& out, std::ostream& err) {
  auto client = ConnectTo(endpoint_);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  json req = {{"TrainingJobName", job_}, {"MaxResults", std::clamp(max_, 1, 1000)}};
  if (step_ >= 0) req["Step"] = step_;
  if (!name_regex_.empty()) req["NameRegex"] = name_regex_;
  auto r = (*client)->Call("Trainyard.ListDebugTensors", req);
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  if (output_ == "json") return out << r->dump(2) << "\n", 0;
  const json& steps = r->value("Steps", json::array());
  out << "Trial " << r->value("TrialUri", "") << ": " << steps.size() << " complete step(s)";
  if (!steps.empty()) out << " (" << steps.front().dump() << " .. " << steps.back().dump() << ")";
  out << (r->value("TrainingEnded", false) ? ", training ended" : ", training goes on") << "\n";
  const json& tensors = r->value("Tensors", json::array());
  if (tensors.empty()) out << "  no tensors\n";
  for (const auto& t : tensors) {
    const json& ts = t.value("Steps", json::array());
    out << "\n" << t.value("Name", "") << "\n  steps: " << ts.size();
    if (!ts.empty()) out << " (" << ts.front().dump() << " .. " << ts.back().dump() << ")";
    out << "\n";
    if (t.contains("Step")) {
      out << "  at step " << t["Step"].dump() << ": ";
      if (t.contains("Error")) {
        out << t["Error"].get<std::string>() << "\n";
        continue;
      }
      out << "shape " << t.value("Shape", json::array()).dump() << ", " << t.value("Count", 0)
          << " value(s)";
      for (const char* k : {"Min", "Max", "Mean"}) {
        if (t.contains(k)) out << ", " << k << " " << t[k].get<double>();
      }
      out << "\n";
    }
  }
  if (r->value("Truncated", false)) out << "\n(more tensors match: narrow with --name or --max)\n";
  return 0;
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
