// The DescribeTrainingJob rendering of a job, shared by the SageMaker API (services/sagemaker)
// and the job's EventBridge events (events/job_event.h), which carry the same members with
// times as epoch milliseconds. Pure functions: thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "model/training_job.h"

namespace ty::model {

enum class TimeFormat {
  kEpochSeconds,  // AWS JSON timestamps: seconds, millisecond fraction when not whole
  kEpochMillis,   // integer milliseconds (EventBridge's SageMaker events)
};

nlohmann::json JsonTime(TimePoint t, TimeFormat format = TimeFormat::kEpochSeconds);

// The request echoed (without Tags), plus the job's state and the defaults SageMaker reports for
// members the caller left out (OutputDataConfig.KmsKeyId "", the Enable* booleans false, ...):
// the SageMaker Python SDK's attach() reads those without a default. Members without a value
// (FailureReason, TrainingStartTime...) are absent.
nlohmann::json DescribeTrainingJobJson(const JobRecord& job,
                                       TimeFormat format = TimeFormat::kEpochSeconds);

}  // namespace ty::model
