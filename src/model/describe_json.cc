#include "model/describe_json.h"

#include "common/json.h"

namespace ty::model {

using nlohmann::json;

json JsonTime(TimePoint t, TimeFormat format) {
  int64_t ms = ToEpochMillis(t);
  if (format == TimeFormat::kEpochMillis) return ms;
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

namespace {

// Fills the defaults AWS reports for members the caller left out.
void FillDefaults(json* d) {
  json& stopping = (*d)["StoppingCondition"];
  if (!stopping.is_object()) stopping = json::object();
  if (!stopping.contains("MaxRuntimeInSeconds")) stopping["MaxRuntimeInSeconds"] = 86400;
  if (d->contains("InputDataConfig")) {
    for (auto& c : (*d)["InputDataConfig"]) {
      if (c.contains("DataSource") && c["DataSource"].contains("S3DataSource")) {
        auto& s3 = c["DataSource"]["S3DataSource"];
        if (!s3.contains("S3DataDistributionType"))
          s3["S3DataDistributionType"] = "FullyReplicated";
      }
      if (!c.contains("RecordWrapperType")) c["RecordWrapperType"] = "None";
      if (!c.contains("CompressionType")) c["CompressionType"] = "None";
    }
  }
  // SageMaker reports "" for no key, and the SDK's attach() reads it without a default.
  if (auto it = d->find("OutputDataConfig");
      it != d->end() && it->is_object() && !it->contains("KmsKeyId")) {
    (*it)["KmsKeyId"] = "";
  }
  if (!d->contains("EnableNetworkIsolation")) (*d)["EnableNetworkIsolation"] = false;
  if (!d->contains("EnableInterContainerTrafficEncryption")) {
    (*d)["EnableInterContainerTrafficEncryption"] = false;
  }
  if (!d->contains("EnableManagedSpotTraining")) (*d)["EnableManagedSpotTraining"] = false;
  if (d->contains("CheckpointConfig") && !(*d)["CheckpointConfig"].contains("LocalPath")) {
    (*d)["CheckpointConfig"]["LocalPath"] = "/opt/ml/checkpoints/";
  }
}

}  // namespace

json RuleEvaluationStatusesJson(const JobRecord& job, RuleKind kind,
                                const std::vector<RuleEvaluation>& rules, TimeFormat format) {
  const auto& configs = kind == RuleKind::kDebug ? job.spec.debug_rules : job.spec.profiler_rules;
  json out = json::array();
  for (const auto& rule : configs) {
    const RuleEvaluation* found = nullptr;
    for (const auto& r : rules) {
      if (r.kind == kind && r.configuration_name == rule.configuration_name) found = &r;
    }
    RuleEvaluation initial;
    if (found == nullptr) {
      initial = InitialRuleEvaluation(job, kind, rule.configuration_name);
      found = &initial;
    }
    json e = {{"RuleConfigurationName", found->configuration_name},
              {"RuleEvaluationJobArn", found->evaluation_arn},
              {"RuleEvaluationStatus", found->status},
              {"LastModifiedTime", JsonTime(found->last_modified_time, format)}};
    if (!found->details.empty()) e["StatusDetails"] = found->details;
    out.push_back(std::move(e));
  }
  return out;
}

json DescribeTrainingJobJson(const JobRecord& job, TimeFormat format,
                             const std::vector<RuleEvaluation>& rules) {
  auto parsed = ParseJson(job.request_json);
  json d = parsed.ok() && parsed->is_object() ? std::move(parsed).value() : json::object();
  d.erase("Tags");  // Describe does not return tags (ListTags / Search do)
  FillDefaults(&d);
  d["TrainingJobName"] = job.spec.name;
  d["TrainingJobArn"] = job.arn;
  d["ModelArtifacts"] = {{"S3ModelArtifacts", job.model_artifacts}};
  d["TrainingJobStatus"] = Name(job.status);
  d["SecondaryStatus"] = Name(job.secondary);
  if (!job.failure_reason.empty()) d["FailureReason"] = job.failure_reason;
  d["CreationTime"] = JsonTime(job.creation_time, format);
  if (job.training_start_time) d["TrainingStartTime"] = JsonTime(*job.training_start_time, format);
  if (job.training_end_time) d["TrainingEndTime"] = JsonTime(*job.training_end_time, format);
  d["LastModifiedTime"] = JsonTime(job.last_modified_time, format);
  json transitions = json::array();
  for (const auto& t : job.transitions) {
    json e = {{"Status", Name(t.status)},
              {"StartTime", JsonTime(t.start, format)},
              {"StatusMessage", t.message}};
    if (t.end) e["EndTime"] = JsonTime(*t.end, format);
    transitions.push_back(std::move(e));
  }
  d["SecondaryStatusTransitions"] = std::move(transitions);
  if (!job.final_metrics.empty()) {
    json metrics = json::array();
    for (const auto& m : job.final_metrics) {
      metrics.push_back({{"MetricName", m.name},
                         {"Value", m.value},
                         {"Timestamp", JsonTime(m.timestamp, format)}});
    }
    d["FinalMetricDataList"] = std::move(metrics);
  }
  if (job.training_time_seconds) d["TrainingTimeInSeconds"] = *job.training_time_seconds;
  if (job.billable_time_seconds) d["BillableTimeInSeconds"] = *job.billable_time_seconds;
  if (!job.spec.debug_rules.empty()) {
    d["DebugRuleEvaluationStatuses"] =
        RuleEvaluationStatusesJson(job, RuleKind::kDebug, rules, format);
  }
  if (!job.spec.profiler_rules.empty()) {
    d["ProfilerRuleEvaluationStatuses"] =
        RuleEvaluationStatusesJson(job, RuleKind::kProfiler, rules, format);
  }
  return d;
}

}  // namespace ty::model
