#include "debugger/profiler_report.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <string>

#include "common/fs.h"
#include "debugger/profiler_rules.h"
#include "debugger/profiler_test_util.h"
#include "storage/file_object_store.h"
#include "storage/uri.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

TEST(ProfilerReportOutputUri, SitsUnderTheJobsRuleOutput) {
  EXPECT_EQ(ProfilerReportOutputUri("s3://b/p/job/profiler-output/", "ProfilerReport-1"),
            "s3://b/p/job/rule-output/ProfilerReport-1/profiler-output/");
  EXPECT_EQ(ProfilerReportOutputUri("file:///d/job/profiler-output", "R"),
            "file:///d/job/rule-output/R/profiler-output/");
  EXPECT_EQ(ProfilerReportOutputUri("s3://b/x/", "R"), "s3://b/x/rule-output/R/profiler-output/");
}

// No src= or href= that leaves the page, no script element, no @import or url(http...).
void ExpectSelfContained(const std::string& html) {
  EXPECT_FALSE(std::regex_search(
      html, std::regex(R"((src|href)\s*=\s*["']?\s*(https?:)?//)", std::regex::icase)));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
}

TEST(ProfilerReportHtml, EscapesEverythingItQuotes) {
  ProfilerReportData d;
  d.job_name = "<script src=\"https://evil.example/x.js\"></script>";
  ProfilerRuleSummary s;
  s.rule = "CPUBottleneck";
  s.status = "IssuesFound";
  s.details = "<img src=http://x/>";
  s.findings = {{"node", "<b>"}};
  d.rules.push_back(s);
  const std::string html = RenderProfilerReportHtml(d);
  ExpectSelfContained(html);
  EXPECT_NE(html.find("&lt;script src&#61;&quot;https://evil.example/x.js&quot;&gt;"),
            std::string::npos);
}

class ProfilerReportRun : public ::testing::Test {
 protected:
  ProfilerReportRun() : store_({dir_.path()}) {
    spec_.name = "job";
    ctx_.trial_uri = storage::FileUriFromPath(dir_.Sub("out/job/profiler-output")) + "/";
    ctx_.open_store = [this](const std::string&) -> Result<storage::ObjectStore*> {
      return static_cast<storage::ObjectStore*>(&store_);
    };
    ctx_.spec = &spec_;
  }
  ty::testing::TempDir dir_;
  storage::FileObjectStore store_;
  ty::testing::FakeClock clock_;
  model::JobSpec spec_;
  EvaluationContext ctx_;
};

TEST_F(ProfilerReportRun, RunsEveryRuleAndWritesASelfContainedReport) {
  std::vector<testing::Round> rounds;
  for (int i = 0; i < 120; ++i) {
    rounds.push_back(testing::Round{1765134000.0 + i, {95, 95}, {1, 1}, {3}, {20 + i * 0.6}});
  }
  testing::WriteRounds(dir_.Sub("out/job/profiler-output"), "algo-1", rounds);
  model::RuleSpec rule;
  rule.configuration_name = "ProfilerReport-1765134000";
  rule.rule = "ProfilerReport";
  rule.parameters = {
      {"rule_to_invoke", "ProfilerReport"},
      {"opt_out_telemetry", "False"},
      {"custom_rule_parameters",
       "{'CPUBottleneck_patience': 5, 'CPUBottleneck_scan_interval_us': 10000000, "
       "'IOBottleneck_patience': 5, 'LowGPUUtilization_patience': 5, "
       "'lowgpuutilization_window': 10, 'GPUMemoryIncrease_patience': 5, "
       "'GPUMemoryIncrease_window': 5, 'GPUMemoryIncrease_scan_interval_us': 10000000}"}};
  auto eval = MakeProfilerRuleEvaluation(rule, ctx_, clock_);
  ASSERT_TRUE(eval.ok()) << eval.status().message();

  AdvanceLimits running;
  EvaluationResult r = (*eval)->Advance(running);
  // The report keeps running (and has written a partial report) although rules fired.
  EXPECT_EQ(r.status, RuleStatus::kInProgress);
  const std::string out = dir_.Sub("out/job/rule-output/ProfilerReport-1765134000/profiler-output");
  EXPECT_TRUE(PathExists(out + "/profiler-report.html"));

  AdvanceLimits ended;
  ended.training_ended = true;
  r = (*eval)->Advance(ended);
  ASSERT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
  EXPECT_NE(r.details.find("CPUBottleneck"), std::string::npos) << r.details;
  EXPECT_NE(r.details.find("LowGPUUtilization"), std::string::npos) << r.details;
  EXPECT_NE(r.details.find("GPUMemoryIncrease"), std::string::npos) << r.details;
  EXPECT_EQ(r.details.find("IOBottleneck"), std::string::npos) << r.details;
  EXPECT_EQ(r.findings["rules"]["IOBottleneck"], "NoIssuesFound");
  EXPECT_EQ(r.findings["rules"]["CPUBottleneck"], "IssuesFound");

  auto html = ReadFile(out + "/profiler-report.html");
  ASSERT_TRUE(html.ok());
  ExpectSelfContained(*html);
  for (const char* name : {"LowGPUUtilization", "CPUBottleneck", "IOBottleneck",
                           "GPUMemoryIncrease", "OverallSystemUsage", "MaxInitializationTime"}) {
    SCOPED_TRACE(name);
    std::smatch m;
    const std::regex row(std::string("<tr id=\"rule-") + name +
                         "\"><td>[^<]*</td><td class=\"[a-z]+\">([A-Za-z]+)</td>");
    ASSERT_TRUE(std::regex_search(*html, m, row));
    EXPECT_EQ(m[1].str(), r.findings["rules"][name].get<std::string>());
    EXPECT_TRUE(PathExists(out + "/profiler-reports/" + name + ".json"));
  }
  EXPECT_NE(html->find("Not evaluated"), std::string::npos);
  EXPECT_NE(html->find("CPUUtilization"), std::string::npos);  // the usage table
  EXPECT_NE(html->find("<polyline"), std::string::npos);       // the inline chart
  EXPECT_EQ(html->find("http://"), std::string::npos);
  EXPECT_EQ(html->find("https://"), std::string::npos);

  auto text = ReadFile(out + "/profiler-report.json");
  ASSERT_TRUE(text.ok());
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["TrainingJobName"], "job");
  EXPECT_EQ(j["Final"], true);
  EXPECT_EQ(j["Rules"].size(), 6u);
  EXPECT_EQ(j["Samples"], 120 * 6);
  EXPECT_EQ(j["SystemUsage"]["algo-1"]["CPUUtilization"]["p50"], 95.0);
  // 120 s from 19:00:00: two per-minute points, CPU at 95.
  EXPECT_EQ(j["Timeline"]["algo-1"]["CPUUtilization"],
            nlohmann::json::parse("[[1765134000, 95.0], [1765134060, 95.0]]"));
  for (const auto& rr : j["Rules"]) {
    if (rr["RuleName"] == "CPUBottleneck") {
      EXPECT_EQ(rr["Parameters"]["patience"], 5);
      EXPECT_EQ(rr["Parameters"]["threshold"], 50);
    }
  }
}

TEST_F(ProfilerReportRun, NoGpuMachineGetsNoIssuesAndSaysWhy) {
  std::vector<testing::Round> rounds;
  for (int i = 0; i < 60; ++i)
    rounds.push_back(testing::Round{1765134000.0 + i, {99}, {50}, {}, {}});
  testing::WriteRounds(dir_.Sub("out/job/profiler-output"), "algo-1", rounds);
  model::RuleSpec rule;
  rule.configuration_name = rule.rule = "ProfilerReport";
  auto eval = MakeProfilerRuleEvaluation(rule, ctx_, clock_);
  ASSERT_TRUE(eval.ok());
  AdvanceLimits ended;
  ended.training_ended = true;
  EvaluationResult r = (*eval)->Advance(ended);
  ASSERT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
  auto html =
      ReadFile(dir_.Sub("out/job/rule-output/ProfilerReport/profiler-output/profiler-report.html"));
  ASSERT_TRUE(html.ok());
  EXPECT_NE(html->find("No GPU was present"), std::string::npos);
  ExpectSelfContained(*html);
}

}  // namespace
}  // namespace ty::debugger

namespace ty::debugger {
namespace {

// What the real SDK sends (tests/debugger/data/sdk_profiler_rule_configs.json, checked against
// the SDK by tests/e2e/test_profiler_rules.py) is accepted, and custom parameters take effect.
TEST_F(ProfilerReportRun, AcceptsWhatTheRealSdkSends) {
  auto text =
      ReadFile(std::string(TY_SOURCE_DIR) + "/tests/debugger/data/sdk_profiler_rule_configs.json");
  ASSERT_TRUE(text.ok());
  auto configs = nlohmann::json::parse(*text);
  ASSERT_EQ(configs.size(), 9u);
  std::vector<testing::Round> rounds;
  for (int i = 0; i < 30; ++i) {
    rounds.push_back(testing::Round{1765134000.0 + i, {50}, {1}, {60}, {30}});
  }
  testing::WriteRounds(dir_.Sub("out/job/profiler-output"), "algo-1", rounds);
  for (const auto& c : configs) {
    SCOPED_TRACE(c.dump());
    model::RuleSpec rule;
    rule.configuration_name = c["RuleConfigurationName"];
    rule.rule = c["RuleParameters"]["rule_to_invoke"];
    for (const auto& [k, v] : c["RuleParameters"].items()) rule.parameters[k] = v;
    auto eval = MakeProfilerRuleEvaluation(rule, ctx_, clock_);
    ASSERT_TRUE(eval.ok()) << eval.status().message();
    AdvanceLimits ended;
    ended.training_ended = true;
    EvaluationResult r = (*eval)->Advance(ended);
    EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
  }
  auto report = ReadFile(
      dir_.Sub("out/job/rule-output/ProfilerReportCustom/profiler-output/profiler-report.json"));
  ASSERT_TRUE(report.ok());
  auto j = nlohmann::json::parse(*report);
  std::map<std::string, nlohmann::json> params;
  for (const auto& r : j["Rules"]) params[r["RuleName"]] = r["Parameters"];
  EXPECT_EQ(params["CPUBottleneck"]["threshold"], 20);
  EXPECT_EQ(params["LowGPUUtilization"]["window"], 50);
  EXPECT_EQ(params["IOBottleneck"]["threshold"], 50);
}

}  // namespace
}  // namespace ty::debugger
