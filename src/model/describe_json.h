// The DescribeTrainingJob rendering of a job, shared by the SageMaker API (services/sagemaker)
// and the job's EventBridge events (events/job_event.h), which carry the same members with
// times as epoch milliseconds. Pure functions: thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "model/rule_evaluation.h"
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
// DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses come from `rules` (the job's
// stored evaluations, debugger/rule_manager); a rule of the job without one shows InProgress
// since the job's creation (InitialRuleEvaluation).
nlohmann::json DescribeTrainingJobJson(const JobRecord& job,
                                       TimeFormat format = TimeFormat::kEpochSeconds,
                                       const std::vector<RuleEvaluation>& rules = {});

// The statuses of the job's rules of one kind, in the order of its configurations (an empty
// array when it has none).
nlohmann::json RuleEvaluationStatusesJson(const JobRecord& job, RuleKind kind,
                                          const std::vector<RuleEvaluation>& rules,
                                          TimeFormat format);

}  // namespace ty::model
