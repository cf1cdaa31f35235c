// MonitoringService's alarm operations over a real AlarmManager (in memory) and a fake clock:
// PutMetricAlarm's checks, DescribeAlarms' filters and pages, history, accounts kept apart.
#include <gtest/gtest.h>

#include "services/monitoring/monitoring_service.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::services {
namespace {

using nlohmann::json;

class AlarmOperationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = telemetry::MetricStore::Open(dir_.path());
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    auto a = telemetry::AlarmManager::Open({}, store_.get(), nullptr, nullptr, &clock_);
    ASSERT_TRUE(a.ok());
    alarms_ = std::move(a).value();
    service_ = std::make_unique<MonitoringService>(store_.get(), &clock_, alarms_.get());
  }
  api::ServiceOutcome Call(const std::string& op, const json& in,
                           const std::string& account = "111111111111") {
    api::CallContext ctx;
    ctx.caller.account_id = account;
    api::Operation o;
    o.name = op;
    return service_->Call(ctx, o, in);
  }
  json Ok(const std::string& op, const json& in, const std::string& account = "111111111111") {
    auto r = Call(op, in, account);
    if (auto* e = std::get_if<api::ApiError>(&r)) {
      ADD_FAILURE() << op << ": " << e->type << ": " << e->message;
      return json();
    }
    return std::get<json>(r);
  }
  std::string Err(const std::string& op, const json& in) {
    auto r = Call(op, in);
    if (auto* e = std::get_if<api::ApiError>(&r)) return e->type;
    return "no error";
  }
  static json Alarm(const std::string& name) {
    return {{"AlarmName", name},
            {"MetricName", "GPUUtilization"},
            {"Namespace", "/aws/sagemaker/TrainingJobs"},
            {"Dimensions", {{{"Name", "Host"}, {"Value", "j/algo-1"}}}},
            {"Statistic", "Average"},
            {"Period", 60},
            {"EvaluationPeriods", 3},
            {"Threshold", 1.0},
            {"ComparisonOperator", "LessThanOrEqualToThreshold"},
            {"AlarmActions", {"arn:aws:sns:us-east-1:111111111111:idle"}}};
  }

  testing::TempDir dir_{"ty-alarm-ops-"};
  testing::FakeClock clock_{FromEpochMillis(1'700'000'040'000)};
  std::unique_ptr<telemetry::MetricStore> store_;
  std::unique_ptr<telemetry::AlarmManager> alarms_;
  std::unique_ptr<MonitoringService> service_;
};

TEST_F(AlarmOperationsTest, PutMetricAlarmChecksItsParameters) {
  struct Case {
    const char* what;
    json patch;
    const char* error;
  } cases[] = {
      {"period 45", {{"Period", 45}}, "InvalidParameterValueException"},
      {"period 20", {{"Period", 20}}, "no error"},
      {"window over a day",
       {{"Period", 600}, {"EvaluationPeriods", 145}},
       "InvalidParameterValueException"},
      {"M over N", {{"DatapointsToAlarm", 4}}, "InvalidParameterValueException"},
      {"two statistics", {{"ExtendedStatistic", "p90"}}, "InvalidParameterCombinationException"},
      {"anomaly band",
       {{"ComparisonOperator", "LessThanLowerThreshold"}},
       "InvalidParameterValueException"},
      {"bad missing data", {{"TreatMissingData", "sometimes"}}, "InvalidParameterValueException"},
      {"another account's topic",
       {{"AlarmActions", {"arn:aws:sns:us-east-1:222222222222:idle"}}},
       "InvalidParameterValueException"},
      {"an EC2 action",
       {{"AlarmActions", {"arn:aws:automate:us-east-1:ec2:stop"}}},
       "InvalidParameterValueException"},
      {"a function",
       {{"OKActions", {"arn:aws:lambda:us-east-1:111111111111:function:f"}}},
       "no error"},
      {"metric math", {{"Metrics", json::array()}}, "InvalidParameterValueException"},
  };
  for (const auto& c : cases) {
    json in = Alarm("a");
    in.update(c.patch);
    EXPECT_EQ(Err("PutMetricAlarm", in), c.error) << c.what;
  }
}

TEST_F(AlarmOperationsTest, DescribeFiltersPagesAndKeepsAccountsApart) {
  for (int i = 0; i < 5; ++i) Ok("PutMetricAlarm", Alarm("idle-" + std::to_string(i)));
  Ok("PutMetricAlarm", Alarm("other"));
  json b = Alarm("b-only");
  b["AlarmActions"] = {"arn:aws:sns:us-east-1:222222222222:idle"};
  Ok("PutMetricAlarm", b, "222222222222");
  EXPECT_EQ(Ok("DescribeAlarms", json::object())["MetricAlarms"].size(), 6u);
  json page = Ok("DescribeAlarms", {{"AlarmNamePrefix", "idle-"}, {"MaxRecords", 3}});
  ASSERT_EQ(page["MetricAlarms"].size(), 3u);
  ASSERT_TRUE(page.contains("NextToken"));
  json rest =
      Ok("DescribeAlarms",
         {{"AlarmNamePrefix", "idle-"}, {"MaxRecords", 3}, {"NextToken", page["NextToken"]}});
  EXPECT_EQ(rest["MetricAlarms"].size(), 2u);
  EXPECT_FALSE(rest.contains("NextToken"));
  EXPECT_EQ(Err("DescribeAlarms", {{"NextToken", "x"}}), "InvalidNextToken");
  json a = Ok("DescribeAlarms", {{"AlarmNames", {"idle-0"}}})["MetricAlarms"][0];
  EXPECT_EQ(a["StateValue"], "INSUFFICIENT_DATA");
  EXPECT_EQ(a["DatapointsToAlarm"], 3);  // defaults to EvaluationPeriods
  EXPECT_EQ(a["AlarmArn"], "arn:aws:cloudwatch:us-east-1:111111111111:alarm:idle-0");
  EXPECT_EQ(Ok("DescribeAlarms", {{"StateValue", "ALARM"}})["MetricAlarms"].size(), 0u);
  EXPECT_EQ(Ok("DescribeAlarms",
               {{"ActionPrefix", "arn:aws:sns:us-east-1:111111111111:idle"}})["MetricAlarms"]
                .size(),
            6u);
  EXPECT_EQ(Ok("DescribeAlarms", {{"AlarmTypes", {"CompositeAlarm"}}})["MetricAlarms"].size(), 0u);
  EXPECT_EQ(Ok("DescribeAlarmsForMetric",
               {{"MetricName", "GPUUtilization"},
                {"Namespace", "/aws/sagemaker/TrainingJobs"},
                {"Dimensions", {{{"Name", "Host"}, {"Value", "j/algo-1"}}}}})["MetricAlarms"]
                .size(),
            6u);
  // B sees and touches only its own.
  EXPECT_EQ(Ok("DescribeAlarms", json::object(), "222222222222")["MetricAlarms"].size(), 1u);
  Ok("DeleteAlarms", {{"AlarmNames", {"idle-0", "ghost"}}}, "222222222222");
  EXPECT_EQ(Ok("DescribeAlarms", json::object())["MetricAlarms"].size(), 6u);
  Ok("DeleteAlarms", {{"AlarmNames", {"idle-0", "ghost"}}});
  EXPECT_EQ(Ok("DescribeAlarms", json::object())["MetricAlarms"].size(), 5u);
}

TEST_F(AlarmOperationsTest, SetAlarmStateAndHistory) {
  Ok("PutMetricAlarm", Alarm("a"));
  EXPECT_EQ(
      Err("SetAlarmState", {{"AlarmName", "ghost"}, {"StateValue", "OK"}, {"StateReason", "x"}}),
      "ResourceNotFound");
  EXPECT_EQ(Err("SetAlarmState", {{"AlarmName", "a"},
                                  {"StateValue", "OK"},
                                  {"StateReason", "x"},
                                  {"StateReasonData", "{not json"}}),
            "InvalidFormatFault");
  clock_.Advance(std::chrono::seconds(5));
  Ok("SetAlarmState", {{"AlarmName", "a"}, {"StateValue", "ALARM"}, {"StateReason", "by hand"}});
  json a = Ok("DescribeAlarms", {{"AlarmNames", {"a"}}})["MetricAlarms"][0];
  EXPECT_EQ(a["StateValue"], "ALARM");
  EXPECT_EQ(a["StateReason"], "by hand");
  json h = Ok("DescribeAlarmHistory", {{"AlarmName", "a"}})["AlarmHistoryItems"];
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0]["HistoryItemType"], "StateUpdate");
  EXPECT_EQ(h[0]["HistorySummary"], "Alarm updated from INSUFFICIENT_DATA to ALARM");
  EXPECT_EQ(h[1]["HistoryItemType"], "ConfigurationUpdate");
  EXPECT_EQ(Ok("DescribeAlarmHistory", {{"HistoryItemType", "StateUpdate"},
                                        {"ScanBy", "TimestampAscending"}})["AlarmHistoryItems"]
                .size(),
            1u);
  Ok("DisableAlarmActions", {{"AlarmNames", {"a"}}});
  EXPECT_EQ(Ok("DescribeAlarms", {{"AlarmNames", {"a"}}})["MetricAlarms"][0]["ActionsEnabled"],
            false);
}

}  // namespace
}  // namespace ty::services
