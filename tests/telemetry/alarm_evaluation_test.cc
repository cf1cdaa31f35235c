#include "telemetry/alarm_evaluation.h"

#include <gtest/gtest.h>

#include "telemetry/alarm_manager.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::telemetry {
namespace {

constexpr int64_t kPeriodMs = 60000;
constexpr int64_t kT0 = 1'700'000'000'000 / kPeriodMs * kPeriodMs;

// "0 - X - X", oldest first: 0 = not breaching (value 0), X = breaching (value 10),
// - = missing; threshold 5, GreaterThanThreshold.
std::vector<RangePoint> Range(const std::string& pattern) {
  std::vector<RangePoint> out;
  for (char c : pattern) {
    if (c == ' ') continue;
    RangePoint p;
    p.start_ms = kT0 + static_cast<int64_t>(out.size()) * kPeriodMs;
    if (c == '0') p.value = 0.0;
    if (c == 'X') p.value = 10.0;
    out.push_back(p);
  }
  return out;
}

struct Case {
  int m, n;
  const char* points;
  // Expected per TreatMissingData: missing, ignore, breaching, notBreaching. "retain" keeps
  // the current state (tests run from OK and from ALARM to see it).
  const char* missing;
  const char* ignore;
  const char* breaching;
  const char* not_breaching;
};

// M = N = 3: the table of AWS's alarm-evaluation documentation, verbatim
// (aws-services.md §4.2). M = 2, N = 3: the same rows under these semantics (the "premature
// alarm" rule applies for missing only, as the M = N = 3 table shows for ignore).
const Case kCases[] = {
    {3, 3, "0 - X - X", "OK", "OK", "OK", "OK"},
    {3, 3, "0 - - - -", "OK", "OK", "OK", "OK"},
    {3, 3, "- - - - -", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {3, 3, "0 X X - X", "ALARM", "ALARM", "ALARM", "ALARM"},
    {3, 3, "- - - - X", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {3, 3, "X - - - -", "ALARM", "retain", "ALARM", "OK"},
    {2, 3, "0 - X - X", "ALARM", "ALARM", "ALARM", "ALARM"},
    {2, 3, "0 0 X 0 X", "ALARM", "ALARM", "ALARM", "ALARM"},
    {2, 3, "0 - X 0 0", "OK", "OK", "OK", "OK"},
    {2, 3, "0 - - - -", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {2, 3, "- - - - -", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {2, 3, "- - X - -", "ALARM", "retain", "ALARM", "OK"},
    {2, 3, "- - - - X", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {2, 3, "X X - - -", "ALARM", "ALARM", "ALARM", "ALARM"},
    {1, 1, "- - -", "INSUFFICIENT_DATA", "retain", "ALARM", "OK"},
    {1, 1, "- - X", "ALARM", "ALARM", "ALARM", "ALARM"},
    {1, 1, "X X 0", "OK", "OK", "OK", "OK"},
};

TEST(AlarmEvaluationTest, EveryTreatMissingDataAndWindowOfTheSpec) {
  for (const Case& c : kCases) {
    const char* expected[] = {c.missing, c.ignore, c.breaching, c.not_breaching};
    const MissingData modes[] = {MissingData::kMissing, MissingData::kIgnore,
                                 MissingData::kBreaching, MissingData::kNotBreaching};
    for (int i = 0; i < 4; ++i) {
      AlarmRule rule;
      rule.comparison = Comparison::kGreater;
      rule.threshold = 5;
      rule.evaluation_periods = c.n;
      rule.datapoints_to_alarm = c.m;
      rule.missing = modes[i];
      for (AlarmState current : {AlarmState::kOk, AlarmState::kAlarm}) {
        AlarmVerdict v = EvaluateAlarm(rule, Range(c.points), current);
        std::string want = expected[i];
        if (want == "retain") want = AlarmStateName(current);
        EXPECT_EQ(AlarmStateName(v.state), want)
            << c.m << " of " << c.n << " [" << c.points << "] " << MissingDataName(modes[i])
            << " from " << AlarmStateName(current) << ": " << v.reason;
      }
    }
  }
}

TEST(AlarmEvaluationTest, ComparisonsAtTheThreshold) {
  const struct {
    Comparison op;
    double value;
    bool breaches;
  } kRows[] = {
      {Comparison::kGreaterOrEqual, 5, true}, {Comparison::kGreaterOrEqual, 4.9, false},
      {Comparison::kGreater, 5, false},       {Comparison::kGreater, 5.1, true},
      {Comparison::kLess, 5, false},          {Comparison::kLess, 4.9, true},
      {Comparison::kLessOrEqual, 5, true},    {Comparison::kLessOrEqual, 5.1, false},
  };
  for (const auto& r : kRows) {
    AlarmRule rule;
    rule.comparison = r.op;
    rule.threshold = 5;
    EXPECT_EQ(Breaches(rule, r.value), r.breaches) << ComparisonName(r.op) << " " << r.value;
  }
}

TEST(AlarmEvaluationTest, ReasonsAreWordedAsCloudWatchWordsThem) {
  AlarmRule rule;
  rule.comparison = Comparison::kGreater;
  rule.threshold = 80;
  std::vector<RangePoint> range = {{1657333920000, std::nullopt},
                                   {1657333980000, std::nullopt},
                                   {1657334040000, 99.83274983791787}};
  AlarmVerdict v = EvaluateAlarm(rule, range, AlarmState::kInsufficientData);
  EXPECT_EQ(v.state, AlarmState::kAlarm);
  EXPECT_EQ(v.reason,
            "Threshold Crossed: 1 out of the last 1 datapoints [99.83274983791787 (09/07/22 "
            "02:34:00)] was greater than the threshold (80.0) (minimum 1 datapoint for OK -> "
            "ALARM transition).");
  range.back().value = 0.05;
  v = EvaluateAlarm(rule, range, AlarmState::kAlarm);
  EXPECT_EQ(v.state, AlarmState::kOk);
  EXPECT_NE(v.reason.find("was not greater than the threshold (80.0) (minimum 1 datapoint for "
                          "ALARM -> OK transition)."),
            std::string::npos)
      << v.reason;
  rule.missing = MissingData::kBreaching;
  v = EvaluateAlarm(rule, {{0, std::nullopt}, {60000, std::nullopt}, {120000, std::nullopt}},
                    AlarmState::kOk);
  EXPECT_EQ(v.reason,
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint "
            "was treated as [Breaching].");
}

TEST(AlarmEvaluationTest, FoldsSubPeriodsIntoTheStatistic) {
  // Six 10-second buckets folded into two 30-second periods ending at 60 s.
  std::vector<Bucket> sub;
  for (int i = 0; i < 6; ++i) {
    Bucket b;
    b.start_ms = i * 10000;
    b.count = 1;
    b.sum = b.min = b.max = i;
    b.values = {{static_cast<double>(i), 1}};
    b.values_complete = true;
    if (i != 4) sub.push_back(b);
  }
  auto avg = FoldRange(sub, 60000, 30, 2, *ParseAlarmStatistic("Average"));
  ASSERT_EQ(avg.size(), 2u);
  EXPECT_EQ(avg[0].start_ms, 0);
  EXPECT_DOUBLE_EQ(*avg[0].value, 1.0);
  EXPECT_DOUBLE_EQ(*avg[1].value, 4.0);  // (3 + 5) / 2
  EXPECT_DOUBLE_EQ(*FoldRange(sub, 60000, 30, 2, *ParseAlarmStatistic("Maximum"))[1].value, 5);
  EXPECT_DOUBLE_EQ(*FoldRange(sub, 60000, 30, 2, *ParseAlarmStatistic("SampleCount"))[1].value, 2);
  EXPECT_DOUBLE_EQ(*FoldRange(sub, 60000, 30, 2, *ParseAlarmStatistic("p50"))[0].value, 1);
  auto three = FoldRange(sub, 90000, 30, 3, *ParseAlarmStatistic("Sum"));
  EXPECT_FALSE(three[2].value.has_value());  // nothing in [60 s, 90 s)
  EXPECT_EQ(JavaDouble(1.0), "1.0");
  EXPECT_EQ(JavaDouble(0.059), "0.059");
}

}  // namespace
}  // namespace ty::telemetry
