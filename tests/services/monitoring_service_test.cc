// MonitoringService over a real MetricStore and a fake clock: PutMetricData's forms and checks,
// GetMetricStatistics, GetMetricData (stats, percentiles, math, ScanBy, pagination), ListMetrics,
// account isolation and tokens; and metric math on its own.
#include "services/monitoring/monitoring_service.h"

#include <gtest/gtest.h>

#include "services/monitoring/metric_math.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::services {
namespace {

using nlohmann::json;

constexpr double kNow = 1'700'000'040;  // seconds; a whole minute

class MonitoringServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = telemetry::MetricStore::Open(dir_.path());
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    service_ = std::make_unique<MonitoringService>(store_.get(), &clock_);
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
  // 120 points, one a second, valued 0..119, ending now.
  void PutSeconds() {
    for (int chunk = 0; chunk < 2; ++chunk) {
      json data = json::array();
      for (int i = chunk * 60; i < chunk * 60 + 60; ++i) {
        data.push_back({{"MetricName", "loss"},
                        {"Dimensions", {{{"Name", "TrainingJobName"}, {"Value", "j"}}}},
                        {"Timestamp", kNow - 120 + i},
                        {"Value", i},
                        {"Unit", "Count"}});
      }
      Ok("PutMetricData", {{"Namespace", "App"}, {"MetricData", data}});
    }
  }
  static json Metric() {
    return {{"Namespace", "App"},
            {"MetricName", "loss"},
            {"Dimensions", {{{"Name", "TrainingJobName"}, {"Value", "j"}}}}};
  }

  testing::TempDir dir_{"ty-monitoring-"};
  testing::FakeClock clock_{FromEpochMillis(static_cast<int64_t>(kNow * 1000))};
  std::unique_ptr<telemetry::MetricStore> store_;
  std::unique_ptr<MonitoringService> service_;
};

TEST_F(MonitoringServiceTest, GetMetricStatisticsGivesEachStatisticPerPeriod) {
  PutSeconds();
  json in = Metric();
  in["StartTime"] = kNow - 120;
  in["EndTime"] = kNow;
  in["Period"] = 60;
  in["Statistics"] = {"Average", "Sum", "Minimum", "Maximum", "SampleCount"};
  json out = Ok("GetMetricStatistics", in);
  EXPECT_EQ(out["Label"], "loss");
  ASSERT_EQ(out["Datapoints"].size(), 2u);
  const json& first = out["Datapoints"][0];
  EXPECT_EQ(first["Timestamp"], kNow - 120);
  EXPECT_EQ(first["Average"], 29.5);
  EXPECT_EQ(first["Sum"], 1770);
  EXPECT_EQ(first["Minimum"], 0);
  EXPECT_EQ(first["Maximum"], 59);
  EXPECT_EQ(first["SampleCount"], 60);
  EXPECT_EQ(first["Unit"], "Count");
  in.erase("Statistics");
  in["ExtendedStatistics"] = {"p50", "p99.9"};
  out = Ok("GetMetricStatistics", in);
  EXPECT_EQ(out["Datapoints"][1]["ExtendedStatistics"]["p50"], 89);
  EXPECT_EQ(out["Datapoints"][1]["ExtendedStatistics"]["p99.9"], 119);
  in["Unit"] = "Seconds";  // another unit: nothing
  EXPECT_TRUE(Ok("GetMetricStatistics", in)["Datapoints"].empty());
}

TEST_F(MonitoringServiceTest, GetMetricStatisticsChecksItsParameters) {
  json in = Metric();
  in["StartTime"] = kNow - 120;
  in["EndTime"] = kNow;
  in["Period"] = 60;
  EXPECT_EQ(Err("GetMetricStatistics", in), "MissingRequiredParameterException");
  in["Statistics"] = {"Average"};
  in["ExtendedStatistics"] = {"p90"};
  EXPECT_EQ(Err("GetMetricStatistics", in), "InvalidParameterCombinationException");
  in.erase("ExtendedStatistics");
  in["Period"] = 7;
  EXPECT_EQ(Err("GetMetricStatistics", in), "InvalidParameterValueException");
  in["Period"] = 1;
  in["StartTime"] = kNow - 86400;
  EXPECT_EQ(Err("GetMetricStatistics", in), "InvalidParameterCombinationException");  // > 1,440
  in["StartTime"] = kNow;
  EXPECT_EQ(Err("GetMetricStatistics", in), "InvalidParameterValueException");
}

TEST_F(MonitoringServiceTest, PutMetricDataTakesEveryFormAndRefusesBadOnes) {
  json values = {{"MetricName", "lat"},
                 {"Values", {1, 2, 3}},
                 {"Counts", {1, 1, 2}},
                 {"Timestamp", kNow - 10}};
  json set = {
      {"MetricName", "lat"},
      {"StatisticValues", {{"SampleCount", 2}, {"Sum", 30}, {"Minimum", 10}, {"Maximum", 20}}},
      {"Timestamp", kNow - 5},
      {"StorageResolution", 1}};
  Ok("PutMetricData", {{"Namespace", "App"}, {"MetricData", {values, set}}});
  json in = {{"Namespace", "App"},     {"MetricName", "lat"},
             {"StartTime", kNow - 60}, {"EndTime", kNow},
             {"Period", 60},           {"Statistics", {"SampleCount", "Sum", "Maximum"}}};
  json dp = Ok("GetMetricStatistics", in)["Datapoints"][0];
  EXPECT_EQ(dp["SampleCount"], 6);
  EXPECT_EQ(dp["Sum"], 39);
  EXPECT_EQ(dp["Maximum"], 20);

  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "AWS/EC2"}, {"MetricData", {values}}}),
            "InvalidParameterValueException");
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}}), "MissingRequiredParameterException");
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}, {"MetricData", {{{"MetricName", "x"}}}}}),
            "MissingRequiredParameterException");
  json both = values;
  both["Value"] = 1;
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}, {"MetricData", {both}}}),
            "InvalidParameterCombinationException");
  json old = {{"MetricName", "x"}, {"Value", 1}, {"Timestamp", kNow - 15 * 86400}};
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}, {"MetricData", {old}}}),
            "InvalidParameterValueException");
  json uneven = {{"MetricName", "x"}, {"Values", {1, 2}}, {"Counts", {1}}};
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}, {"MetricData", {uneven}}}),
            "InvalidParameterValueException");
  json many = json::array();
  for (int i = 0; i < 1001; ++i) many.push_back({{"MetricName", "x"}, {"Value", i}});
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}, {"MetricData", many}}),
            "InvalidParameterValueException");
  json res = {{"MetricName", "x"}, {"Value", 1}, {"StorageResolution", 30}};
  EXPECT_EQ(Err("PutMetricData", {{"Namespace", "App"}, {"MetricData", {res}}}),
            "InvalidParameterValueException");
}

TEST_F(MonitoringServiceTest, GetMetricDataComputesStatsMathScanByAndPages) {
  PutSeconds();
  json q = {
      {"StartTime", kNow - 120},
      {"EndTime", kNow},
      {"MetricDataQueries",
       {{{"Id", "m"}, {"MetricStat", {{"Metric", Metric()}, {"Period", 60}, {"Stat", "Maximum"}}}},
        {{"Id", "p"},
         {"MetricStat", {{"Metric", Metric()}, {"Period", 60}, {"Stat", "p10"}}},
         {"ReturnData", false}},
        {{"Id", "e"}, {"Expression", "(m - p) * 2"}, {"Label", "spread"}},
        {{"Id", "s"}, {"Expression", "SUM([m, p])"}}}}};
  json out = Ok("GetMetricData", q);
  ASSERT_EQ(out["MetricDataResults"].size(), 3u);  // p is not returned
  const json& m = out["MetricDataResults"][0];
  EXPECT_EQ(m["Id"], "m");
  EXPECT_EQ(m["Label"], "loss");
  EXPECT_EQ(m["StatusCode"], "Complete");
  // Newest first by default.
  EXPECT_EQ(m["Timestamps"], json({kNow - 60, kNow - 120}));
  EXPECT_EQ(m["Values"], json({119, 59}));
  const json& e = out["MetricDataResults"][1];
  EXPECT_EQ(e["Label"], "spread");
  EXPECT_EQ(e["Values"], json({(119 - 65) * 2, (59 - 5) * 2}));
  EXPECT_EQ(out["MetricDataResults"][2]["Values"], json({119 + 65, 59 + 5}));

  // Period 1, oldest first, two datapoints a page.
  json fine = {{"StartTime", kNow - 120},
               {"EndTime", kNow},
               {"ScanBy", "TimestampAscending"},
               {"MaxDatapoints", 50},
               {"MetricDataQueries",
                {{{"Id", "raw"},
                  {"MetricStat", {{"Metric", Metric()}, {"Period", 1}, {"Stat", "Average"}}}}}}};
  std::vector<double> seen;
  for (int page = 0; page < 10; ++page) {
    json r = Ok("GetMetricData", fine);
    for (const auto& v : r["MetricDataResults"][0]["Values"]) seen.push_back(v);
    if (!r.contains("NextToken")) break;
    EXPECT_EQ(r["MetricDataResults"][0]["StatusCode"], "PartialData");
    fine["NextToken"] = r["NextToken"];
  }
  ASSERT_EQ(seen.size(), 120u);
  for (int i = 0; i < 120; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);

  // A token is bound to its request and account.
  fine.erase("NextToken");
  json first = Ok("GetMetricData", fine);
  json other = fine;
  other["NextToken"] = first["NextToken"];
  other["EndTime"] = kNow - 1;
  EXPECT_EQ(Err("GetMetricData", other), "InvalidNextToken");
  fine["NextToken"] = first["NextToken"];
  auto r = Call("GetMetricData", fine, "222222222222");
  ASSERT_TRUE(std::holds_alternative<api::ApiError>(r));
  EXPECT_EQ(std::get<api::ApiError>(r).type, "InvalidNextToken");
}

TEST_F(MonitoringServiceTest, GetMetricDataChecksItsQueries) {
  json base = {{"StartTime", kNow - 120}, {"EndTime", kNow}};
  json stat = {{"Metric", Metric()}, {"Period", 60}, {"Stat", "Average"}};
  json in = base;
  in["MetricDataQueries"] = {{{"Id", "Bad"}, {"MetricStat", stat}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterValueException");
  in["MetricDataQueries"] = {{{"Id", "a"}, {"MetricStat", stat}, {"Expression", "1"}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterCombinationException");
  in["MetricDataQueries"] = {{{"Id", "a"}, {"Expression", "b * 2"}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterValueException");
  in["MetricDataQueries"] = {{{"Id", "a"}, {"Expression", "b"}},
                             {{"Id", "b"}, {"Expression", "a"}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterValueException");
  in["MetricDataQueries"] = {{{"Id", "a"}, {"MetricStat", stat}, {"ReturnData", false}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterValueException");
  stat["Stat"] = "TM(10%:90%)";
  in["MetricDataQueries"] = {{{"Id", "a"}, {"MetricStat", stat}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterValueException");
  json many = json::array();
  for (int i = 0; i < 501; ++i)
    many.push_back({{"Id", "q" + std::to_string(i)}, {"Expression", "1"}});
  in["MetricDataQueries"] = many;
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterValueException");
  stat["Stat"] = "Average";
  stat["Period"] = 1;
  in = base;
  in["StartTime"] = kNow - 14 * 86400;
  in["MetricDataQueries"] = {{{"Id", "a"}, {"MetricStat", stat}}};
  EXPECT_EQ(Err("GetMetricData", in), "InvalidParameterCombinationException");  // > 1M periods
}

TEST_F(MonitoringServiceTest, ListMetricsFiltersPagesAndKeepsAccountsApart) {
  json data = json::array();
  for (int i = 0; i < 600; ++i) {
    data.push_back({{"MetricName", "m" + std::to_string(i)},
                    {"Dimensions", {{{"Name", "Host"}, {"Value", i % 2 ? "odd" : "even"}}}},
                    {"Value", 1}});
    if (data.size() == 300) {
      Ok("PutMetricData", {{"Namespace", "App"}, {"MetricData", data}});
      data = json::array();
    }
  }
  Ok("PutMetricData",
     {{"Namespace", "Other"}, {"MetricData", {{{"MetricName", "z"}, {"Value", 1}}}}});
  json page = Ok("ListMetrics", {{"Namespace", "App"}});
  EXPECT_EQ(page["Metrics"].size(), 500u);
  ASSERT_TRUE(page.contains("NextToken"));
  json rest = Ok("ListMetrics", {{"Namespace", "App"}, {"NextToken", page["NextToken"]}});
  EXPECT_EQ(rest["Metrics"].size(), 100u);
  EXPECT_FALSE(rest.contains("NextToken"));
  EXPECT_EQ(Err("ListMetrics", {{"Namespace", "Other"}, {"NextToken", page["NextToken"]}}),
            "InvalidNextToken");
  json odd = Ok("ListMetrics", {{"Dimensions", {{{"Name", "Host"}, {"Value", "odd"}}}}});
  EXPECT_EQ(odd["Metrics"].size(), 300u);
  json named = Ok("ListMetrics", {{"MetricName", "m7"}});
  ASSERT_EQ(named["Metrics"].size(), 1u);
  EXPECT_EQ(named["Metrics"][0]["Dimensions"][0]["Value"], "odd");
  EXPECT_EQ(Ok("ListMetrics", json::object(), "222222222222")["Metrics"].size(), 0u);
  json in = Metric();
  in["Namespace"] = "Other";
  in["MetricName"] = "z";
  in.erase("Dimensions");
  in["StartTime"] = kNow - 60;
  in["EndTime"] = kNow + 1;
  in["Period"] = 60;
  in["Statistics"] = {"Sum"};
  EXPECT_EQ(Ok("GetMetricStatistics", in)["Datapoints"].size(), 1u);
  EXPECT_EQ(Ok("GetMetricStatistics", in, "222222222222")["Datapoints"].size(), 0u);
}

TEST(MetricMathTest, ArithmeticFunctionsAndErrors) {
  std::map<std::string, TimeSeries> s = {{"a", {{1, 2}, {2, 4}}}, {"b", {{2, 1}, {3, 9}}}};
  auto v = EvaluateExpression("a * 10 + -b / 2", s);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::get<TimeSeries>(*v), (TimeSeries{{2, 39.5}}));  // only where both have a point
  v = EvaluateExpression("MAX([a, b])", s);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::get<TimeSeries>(*v), (TimeSeries{{1, 2}, {2, 4}, {3, 9}}));
  v = EvaluateExpression("AVG(a)", s);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::get<double>(*v), 3);
  v = EvaluateExpression("a / 0", s);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(std::get<TimeSeries>(*v).empty());
  EXPECT_FALSE(EvaluateExpression("a +", s).ok());
  EXPECT_FALSE(EvaluateExpression("c", s).ok());
  EXPECT_FALSE(EvaluateExpression("FILL(a, 0)", s).ok());
  EXPECT_FALSE(EvaluateExpression(std::string(40, '(') + "1" + std::string(40, ')'), s).ok());
  EXPECT_FALSE(EvaluateExpression(std::string(3000, '1'), s).ok());
  auto ids = ExpressionIds("SUM([x, y]) + z * 2");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<std::string>{"x", "y", "z"}));
}

}  // namespace
}  // namespace ty::services
