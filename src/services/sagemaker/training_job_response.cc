#include "services/sagemaker/training_job_response.h"

#include <cmath>

#include "common/json.h"

namespace ty::services {

using nlohmann::json;

json JsonTime(TimePoint t) {
  int64_t ms = ToEpochMillis(t);
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

json DescribeJson(const model::JobRecord& job) {
  auto parsed = ParseJson(job.request_json);
  json d = parsed.ok() && parsed->is_object() ? std::move(parsed).value() : json::object();
  d.erase("Tags");  // Describe does not return tags (ListTags / Search do)
  FillDefaults(&d);
  d["TrainingJobName"] = job.spec.name;
  d["TrainingJobArn"] = job.arn;
  d["ModelArtifacts"] = {{"S3ModelArtifacts", job.model_artifacts}};
  d["TrainingJobStatus"] = model::Name(job.status);
  d["SecondaryStatus"] = model::Name(job.secondary);
  if (!job.failure_reason.empty()) d["FailureReason"] = job.failure_reason;
  d["CreationTime"] = JsonTime(job.creation_time);
  if (job.training_start_time) d["TrainingStartTime"] = JsonTime(*job.training_start_time);
  if (job.training_end_time) d["TrainingEndTime"] = JsonTime(*job.training_end_time);
  d["LastModifiedTime"] = JsonTime(job.last_modified_time);
  json transitions = json::array();
  for (const auto& t : job.transitions) {
    json e = {{"Status", model::Name(t.status)},
              {"StartTime", JsonTime(t.start)},
              {"StatusMessage", t.message}};
    if (t.end) e["EndTime"] = JsonTime(*t.end);
    transitions.push_back(std::move(e));
  }
  d["SecondaryStatusTransitions"] = std::move(transitions);
  if (!job.final_metrics.empty()) {
    json metrics = json::array();
    for (const auto& m : job.final_metrics) {
      metrics.push_back(
          {{"MetricName", m.name}, {"Value", m.value}, {"Timestamp", JsonTime(m.timestamp)}});
    }
    d["FinalMetricDataList"] = std::move(metrics);
  }
  if (job.training_time_seconds) d["TrainingTimeInSeconds"] = *job.training_time_seconds;
  if (job.billable_time_seconds) d["BillableTimeInSeconds"] = *job.billable_time_seconds;
  return d;
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

json SearchRecordJson(const model::JobRecord& job, const std::vector<store::Tag>& tags) {
  json d = DescribeJson(job);
  json t = json::array();
  for (const auto& tag : tags) t.push_back({{"Key", tag.key}, {"Value", tag.value}});
  d["Tags"] = std::move(t);
  return d;
}

}  // namespace ty::services
