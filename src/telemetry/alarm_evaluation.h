// Alarm evaluation, pure: CloudWatch's metric-alarm semantics (aws-services.md §4.2) as a
// function of the alarm's rule, the datapoints of its evaluation range and its current state.
// No clock, no store, no threads: the AlarmManager (telemetry/alarm_manager.h) reads the
// metric store on the injected clock and calls these.
//
// Semantics:
//   - the evaluation range is the newest N + 2 periods (N = EvaluationPeriods) of a window
//     sliding with each evaluation; a datapoint is the statistic of one period;
//   - M of N (M = DatapointsToAlarm): with at least N real datapoints in the range, the newest
//     N are evaluated and TreatMissingData does not matter: ≥ M breaching is ALARM, else OK;
//   - with fewer than N, breaching/notBreaching fill the missing ones (as few as needed to
//     make N) and decide as above; missing/ignore decide OK when even all missing ones
//     breaching could not reach M, ALARM for missing when the "premature alarm" rule holds
//     (the oldest breaching datapoint is at least M periods old and every newer one is
//     breaching or missing), and otherwise INSUFFICIENT_DATA (missing) or keep the state
//     (ignore);
//   - with no datapoint at all: missing → INSUFFICIENT_DATA, ignore → keep, breaching →
//     ALARM, notBreaching → OK.
// Reasons are worded as CloudWatch words them (§4.4), e.g. "Threshold Crossed: 1 out of the
// last 1 datapoints [99.8 (09/07/22 02:34:00)] was greater than the threshold (80.0) (minimum
// 1 datapoint for OK -> ALARM transition)."
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "telemetry/metric_store.h"

namespace ty::telemetry {

enum class AlarmState { kOk, kAlarm, kInsufficientData };
enum class MissingData { kMissing, kIgnore, kBreaching, kNotBreaching };
enum class Comparison { kGreaterOrEqual, kGreater, kLess, kLessOrEqual };

// By AWS's names ("OK", "ALARM", "INSUFFICIENT_DATA"; "missing", ...;
// "GreaterThanThreshold", ...). Parse* return nullopt for unknown names.
const char* AlarmStateName(AlarmState s);
std::optional<AlarmState> ParseAlarmState(const std::string& s);
const char* MissingDataName(MissingData m);
std::optional<MissingData> ParseMissingData(const std::string& s);
const char* ComparisonName(Comparison c);
std::optional<Comparison> ParseComparison(const std::string& s);

struct AlarmRule {
  Comparison comparison = Comparison::kGreaterOrEqual;
  double threshold = 0;
  int evaluation_periods = 1;   // N
  int datapoints_to_alarm = 1;  // M, 1..N
  MissingData missing = MissingData::kMissing;
};

// One period of the evaluation range; no value = missing.
struct RangePoint {
  int64_t start_ms = 0;
  std::optional<double> value;
};

struct AlarmVerdict {
  AlarmState state = AlarmState::kInsufficientData;
  std::string reason;
  std::vector<RangePoint> evaluated;  // the real datapoints that decided, newest first
};

// The number of periods an evaluation reads: N + 2.
int EvaluationRange(const AlarmRule& rule);

// `range`: the evaluation range, oldest first (EvaluationRange(rule) entries, fewer only at
// the start of a series' life). `current` is kept by `ignore`.
AlarmVerdict EvaluateAlarm(const AlarmRule& rule, const std::vector<RangePoint>& range,
                           AlarmState current);

bool Breaches(const AlarmRule& rule, double value);

// A statistic as PutMetricAlarm takes it: Statistic (SampleCount, Average, Sum, Minimum,
// Maximum) or ExtendedStatistic pNN(.NN).
struct AlarmStatistic {
  enum class Kind { kAverage, kSum, kMinimum, kMaximum, kSampleCount, kPercentile } kind;
  double percentile = 0;
};
std::optional<AlarmStatistic> ParseAlarmStatistic(const std::string& s);

// Folds sub-period buckets (oldest first, from MetricStore::Aggregate at a granularity that
// divides the period) into the `periods` periods ending at end_ms, oldest first, and computes
// the statistic of each (missing where no sample, or a percentile without raw values).
std::vector<RangePoint> FoldRange(const std::vector<Bucket>& sub, int64_t end_ms, int64_t period_s,
                                  int periods, const AlarmStatistic& stat);

// A double as Java prints it (CloudWatch's reasons and messages): "80.0", "99.83274983791787".
std::string JavaDouble(double v);

}  // namespace ty::telemetry
