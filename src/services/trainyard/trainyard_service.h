// TrainyardService: Trainyard's own operations (X-Amz-Target Trainyard.<Op>, signed for
// `sagemaker`, validated against src/api/data/trainyard-model.json), kept apart from SageMaker's
// so that AWS's response shapes stay untouched:
//   GetTrainingJobLogs          a job's log lines after a cursor (older CLIs; `trainyard logs`
//                               now reads CloudWatch Logs)
//   InterruptTrainingJob        fault injection: a running spot job gets its notice now
//   SetSpotCapacityUnavailable  fault injection: an instance type's spot capacity goes away
//   DescribeSpotMarket          the spot model's state per instance type
//   DescribeTrainingJobCost     a job's attempts, interruptions, billable time and savings
//   DescribeGovernance          the caller's account's built-in governance policies
//   UpdateGovernance            replaces them (or returns to the server's defaults)
//   ListGovernanceActions       what the policies did to the account's jobs, newest first
//   ListDeadLetters             EventBridge deliveries that failed for good, newest first
//   ListRuleEvaluations         a job's debugger/profiler rules: status, the step that fired,
//                               the values that triggered it, steps evaluated
//   ListDebugTensors            the tensors a job's debugger hook saved (names, steps, shapes,
//                               a summary of values), read on the server by the trial reader
//
// Thread-safe: Call may run on any number of HTTP workers at once.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "api/service.h"
#include "capacity/instance_catalog.h"
#include "common/clock.h"
#include "control/job_controller.h"
#include "debugger/rule_manager.h"
#include "events/governance.h"
#include "store/store.h"

namespace ty::services {

class TrainyardService final : public api::Service {
 public:
  TrainyardService(const capacity::InstanceCatalog* catalog, control::JobController* controller,
                   store::Store* store, const Clock* clock,
                   events::Governance* governance = nullptr,
                   debugger::AccountStorage* debugger_storage = nullptr);

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  Outcome GetTrainingJobLogs(const api::Caller& caller, const Json& body);
  Outcome InterruptTrainingJob(const api::Caller& caller, const Json& body);
  Outcome SetSpotCapacityUnavailable(const api::Caller& caller, const Json& body);
  Outcome DescribeSpotMarket(const api::Caller& caller, const Json& body);
  Outcome DescribeTrainingJobCost(const api::Caller& caller, const Json& body);
  Outcome DescribeGovernance(const api::Caller& caller, const Json& body);
  Outcome UpdateGovernance(const api::Caller& caller, const Json& body);
  Outcome ListGovernanceActions(const api::Caller& caller, const Json& body);
  Json GovernanceDocument(const std::string& account) const;
  Outcome ListDeadLetters(const api::Caller& caller, const Json& body);
  Outcome ListRuleEvaluations(const api::Caller& caller, const Json& body);
  Outcome ListDebugTensors(const api::Caller& caller, const Json& body);

  const std::shared_ptr<const api::ServiceModel> model_;
  const capacity::InstanceCatalog* const catalog_;
  control::JobController* const controller_;
  store::Store* const store_;
  const Clock* const clock_;
  events::Governance* const governance_;              // null: no governance operations
  debugger::AccountStorage* const debugger_storage_;  // null: no ListDebugTensors
};

}  // namespace ty::services
