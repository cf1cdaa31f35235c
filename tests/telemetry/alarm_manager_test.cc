#include "telemetry/alarm_manager.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::telemetry {
namespace {

using nlohmann::json;

class RecordingDeliverer final : public control::Deliverer {
 public:
  control::DeliveryResult Deliver(const control::Delivery& d) override {
    MutexLock lock(&mu_);
    got_.push_back(d);
    return fail_ ? control::DeliveryResult::Failed("no such topic")
                 : control::DeliveryResult::Delivered();
  }
  std::vector<control::Delivery> got() {
    MutexLock lock(&mu_);
    return got_;
  }
  void set_fail(bool f) {
    MutexLock lock(&mu_);
    fail_ = f;
  }

 private:
  Mutex mu_;
  std::vector<control::Delivery> got_ TY_GUARDED_BY(mu_);
  bool fail_ TY_GUARDED_BY(mu_) = false;
};

class AlarmManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = MetricStore::Open(dir_.path());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    metrics_ = std::move(m).value();
    queue_ = std::make_unique<control::DeliveryQueue>(control::DeliveryQueueOptions{}, &clock_);
    Reopen();
  }
  void Reopen() {
    manager_.reset();
    AlarmManagerOptions o;
    o.data_dir = dir_.path();
    auto m = AlarmManager::Open(o, metrics_.get(), &deliverer_, queue_.get(), &clock_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = std::move(m).value();
  }
  void PutValue(double v, int64_t at_ms) {
    PutPoint p;
    p.key = {"111111111111", "Custom", "GPUUtilization", {{"Host", "job/algo-1"}}};
    p.timestamp_ms = at_ms;
    p.sum = p.min = p.max = v;
    ASSERT_TRUE(metrics_->Put({p}, ToEpochMillis(clock_.Now())).ok());
  }
  MetricAlarm Alarm() {
    MetricAlarm a;
    a.account = "111111111111";
    a.name = "idle-gpu";
    a.ns = "Custom";
    a.metric_name = "GPUUtilization";
    a.dimensions = {{"Host", "job/algo-1"}};
    a.statistic = "Average";
    a.period_s = 10;
    a.rule.comparison = Comparison::kLessOrEqual;
    a.rule.threshold = 1;
    a.rule.evaluation_periods = 1;
    a.rule.datapoints_to_alarm = 1;
    a.alarm_actions = {"arn:aws:sns:us-east-1:111111111111:alerts"};
    a.ok_actions = {"arn:aws:lambda:us-east-1:111111111111:function:f"};
    return a;
  }
  void WaitDelivered(size_t n) {
    for (int i = 0; i < 500 && (deliverer_.got().size() < n || queue_->Pending() > 0); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GE(deliverer_.got().size(), n);
  }

  ty::testing::TempDir dir_;
  ty::testing::FakeClock clock_{FromEpochMillis(1'700'000'000'000)};
  std::unique_ptr<MetricStore> metrics_;
  RecordingDeliverer deliverer_;
  std::unique_ptr<control::DeliveryQueue> queue_;
  std::unique_ptr<AlarmManager> manager_;
};

TEST_F(AlarmManagerTest, GoesToAlarmOnItsWindowAndSendsAwssMessageOnce) {
  ASSERT_TRUE(manager_->Put(Alarm()).ok());
  EXPECT_EQ(manager_->Get("111111111111", "idle-gpu")->state, AlarmState::kInsufficientData);
  const int64_t t0 = ToEpochMillis(clock_.Now());  // on a 10-second boundary
  PutValue(0.5, t0 + 1000);
  clock_.Advance(std::chrono::seconds(10));
  manager_->EvaluateDue(clock_.Now());
  auto a = manager_->Get("111111111111", "idle-gpu");
  ASSERT_EQ(a->state, AlarmState::kAlarm) << a->state_reason;
  WaitDelivered(1);
  auto d = deliverer_.got()[0];
  EXPECT_EQ(d.target_arn, "arn:aws:sns:us-east-1:111111111111:alerts");
  EXPECT_EQ(d.subject, "ALARM: \"idle-gpu\" in US East (N. Virginia)");
  json m = json::parse(d.payload);
  EXPECT_EQ(m["AlarmName"], "idle-gpu");
  EXPECT_TRUE(m["AlarmDescription"].is_null());
  EXPECT_EQ(m["AWSAccountId"], "111111111111");
  EXPECT_EQ(m["NewStateValue"], "ALARM");
  EXPECT_EQ(m["OldStateValue"], "INSUFFICIENT_DATA");
  EXPECT_EQ(m["Region"], "US East (N. Virginia)");
  EXPECT_EQ(m["AlarmArn"], "arn:aws:cloudwatch:us-east-1:111111111111:alarm:idle-gpu");
  EXPECT_EQ(m["StateChangeTime"], "2023-11-14T22:13:30.000+0000");
  EXPECT_EQ(m["Trigger"]["Statistic"], "AVERAGE");
  EXPECT_EQ(m["Trigger"]["StatisticType"], "Statistic");
  EXPECT_EQ(m["Trigger"]["Dimensions"], json::parse(R"([{"value":"job/algo-1","name":"Host"}])"));
  EXPECT_TRUE(m["Trigger"]["Unit"].is_null());
  EXPECT_EQ(m["Trigger"]["Period"], 10);
  EXPECT_EQ(m["Trigger"]["TreatMissingData"], "missing");
  // The key order is AWS's.
  EXPECT_EQ(d.payload.rfind("{\"AlarmName\":\"idle-gpu\",\"AlarmDescription\":null,", 0), 0u);
  EXPECT_NE(d.payload.find("\"Threshold\":1.0,"), std::string::npos);
  EXPECT_NE(m["NewStateReason"].get<std::string>().find("1 out of the last 1 datapoints [0.5 ("),
            std::string::npos);

  // Still idle: no second action (only on a change).
  PutValue(0.2, t0 + 11000);
  clock_.Advance(std::chrono::seconds(10));
  manager_->EvaluateDue(clock_.Now());
  EXPECT_EQ(deliverer_.got().size(), 1u);

  // Busy again: OK, and the Lambda action gets the direct payload.
  PutValue(90, t0 + 21000);
  clock_.Advance(std::chrono::seconds(10));
  manager_->EvaluateDue(clock_.Now());
  WaitDelivered(2);
  auto l = deliverer_.got()[1];
  EXPECT_EQ(l.target_arn, "arn:aws:lambda:us-east-1:111111111111:function:f");
  EXPECT_EQ(l.principal, "lambda.alarms.cloudwatch.amazonaws.com");
  json p = json::parse(l.payload);
  EXPECT_EQ(p["source"], "aws.cloudwatch");
  EXPECT_EQ(p["alarmData"]["state"]["value"], "OK");
  EXPECT_EQ(p["alarmData"]["previousState"]["value"], "ALARM");
  EXPECT_EQ(p["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"],
            "GPUUtilization");

  // History: creation, three state updates, two actions.
  int states = 0, actions = 0;
  for (const auto& h : manager_->History("111111111111")) {
    states += h.type == "StateUpdate";
    actions += h.type == "Action";
  }
  EXPECT_EQ(states, 2);
  EXPECT_EQ(actions, 2);
}

TEST_F(AlarmManagerTest, MinutePeriodsAreEvaluatedOnTheMinuteOnly) {
  MetricAlarm a = Alarm();
  a.period_s = 60;
  ASSERT_TRUE(manager_->Put(a).ok());
  const int64_t t0 = ToEpochMillis(clock_.Now());
  const int64_t minute = (t0 / 60000 + 1) * 60000;
  PutValue(0.5, minute - 30000);
  manager_->EvaluateDue(FromEpochMillis(minute - 10000));  // not on a minute
  EXPECT_EQ(manager_->Get(a.account, a.name)->state, AlarmState::kInsufficientData);
  manager_->EvaluateDue(FromEpochMillis(minute));
  EXPECT_EQ(manager_->Get(a.account, a.name)->state, AlarmState::kAlarm);
}

TEST_F(AlarmManagerTest, SetAlarmStateRunsActionsUnlessDisabledAndRecordsFailures) {
  ASSERT_TRUE(manager_->Put(Alarm()).ok());
  deliverer_.set_fail(true);
  ASSERT_TRUE(
      manager_->SetState("111111111111", "idle-gpu", AlarmState::kAlarm, "testing", "").ok());
  WaitDelivered(1);
  bool failed = false;
  for (int i = 0; i < 200 && !failed; ++i) {
    for (const auto& h : manager_->History("111111111111")) {
      failed = failed || (h.type == "Action" &&
                          h.summary.find("Failed to execute action") != std::string::npos);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(failed);
  manager_->SetActionsEnabled("111111111111", {"idle-gpu"}, false);
  ASSERT_TRUE(manager_->SetState("111111111111", "idle-gpu", AlarmState::kOk, "testing", "").ok());
  EXPECT_EQ(deliverer_.got().size(), 1u);
  EXPECT_EQ(manager_->SetState("222222222222", "idle-gpu", AlarmState::kOk, "x", "").code(),
            StatusCode::kNotFound);
}

TEST_F(AlarmManagerTest, AlarmsAndStatesSurviveARestart) {
  ASSERT_TRUE(manager_->Put(Alarm()).ok());
  ASSERT_TRUE(manager_->SetState("111111111111", "idle-gpu", AlarmState::kAlarm, "r", "").ok());
  WaitDelivered(1);
  Reopen();
  auto a = manager_->Get("111111111111", "idle-gpu");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->state, AlarmState::kAlarm);
  EXPECT_EQ(a->rule.comparison, Comparison::kLessOrEqual);
  EXPECT_EQ(a->period_s, 10);
  EXPECT_FALSE(manager_->History("111111111111").empty());
  EXPECT_TRUE(manager_->List("222222222222").empty());
  EXPECT_EQ(manager_->Delete("111111111111", {"idle-gpu", "nope"}),
            std::vector<std::string>{"nope"});
  Reopen();
  EXPECT_FALSE(manager_->Get("111111111111", "idle-gpu").has_value());
}

}  // namespace
}  // namespace ty::telemetry

namespace ty::telemetry {
namespace {

TEST(AlarmManagerFileTest, ABrokenFileIsRefusedWithItsName) {
  ty::testing::TempDir dir;
  for (const char* text : {"{not json", R"({"alarms":[{"name":1}]})", R"({"alarms":[{}]})"}) {
    ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "alarms.json"), text, 0600).ok());
    AlarmManagerOptions o;
    o.data_dir = dir.path();
    auto m = AlarmManager::Open(o, nullptr, nullptr, nullptr, SystemClock::Default());
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_NE(m.status().message().find("alarms.json"), std::string::npos) << m.status().ToString();
  }
}

}  // namespace
}  // namespace ty::telemetry
