#include "telemetry/alarm_evaluation.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <regex>

namespace ty::telemetry {
namespace {

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

const char* Relation(Comparison c) {
  switch (c) {
    case Comparison::kGreaterOrEqual:
      return "greater than or equal to";
    case Comparison::kGreater:
      return "greater than";
    case Comparison::kLess:
      return "less than";
    case Comparison::kLessOrEqual:
      return "less than or equal to";
  }
  return "";
}

// "(09/07/22 02:34:00)": CloudWatch's dd/MM/yy HH:mm:ss (UTC) of the period's start.
std::string PointTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%d/%m/%y %H:%M:%S", &tm);
  return buf;
}

std::string ListPoints(const std::vector<RangePoint>& points) {
  std::string out = "[";
  for (size_t i = 0; i < points.size(); ++i) {
    if (i > 0) out += ", ";
    out += JavaDouble(*points[i].value) + " (" + PointTime(points[i].start_ms) + ")";
  }
  return out + "]";
}

std::string Transition(AlarmState to) {
  return to == AlarmState::kAlarm ? "OK -> ALARM" : "ALARM -> OK";
}

const char* FillName(MissingData m) {
  return m == MissingData::kBreaching ? "Breaching" : "NonBreaching";
}

}  // namespace

const char* AlarmStateName(AlarmState s) {
  switch (s) {
    case AlarmState::kOk:
      return "OK";
    case AlarmState::kAlarm:
      return "ALARM";
    case AlarmState::kInsufficientData:
      return "INSUFFICIENT_DATA";
  }
  return "";
}

std::optional<AlarmState> ParseAlarmState(const std::string& s) {
  for (AlarmState v : {AlarmState::kOk, AlarmState::kAlarm, AlarmState::kInsufficientData}) {
    if (s == AlarmStateName(v)) return v;
  }
  return std::nullopt;
}

const char* MissingDataName(MissingData m) {
  switch (m) {
    case MissingData::kMissing:
      return "missing";
    case MissingData::kIgnore:
      return "ignore";
    case MissingData::kBreaching:
      return "breaching";
    case MissingData::kNotBreaching:
      return "notBreaching";
  }
  return "";
}

std::optional<MissingData> ParseMissingData(const std::string& s) {
  for (MissingData v : {MissingData::kMissing, MissingData::kIgnore, MissingData::kBreaching,
                        MissingData::kNotBreaching}) {
    if (s == MissingDataName(v)) return v;
  }
  return std::nullopt;
}

const char* ComparisonName(Comparison c) {
  switch (c) {
    case Comparison::kGreaterOrEqual:
      return "GreaterThanOrEqualToThreshold";
    case Comparison::kGreater:
      return "GreaterThanThreshold";
    case Comparison::kLess:
      return "LessThanThreshold";
    case Comparison::kLessOrEqual:
      return "LessThanOrEqualToThreshold";
  }
  return "";
}

std::optional<Comparison> ParseComparison(const std::string& s) {
  for (Comparison v : {Comparison::kGreaterOrEqual, Comparison::kGreater, Comparison::kLess,
                       Comparison::kLessOrEqual}) {
    if (s == ComparisonName(v)) return v;
  }
  return std::nullopt;
}

bool Breaches(const AlarmRule& rule, double v) {
  switch (rule.comparison) {
    case Comparison::kGreaterOrEqual:
      return v >= rule.threshold;
    case Comparison::kGreater:
      return v > rule.threshold;
    case Comparison::kLess:
      return v < rule.threshold;
    case Comparison::kLessOrEqual:
      return v <= rule.threshold;
  }
  return false;
}

int EvaluationRange(const AlarmRule& rule) { return rule.evaluation_periods + 2; }

AlarmVerdict EvaluateAlarm(const AlarmRule& rule, const std::vector<RangePoint>& range,
                           AlarmState current) {
  const int n = rule.evaluation_periods;
  const int m = std::clamp(rule.datapoints_to_alarm, 1, n);
  std::vector<RangePoint> real;  // newest first
  for (auto it = range.rbegin(); it != range.rend(); ++it) {
    if (it->value) real.push_back(*it);
  }
  const int missing_count = static_cast<int>(range.size() - real.size());
  AlarmVerdict v;
  v.state = current;

  if (real.empty()) {
    switch (rule.missing) {
      case MissingData::kMissing:
        v.state = AlarmState::kInsufficientData;
        v.reason = "Insufficient Data: " +
                   Plural(missing_count, "datapoint was unknown.", "datapoints were unknown.");
        return v;
      case MissingData::kIgnore:
        v.reason = "No datapoints: the state is kept (TreatMissingData ignore).";
        return v;
      case MissingData::kBreaching:
      case MissingData::kNotBreaching:
        v.state = rule.missing == MissingData::kBreaching ? AlarmState::kAlarm : AlarmState::kOk;
        v.reason = "Threshold Crossed: no datapoints were received for " +
                   Plural(n, "period", "periods") + " and " +
                   Plural(n, "missing datapoint was", "missing datapoints were") + " treated as [" +
                   FillName(rule.missing) + "].";
        return v;
    }
  }

  // The datapoints that decide: the newest N real ones when there are N.
  const int k = std::min<int>(static_cast<int>(real.size()), n);
  real.resize(k);
  std::vector<RangePoint> breaching, fine;
  for (const auto& p : real) (Breaches(rule, *p.value) ? breaching : fine).push_back(p);
  const int b = static_cast<int>(breaching.size());
  const std::string min_text = Plural(m, "datapoint", "datapoints");
  auto crossed = [&](AlarmState to, int fills) {
    v.state = to;
    const auto& shown = to == AlarmState::kAlarm ? breaching : fine;
    v.evaluated = shown;
    const int count = static_cast<int>(shown.size());
    v.reason = "Threshold Crossed: " + std::to_string(count) + " out of the last " +
               std::to_string(k) + " datapoints " + ListPoints(shown) + " " +
               (count == 1 ? "was " : "were ") + (to == AlarmState::kAlarm ? "" : "not ") +
               Relation(rule.comparison) + " the threshold (" + JavaDouble(rule.threshold) + ")";
    if (fills > 0) {
      v.reason += " and " + Plural(fills, "missing datapoint was", "missing datapoints were") +
                  " treated as [" + FillName(rule.missing) + "]";
    }
    v.reason += " (minimum " + min_text + " for " + Transition(to) + " transition).";
  };

  if (k == n) {
    crossed(b >= m ? AlarmState::kAlarm : AlarmState::kOk, 0);
    return v;
  }
  const int fills = n - k;
  if (rule.missing == MissingData::kBreaching || rule.missing == MissingData::kNotBreaching) {
    const int total = b + (rule.missing == MissingData::kBreaching ? fills : 0);
    crossed(total >= m ? AlarmState::kAlarm : AlarmState::kOk, fills);
    return v;
  }
  // missing / ignore with fewer than N datapoints.
  if (b >= m) {
    crossed(AlarmState::kAlarm, 0);
    return v;
  }
  if (b + fills < m) {
    crossed(AlarmState::kOk, 0);
    return v;
  }
  if (rule.missing == MissingData::kMissing && b > 0) {
    // Premature alarm: the oldest breaching datapoint is at least M periods old and no newer
    // real datapoint is fine.
    const int64_t newest_ms = range.back().start_ms;
    const RangePoint& oldest_breaching = breaching.back();
    const int64_t period_ms = range.size() > 1 ? range[1].start_ms - range[0].start_ms : 0;
    const bool newer_all_breaching =
        fine.empty() || fine.front().start_ms < oldest_breaching.start_ms;
    if (period_ms > 0 && newer_all_breaching &&
        (newest_ms - oldest_breaching.start_ms) / period_ms >= m) {
      crossed(AlarmState::kAlarm, 0);
      return v;
    }
  }
  if (rule.missing == MissingData::kMissing) {
    v.state = AlarmState::kInsufficientData;
    v.reason = "Insufficient Data: " +
               Plural(missing_count, "datapoint was unknown.", "datapoints were unknown.");
  } else {
    v.reason = "Too few datapoints to decide: the state is kept (TreatMissingData ignore).";
  }
  return v;
}

std::optional<AlarmStatistic> ParseAlarmStatistic(const std::string& s) {
  using K = AlarmStatistic::Kind;
  if (s == "Average") return AlarmStatistic{K::kAverage};
  if (s == "Sum") return AlarmStatistic{K::kSum};
  if (s == "Minimum") return AlarmStatistic{K::kMinimum};
  if (s == "Maximum") return AlarmStatistic{K::kMaximum};
  if (s == "SampleCount") return AlarmStatistic{K::kSampleCount};
  static const std::regex kPercentile(R"(p(\d{1,3}(\.\d{1,10})?))");
  std::smatch match;
  if (s.size() <= 16 && std::regex_match(s, match, kPercentile)) {
    double p = std::strtod(match[1].str().c_str(), nullptr);
    if (p >= 0 && p <= 100) return AlarmStatistic{K::kPercentile, p};
  }
  return std::nullopt;
}

std::vector<RangePoint> FoldRange(const std::vector<Bucket>& sub, int64_t end_ms, int64_t period_s,
                                  int periods, const AlarmStatistic& stat) {
  const int64_t period_ms = period_s * 1000;
  const int64_t start_ms = end_ms - period_ms * periods;
  std::vector<Bucket> folded(periods);
  std::vector<bool> seen(periods, false);
  for (int i = 0; i < periods; ++i) {
    folded[i].start_ms = start_ms + i * period_ms;
    folded[i].values_complete = true;
  }
  for (const Bucket& b : sub) {
    if (b.start_ms < start_ms || b.start_ms >= end_ms || b.count <= 0) continue;
    const auto i = static_cast<size_t>((b.start_ms - start_ms) / period_ms);
    Bucket& f = folded[i];
    f.min = seen[i] ? std::min(f.min, b.min) : b.min;
    f.max = seen[i] ? std::max(f.max, b.max) : b.max;
    f.count += b.count;
    f.sum += b.sum;
    f.values_complete = f.values_complete && b.values_complete;
    f.values.insert(f.values.end(), b.values.begin(), b.values.end());
    seen[i] = true;
  }
  std::vector<RangePoint> out(periods);
  for (int i = 0; i < periods; ++i) {
    out[i].start_ms = folded[i].start_ms;
    if (!seen[i]) continue;
    const Bucket& f = folded[i];
    using K = AlarmStatistic::Kind;
    switch (stat.kind) {
      case K::kAverage:
        out[i].value = f.sum / f.count;
        break;
      case K::kSum:
        out[i].value = f.sum;
        break;
      case K::kMinimum:
        out[i].value = f.min;
        break;
      case K::kMaximum:
        out[i].value = f.max;
        break;
      case K::kSampleCount:
        out[i].value = f.count;
        break;
      case K::kPercentile: {
        if (!f.values_complete || f.values.empty()) break;
        auto values = f.values;
        std::sort(values.begin(), values.end());
        double total = 0;
        for (const auto& [x, w] : values) total += w;
        const double rank = stat.percentile / 100.0 * total;
        double acc = 0;
        out[i].value = values.back().first;
        for (const auto& [x, w] : values) {
          acc += w;
          if (acc >= rank) {
            out[i].value = x;
            break;
          }
        }
        break;
      }
    }
  }
  return out;
}

std::string JavaDouble(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
  if (v == std::floor(v) && std::fabs(v) < 1e7) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace ty::telemetry
