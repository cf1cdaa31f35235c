#include "events/job_event.h"

#include "common/crypto.h"
#include "model/describe_json.h"

namespace ty::events {

using nlohmann::json;

namespace {

// DescribeTrainingJobResponse's members (botocore sagemaker 2017-07-24): the event carries each
// of them, null when the job has no value for it, so handlers can read any unguarded.
constexpr const char* kDescribeMembers[] = {
    "AlgorithmSpecification",
    "AutoMLJobArn",
    "BillableTimeInSeconds",
    "BillableTokenCount",
    "CheckpointConfig",
    "CreationTime",
    "DebugHookConfig",
    "DebugRuleConfigurations",
    "DebugRuleEvaluationStatuses",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "EnableNetworkIsolation",
    "Environment",
    "ExperimentConfig",
    "FailureReason",
    "FinalMetricDataList",
    "HyperParameters",
    "InfraCheckConfig",
    "InputDataConfig",
    "LabelingJobArn",
    "LastModifiedTime",
    "MlflowConfig",
    "MlflowDetails",
    "ModelArtifacts",
    "ModelPackageConfig",
    "OutputDataConfig",
    "OutputModelPackageArn",
    "ProfilerConfig",
    "ProfilerRuleConfigurations",
    "ProfilerRuleEvaluationStatuses",
    "ProfilingStatus",
    "ProgressInfo",
    "RemoteDebugConfig",
    "ResourceConfig",
    "RetryStrategy",
    "RoleArn",
    "SecondaryStatus",
    "SecondaryStatusTransitions",
    "ServerlessJobConfig",
    "StoppingCondition",
    "TensorBoardOutputConfig",
    "TrainingEndTime",
    "TrainingJobArn",
    "TrainingJobName",
    "TrainingJobStatus",
    "TrainingStartTime",
    "TrainingTimeInSeconds",
    "TuningJobArn",
    "VpcConfig",
    "WarmPoolStatus",
};

}  // namespace

json TrainingJobStateChangeDetail(const model::JobRecord& job, const std::vector<store::Tag>& tags,
                                  const std::vector<model::RuleEvaluation>& rules) {
  json d = model::DescribeTrainingJobJson(job, model::TimeFormat::kEpochMillis, rules);
  for (const char* member : kDescribeMembers) {
    if (!d.contains(member)) d[member] = nullptr;
  }
  json t = json::object();
  for (const auto& tag : tags) t[tag.key] = tag.value;
  d["Tags"] = std::move(t);
  return d;
}

json EventEnvelope(const std::string& id, const std::string& detail_type, const std::string& source,
                   const std::string& account, const std::string& region, TimePoint time,
                   std::vector<std::string> resources, json detail) {
  return json{{"version", "0"},
              {"id", id},
              {"detail-type", detail_type},
              {"source", source},
              {"account", account},
              {"time", FormatIso8601(time)},
              {"region", region},
              {"resources", std::move(resources)},
              {"detail", std::move(detail)}};
}

std::string ArnRegion(const std::string& arn) {
  size_t pos = 0;
  for (int field = 0; field < 3; ++field) {  // arn:partition:service:
    pos = arn.find(':', pos);
    if (pos == std::string::npos) return "";
    ++pos;
  }
  size_t end = arn.find(':', pos);
  return end == std::string::npos ? "" : arn.substr(pos, end - pos);
}

store::OutboxEvent TrainingJobStateChangeEvent(const model::JobRecord& job,
                                               const std::vector<store::Tag>& tags, TimePoint now,
                                               const std::string& id,
                                               const std::vector<model::RuleEvaluation>& rules) {
  json event =
      EventEnvelope(id, kTrainingJobStateChange, kSageMakerSource, job.account, ArnRegion(job.arn),
                    now, {job.arn}, TrainingJobStateChangeDetail(job, tags, rules));
  store::OutboxEvent out;
  out.account = job.account;
  out.ordering_key = job.arn;
  // Job output (failure reasons) need not be valid UTF-8: replace, never throw.
  out.event_json = event.dump(-1, ' ', false, json::error_handler_t::replace);
  out.created_ms = ToEpochMillis(now);
  return out;
}

std::vector<store::OutboxEvent> JobEventPublisher::StateChangeEvents(
    const model::JobRecord& job, const std::vector<store::Tag>& tags, TimePoint now) {
  std::vector<model::RuleEvaluation> rules;
  if (store_ != nullptr && (!job.spec.debug_rules.empty() || !job.spec.profiler_rules.empty())) {
    auto stored = store_->RuleEvaluations(job.arn);
    if (stored.ok()) rules = std::move(stored).value();
  }
  return {TrainingJobStateChangeEvent(job, tags, now, RandomUuid(), rules)};
}

}  // namespace ty::events
