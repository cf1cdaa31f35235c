#include "services/sns/sns_service.h"

#include "common/json.h"

namespace ty::services {
namespace {

using api::ApiError;
using nlohmann::json;

constexpr size_t kPage = 100;
constexpr size_t kMaxMessageBytes = 256 * 1024;
constexpr size_t kMaxSubjectChars = 100;
constexpr size_t kMaxAttributes = 10;

ApiError Invalid(std::string message) {
  return {"InvalidParameterException", std::move(message), 400};
}
ApiError NotFoundError(std::string message) {
  return {"NotFoundException", std::move(message), 404};
}

ApiError FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return NotFoundError(s.message());
    case StatusCode::kInvalidArgument:
      return Invalid(s.message());
    case StatusCode::kResourceExhausted:
      return s.message().rfind("Topic", 0) == 0
                 ? ApiError{"TopicLimitExceededException", s.message(), 403}
                 : ApiError{"SubscriptionLimitExceededException", s.message(), 403};
    default:
      return {"InternalErrorException", s.ToString(), 500};
  }
}

// Pages of a sorted list: the token is the index of the next item.
template <typename T, typename F>
json Page(const std::vector<T>& items, const json& in, const char* member, F render,
          std::optional<ApiError>* error) {
  size_t start = 0;
  if (in.contains("NextToken")) {
    const std::string tok = in["NextToken"];
    char* end = nullptr;
    unsigned long long v = std::strtoull(tok.c_str(), &end, 10);
    if (tok.empty() || tok.size() > 12 || *end != '\0' || v > items.size()) {
      *error = Invalid("Invalid parameter: NextToken");
      return {};
    }
    start = static_cast<size_t>(v);
  }
  json list = json::array();
  for (size_t i = start; i < items.size() && i < start + kPage; ++i)
    list.push_back(render(items[i]));
  json out = {{member, list}};
  if (start + kPage < items.size()) out["NextToken"] = std::to_string(start + kPage);
  return out;
}

json SubscriptionJson(const SnsSubscription& s) {
  return {{"SubscriptionArn", s.arn},
          {"Owner", s.owner},
          {"Protocol", s.protocol},
          {"Endpoint", s.endpoint},
          {"TopicArn", s.topic_arn}};
}

}  // namespace

SnsService::SnsService(SnsTopics* topics)
    : model_(api::ServiceModel::Embedded("sns")), topics_(topics) {}

api::ServiceOutcome SnsService::Call(const api::CallContext& ctx, const api::Operation& op,
                                     const json& input) {
  using Handler = Outcome (SnsService::*)(const std::string&, const json&);
  static const std::pair<const char*, Handler> kOps[] = {
      {"CreateTopic", &SnsService::CreateTopic},
      {"DeleteTopic", &SnsService::DeleteTopic},
      {"ListTopics", &SnsService::ListTopics},
      {"GetTopicAttributes", &SnsService::GetTopicAttributes},
      {"Subscribe", &SnsService::Subscribe},
      {"Unsubscribe", &SnsService::Unsubscribe},
      {"GetSubscriptionAttributes", &SnsService::GetSubscriptionAttributes},
      {"ListSubscriptions", &SnsService::ListSubscriptions},
      {"ListSubscriptionsByTopic", &SnsService::ListSubscriptionsByTopic},
      {"Publish", &SnsService::Publish},
  };
  const json& in = input.is_null() ? json::object() : input;
  for (const auto& [name, handler] : kOps) {
    if (op.name == name) return (this->*handler)(ctx.caller.account_id, in);
  }
  return Invalid("Unknown operation '" + op.name + "'.");
}

SnsService::Outcome SnsService::CreateTopic(const std::string& account, const json& in) {
  const json attrs = in.value("Attributes", json::object());
  if (attrs.value("FifoTopic", std::string("false")) == "true") {
    return Invalid("Invalid parameter: FifoTopic (FIFO topics are not served here)");
  }
  auto arn = topics_->CreateTopic(account, in.at("Name"), attrs.value("DisplayName", ""));
  if (!arn.ok()) return FromStatus(arn.status());
  return json{{"TopicArn", *arn}};
}

SnsService::Outcome SnsService::DeleteTopic(const std::string& account, const json& in) {
  topics_->DeleteTopic(account, in.at("TopicArn"));
  return json::object();
}

SnsService::Outcome SnsService::ListTopics(const std::string& account, const json& in) {
  std::optional<ApiError> error;
  json out = Page(
      topics_->ListTopics(account), in, "Topics",
      [](const SnsTopic& t) {
        return json{{"TopicArn", t.arn}};
      },
      &error);
  if (error) return *error;
  return out;
}

SnsService::Outcome SnsService::GetTopicAttributes(const std::string& account, const json& in) {
  auto t = topics_->GetTopic(account, in.at("TopicArn"));
  if (!t.ok()) return FromStatus(t.status());
  json policy = {
      {"Version", "2008-10-17"},
      {"Id", "__default_policy_ID"},
      {"Statement",
       json::array({{{"Sid", "__default_statement_ID"},
                     {"Effect", "Allow"},
                     {"Principal", {{"AWS", "*"}}},
                     {"Action", json::array({"SNS:Publish", "SNS:Subscribe", "SNS:Receive"})},
                     {"Resource", t->arn},
                     {"Condition", {{"StringEquals", {{"AWS:SourceOwner", t->owner}}}}}}})}};
  json failures = json::array();
  for (const auto& f : topics_->Failures(t->arn)) {
    failures.push_back({{"Time", FormatIso8601(f.at)},
                        {"SubscriptionArn", f.what},
                        {"Attempts", f.attempts},
                        {"Error", f.error}});
  }
  json attrs = {
      {"TopicArn", t->arn},
      {"Owner", t->owner},
      {"DisplayName", t->display_name},
      {"SubscriptionsConfirmed", std::to_string(t->subscriptions.size())},
      {"SubscriptionsPending", "0"},
      {"SubscriptionsDeleted", "0"},
      {"Policy", policy.dump()},
      {"EffectiveDeliveryPolicy",
       R"({"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":4,"numRetries":2,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"exponential"},"disableSubscriptionOverrides":false}})"},
      {"RecentDeliveryFailures", failures.dump()}};
  return json{{"Attributes", attrs}};
}

SnsService::Outcome SnsService::Subscribe(const std::string& account, const json& in) {
  const json attrs = in.value("Attributes", json::object());
  for (const char* unsupported : {"FilterPolicy", "RedrivePolicy", "DeliveryPolicy"}) {
    if (attrs.contains(unsupported)) {
      return Invalid(std::string("Invalid parameter: Attributes Reason: ") + unsupported +
                     " is not served here");
    }
  }
  auto arn =
      topics_->Subscribe(account, in.at("TopicArn"), in.at("Protocol"), in.value("Endpoint", ""),
                         attrs.value("RawMessageDelivery", std::string("false")) == "true");
  if (!arn.ok()) return FromStatus(arn.status());
  return json{{"SubscriptionArn", *arn}};
}

SnsService::Outcome SnsService::Unsubscribe(const std::string& account, const json& in) {
  Status s = topics_->Unsubscribe(account, in.at("SubscriptionArn"));
  if (!s.ok()) return FromStatus(s);
  return json::object();
}

SnsService::Outcome SnsService::GetSubscriptionAttributes(const std::string& account,
                                                          const json& in) {
  auto s = topics_->GetSubscription(account, in.at("SubscriptionArn"));
  if (!s.ok()) return FromStatus(s.status());
  return json{{"Attributes",
               {{"SubscriptionArn", s->arn},
                {"TopicArn", s->topic_arn},
                {"Owner", s->owner},
                {"Protocol", s->protocol},
                {"Endpoint", s->endpoint},
                {"PendingConfirmation", "false"},
                {"ConfirmationWasAuthenticated", "true"},
                {"RawMessageDelivery", s->raw ? "true" : "false"}}}};
}

SnsService::Outcome SnsService::ListSubscriptions(const std::string& account, const json& in) {
  std::optional<ApiError> error;
  json out =
      Page(topics_->ListSubscriptions(account), in, "Subscriptions", SubscriptionJson, &error);
  if (error) return *error;
  return out;
}

SnsService::Outcome SnsService::ListSubscriptionsByTopic(const std::string& account,
                                                         const json& in) {
  auto t = topics_->GetTopic(account, in.at("TopicArn"));
  if (!t.ok()) return FromStatus(t.status());
  std::optional<ApiError> error;
  json out = Page(t->subscriptions, in, "Subscriptions", SubscriptionJson, &error);
  if (error) return *error;
  return out;
}

SnsService::Outcome SnsService::Publish(const std::string& account, const json& in) {
  SnsPublish p;
  p.account = account;
  if (in.contains("PhoneNumber"))
    return Invalid("Invalid parameter: PhoneNumber (SMS is not served here)");
  p.topic_arn = in.value("TopicArn", in.value("TargetArn", std::string()));
  if (p.topic_arn.empty())
    return Invalid(
        "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter");
  p.message = in.at("Message");
  if (p.message.empty()) return Invalid("Invalid parameter: Empty message");
  if (p.message.size() > kMaxMessageBytes) {
    return Invalid("Invalid parameter: Message too long");
  }
  if (in.contains("Subject")) {
    const std::string subject = in["Subject"];
    if (subject.empty() || subject.size() > kMaxSubjectChars) {
      return Invalid("Invalid parameter: Subject");
    }
    for (unsigned char c : subject) {
      if (c < 0x20 || c == '\n' || c == '\r') {
        return Invalid("Invalid parameter: Subject Reason: must not hold control characters");
      }
    }
    p.subject = subject;
  }
  if (in.value("MessageStructure", std::string()) == "json") {
    auto doc = ParseJson(p.message);
    if (!doc.ok() || !doc->is_object() || !doc->contains("default") ||
        !(*doc)["default"].is_string()) {
      return Invalid(
          "Invalid parameter: Message Structure - JSON message body failed to parse or has no "
          "\"default\" string");
    }
    for (const auto& [k, v] : doc->items()) {
      if (v.is_string()) p.per_protocol[k] = v.get<std::string>();
    }
  } else if (in.contains("MessageStructure")) {
    return Invalid("Invalid parameter: MessageStructure");
  }
  const json attrs = in.value("MessageAttributes", json::object());
  if (attrs.size() > kMaxAttributes) {
    return Invalid("Invalid parameter: MessageAttributes (at most 10)");
  }
  for (const auto& [name, v] : attrs.items()) {
    SnsMessageAttribute a;
    a.type = v.at("DataType");
    if (a.type.rfind("String", 0) != 0 && a.type.rfind("Number", 0) != 0 &&
        a.type.rfind("Binary", 0) != 0) {
      return Invalid("Invalid parameter: MessageAttributes Reason: The message attribute '" + name +
                     "' has an invalid message attribute type");
    }
    if (a.type.rfind("Binary", 0) == 0) {
      if (!v.contains("BinaryValue")) {
        return Invalid("Invalid parameter: MessageAttributes Reason: The message attribute '" +
                       name + "' must contain a binary value");
      }
      a.value = v["BinaryValue"];  // already base64 in the document form
    } else {
      if (!v.contains("StringValue")) {
        return Invalid("Invalid parameter: MessageAttributes Reason: The message attribute '" +
                       name + "' must contain non-empty message attribute value");
      }
      a.value = v["StringValue"];
    }
    p.attributes[name] = std::move(a);
  }
  auto id = topics_->Publish(p);
  if (!id.ok()) return FromStatus(id.status());
  return json{{"MessageId", *id}};
}

}  // namespace ty::services
