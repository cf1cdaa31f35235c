// SnsService: Amazon SNS (SigV4 service `sns`, AWS query protocol, validated against
// src/api/data/sns-model.json) over SnsTopics (services/sns/sns_topics.h): CreateTopic
// (idempotent by name), DeleteTopic, ListTopics, GetTopicAttributes, Subscribe (lambda, and
// http/https to loopback only), Unsubscribe, GetSubscriptionAttributes, ListSubscriptions,
// ListSubscriptionsByTopic, Publish (Subject, Message, MessageStructure=json,
// MessageAttributes). Every call sees only the caller's account: another account's topic is
// NotFound. Lists page by 100 with NextToken.
//
// Errors are the model's: InvalidParameter (400), NotFound (404), TopicLimitExceeded and
// SubscriptionLimitExceeded (403), InternalError (500).
//
// Thread-safe: Call may run on any number of HTTP workers at once.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "api/service.h"
#include "services/sns/sns_topics.h"

namespace ty::services {

class SnsService final : public api::Service {
 public:
  // REQUIRES: topics outlives the service.
  explicit SnsService(SnsTopics* topics);

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  Outcome CreateTopic(const std::string& account, const Json& in);
  Outcome DeleteTopic(const std::string& account, const Json& in);
  Outcome ListTopics(const std::string& account, const Json& in);
  Outcome GetTopicAttributes(const std::string& account, const Json& in);
  Outcome Subscribe(const std::string& account, const Json& in);
  Outcome Unsubscribe(const std::string& account, const Json& in);
  Outcome GetSubscriptionAttributes(const std::string& account, const Json& in);
  Outcome ListSubscriptions(const std::string& account, const Json& in);
  Outcome ListSubscriptionsByTopic(const std::string& account, const Json& in);
  Outcome Publish(const std::string& account, const Json& in);

  const std::shared_ptr<const api::ServiceModel> model_;
  SnsTopics* const topics_;
};

}  // namespace ty::services
