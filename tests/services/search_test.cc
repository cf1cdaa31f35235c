#include "services/sagemaker/search.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace ty::services {
namespace {

using nlohmann::json;

// Records shaped like SearchRecordJson output (timestamps as epoch seconds).
std::vector<json> Records() {
  json alpha = {{"TrainingJobName", "alpha-job"},
                {"TrainingJobStatus", "Completed"},
                {"CreationTime", 1704067200},  // 2024-01-01T00:00:00Z
                {"ResourceConfig", {{"InstanceType", "ml.m5.large"}, {"InstanceCount", 1}}},
                {"HyperParameters", {{"epochs", "10"}, {"lr.max", "0.1"}}},
                {"Tags", {{{"Key", "team"}, {"Value", "vision"}}}},
                {"FinalMetricDataList", {{{"MetricName", "val:acc"}, {"Value", 0.9}}}},
                {"InputDataConfig",
                 {{{"ChannelName", "train"},
                   {"DataSource", {{"S3DataSource", {{"S3Uri", "file:///data/a/train"}}}}}},
                  {{"ChannelName", "test"},
                   {"DataSource", {{"S3DataSource", {{"S3Uri", "file:///data/a/test"}}}}}}}}};
  json beta = {{"TrainingJobName", "beta-job"},
               {"TrainingJobStatus", "InProgress"},
               {"CreationTime", 1706745600.5},  // 2024-02-01T00:00:00.5Z
               {"ResourceConfig", {{"InstanceType", "ml.p3.2xlarge"}, {"InstanceCount", 2}}},
               {"HyperParameters", {{"epochs", "5"}}},
               {"Tags", {{{"Key", "team"}, {"Value", "nlp"}}, {{"Key", "env"}, {"Value", "dev"}}}},
               {"FinalMetricDataList", {{{"MetricName", "val:acc"}, {"Value", 0.7}}}},
               {"InputDataConfig",
                {{{"ChannelName", "train"},
                  {"DataSource", {{"S3DataSource", {{"S3Uri", "file:///data/b/train"}}}}}}}}};
  json gamma = {{"TrainingJobName", "gamma"},
                {"TrainingJobStatus", "Failed"},
                {"CreationTime", 1709251200},  // 2024-03-01T00:00:00Z
                {"ResourceConfig", {{"InstanceType", "ml.m5.large"}, {"InstanceCount", 1}}},
                {"Tags", json::array()},
                {"InputDataConfig",
                 {{{"ChannelName", "train"},
                   {"DataSource", {{"S3DataSource", {{"S3Uri", "file:///data/c/train"}}}}}}}}};
  return {alpha, beta, gamma};
}

std::set<std::string> Matching(const json& expression) {
  std::set<std::string> names;
  for (const auto& r : Records()) {
    if (MatchesSearchExpression(r, expression)) names.insert(r["TrainingJobName"]);
  }
  return names;
}

json Filter(const std::string& name, const std::string& op, const std::string& value) {
  return {{"Name", name}, {"Operator", op}, {"Value", value}};
}

struct FilterCase {
  std::string label;
  json filter;
  std::set<std::string> expected;
};

class SearchFilterTest : public ::testing::TestWithParam<FilterCase> {};

TEST_P(SearchFilterTest, MatchesExpectedRecords) {
  const FilterCase& c = GetParam();
  json expression = {{"Filters", json::array({c.filter})}};
  EXPECT_EQ(Matching(expression), c.expected) << c.filter.dump();
}

const char kUri[] = "InputDataConfig.DataSource.S3DataSource.S3Uri";

INSTANTIATE_TEST_SUITE_P(
    Operators, SearchFilterTest,
    ::testing::Values(
        FilterCase{"Equals", Filter("TrainingJobName", "Equals", "alpha-job"), {"alpha-job"}},
        FilterCase{"DefaultOperatorIsEquals",
                   json{{"Name", "TrainingJobName"}, {"Value", "gamma"}},
                   {"gamma"}},
        FilterCase{"NotEquals",
                   Filter("TrainingJobName", "NotEquals", "alpha-job"),
                   {"beta-job", "gamma"}},
        FilterCase{
            "Contains", Filter("TrainingJobName", "Contains", "-job"), {"alpha-job", "beta-job"}},
        FilterCase{
            "In", Filter("TrainingJobStatus", "In", "Completed,Failed"), {"alpha-job", "gamma"}},
        FilterCase{"InNoMatch", Filter("TrainingJobStatus", "In", "Stopped"), {}},
        FilterCase{"GreaterThan",
                   Filter("ResourceConfig.InstanceCount", "GreaterThan", "1"),
                   {"beta-job"}},
        FilterCase{"GreaterThanOrEqualTo",
                   Filter("ResourceConfig.InstanceCount", "GreaterThanOrEqualTo", "1"),
                   {"alpha-job", "beta-job", "gamma"}},
        FilterCase{"LessThan",
                   Filter("ResourceConfig.InstanceCount", "LessThan", "2"),
                   {"alpha-job", "gamma"}},
        FilterCase{"LessThanOrEqualTo",
                   Filter("ResourceConfig.InstanceCount", "LessThanOrEqualTo", "2"),
                   {"alpha-job", "beta-job", "gamma"}},
        FilterCase{"NumericEqualsComparesNumbers",
                   Filter("ResourceConfig.InstanceCount", "Equals", "2.0"),
                   {"beta-job"}},
        FilterCase{"TextEqualsComparesText",
                   Filter("HyperParameters.epochs", "Equals", "10"),
                   {"alpha-job"}},
        FilterCase{
            "TextEqualsIsNotNumeric", Filter("HyperParameters.epochs", "Equals", "10.0"), {}},
        FilterCase{"NumericOperatorOnTextPropertyNeverMatches",
                   Filter("HyperParameters.epochs", "GreaterThan", "1"),
                   {}},
        FilterCase{"ContainsOnNumberNeverMatches",
                   Filter("ResourceConfig.InstanceCount", "Contains", "1"),
                   {}},
        FilterCase{"TimestampGreaterThan",
                   Filter("CreationTime", "GreaterThan", "2024-01-15T00:00:00"),
                   {"beta-job", "gamma"}},
        FilterCase{"TimestampLessThanOrEqualTo",
                   Filter("CreationTime", "LessThanOrEqualTo", "2024-01-01T00:00:00"),
                   {"alpha-job"}},
        FilterCase{"TimestampEqualsWithMillis",
                   Filter("CreationTime", "Equals", "2024-02-01T00:00:00.500Z"),
                   {"beta-job"}},
        FilterCase{"TimestampEqualsWholeSecond",
                   Filter("CreationTime", "Equals", "2024-03-01T00:00:00"),
                   {"gamma"}},
        FilterCase{"TagEquals", Filter("Tags.team", "Equals", "vision"), {"alpha-job"}},
        FilterCase{"TagOfSecondEntry", Filter("Tags.env", "Equals", "dev"), {"beta-job"}},
        FilterCase{"TagExists",
                   json{{"Name", "Tags.team"}, {"Operator", "Exists"}},
                   {"alpha-job", "beta-job"}},
        FilterCase{
            "TagNotExists", json{{"Name", "Tags.team"}, {"Operator", "NotExists"}}, {"gamma"}},
        FilterCase{
            "MetricGreaterThan", Filter("Metrics.val:acc", "GreaterThan", "0.8"), {"alpha-job"}},
        FilterCase{"MetricLessThan", Filter("Metrics.val:acc", "LessThan", "0.8"), {"beta-job"}},
        FilterCase{"HyperParameterKeyWithDot",
                   Filter("HyperParameters.lr.max", "Equals", "0.1"),
                   {"alpha-job"}},
        FilterCase{"HyperParameterExists",
                   json{{"Name", "HyperParameters.epochs"}, {"Operator", "Exists"}},
                   {"alpha-job", "beta-job"}},
        FilterCase{"ListFanOutEqualsAnyElement",
                   Filter(kUri, "Equals", "file:///data/a/test"),
                   {"alpha-job"}},
        FilterCase{"ListFanOutContains",
                   Filter(kUri, "Contains", "/train"),
                   {"alpha-job", "beta-job", "gamma"}},
        FilterCase{"ListNotEqualsNeedsEveryElementDifferent",
                   Filter("InputDataConfig.ChannelName", "NotEquals", "test"),
                   {"beta-job", "gamma"}},
        FilterCase{"UnknownPath", Filter("NoSuch.Path", "Equals", "x"), {}}),
    [](const ::testing::TestParamInfo<FilterCase>& p) { return p.param.label; });

TEST(SearchExpressionTest, EmptyAndNullMatchEverything) {
  std::set<std::string> all = {"alpha-job", "beta-job", "gamma"};
  EXPECT_EQ(Matching(json()), all);
  EXPECT_EQ(Matching(json::object()), all);
}

TEST(SearchExpressionTest, FiltersAreAndedByDefault) {
  json e = {{"Filters",
             {Filter("ResourceConfig.InstanceType", "Equals", "ml.m5.large"),
              Filter("TrainingJobStatus", "Equals", "Failed")}}};
  EXPECT_EQ(Matching(e), (std::set<std::string>{"gamma"}));
}

TEST(SearchExpressionTest, OrOperatorOnFilters) {
  json e = {{"Operator", "Or"},
            {"Filters",
             {Filter("TrainingJobStatus", "Equals", "Completed"),
              Filter("TrainingJobStatus", "Equals", "Failed")}}};
  EXPECT_EQ(Matching(e), (std::set<std::string>{"alpha-job", "gamma"}));
}

TEST(SearchExpressionTest, SubExpressionsCombine) {
  // InstanceCount == 1 AND (team == vision OR status == Failed)
  json e = {{"Filters", {Filter("ResourceConfig.InstanceCount", "Equals", "1")}},
            {"SubExpressions",
             {{{"Operator", "Or"},
               {"Filters",
                {Filter("Tags.team", "Equals", "vision"),
                 Filter("TrainingJobStatus", "Equals", "Failed")}}}}}};
  EXPECT_EQ(Matching(e), (std::set<std::string>{"alpha-job", "gamma"}));

  // Or of two And sub-expressions.
  json o = {
      {"Operator", "Or"},
      {"SubExpressions",
       {{{"Filters", {Filter("Tags.team", "Equals", "nlp"), Filter("Tags.env", "Equals", "dev")}}},
        {{"Filters",
          {Filter("TrainingJobName", "Equals", "gamma"),
           Filter("TrainingJobStatus", "Equals", "Completed")}}}}}};
  EXPECT_EQ(Matching(o), (std::set<std::string>{"beta-job"}));
}

TEST(SearchExpressionTest, NestedFiltersHoldOnOneElement) {
  json same_element = {{"NestedFilters",
                        {{{"NestedPropertyName", "InputDataConfig"},
                          {"Filters",
                           {Filter("InputDataConfig.ChannelName", "Equals", "test"),
                            Filter(kUri, "Contains", "/data/a/")}}}}}};
  EXPECT_EQ(Matching(same_element), (std::set<std::string>{"alpha-job"}));

  // alpha has a "train" channel and an ".../a/test" URI, but on different elements.
  json across = {{"NestedFilters",
                  {{{"NestedPropertyName", "InputDataConfig"},
                    {"Filters",
                     {Filter("InputDataConfig.ChannelName", "Equals", "train"),
                      Filter(kUri, "Equals", "file:///data/a/test")}}}}}};
  EXPECT_TRUE(Matching(across).empty());
  // The same two conditions as flat filters fan out independently and match.
  json flat = {{"Filters",
                {Filter("InputDataConfig.ChannelName", "Equals", "train"),
                 Filter(kUri, "Equals", "file:///data/a/test")}}};
  EXPECT_EQ(Matching(flat), (std::set<std::string>{"alpha-job"}));

  json missing = {{"NestedFilters",
                   {{{"NestedPropertyName", "NoSuchList"},
                     {"Filters", {Filter("NoSuchList.X", "Equals", "y")}}}}}};
  EXPECT_TRUE(Matching(missing).empty());
}

TEST(ResolvePropertyTest, PathsAndFanOut) {
  json alpha = Records()[0];
  auto uris = ResolveProperty(alpha, kUri);
  ASSERT_EQ(uris.size(), 2u);
  EXPECT_EQ(*uris[0], "file:///data/a/train");
  EXPECT_EQ(*uris[1], "file:///data/a/test");
  auto tag = ResolveProperty(alpha, "Tags.team");
  ASSERT_EQ(tag.size(), 1u);
  EXPECT_EQ(*tag[0], "vision");
  auto metric = ResolveProperty(alpha, "Metrics.val:acc");
  ASSERT_EQ(metric.size(), 1u);
  EXPECT_DOUBLE_EQ(metric[0]->get<double>(), 0.9);
  auto hp = ResolveProperty(alpha, "HyperParameters.lr.max");
  ASSERT_EQ(hp.size(), 1u);
  EXPECT_EQ(*hp[0], "0.1");
  EXPECT_TRUE(ResolveProperty(alpha, "Metrics.nope").empty());
  EXPECT_TRUE(ResolveProperty(alpha, "ResourceConfig.Missing").empty());
  EXPECT_EQ(ResolveProperty(alpha, "ResourceConfig.InstanceCount").size(), 1u);
}

struct CheckCase {
  std::string label;
  json expression;
  std::string error;  // empty: accepted; else a substring of the message
};

class CheckSearchExpressionTest : public ::testing::TestWithParam<CheckCase> {};

TEST_P(CheckSearchExpressionTest, Checks) {
  const CheckCase& c = GetParam();
  Status s = CheckSearchExpression(c.expression);
  if (c.error.empty()) {
    EXPECT_TRUE(s.ok()) << s.ToString();
  } else {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.error), std::string::npos) << s.message();
  }
}

json ManyFilters(int n) {
  json filters = json::array();
  for (int i = 0; i < n; ++i) filters.push_back(Filter("TrainingJobName", "Equals", "x"));
  return {{"Filters", filters}};
}

INSTANTIATE_TEST_SUITE_P(
    Rules, CheckSearchExpressionTest,
    ::testing::Values(
        CheckCase{"Null", json(), ""},
        CheckCase{"OneContains", {{"Filters", {Filter("TrainingJobName", "Contains", "a")}}}, ""},
        CheckCase{"TwoContains",
                  {{"Filters",
                    {Filter("TrainingJobName", "Contains", "a"),
                     Filter("TrainingJobStatus", "Contains", "b")}}},
                  "'CONTAINS' operator usage limit of 1 exceeded."},
        CheckCase{
            "ContainsInSubExpressionCounts",
            {{"Filters", {Filter("TrainingJobName", "Contains", "a")}},
             {"SubExpressions", {{{"Filters", {Filter("TrainingJobStatus", "Contains", "b")}}}}}},
            "'CONTAINS' operator usage limit of 1 exceeded."},
        CheckCase{"ContainsInNestedFilterCounts",
                  {{"Filters", {Filter("TrainingJobName", "Contains", "a")}},
                   {"NestedFilters",
                    {{{"NestedPropertyName", "InputDataConfig"},
                      {"Filters", {Filter("InputDataConfig.ChannelName", "Contains", "t")}}}}}},
                  "'CONTAINS' operator usage limit of 1 exceeded."},
        CheckCase{"GreaterThanOnText",
                  {{"Filters", {Filter("TrainingJobName", "GreaterThan", "abc")}}},
                  "only supported for numeric and timestamp values"},
        CheckCase{
            "LessThanInSubExpressionOnText",
            {{"SubExpressions", {{{"Filters", {Filter("TrainingJobName", "LessThan", "abc")}}}}}},
            "LessThan"},
        CheckCase{
            "GreaterThanOnTextInNestedFilter",
            {{"NestedFilters",
              {{{"NestedPropertyName", "InputDataConfig"},
                {"Filters", {Filter("InputDataConfig.ChannelName", "GreaterThan", "train")}}}}}},
            "only supported for numeric and timestamp values"},
        CheckCase{"GreaterThanNumber",
                  {{"Filters", {Filter("ResourceConfig.InstanceCount", "GreaterThan", "1")}}},
                  ""},
        CheckCase{"GreaterThanTimestamp",
                  {{"Filters", {Filter("CreationTime", "GreaterThan", "2024-01-01T00:00:00")}}},
                  ""},
        CheckCase{"EqualsWithoutValue",
                  {{"Filters", {{{"Name", "TrainingJobName"}, {"Operator", "Equals"}}}}},
                  "requires a Value"},
        CheckCase{"ExistsWithoutValue",
                  {{"Filters", {{{"Name", "Tags.team"}, {"Operator", "Exists"}}}}},
                  ""},
        CheckCase{"FiftyNodes", ManyFilters(50), ""},
        CheckCase{"FiftyOneNodes", ManyFilters(51), "at most 50 nodes"}),
    [](const ::testing::TestParamInfo<CheckCase>& p) { return p.param.label; });

std::vector<std::string> Names(const std::vector<json>& records) {
  std::vector<std::string> names;
  for (const auto& r : records) names.push_back(r["TrainingJobName"]);
  return names;
}

TEST(SortSearchRecordsTest, ByTimestamp) {
  auto records = Records();
  std::swap(records[0], records[2]);
  SortSearchRecords(&records, "CreationTime", true);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"alpha-job", "beta-job", "gamma"}));
  SortSearchRecords(&records, "CreationTime", false);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"gamma", "beta-job", "alpha-job"}));
}

TEST(SortSearchRecordsTest, ByText) {
  auto records = Records();
  SortSearchRecords(&records, "TrainingJobStatus", true);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"alpha-job", "gamma", "beta-job"}));
}

TEST(SortSearchRecordsTest, MissingValuesGoLastInBothDirections) {
  auto records = Records();
  std::swap(records[0], records[2]);  // gamma (no metrics) first
  SortSearchRecords(&records, "Metrics.val:acc", true);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"beta-job", "alpha-job", "gamma"}));
  SortSearchRecords(&records, "Metrics.val:acc", false);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"alpha-job", "beta-job", "gamma"}));
  SortSearchRecords(&records, "Tags.team", false);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"alpha-job", "beta-job", "gamma"}));
  SortSearchRecords(&records, "Tags.team", true);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"beta-job", "alpha-job", "gamma"}));
}

TEST(SortSearchRecordsTest, EqualKeysKeepOrder) {
  auto records = Records();
  SortSearchRecords(&records, "ResourceConfig.InstanceType", true);
  EXPECT_EQ(Names(records), (std::vector<std::string>{"alpha-job", "gamma", "beta-job"}));
}

}  // namespace
}  // namespace ty::services
