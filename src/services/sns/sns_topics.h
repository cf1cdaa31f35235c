// SnsTopics: the SNS topics and subscriptions of every account, and their fan-out. It is also
// the "sns" Deliverer (control/delivery.h): an EventBridge rule or an alarm action whose
// target is a topic ARN publishes to that topic.
//
// Subscriptions (protocols):
//   lambda       a function ARN of the topic's account; it gets the SNS event envelope
//                (aws-services.md §4.5) through the DeliveryRouter ("lambda" Deliverer).
//   http, https  a URL whose host is a loopback address (127.0.0.0/8, ::1, localhost): only an
//                endpoint on this machine. Such subscriptions are confirmed at once (the
//                caller owns the machine's endpoints; no SubscriptionConfirmation round trip),
//                and get each message as SNS POSTs it: the JSON notification body, or the bare
//                message with RawMessageDelivery=true, and the x-amz-sns-* headers. Redirects
//                are not followed.
// Other protocols (email, sqs, sms, application, firehose) are refused with InvalidParameter.
//
// Publish returns at once with a MessageId; each subscriber's delivery runs on the
// DeliveryQueue's workers, retried with backoff. Failed deliveries are kept per topic (the
// newest 20) and shown by GetTopicAttributes as "RecentDeliveryFailures" (JSON text), and
// logged on stderr by the queue.
//
// Persistence: <data_dir>/sns.json (0600), rewritten atomically after each change.
// Bounds: 1,000 topics per account, 1,000 subscriptions per topic.
//
// Thread-safe: every method may be called from any thread; the state's mutex is never held
// across a delivery or the file write.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/delivery.h"
#include "control/delivery_queue.h"

namespace ty::services {

struct SnsSubscription {
  std::string arn, topic_arn, owner, protocol, endpoint;
  bool raw = false;  // RawMessageDelivery
};

struct SnsTopic {
  std::string arn, name, owner, display_name;
  std::vector<SnsSubscription> subscriptions;
};

struct SnsMessageAttribute {
  std::string type;   // DataType: String, Number, Binary, String.Array
  std::string value;  // StringValue, or the base64 of BinaryValue
};

struct SnsPublish {
  std::string account;
  std::string topic_arn;
  std::optional<std::string> subject;
  std::string message;
  // MessageStructure=json: the message per protocol ("default", "lambda", "http", ...).
  std::map<std::string, std::string> per_protocol;
  std::map<std::string, SnsMessageAttribute> attributes;
};

// The envelope a Lambda subscriber gets and the body an http one gets, for one message.
struct SnsNotification {
  std::string message_id, topic_arn, subscription_arn, message, timestamp;  // ISO ms Z
  std::optional<std::string> subject;
  std::map<std::string, SnsMessageAttribute> attributes;
};
std::string LambdaEnvelope(const SnsNotification& n, const std::string& region);
std::string HttpBody(const SnsNotification& n, const std::string& region);

// POSTs a notification to an http(s) subscriber; the seam tests replace.
class HttpPoster {
 public:
  virtual ~HttpPoster() = default;
  virtual control::DeliveryResult Post(
      const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
      const std::string& body) = 0;
};
// libcurl, 10-second timeout, no redirects, http/https only. 2xx is delivered; anything else
// (a refused connection, 4xx, 5xx) is retried.
std::unique_ptr<HttpPoster> MakeCurlPoster();

// True when `url` is http(s)://<loopback host>[:port]/...; `why` says what is wrong otherwise.
bool IsLoopbackUrl(const std::string& url, std::string* why);

struct SnsOptions {
  std::string data_dir;  // "" = memory only
  std::string region = "us-east-1";
  size_t max_topics_per_account = 1000;
  size_t max_subscriptions_per_topic = 1000;
};

class SnsTopics final : public control::Deliverer {
 public:
  // REQUIRES: deliveries (the server's router, for lambda subscribers), queue, poster and
  // clock outlive this.
  static Result<std::unique_ptr<SnsTopics>> Open(SnsOptions options, control::Deliverer* deliveries,
                                                 control::DeliveryQueue* queue, HttpPoster* poster,
                                                 const Clock* clock);

  // Errors: kInvalidArgument (bad name), kResourceExhausted (too many topics).
  Result<std::string> CreateTopic(const std::string& account, const std::string& name,
                                  const std::string& display_name);
  void DeleteTopic(const std::string& account, const std::string& topic_arn);
  std::vector<SnsTopic> ListTopics(const std::string& account) const;
  // kNotFound when the account has no such topic.
  Result<SnsTopic> GetTopic(const std::string& account, const std::string& topic_arn) const;
  // kNotFound (topic), kInvalidArgument (protocol or endpoint), kResourceExhausted.
  Result<std::string> Subscribe(const std::string& account, const std::string& topic_arn,
                                const std::string& protocol, const std::string& endpoint, bool raw);
  Status Unsubscribe(const std::string& account, const std::string& subscription_arn);
  Result<SnsSubscription> GetSubscription(const std::string& account,
                                          const std::string& subscription_arn) const;
  std::vector<SnsSubscription> ListSubscriptions(const std::string& account) const;
  // Queues the message for every subscriber; returns the MessageId. kNotFound (topic).
  Result<std::string> Publish(const SnsPublish& p);
  // The newest failed deliveries of a topic, newest first.
  std::vector<control::DeliveryFailure> Failures(const std::string& topic_arn) const;

  // Deliverer: publishes d.payload (Subject d.subject) to the topic d.target_arn.
  control::DeliveryResult Deliver(const control::Delivery& d) override;

  const SnsOptions& options() const { return options_; }

 private:
  SnsTopics(SnsOptions options, control::Deliverer* deliveries, control::DeliveryQueue* queue,
            HttpPoster* poster, const Clock* clock);
  Status Load();
  void Persist();
  void RecordFailure(const std::string& topic_arn, control::DeliveryFailure f);

  const SnsOptions options_;
  control::Deliverer* const deliveries_;
  control::DeliveryQueue* const queue_;
  HttpPoster* const poster_;
  const Clock* const clock_;

  mutable Mutex mu_;
  std::map<std::string, SnsTopic> topics_ TY_GUARDED_BY(mu_);  // by ARN (carries the account)
  std::map<std::string, std::deque<control::DeliveryFailure>> failures_ TY_GUARDED_BY(mu_);
  int64_t version_ TY_GUARDED_BY(mu_) = 0;
  Mutex file_mu_;
  int64_t written_version_ TY_GUARDED_BY(file_mu_) = 0;
};

}  // namespace ty::services
