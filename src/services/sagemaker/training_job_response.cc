#include "services/sagemaker/training_job_response.h"

#include "model/describe_json.h"

namespace ty::services {

using nlohmann::json;

json JsonTime(TimePoint t) { return model::JsonTime(t); }

json DescribeJson(const model::JobRecord& job, const std::vector<model::RuleEvaluation>& rules) {
  return model::DescribeTrainingJobJson(job, model::TimeFormat::kEpochSeconds, rules);
}

json SummaryJson(const model::JobRecord& job) {
  json s = {{"TrainingJobName", job.spec.name},
            {"TrainingJobArn", job.arn},
            {"CreationTime", JsonTime(job.creation_time)},
            {"LastModifiedTime", JsonTime(job.last_modified_time)},
            {"TrainingJobStatus", model::Name(job.status)},
            {"SecondaryStatus", model::Name(job.secondary)}};
  if (job.training_end_time) s["TrainingEndTime"] = JsonTime(*job.training_end_time);
  return s;
}

json SearchRecordJson(const model::JobRecord& job, const std::vector<store::Tag>& tags,
                      const std::vector<model::RuleEvaluation>& rules) {
  json d = DescribeJson(job, rules);
  json t = json::array();
  for (const auto& tag : tags) t.push_back({{"Key", tag.key}, {"Value", tag.value}});
  d["Tags"] = std::move(t);
  return d;
}

json ProcessingJobJson(const model::JobRecord& job, const model::RuleEvaluation& rule) {
  const auto& configs =
      rule.kind == model::RuleKind::kDebug ? job.spec.debug_rules : job.spec.profiler_rules;
  const model::RuleSpec* spec = nullptr;
  for (const auto& c : configs) {
    if (c.configuration_name == rule.configuration_name) spec = &c;
  }
  // SageMaker's ProcessingJobStatus: InProgress | Completed | Failed | Stopping | Stopped. A
  // rule that found issues or none completed; its finding is in the exit message.
  std::string status = "InProgress";
  if (rule.status == "IssuesFound" || rule.status == "NoIssuesFound") status = "Completed";
  if (rule.status == "Error") status = "Failed";
  if (rule.status == "Stopping" || rule.status == "Stopped") status = rule.status;
  json d = {{"ProcessingJobName", rule.evaluation_name},
            {"ProcessingJobArn", rule.evaluation_arn},
            {"ProcessingJobStatus", status},
            {"CreationTime", JsonTime(rule.creation_time)},
            {"LastModifiedTime", JsonTime(rule.last_modified_time)},
            {"TrainingJobArn", job.arn},
            {"StoppingCondition",
             {{"MaxRuntimeInSeconds", static_cast<int64_t>(job.spec.max_runtime.count())}}}};
  if (!rule.details.empty()) d["ExitMessage"] = rule.details;
  if (status == "Failed") d["FailureReason"] = rule.details;
  if (rule.end_time) {
    d["ProcessingEndTime"] = JsonTime(*rule.end_time);
  }
  json app = json::object();
  if (spec != nullptr && !spec->evaluator_image.empty()) app["ImageUri"] = spec->evaluator_image;
  d["AppSpecification"] = std::move(app);
  json cluster = {
      {"InstanceCount", 1},
      {"InstanceType", spec != nullptr && !spec->instance_type.empty()
                           ? spec->instance_type
                           : std::string("ml.m5.xlarge")},
      {"VolumeSizeInGB", spec != nullptr && spec->volume_size_gb > 0 ? spec->volume_size_gb : 30}};
  d["ProcessingResources"] = {{"ClusterConfig", std::move(cluster)}};
  auto request = nlohmann::json::parse(job.request_json, nullptr, false);
  if (request.is_object() && request.contains("RoleArn") && request["RoleArn"].is_string()) {
    d["RoleArn"] = request["RoleArn"];
  }
  return d;
}

}  // namespace ty::services
