// Renders stored jobs in the shapes of the SageMaker API: the
// DescribeTrainingJob response, the TrainingJobSummary of ListTrainingJobs
// and the TrainingJob record of Search.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "model/training_job.h"
#include "store/store.h"

namespace ty::services {

// Epoch seconds with millisecond precision, as AWS JSON timestamps are sent.
nlohmann::json JsonTime(TimePoint t);

// The request echoed (without Tags), plus the job's state and the defaults SageMaker reports for
// members the caller left out (OutputDataConfig.KmsKeyId "", the Enable* booleans false, ...):
// the SageMaker Python SDK's attach() reads those without a default.
nlohmann::json DescribeJson(const model::JobRecord& job);
nlohmann::json SummaryJson(const model::JobRecord& job);
// Describe plus Tags.
nlohmann::json SearchRecordJson(const model::JobRecord& job, const std::vector<store::Tag>& tags);

}  // namespace ty::services
