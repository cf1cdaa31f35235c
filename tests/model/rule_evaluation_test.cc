// Rule evaluation names and their rendering in DescribeTrainingJob.
#include "model/rule_evaluation.h"

#include <gtest/gtest.h>

#include <regex>

#include "model/describe_json.h"

namespace ty::model {
namespace {

JobRecord Job(const std::string& name) {
  JobRecord j;
  j.account = "111111111111";
  j.arn = TrainingJobArn("us-west-2", j.account, name);
  j.spec.name = name;
  j.creation_time = FromEpochMillis(1700000000000);
  j.last_modified_time = j.creation_time;
  j.request_json = "{}";
  return j;
}

TEST(RuleEvaluationName, IsSageMakersShapeBoundedAndStable) {
  JobRecord j = Job(std::string(63, 'j'));
  std::string name = RuleEvaluationName(j, RuleKind::kDebug, "Vanishing_Gradient.Rule-1");
  EXPECT_LE(name.size(), 63u);
  EXPECT_TRUE(std::regex_match(name, std::regex("j{26}-vanishinggradientrule-1-[0-9a-f]{8}")))
      << name;
  EXPECT_EQ(name, RuleEvaluationName(j, RuleKind::kDebug, "Vanishing_Gradient.Rule-1"));
  EXPECT_NE(name, RuleEvaluationName(j, RuleKind::kProfiler, "Vanishing_Gradient.Rule-1"));
  JobRecord again = j;
  again.creation_time += std::chrono::seconds(1);  // the same name re-created
  EXPECT_NE(name, RuleEvaluationName(again, RuleKind::kDebug, "Vanishing_Gradient.Rule-1"));
  EXPECT_EQ(RuleEvaluationArn(j, "x"), "arn:aws:sagemaker:us-west-2:111111111111:processing-job/x");
}

TEST(RuleEvaluationStatuses, ShowEveryRuleFromCreationThenTheStoredRows) {
  JobRecord j = Job("job");
  j.spec.debug_rules.push_back({.configuration_name = "A"});
  j.spec.debug_rules.push_back({.configuration_name = "B"});
  nlohmann::json d = DescribeTrainingJobJson(j);
  ASSERT_EQ(d["DebugRuleEvaluationStatuses"].size(), 2u);
  EXPECT_EQ(d["DebugRuleEvaluationStatuses"][0]["RuleEvaluationStatus"], "InProgress");
  EXPECT_EQ(d["DebugRuleEvaluationStatuses"][0]["LastModifiedTime"], 1700000000);
  EXPECT_FALSE(d["DebugRuleEvaluationStatuses"][0].contains("StatusDetails"));
  EXPECT_FALSE(d.contains("ProfilerRuleEvaluationStatuses"));
  RuleEvaluation b = InitialRuleEvaluation(j, RuleKind::kDebug, "B");
  b.status = "Error";
  b.details = "bad";
  b.last_modified_time = FromEpochMillis(1700000001500);
  d = DescribeTrainingJobJson(j, TimeFormat::kEpochMillis, {b});
  const auto& s = d["DebugRuleEvaluationStatuses"];
  EXPECT_EQ(s[0]["RuleConfigurationName"], "A");
  EXPECT_EQ(s[1]["RuleEvaluationStatus"], "Error");
  EXPECT_EQ(s[1]["StatusDetails"], "bad");
  EXPECT_EQ(s[1]["LastModifiedTime"], 1700000001500);
  EXPECT_EQ(s[1]["RuleEvaluationJobArn"], b.evaluation_arn);
}

TEST(TruncateStatusDetails, KeepsUtf8Whole) {
  std::string s(1023, 'a');
  s += "\xc3\xa9\xc3\xa9";
  std::string t = TruncateStatusDetails(s);
  EXPECT_EQ(t.size(), 1023u);
  EXPECT_EQ(TruncateStatusDetails("short"), "short");
}

}  // namespace
}  // namespace ty::model
