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
// `rules`: the job's stored rule evaluations (its DebugRuleEvaluationStatuses...).
nlohmann::json DescribeJson(const model::JobRecord& job,
                            const std::vector<model::RuleEvaluation>& rules = {});
nlohmann::json SummaryJson(const model::JobRecord& job);
// Describe plus Tags.
nlohmann::json SearchRecordJson(const model::JobRecord& job, const std::vector<store::Tag>& tags,
                                const std::vector<model::RuleEvaluation>& rules = {});
// DescribeProcessingJob's answer for the processing job of a rule evaluation: a minimal shape
// (names, status from the rule's, times, the rule's image and resources, the job's role).
nlohmann::json ProcessingJobJson(const model::JobRecord& job, const model::RuleEvaluation& rule);

}  // namespace ty::services
