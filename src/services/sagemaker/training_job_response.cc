#include "services/sagemaker/training_job_response.h"

#include "model/describe_json.h"

namespace ty::services {

using nlohmann::json;

json JsonTime(TimePoint t) { return model::JsonTime(t); }

json DescribeJson(const model::JobRecord& job) { return model::DescribeTrainingJobJson(job); }

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
