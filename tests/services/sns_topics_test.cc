#include "services/sns/sns_topics.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::services {
namespace {

using nlohmann::json;

class FakeLambda final : public control::Deliverer {
 public:
  control::DeliveryResult Deliver(const control::Delivery& d) override {
    MutexLock lock(&mu_);
    got_.push_back(d);
    if (fail_first_ > 0) {
      --fail_first_;
      return control::DeliveryResult::Retry("function error");
    }
    return control::DeliveryResult::Delivered();
  }
  std::vector<control::Delivery> got() {
    MutexLock lock(&mu_);
    return got_;
  }
  void fail_first(int n) {
    MutexLock lock(&mu_);
    fail_first_ = n;
  }

 private:
  Mutex mu_;
  std::vector<control::Delivery> got_ TY_GUARDED_BY(mu_);
  int fail_first_ TY_GUARDED_BY(mu_) = 0;
};

class FakePoster final : public HttpPoster {
 public:
  struct Request {
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
  };
  control::DeliveryResult Post(const std::string& url,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& body) override {
    MutexLock lock(&mu_);
    got_.push_back({url, headers, body});
    return control::DeliveryResult::Retry("HTTP 500");
  }
  std::vector<Request> got() {
    MutexLock lock(&mu_);
    return got_;
  }

 private:
  Mutex mu_;
  std::vector<Request> got_ TY_GUARDED_BY(mu_);
};

class SnsTopicsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control::DeliveryQueueOptions q;
    q.initial_backoff = std::chrono::milliseconds(0);
    q.poll = std::chrono::milliseconds(5);
    queue_ = std::make_unique<control::DeliveryQueue>(q, &clock_);
    Reopen();
  }
  void Reopen() {
    topics_.reset();
    SnsOptions o;
    o.data_dir = dir_.path();
    auto t = SnsTopics::Open(o, &lambda_, queue_.get(), &poster_, &clock_);
    ASSERT_TRUE(t.ok());
    topics_ = std::move(t).value();
  }
  void Drain() {
    for (int i = 0; i < 1000 && queue_->Pending() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(queue_->Pending(), 0u);
  }

  ty::testing::TempDir dir_;
  ty::testing::FakeClock clock_{FromEpochMillis(1657334394584)};
  FakeLambda lambda_;
  FakePoster poster_;
  std::unique_ptr<control::DeliveryQueue> queue_;
  std::unique_ptr<SnsTopics> topics_;
};

TEST_F(SnsTopicsTest, LambdaSubscribersGetTheSnsEnvelopeExactly) {
  auto arn = topics_->CreateTopic("256867920320", "cpu-alerts", "");
  ASSERT_TRUE(arn.ok());
  EXPECT_EQ(*arn, "arn:aws:sns:us-east-1:256867920320:cpu-alerts");
  EXPECT_EQ(*topics_->CreateTopic("256867920320", "cpu-alerts", ""), *arn);  // idempotent
  auto sub = topics_->Subscribe("256867920320", *arn, "lambda",
                                "arn:aws:lambda:us-east-1:256867920320:function:stopper", false);
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  EXPECT_EQ(sub->rfind(*arn + ":", 0), 0u);
  // Delivered through the "sns" Deliverer, as an alarm action is.
  control::Delivery d;
  d.account = "256867920320";
  d.target_arn = *arn;
  d.payload = R"({"AlarmName":"cpu-alarm"})";
  d.subject = "ALARM: \"cpu-alarm\" in US East (N. Virginia)";
  ASSERT_TRUE(topics_->Deliver(d).ok());
  Drain();
  ASSERT_EQ(lambda_.got().size(), 1u);
  const control::Delivery got = lambda_.got()[0];
  EXPECT_EQ(got.target_arn, "arn:aws:lambda:us-east-1:256867920320:function:stopper");
  EXPECT_EQ(got.principal, "sns.amazonaws.com");
  EXPECT_EQ(got.source_arn, *arn);
  json e = json::parse(got.payload);
  ASSERT_EQ(e["Records"].size(), 1u);
  const json& r = e["Records"][0];
  EXPECT_EQ(r["EventSource"], "aws:sns");
  EXPECT_EQ(r["EventVersion"], "1.0");
  EXPECT_EQ(r["EventSubscriptionArn"], *sub);
  const json& sns = r["Sns"];
  std::vector<std::string> keys;
  for (const auto& [k, v] : sns.items()) keys.push_back(k);
  EXPECT_EQ(keys.size(), 11u);
  EXPECT_EQ(sns["Type"], "Notification");
  EXPECT_EQ(sns["TopicArn"], *arn);
  EXPECT_EQ(sns["Subject"], "ALARM: \"cpu-alarm\" in US East (N. Virginia)");
  EXPECT_EQ(sns["Message"], R"({"AlarmName":"cpu-alarm"})");
  EXPECT_EQ(sns["Timestamp"], "2022-07-09T02:39:54.584Z");
  EXPECT_EQ(sns["SignatureVersion"], "1");
  EXPECT_FALSE(sns["Signature"].get<std::string>().empty());
  EXPECT_EQ(
      sns["SigningCertUrl"].get<std::string>().rfind("https://sns.us-east-1.amazonaws.com/", 0),
      0u);
  EXPECT_EQ(sns["UnsubscribeUrl"],
            "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + *sub);
  EXPECT_EQ(sns["MessageAttributes"], json::object());
  EXPECT_EQ(sns["MessageId"].get<std::string>().size(), 36u);
}

TEST_F(SnsTopicsTest, PublishWithoutSubjectAndWithAttributes) {
  auto arn = *topics_->CreateTopic("111111111111", "t", "");
  ASSERT_TRUE(topics_
                  ->Subscribe("111111111111", arn, "lambda",
                              "arn:aws:lambda:us-east-1:111111111111:function:f", false)
                  .ok());
  SnsPublish p;
  p.account = "111111111111";
  p.topic_arn = arn;
  p.message = "hello";
  p.attributes["job"] = {"String", "j1"};
  auto id = topics_->Publish(p);
  ASSERT_TRUE(id.ok());
  Drain();
  json sns = json::parse(lambda_.got().at(0).payload)["Records"][0]["Sns"];
  EXPECT_TRUE(sns["Subject"].is_null());
  EXPECT_EQ(sns["MessageId"], *id);
  EXPECT_EQ(sns["MessageAttributes"], json::parse(R"({"job":{"Type":"String","Value":"j1"}})"));
}

TEST_F(SnsTopicsTest, HttpSubscribersOnlyOnLoopbackAndFailuresAreKept) {
  auto arn = *topics_->CreateTopic("111111111111", "t", "");
  for (const char* bad : {"http://example.com/x", "http://10.0.0.1:8080/", "ftp://127.0.0.1/",
                          "http://169.254.169.254/latest", "http://127.0.0.1.nip.io/"}) {
    auto s = topics_->Subscribe("111111111111", arn, "http", bad, false);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(topics_->Subscribe("111111111111", arn, "email", "a@b.c", false).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(topics_
                ->Subscribe("111111111111", arn, "lambda",
                            "arn:aws:lambda:us-east-1:222222222222:function:f", false)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  auto sub = topics_->Subscribe("111111111111", arn, "http", "http://127.0.0.1:9/hook", false);
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(topics_->Subscribe("111111111111", arn, "https", "https://[::1]:9/", false).ok());
  ASSERT_TRUE(topics_->Subscribe("111111111111", arn, "http", "http://localhost:9/", true).ok());
  SnsPublish p;
  p.account = "111111111111";
  p.topic_arn = arn;
  p.message = "m";
  p.subject = "s";
  ASSERT_TRUE(topics_->Publish(p).ok());
  Drain();
  auto got = poster_.got();
  ASSERT_EQ(got.size(), 9u);  // three subscribers, three attempts each
  const FakePoster::Request* first = nullptr;
  for (const auto& r : got) {
    if (r.url == "http://127.0.0.1:9/hook") first = &r;
  }
  ASSERT_NE(first, nullptr);
  json body = json::parse(first->body);
  EXPECT_EQ(body["Type"], "Notification");
  EXPECT_EQ(body["Subject"], "s");
  EXPECT_TRUE(body.contains("SigningCertURL"));
  EXPECT_TRUE(body.contains("UnsubscribeURL"));
  bool type_header = false, sub_header = false;
  for (const auto& [k, v] : first->headers) {
    type_header = type_header || (k == "x-amz-sns-message-type" && v == "Notification");
    sub_header = sub_header || (k == "x-amz-sns-subscription-arn" && v == *sub);
  }
  EXPECT_TRUE(type_header);
  EXPECT_TRUE(sub_header);
  for (const auto& r : got) {
    if (r.url == "http://localhost:9/") {
      EXPECT_EQ(r.body, "m");  // raw delivery
    }
  }
  auto failures = topics_->Failures(arn);
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_EQ(failures[0].attempts, 3);
  EXPECT_EQ(failures[0].error, "HTTP 500");
}

TEST_F(SnsTopicsTest, RetriedLambdaDeliverySucceeds) {
  auto arn = *topics_->CreateTopic("111111111111", "t", "");
  ASSERT_TRUE(topics_
                  ->Subscribe("111111111111", arn, "lambda",
                              "arn:aws:lambda:us-east-1:111111111111:function:f", false)
                  .ok());
  lambda_.fail_first(2);
  SnsPublish p{"111111111111", arn, std::nullopt, "m", {}, {}};
  ASSERT_TRUE(topics_->Publish(p).ok());
  Drain();
  EXPECT_EQ(lambda_.got().size(), 3u);
  EXPECT_TRUE(topics_->Failures(arn).empty());
}

TEST_F(SnsTopicsTest, AccountsAreIsolatedAndTopicsPersist) {
  auto arn = *topics_->CreateTopic("111111111111", "t", "shown");
  ASSERT_TRUE(topics_->Subscribe("111111111111", arn, "http", "http://127.0.0.1:9/", false).ok());
  EXPECT_EQ(topics_->GetTopic("222222222222", arn).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(topics_->ListTopics("222222222222").empty());
  EXPECT_TRUE(topics_->ListSubscriptions("222222222222").empty());
  SnsPublish p{"222222222222", arn, std::nullopt, "m", {}, {}};
  EXPECT_EQ(topics_->Publish(p).status().code(), StatusCode::kNotFound);
  control::Delivery d{"222222222222", arn, "m", "", "", ""};
  EXPECT_EQ(topics_->Deliver(d).kind, control::DeliveryResult::Kind::kFailed);
  topics_->DeleteTopic("222222222222", arn);  // not theirs: nothing happens
  Reopen();
  auto t = topics_->GetTopic("111111111111", arn);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->display_name, "shown");
  EXPECT_EQ(t->subscriptions.size(), 1u);
  topics_->DeleteTopic("111111111111", arn);
  Reopen();
  EXPECT_TRUE(topics_->ListTopics("111111111111").empty());
}

}  // namespace
}  // namespace ty::services
