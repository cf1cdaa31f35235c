// The persisted state of one rule evaluation of a training job (a DebugRuleConfigurations or
// ProfilerRuleConfigurations entry evaluated beside the job by debugger/rule_manager), and its
// rendering as SageMaker's DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses entries.
// Pure values and functions: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "model/training_job.h"

namespace ty::model {

enum class RuleKind { kDebug, kProfiler };
const char* Name(RuleKind k);  // "debug" | "profiler"
std::optional<RuleKind> ParseRuleKind(const std::string& s);

struct RuleEvaluation {
  std::string job_arn;
  std::string account;
  RuleKind kind = RuleKind::kDebug;
  std::string configuration_name;  // RuleConfigurationName
  std::string evaluation_name;     // the processing job's name (RuleEvaluationJobName)
  std::string evaluation_arn;      // RuleEvaluationJobArn
  // RuleEvaluationStatus: InProgress | IssuesFound | NoIssuesFound | Error | Stopping | Stopped.
  std::string status = "InProgress";
  std::string details;  // StatusDetails (<= 1024 chars)
  TimePoint creation_time;
  TimePoint last_modified_time;
  std::optional<TimePoint> end_time;  // when it left InProgress/Stopping
  std::optional<int64_t> fired_step;  // IssuesFound: the global step where the rule fired
  std::string findings_json = "{}";   // the values that triggered it (JSON object text)
  int64_t steps_evaluated = 0;
  std::optional<int64_t> last_step;
};

// True for IssuesFound, NoIssuesFound, Error and Stopped: the evaluation is over.
bool IsTerminalRuleStatus(const std::string& status);

// SageMaker's StatusDetails bound.
inline constexpr size_t kMaxRuleStatusDetails = 1024;
// `details` cut to kMaxRuleStatusDetails bytes on a UTF-8 boundary.
std::string TruncateStatusDetails(std::string details);

// The processing-job name of a rule evaluation, as SageMaker forms it:
// "<job name, 26 chars>-<rule configuration name lowercased, 26 chars>-<8 hex>" (<= 63 chars,
// only [a-z0-9-] from the rule name). The hex is derived from the job's ARN, creation time and
// the rule, so the name is stable for one job and differs for a job re-created under that name.
std::string RuleEvaluationName(const JobRecord& job, RuleKind kind,
                               const std::string& configuration_name);
// "arn:aws:sagemaker:<region>:<account>:processing-job/<name>" (region and account of the job).
std::string RuleEvaluationArn(const JobRecord& job, const std::string& evaluation_name);

// The evaluation a job has for each of its rules before the manager stored one: InProgress since
// the job's creation.
RuleEvaluation InitialRuleEvaluation(const JobRecord& job, RuleKind kind,
                                     const std::string& configuration_name);

}  // namespace ty::model
