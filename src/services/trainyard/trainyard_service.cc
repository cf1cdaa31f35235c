// Trainyard's own operations around managed spot training (not SageMaker's,
// so AWS response shapes stay untouched): fault injection for tests and
// demos, the spot market's state, and a job's interruptions and cost.
#include <cmath>

#include "services/trainyard/trainyard_service.h"

#include <algorithm>
#include <cstdlib>

#include "api/api_error.h"
#include "control/billing.h"
#include "debugger/trial.h"
#include "model/describe_json.h"

namespace ty::services {

using api::ApiError;
using api::Caller;
using api::JobNotFound;
using api::ToApiError;
using api::Validation;
using nlohmann::json;

namespace {

std::optional<ApiError> RequireString(const json& body, const char* key) {
  if (!body.contains(key) || !body.at(key).is_string() || body.at(key).get<std::string>().empty()) {
    return Validation(std::string(key) + " is required and must be a non-empty string.");
  }
  return std::nullopt;
}

double Seconds(TimePoint t) { return ToEpochSecondsDouble(t); }

double Cents(double dollars) { return std::round(dollars * 10000.0) / 10000.0; }

}  // namespace

TrainyardService::TrainyardService(const capacity::InstanceCatalog* catalog,
                                   control::JobController* controller, store::Store* store,
                                   const Clock* clock, events::Governance* governance,
                                   debugger::AccountStorage* debugger_storage)
    : model_(api::ServiceModel::Embedded("trainyard")),
      catalog_(catalog),
      controller_(controller),
      store_(store),
      clock_(clock),
      governance_(governance),
      debugger_storage_(debugger_storage) {}

api::ServiceOutcome TrainyardService::Call(const api::CallContext& ctx, const api::Operation& op,
                                           const json& body) {
  using Handler = Outcome (TrainyardService::*)(const Caller&, const json&);
  static const std::pair<const char*, Handler> kOps[] = {
      {"GetTrainingJobLogs", &TrainyardService::GetTrainingJobLogs},
      {"InterruptTrainingJob", &TrainyardService::InterruptTrainingJob},
      {"SetSpotCapacityUnavailable", &TrainyardService::SetSpotCapacityUnavailable},
      {"DescribeSpotMarket", &TrainyardService::DescribeSpotMarket},
      {"DescribeTrainingJobCost", &TrainyardService::DescribeTrainingJobCost},
      {"DescribeGovernance", &TrainyardService::DescribeGovernance},
      {"UpdateGovernance", &TrainyardService::UpdateGovernance},
      {"ListGovernanceActions", &TrainyardService::ListGovernanceActions},
      {"ListDeadLetters", &TrainyardService::ListDeadLetters},
      {"ListRuleEvaluations", &TrainyardService::ListRuleEvaluations},
      {"ListDebugTensors", &TrainyardService::ListDebugTensors},
  };
  for (const auto& [name, handler] : kOps) {
    if (op.name == name) return (this->*handler)(ctx.caller, body);
  }
  return ApiError{"UnknownOperationException", "Unknown operation '" + op.name + "'.", 400};
}

TrainyardService::Outcome TrainyardService::ListRuleEvaluations(const Caller& caller,
                                                                const json& body) {
  if (auto err = RequireString(body, "TrainingJobName")) return *err;
  auto job = store_->GetJob(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (!job.ok()) {
    return job.status().code() == StatusCode::kNotFound ? JobNotFound() : ToApiError(job.status());
  }
  auto rows = store_->RuleEvaluations(job->arn);
  if (!rows.ok()) return ToApiError(rows.status());
  json list = json::array();
  for (auto kind : {model::RuleKind::kDebug, model::RuleKind::kProfiler}) {
    const auto& specs =
        kind == model::RuleKind::kDebug ? job->spec.debug_rules : job->spec.profiler_rules;
    for (const auto& spec : specs) {
      // A rule the manager has not taken on yet shows as DescribeTrainingJob shows it.
      model::RuleEvaluation r = model::InitialRuleEvaluation(*job, kind, spec.configuration_name);
      for (const auto& row : *rows) {
        if (row.kind == kind && row.configuration_name == spec.configuration_name) r = row;
      }
      json e = {{"RuleConfigurationName", r.configuration_name},
                {"RuleKind", model::Name(kind)},
                {"RuleToInvoke", spec.rule},
                {"RuleEvaluationJobArn", r.evaluation_arn},
                {"RuleEvaluationStatus", r.status},
                {"StatusDetails", r.details},
                {"LastModifiedTime", Seconds(r.last_modified_time)},
                {"Findings", r.findings_json},
                {"StepsEvaluated", r.steps_evaluated}};
      if (r.fired_step) e["FiredStep"] = *r.fired_step;
      if (r.last_step) e["LastStep"] = *r.last_step;
      list.push_back(std::move(e));
    }
  }
  return json{{"TrainingJobName", job->spec.name},
              {"TrainingJobStatus", model::Name(job->status)},
              {"RuleEvaluations", std::move(list)}};
}

TrainyardService::Outcome TrainyardService::ListDebugTensors(const Caller& caller,
                                                             const json& body) {
  if (auto err = RequireString(body, "TrainingJobName")) return *err;
  if (debugger_storage_ == nullptr) return Validation("This server reads no debugger output.");
  auto job = store_->GetJob(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (!job.ok()) {
    return job.status().code() == StatusCode::kNotFound ? JobNotFound() : ToApiError(job.status());
  }
  const std::string uri = model::DebugOutputUri(job->spec);
  if (uri.empty()) {
    return Validation("Training job " + job->spec.name +
                      " has no DebugHookConfig: its hook saves no tensors.");
  }
  // Read through the job account's own stores, as its rules read it; one tensor value at a time,
  // each bounded, so a listing costs at most a few tensors' memory.
  auto store = debugger_storage_->Open(caller.account_id, uri);
  if (!store.ok()) return ToApiError(store.status());
  debugger::TrialOptions options;
  options.max_tensor_bytes = 64ull << 20;
  options.max_cache_bytes = 0;
  auto trial = debugger::Trial::Open(*store, uri, options);
  if (model::IsTerminal(job->status)) trial->AssumeEnded();
  for (int i = 0; i < 4; ++i) {
    Status s = trial->Refresh();
    if (!s.ok()) {
      return Validation("Cannot read the debugger output " + uri + ": " + s.message());
    }
  }
  debugger::TensorFilter filter;
  if (body.contains("NameRegex")) filter.regex = body.at("NameRegex").get<std::string>();
  if (body.contains("Step")) filter.step = body.at("Step").get<int64_t>();
  auto names = trial->tensor_names(filter);
  if (!names.ok()) return Validation(names.status().message());
  const size_t limit = static_cast<size_t>(body.value("MaxResults", 100));
  constexpr size_t kMaxSteps = 1000;  // listed per tensor (the newest ones)
  auto steps_json = [&](const std::vector<int64_t>& steps) {
    json out = json::array();
    size_t from = steps.size() > kMaxSteps ? steps.size() - kMaxSteps : 0;
    for (size_t i = from; i < steps.size(); ++i) out.push_back(steps[i]);
    return out;
  };
  json tensors = json::array();
  for (size_t i = 0; i < names->size() && i < limit; ++i) {
    auto tensor = trial->tensor((*names)[i]);
    if (!tensor.ok()) continue;
    std::vector<int64_t> steps = tensor->steps();
    json t = {{"Name", (*names)[i]}, {"Steps", steps_json(steps)}};
    std::optional<int64_t> at = filter.step;
    if (!at && !steps.empty()) at = steps.back();
    if (at) {
      t["Step"] = *at;
      auto value = tensor->value(*at);
      if (!value.ok()) {
        t["Error"] = value.status().message();
      } else {
        t["Shape"] = value->shape;
        t["Count"] = static_cast<int64_t>(value->values.size());
        if (!value->values.empty()) {
          double lo = value->values[0], hi = value->values[0], sum = 0;
          for (double v : value->values) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            sum += v;
          }
          // NaN/Inf are not JSON numbers: they are left out (Count still says how many).
          if (std::isfinite(lo)) t["Min"] = lo;
          if (std::isfinite(hi)) t["Max"] = hi;
          double mean = sum / static_cast<double>(value->values.size());
          if (std::isfinite(mean)) t["Mean"] = mean;
        }
      }
    }
    tensors.push_back(std::move(t));
  }
  return json{{"TrainingJobName", job->spec.name},
              {"TrialUri", uri},
              {"TrainingEnded", trial->training_ended()},
              {"Steps", steps_json(trial->steps())},
              {"Tensors", std::move(tensors)},
              {"Truncated", names->size() > limit}};
}

TrainyardService::Outcome TrainyardService::ListDeadLetters(const Caller& caller,
                                                            const json& body) {
  int64_t before = 0;
  if (auto t = body.find("NextToken"); t != body.end() && t->is_string()) {
    const std::string& text = t->get_ref<const std::string&>();
    char* end = nullptr;
    before = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || before <= 0) {
      return Validation("The NextToken provided is invalid.");
    }
  }
  int64_t limit = body.value("MaxResults", 50);
  auto rows = store_->DeadLetters(caller.account_id, before, limit + 1);
  if (!rows.ok()) return ToApiError(rows.status());
  json out = {{"DeadLetters", json::array()}};
  for (size_t i = 0; i < rows->size() && static_cast<int64_t>(i) < limit; ++i) {
    const auto& d = (*rows)[i];
    out["DeadLetters"].push_back({{"EventId", d.event_id},
                                  {"RuleArn", d.rule_arn},
                                  {"TargetId", d.target_id},
                                  {"TargetArn", d.target_arn},
                                  {"Attempts", d.attempts},
                                  {"Error", d.last_error},
                                  {"EventTime", static_cast<double>(d.created_ms) / 1000.0},
                                  {"DeadTime", static_cast<double>(d.dead_ms.value_or(0)) / 1000.0},
                                  {"Payload", d.payload}});
  }
  if (static_cast<int64_t>(rows->size()) > limit) {
    out["NextToken"] = std::to_string((*rows)[static_cast<size_t>(limit - 1)].id);
  }
  return out;
}

TrainyardService::Outcome TrainyardService::InterruptTrainingJob(const Caller& caller,
                                                                 const json& body) {
  if (auto err = RequireString(body, "TrainingJobName")) return *err;
  Status s =
      controller_->Interrupt(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (s.code() == StatusCode::kNotFound) return JobNotFound();
  if (!s.ok()) return ToApiError(s);
  return json::object();
}

TrainyardService::Outcome TrainyardService::SetSpotCapacityUnavailable(const Caller&,
                                                                       const json& body) {
  if (auto err = RequireString(body, "InstanceType")) return *err;
  const json* d = body.contains("DurationInSeconds") ? &body.at("DurationInSeconds") : nullptr;
  if (d == nullptr || !d->is_number() || d->get<double>() <= 0 || d->get<double>() > 2419200) {
    return Validation(
        "DurationInSeconds is required and must be more than 0 and at most 2419200 "
        "seconds (28 days).");
  }
  std::string type = body.at("InstanceType").get<std::string>();
  auto ms = std::chrono::milliseconds(static_cast<int64_t>(std::llround(d->get<double>() * 1000)));
  Status s = controller_->MakeSpotUnavailable(type, ms);
  if (!s.ok()) return ToApiError(s);
  return json{{"InstanceType", type}, {"UnavailableUntil", Seconds(clock_->Now() + ms)}};
}

TrainyardService::Outcome TrainyardService::DescribeSpotMarket(const Caller&, const json&) {
  auto status = controller_->SpotStatus();
  if (!status.ok()) return ToApiError(status.status());
  json types = json::array();
  for (const auto& v : *status) {
    const auto& m = v.market.model;
    json t = {{"InstanceType", v.market.instance_type},
              {"SpotAvailable", v.market.available},
              {"SpotPriceFraction", m.price_fraction},
              {"OnDemandHourlyPrice", v.on_demand_price},
              {"SpotHourlyPrice", Cents(v.on_demand_price * m.price_fraction)},
              {"InterruptionNoticeInSeconds", m.notice.count()},
              {"LocalCapacity", v.capacity_total},
              {"LocalCapacityInUse", v.capacity_in_use},
              {"RunningSpotJobs", v.running_spot_jobs},
              {"QueuedJobs", v.queued_jobs}};
    if (v.market.unavailable_until) t["UnavailableUntil"] = Seconds(*v.market.unavailable_until);
    if (m.mean_time_between_interruptions) {
      t["MeanTimeBetweenInterruptionsInSeconds"] = m.mean_time_between_interruptions->count();
    }
    types.push_back(std::move(t));
  }
  return json{{"InstanceTypes", std::move(types)}};
}

TrainyardService::Outcome TrainyardService::DescribeTrainingJobCost(const Caller& caller,
                                                                    const json& body) {
  if (auto err = RequireString(body, "TrainingJobName")) return *err;
  auto job = store_->GetJob(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (!job.ok()) {
    return job.status().code() == StatusCode::kNotFound ? JobNotFound() : ToApiError(job.status());
  }
  const capacity::InstanceType* type =
      catalog_ != nullptr ? catalog_->Find(job->spec.instance_type) : nullptr;
  double price = type != nullptr ? type->on_demand_price : 0;
  control::JobCost cost = control::ComputeJobCost(*job, price, clock_->Now());
  json interruptions = json::array();
  for (const auto& i : job->interruptions) {
    interruptions.push_back({{"Attempt", i.attempt},
                             {"Time", Seconds(i.time)},
                             {"Cause", i.cause},
                             {"TimeLostInSeconds", static_cast<double>(i.lost_ms) / 1000.0}});
  }
  return json{{"TrainingJobName", job->spec.name},
              {"TrainingJobStatus", model::Name(job->status)},
              {"EnableManagedSpotTraining", job->spec.managed_spot},
              {"InstanceType", job->spec.instance_type},
              {"InstanceCount", job->spec.instance_count},
              {"Attempts", job->attempt},
              {"RetriesUsed", job->retries},
              {"Interruptions", std::move(interruptions)},
              {"RunningTimeInSeconds", std::round(cost.running_seconds * 1000) / 1000},
              {"BillableTimeInSeconds", std::round(cost.billable_seconds * 1000) / 1000},
              {"TimeLostInSeconds", std::round(cost.lost_seconds * 1000) / 1000},
              {"OnDemandHourlyPrice", price},
              {"CostInDollars", Cents(cost.cost)},
              {"OnDemandCostInDollars", Cents(cost.on_demand_cost)},
              {"SavingsInDollars", Cents(cost.on_demand_cost - cost.cost)},
              {"SavingsPercent", std::round(cost.savings_percent * 10) / 10}};
}

TrainyardService::Outcome TrainyardService::GetTrainingJobLogs(const Caller& caller,
                                                               const json& body) {
  if (!body.contains("TrainingJobName") || !body.at("TrainingJobName").is_string()) {
    return Validation("TrainingJobName is required.");
  }
  auto job = store_->GetJob(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (!job.ok()) return JobNotFound();
  for (const char* key : {"AfterSeq", "Limit"}) {
    if (body.contains(key) && !body.at(key).is_number_integer()) {
      return Validation(std::string(key) + " must be an integer.");
    }
  }
  int64_t after = body.value("AfterSeq", int64_t{0});
  int64_t limit = std::clamp<int64_t>(body.value("Limit", int64_t{1000}), 1, 10000);
  auto events = store_->ReadLogEvents(job->id, after, limit);
  if (!events.ok()) return ToApiError(events.status());
  json out = {{"Events", json::array()},
              {"NextSeq", after},
              {"TrainingJobStatus", model::Name(job->status)},
              {"SecondaryStatus", model::Name(job->secondary)}};
  for (const auto& e : *events) {
    out["Events"].push_back({{"Seq", e.seq},
                             {"Stream", e.stream},
                             {"Timestamp", e.timestamp_ms},
                             {"Message", e.message}});
    out["NextSeq"] = e.seq;
  }
  return out;
}

json TrainyardService::GovernanceDocument(const std::string& account) const {
  events::AccountPolicies p = governance_->PoliciesFor(account);
  return json{{"Policies", events::RenderPolicies(p.policies, events::PolicyKeys::kApi)},
              {"Source", p.own ? "account" : "server"},
              {"AccountUpdatesAllowed", governance_->allow_account_updates()}};
}

TrainyardService::Outcome TrainyardService::DescribeGovernance(const Caller& caller, const json&) {
  if (governance_ == nullptr) return Validation("This server has no governance.");
  return GovernanceDocument(caller.account_id);
}

// Only the caller's own account is ever named: one account cannot read or change another's.
TrainyardService::Outcome TrainyardService::UpdateGovernance(const Caller& caller,
                                                             const json& body) {
  if (governance_ == nullptr) return Validation("This server has no governance.");
  const bool reset = body.contains("UseServerDefaults") &&
                     body.at("UseServerDefaults").is_boolean() &&
                     body.at("UseServerDefaults").get<bool>();
  const bool has_policies = body.contains("Policies") && !body.at("Policies").is_null();
  if (reset == has_policies) {
    return Validation(
        "Give either Policies (the account's whole policy document) or "
        "UseServerDefaults: true.");
  }
  std::optional<events::GovernancePolicies> policies;
  if (has_policies) {
    auto parsed = events::ParsePolicies(body.at("Policies"), events::PolicyKeys::kApi);
    if (!parsed.ok()) return Validation("Policies: " + parsed.status().message());
    policies = std::move(parsed).value();
  }
  Status s = governance_->Update(caller.account_id, std::move(policies));
  if (!s.ok()) return ToApiError(s);
  return GovernanceDocument(caller.account_id);
}

TrainyardService::Outcome TrainyardService::ListGovernanceActions(const Caller& caller,
                                                                  const json& body) {
  if (governance_ == nullptr) return Validation("This server has no governance.");
  size_t limit = 100;
  if (body.contains("MaxResults") && body.at("MaxResults").is_number_integer()) {
    limit = static_cast<size_t>(std::clamp<int64_t>(body.at("MaxResults").get<int64_t>(), 1, 100));
  }
  std::string job = body.contains("TrainingJobName") && body.at("TrainingJobName").is_string()
                        ? body.at("TrainingJobName").get<std::string>()
                        : "";
  json actions = json::array();
  for (const auto& a : governance_->RecentActions(caller.account_id, 100)) {
    if (!job.empty() && a.job_name != job && a.clone_name != job) continue;
    if (actions.size() >= limit) break;
    json j = {{"Time", Seconds(a.time)},     {"TrainingJobName", a.job_name},
              {"TrainingJobArn", a.job_arn}, {"Policy", a.policy},
              {"Action", a.action},          {"Message", a.message}};
    if (!a.clone_name.empty()) j["CloneTrainingJobName"] = a.clone_name;
    actions.push_back(std::move(j));
  }
  return json{{"Actions", std::move(actions)}};
}

}  // namespace ty::services
