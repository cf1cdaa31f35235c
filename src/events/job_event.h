// The "SageMaker Training Job State Change" event (source aws.sagemaker) that reports a training
// job's change of status or secondary status, shaped as ../shared/spec/aws-services.md §1:
// the EventBridge envelope (version "0", a new UUID id, time ISO-8601 to the second, the job's
// ARN as the one resource) around a `detail` holding every DescribeTrainingJob member, with
//   - times as epoch-millisecond numbers (SecondaryStatusTransitions and FinalMetricDataList too),
//   - Tags as an object {key: value} ({} without tags),
//   - members without a value present as null (FailureReason null until the job fails),
//   - SecondaryStatusTransitions with every transition so far.
// Pure functions, and a JobEventSource (control/job_events.h) built on them. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/job_events.h"
#include "model/training_job.h"
#include "store/store.h"

namespace ty::events {

inline constexpr const char* kTrainingJobStateChange = "SageMaker Training Job State Change";
inline constexpr const char* kSageMakerSource = "aws.sagemaker";

// The event's `detail`.
// `rules`: the job's stored rule evaluations (DebugRuleEvaluationStatuses and
// ProfilerRuleEvaluationStatuses, see model/describe_json.h).
nlohmann::json TrainingJobStateChangeDetail(const model::JobRecord& job,
                                            const std::vector<store::Tag>& tags,
                                            const std::vector<model::RuleEvaluation>& rules = {});

// An EventBridge event envelope. `time` is rendered "YYYY-MM-DDTHH:MM:SSZ".
nlohmann::json EventEnvelope(const std::string& id, const std::string& detail_type,
                             const std::string& source, const std::string& account,
                             const std::string& region, TimePoint time,
                             std::vector<std::string> resources, nlohmann::json detail);

// The region field of an ARN ("" when absent).
std::string ArnRegion(const std::string& arn);

// The whole event for `job` at `now`, with id `id`, as an outbox row ordered by the job's ARN.
store::OutboxEvent TrainingJobStateChangeEvent(
    const model::JobRecord& job, const std::vector<store::Tag>& tags, TimePoint now,
    const std::string& id, const std::vector<model::RuleEvaluation>& rules = {});

// The JobEventSource the server hands the controller: one state-change event per change, with a
// random UUID; `committed` (may be empty) is called once they are in the outbox (the dispatcher's
// Wake). With a `store`, a job with rules has its stored rule evaluations read into the event.
class JobEventPublisher final : public control::JobEventSource {
 public:
  explicit JobEventPublisher(std::function<void()> committed = {}, store::Store* store = nullptr)
      : committed_(std::move(committed)), store_(store) {}
  std::vector<store::OutboxEvent> StateChangeEvents(const model::JobRecord& job,
                                                    const std::vector<store::Tag>& tags,
                                                    TimePoint now) override;
  void Committed() override {
    if (committed_) committed_();
  }

 private:
  std::function<void()> committed_;
  store::Store* store_;
};

}  // namespace ty::events
