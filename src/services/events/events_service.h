// EventsService: Amazon EventBridge (service `events`, AWS JSON 1.1, X-Amz-Target
// AWSEvents.<Op>, validated against src/api/data/events-model.json) over the Store's rules and
// targets and its event outbox, which the events dispatcher (events/dispatcher.h) routes.
//
// Operations: PutRule (EventPattern and/or ScheduleExpression rate()/cron()), DescribeRule,
// ListRules, EnableRule, DisableRule, DeleteRule (refused while targets remain), PutTargets,
// RemoveTargets, ListTargetsByRule, PutEvents, TestEventPattern.
//
// Each account has one event bus, "default" (by name or ARN); another bus is
// ResourceNotFoundException. PutEvents refuses, per entry as EventBridge does: sources starting
// "aws." (NotAuthorizedForSourceException: only Trainyard itself emits those), missing
// Source/DetailType/Detail (InvalidArgument), a Detail that is not a JSON object
// (MalformedDetail); a request over 256 KiB is a ValidationException.
//
// Thread-safe: Call may run on any number of HTTP workers at once (the Store serialises).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "api/service.h"
#include "common/clock.h"
#include "store/store.h"

namespace ty::services {

struct EventsOptions {
  std::string region = "us-east-1";  // in ARNs and events
  int max_rules = 300;               // per bus (EventBridge's default quota)
  int max_targets = 5;               // per rule (EventBridge's limit)
};

class EventsService final : public api::Service {
 public:
  // REQUIRES: store and clock outlive the service. `wake` (may be empty) tells the dispatcher
  // that PutEvents wrote to the outbox.
  EventsService(EventsOptions options, store::Store* store, const Clock* clock,
                std::function<void()> wake = {});

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  Outcome PutRule(const std::string& account, const Json& in);
  Outcome DescribeRule(const std::string& account, const Json& in);
  Outcome ListRules(const std::string& account, const Json& in);
  Outcome SetState(const std::string& account, const Json& in, const char* state);
  Outcome DeleteRule(const std::string& account, const Json& in);
  Outcome PutTargets(const std::string& account, const Json& in);
  Outcome RemoveTargets(const std::string& account, const Json& in);
  Outcome ListTargetsByRule(const std::string& account, const Json& in);
  Outcome PutEvents(const std::string& account, const Json& in);
  Outcome TestEventPattern(const std::string& account, const Json& in);

  std::string RuleArn(const std::string& account, const std::string& name) const;

  const EventsOptions options_;
  const std::shared_ptr<const api::ServiceModel> model_;
  store::Store* const store_;
  const Clock* const clock_;
  const std::function<void()> wake_;
};

}  // namespace ty::services
