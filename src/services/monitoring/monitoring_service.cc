#include "services/monitoring/monitoring_service.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>

#include "services/monitoring/metric_math.h"

namespace ty::services {
namespace {

using api::ApiError;
using nlohmann::json;
using telemetry::Bucket;
using telemetry::Dimension;
using telemetry::MetricKey;

constexpr size_t kMaxDatums = 1000;
constexpr size_t kMaxValuesPerDatum = 150;
constexpr size_t kMaxQueries = 500;
constexpr int64_t kMaxDatapoints = 100'800;
constexpr int64_t kMaxStatisticsDatapoints = 1'440;
constexpr int64_t kMaxBuckets = 1'000'000;
constexpr size_t kListPage = 500;
constexpr int64_t kTwoWeeksMs = 14LL * 24 * 3600 * 1000;
constexpr int64_t kTwoHoursMs = 2LL * 3600 * 1000;

ApiError InvalidValue(std::string message) {
  return {"InvalidParameterValueException", std::move(message), 400};
}
ApiError Missing(std::string message) {
  return {"MissingRequiredParameterException", std::move(message), 400};
}
ApiError Combination(std::string message) {
  return {"InvalidParameterCombinationException", std::move(message), 400};
}
ApiError BadToken() { return {"InvalidNextToken", "The NextToken is invalid.", 400}; }
ApiError Internal(const Status& s) { return {"InternalServiceFault", s.ToString(), 500}; }

// Document form: timestamps are epoch seconds (fractions allowed).
int64_t TimeMs(const json& v) { return static_cast<int64_t>(std::llround(v.get<double>() * 1000)); }
double Seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

// FNV-1a: a token names the request it continues, so a token of another request or account
// is refused rather than misread.
uint64_t Fingerprint(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string MakeToken(int64_t position, const std::string& context) {
  return std::to_string(position) + "." + std::to_string(Fingerprint(context));
}

// The position a token holds, or none when it is not one of this request's.
std::optional<int64_t> ReadToken(const std::string& token, const std::string& context) {
  size_t dot = token.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 19) return std::nullopt;
  if (token.substr(dot + 1) != std::to_string(Fingerprint(context))) return std::nullopt;
  int64_t pos = 0;
  for (size_t i = 0; i < dot; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(token[i]))) return std::nullopt;
    pos = pos * 10 + (token[i] - '0');
  }
  return pos;
}

std::vector<Dimension> DimensionsOf(const json& metric) {
  std::vector<Dimension> out;
  if (auto it = metric.find("Dimensions"); it != metric.end()) {
    for (const auto& d : *it) out.push_back({d.at("Name"), d.at("Value")});
  }
  return out;
}

json DimensionsJson(const std::vector<Dimension>& dims) {
  json out = json::array();
  for (const auto& d : dims) out.push_back({{"Name", d.name}, {"Value", d.value}});
  return out;
}

// One statistic: Average, Sum, Minimum, Maximum, SampleCount, or a percentile pNN(.NN).
struct Stat {
  enum class Kind { kAverage, kSum, kMinimum, kMaximum, kSampleCount, kPercentile } kind;
  double percentile = 0;
};

std::optional<Stat> ParseStat(const std::string& s) {
  if (s == "Average") return Stat{Stat::Kind::kAverage};
  if (s == "Sum") return Stat{Stat::Kind::kSum};
  if (s == "Minimum") return Stat{Stat::Kind::kMinimum};
  if (s == "Maximum") return Stat{Stat::Kind::kMaximum};
  if (s == "SampleCount") return Stat{Stat::Kind::kSampleCount};
  static const std::regex kPercentile(R"(p(\d{1,3}(\.\d{1,10})?))");
  std::smatch m;
  if (s.size() <= 16 && std::regex_match(s, m, kPercentile)) {
    double p = std::strtod(m[1].str().c_str(), nullptr);
    if (p >= 0 && p <= 100) return Stat{Stat::Kind::kPercentile, p};
  }
  return std::nullopt;
}

// The statistic of a bucket; none when it cannot be computed (a percentile of a bucket whose
// raw points have aged out).
std::optional<double> Compute(const Stat& stat, const Bucket& b) {
  switch (stat.kind) {
    case Stat::Kind::kAverage:
      return b.sum / b.count;
    case Stat::Kind::kSum:
      return b.sum;
    case Stat::Kind::kMinimum:
      return b.min;
    case Stat::Kind::kMaximum:
      return b.max;
    case Stat::Kind::kSampleCount:
      return b.count;
    case Stat::Kind::kPercentile: {
      if (!b.values_complete || b.values.empty()) return std::nullopt;
      double total = 0;
      for (const auto& [v, w] : b.values) total += w;
      // Nearest rank: the smallest value with at least p% of the weight at or below it.
      const double rank = stat.percentile / 100.0 * total;
      double seen = 0;
      for (const auto& [v, w] : b.values) {
        seen += w;
        if (seen >= rank) return v;
      }
      return b.values.back().first;
    }
  }
  return std::nullopt;
}

bool ValidPeriod(int64_t p) { return p == 1 || p == 5 || p == 10 || p == 30 || p % 60 == 0; }

}  // namespace

MonitoringService::MonitoringService(telemetry::MetricStore* store, const Clock* clock,
                                     telemetry::AlarmManager* alarms)
    : model_(api::ServiceModel::Embedded("cloudwatch")),
      store_(store),
      clock_(clock),
      alarms_(alarms) {}

api::ServiceOutcome MonitoringService::Call(const api::CallContext& ctx, const api::Operation& op,
                                            const json& input) {
  using Handler = Outcome (MonitoringService::*)(const std::string&, const json&);
  static const std::pair<const char*, Handler> kOps[] = {
      {"PutMetricData", &MonitoringService::PutMetricData},
      {"GetMetricData", &MonitoringService::GetMetricData},
      {"GetMetricStatistics", &MonitoringService::GetMetricStatistics},
      {"ListMetrics", &MonitoringService::ListMetrics},
  };
  static const std::pair<const char*, Handler> kAlarmOps[] = {
      {"PutMetricAlarm", &MonitoringService::PutMetricAlarm},
      {"DescribeAlarms", &MonitoringService::DescribeAlarms},
      {"DescribeAlarmsForMetric", &MonitoringService::DescribeAlarmsForMetric},
      {"DeleteAlarms", &MonitoringService::DeleteAlarms},
      {"SetAlarmState", &MonitoringService::SetAlarmState},
      {"EnableAlarmActions", &MonitoringService::EnableAlarmActions},
      {"DisableAlarmActions", &MonitoringService::DisableAlarmActions},
      {"DescribeAlarmHistory", &MonitoringService::DescribeAlarmHistory},
  };
  const json& in = input.is_null() ? json::object() : input;
  for (const auto& [name, handler] : kOps) {
    if (op.name == name) return (this->*handler)(ctx.caller.account_id, in);
  }
  if (alarms_ != nullptr) {
    for (const auto& [name, handler] : kAlarmOps) {
      if (op.name == name) return (this->*handler)(ctx.caller.account_id, in);
    }
  }
  return ApiError{"InvalidAction", "Unknown operation '" + op.name + "'.", 400};
}

MonitoringService::Outcome MonitoringService::PutMetricData(const std::string& account,
                                                            const json& in) {
  const std::string ns = in.at("Namespace");
  if (ns.rfind("AWS/", 0) == 0) {
    return InvalidValue("The value " + ns +
                        " for parameter Namespace is invalid: namespaces starting with AWS/ are "
                        "reserved for AWS services.");
  }
  std::vector<const json*> datums;
  if (auto it = in.find("MetricData"); it != in.end()) {
    for (const auto& d : *it) datums.push_back(&d);
  }
  if (auto it = in.find("EntityMetricData"); it != in.end()) {
    for (const auto& e : *it) {
      if (auto md = e.find("MetricData"); md != e.end()) {
        for (const auto& d : *md) datums.push_back(&d);
      }
    }
  }
  if (datums.empty()) return Missing("The parameter MetricData is required.");
  if (datums.size() > kMaxDatums) {
    return InvalidValue("The collection MetricData must not have a size greater than 1000.");
  }
  const int64_t now = ToEpochMillis(clock_->Now());
  std::vector<telemetry::PutPoint> points;
  for (size_t i = 0; i < datums.size(); ++i) {
    const json& d = *datums[i];
    const std::string at = "MetricData.member." + std::to_string(i + 1);
    telemetry::PutPoint base;
    base.key = {account, ns, d.at("MetricName"), DimensionsOf(d)};
    std::set<std::string> names;
    for (const auto& dim : base.key.dimensions) {
      if (!names.insert(dim.name).second) {
        return InvalidValue("The parameter " + at + ".Dimensions has the dimension " + dim.name +
                            " twice.");
      }
    }
    base.unit = d.value("Unit", std::string("None"));
    base.timestamp_ms = d.contains("Timestamp") ? TimeMs(d["Timestamp"]) : now;
    if (base.timestamp_ms < now - kTwoWeeksMs || base.timestamp_ms > now + kTwoHoursMs) {
      return InvalidValue("The parameter " + at +
                          ".Timestamp must specify a time no more than two weeks in the past "
                          "and no more than two hours in the future.");
    }
    if (d.contains("StorageResolution")) {
      int64_t r = d["StorageResolution"];
      if (r != 1 && r != 60) {
        return InvalidValue("The parameter " + at + ".StorageResolution must be 1 or 60.");
      }
    }
    const int given = (d.contains("Value") ? 1 : 0) + (d.contains("StatisticValues") ? 1 : 0) +
                      (d.contains("Values") ? 1 : 0);
    if (given == 0) return Missing("The parameter " + at + ".Value is required.");
    if (given > 1) {
      return Combination("The parameters " + at + ".Value, " + at + ".StatisticValues and " + at +
                         ".Values are mutually exclusive.");
    }
    // CloudWatch refuses values it cannot store: NaN, infinities, magnitudes past 2^360.
    const double limit = std::ldexp(1.0, 360);
    auto bad = [&](double v) { return !std::isfinite(v) || std::fabs(v) > limit; };
    if (d.contains("Value")) {
      double v = d["Value"];
      if (bad(v)) return InvalidValue("The value for parameter " + at + ".Value is invalid.");
      base.sum = base.min = base.max = v;
      points.push_back(base);
    } else if (d.contains("StatisticValues")) {
      const json& s = d["StatisticValues"];
      double n = s.at("SampleCount"), sum = s.at("Sum"), lo = s.at("Minimum"), hi = s.at("Maximum");
      if (bad(n) || bad(sum) || bad(lo) || bad(hi) || n <= 0 || lo > hi) {
        return InvalidValue("The parameter " + at +
                            ".StatisticValues is invalid: SampleCount must be positive and "
                            "Minimum at most Maximum.");
      }
      base.count = n;
      base.sum = sum;
      base.min = lo;
      base.max = hi;
      points.push_back(base);
    } else {
      const json& values = d["Values"];
      if (values.size() > kMaxValuesPerDatum) {
        return InvalidValue("The collection " + at +
                            ".Values must not have a size greater than 150.");
      }
      const json* counts = d.contains("Counts") ? &d["Counts"] : nullptr;
      if (counts != nullptr && counts->size() != values.size()) {
        return InvalidValue("The parameters " + at + ".Values and " + at +
                            ".Counts must have the same size.");
      }
      for (size_t k = 0; k < values.size(); ++k) {
        double v = values[k];
        double c = counts != nullptr ? (*counts)[k].get<double>() : 1.0;
        if (bad(v) || bad(c) || c < 0) {
          return InvalidValue("The parameter " + at +
                              ".Values (or Counts) holds an invalid number.");
        }
        if (c == 0) continue;
        telemetry::PutPoint p = base;
        p.count = c;
        p.sum = v * c;
        p.min = p.max = v;
        points.push_back(std::move(p));
      }
    }
  }
  Status s = store_->Put(points, now);
  if (s.code() == StatusCode::kResourceExhausted)
    return ApiError{"LimitExceeded", s.message(), 400};
  if (!s.ok()) return Internal(s);
  return json::object();
}

MonitoringService::Outcome MonitoringService::GetMetricStatistics(const std::string& account,
                                                                  const json& in) {
  const int64_t start = TimeMs(in.at("StartTime"));
  const int64_t end = TimeMs(in.at("EndTime"));
  const int64_t period = in.at("Period");
  if (start >= end) {
    return InvalidValue("The parameter StartTime must be less than the parameter EndTime.");
  }
  if (!ValidPeriod(period)) {
    return InvalidValue("The parameter Period must be 1, 5, 10, 30 or a multiple of 60.");
  }
  const bool has_stats = in.contains("Statistics");
  const bool has_ext = in.contains("ExtendedStatistics");
  if (!has_stats && !has_ext) {
    return Missing("Must specify either the parameter Statistics or ExtendedStatistics.");
  }
  if (has_stats && has_ext) {
    return Combination("The parameters Statistics and ExtendedStatistics are mutually exclusive.");
  }
  std::vector<std::pair<std::string, Stat>> stats;
  for (const auto& name : in.value("Statistics", json::array())) {
    auto st = ParseStat(name.get<std::string>());
    if (!st || st->kind == Stat::Kind::kPercentile) {
      return InvalidValue("The value " + name.get<std::string>() +
                          " for parameter Statistics is invalid.");
    }
    stats.emplace_back(name.get<std::string>(), *st);
  }
  for (const auto& name : in.value("ExtendedStatistics", json::array())) {
    auto st = ParseStat(name.get<std::string>());
    if (!st || st->kind != Stat::Kind::kPercentile) {
      return InvalidValue("The value " + name.get<std::string>() +
                          " for parameter ExtendedStatistics is not supported: use pNN.NN.");
    }
    stats.emplace_back(name.get<std::string>(), *st);
  }
  const int64_t requested = (end - start + period * 1000 - 1) / (period * 1000);
  if (requested > kMaxStatisticsDatapoints) {
    return Combination("You have requested up to " + std::to_string(requested) +
                       " datapoints, which exceeds the limit of 1,440. You may reduce the "
                       "datapoints requested by increasing Period, or decreasing the time range.");
  }
  const std::string name = in.at("MetricName");
  json out = {{"Label", name}, {"Datapoints", json::array()}};
  auto series = store_->Find({account, in.at("Namespace"), name, DimensionsOf(in)});
  if (!series.ok()) return Internal(series.status());
  if (!*series) return out;
  if (in.contains("Unit") && in["Unit"].get<std::string>() != (*series)->unit) return out;
  const int64_t now = ToEpochMillis(clock_->Now());
  auto buckets = store_->Aggregate((*series)->id, start, end, period, has_ext, now);
  if (!buckets.ok()) return Internal(buckets.status());
  for (const Bucket& b : *buckets) {
    json dp = {{"Timestamp", Seconds(b.start_ms)}, {"Unit", (*series)->unit}};
    for (const auto& [label, st] : stats) {
      auto v = Compute(st, b);
      if (!v) continue;
      if (st.kind == Stat::Kind::kPercentile) {
        dp["ExtendedStatistics"][label] = *v;
      } else {
        dp[label] = *v;
      }
    }
    out["Datapoints"].push_back(std::move(dp));
  }
  return out;
}

MonitoringService::Outcome MonitoringService::GetMetricData(const std::string& account,
                                                            const json& in) {
  const int64_t start = TimeMs(in.at("StartTime"));
  const int64_t end = TimeMs(in.at("EndTime"));
  if (start >= end) {
    return InvalidValue("The parameter StartTime must be less than the parameter EndTime.");
  }
  const json& queries = in.at("MetricDataQueries");
  if (queries.empty()) return Missing("The parameter MetricDataQueries is required.");
  if (queries.size() > kMaxQueries) {
    return InvalidValue("The collection MetricDataQueries must not have a size greater than 500.");
  }
  const int64_t max_points = in.value("MaxDatapoints", kMaxDatapoints);
  if (max_points < 1 || max_points > kMaxDatapoints) {
    return InvalidValue("The parameter MaxDatapoints must be between 1 and 100800.");
  }
  const bool descending =
      in.value("ScanBy", std::string("TimestampDescending")) != "TimestampAscending";
  static const std::regex kId("[a-z][a-zA-Z0-9_]*");
  std::set<std::string> ids;
  bool any_returned = false;
  int64_t buckets_total = 0;
  for (size_t i = 0; i < queries.size(); ++i) {
    const json& q = queries[i];
    const std::string at = "MetricDataQueries.member." + std::to_string(i + 1);
    const std::string id = q.at("Id");
    if (!std::regex_match(id, kId)) {
      return InvalidValue("The value " + id + " for parameter " + at +
                          ".Id is invalid: it must start with a lowercase letter and hold only "
                          "letters, digits and underscores.");
    }
    if (!ids.insert(id).second) {
      return InvalidValue("The value " + id + " for parameter " + at + ".Id is used twice.");
    }
    const bool stat = q.contains("MetricStat"), expr = q.contains("Expression");
    if (stat == expr) {
      return Combination("The parameter " + at +
                         " must hold exactly one of MetricStat and Expression.");
    }
    if (stat) {
      const json& ms = q["MetricStat"];
      const int64_t period = ms.at("Period");
      if (!ValidPeriod(period)) {
        return InvalidValue("The parameter " + at +
                            ".MetricStat.Period must be 1, 5, 10, 30 or a multiple of 60.");
      }
      if (!ParseStat(ms.at("Stat"))) {
        return InvalidValue("The value " + ms.at("Stat").get<std::string>() + " for parameter " +
                            at + ".MetricStat.Stat is not supported.");
      }
      buckets_total += (end - start) / (period * 1000) + 1;
    }
    if (q.value("ReturnData", true)) any_returned = true;
  }
  if (!any_returned) {
    return InvalidValue("At least one MetricDataQuery must have ReturnData set to true.");
  }
  if (buckets_total > kMaxBuckets) {
    return Combination("The queries span " + std::to_string(buckets_total) +
                       " periods, more than the 1,000,000 this server computes in one call; "
                       "raise Period or shorten the time range.");
  }

  // MetricStat queries first, then expressions once what they name is known.
  const int64_t now = ToEpochMillis(clock_->Now());
  std::map<std::string, TimeSeries> values;
  std::map<std::string, std::string> labels;
  for (const auto& q : queries) {
    if (!q.contains("MetricStat")) continue;
    const json& ms = q["MetricStat"];
    const json& metric = ms.at("Metric");
    const std::string id = q["Id"];
    labels[id] = q.value("Label", metric.value("MetricName", id));
    TimeSeries& ts = values[id];
    if (!metric.contains("Namespace") || !metric.contains("MetricName")) continue;
    auto series =
        store_->Find({account, metric["Namespace"], metric["MetricName"], DimensionsOf(metric)});
    if (!series.ok()) return Internal(series.status());
    if (!*series) continue;
    if (ms.contains("Unit") && ms["Unit"].get<std::string>() != (*series)->unit) continue;
    const Stat st = *ParseStat(ms["Stat"]);
    auto buckets = store_->Aggregate((*series)->id, start, end, ms["Period"].get<int64_t>(),
                                     st.kind == Stat::Kind::kPercentile, now);
    if (!buckets.ok()) return Internal(buckets.status());
    for (const Bucket& b : *buckets) {
      if (auto v = Compute(st, b)) ts[b.start_ms] = *v;
    }
  }
  std::vector<const json*> pending;
  for (const auto& q : queries) {
    if (q.contains("Expression")) pending.push_back(&q);
  }
  while (!pending.empty()) {
    std::vector<const json*> later;
    for (const json* q : pending) {
      const std::string id = (*q)["Id"];
      const std::string expr = (*q)["Expression"];
      auto names = ExpressionIds(expr);
      if (!names.ok()) return InvalidValue(names.status().message());
      bool ready = true;
      for (const auto& n : *names) {
        if (ids.count(n) == 0) {
          return InvalidValue("The expression \"" + expr + "\" of " + id +
                              " names an unknown id \"" + n + "\".");
        }
        if (values.count(n) == 0) ready = false;
      }
      if (!ready) {
        later.push_back(q);
        continue;
      }
      auto v = EvaluateExpression(expr, values);
      if (!v.ok()) return InvalidValue(v.status().message());
      TimeSeries ts;
      if (const double* scalar = std::get_if<double>(&*v)) {
        // A number stands at every timestamp of what the expression read.
        std::set<int64_t> times;
        for (const auto& n : *names) {
          for (const auto& [t, x] : values[n]) times.insert(t);
        }
        for (int64_t t : times) ts[t] = *scalar;
      } else {
        ts = std::get<TimeSeries>(*v);
      }
      values[id] = std::move(ts);
      labels[id] = q->value("Label", id);
    }
    if (later.size() == pending.size()) {
      return InvalidValue("The expressions of the request refer to each other in a cycle.");
    }
    pending.swap(later);
  }

  // Pagination over the returned results in query order, each in ScanBy order. The token is
  // bound to the account and the request (less its NextToken and MaxDatapoints).
  json context = in;
  context.erase("NextToken");
  context.erase("MaxDatapoints");
  const std::string ctx = account + "\n" + context.dump();
  int64_t skip = 0;
  if (in.contains("NextToken")) {
    auto pos = ReadToken(in["NextToken"], ctx);
    if (!pos) return BadToken();
    skip = *pos;
  }
  json results = json::array();
  int64_t position = 0, emitted = 0;
  bool truncated = false;
  for (const auto& q : queries) {
    if (!q.value("ReturnData", true)) continue;
    const std::string id = q["Id"];
    json r = {{"Id", id},
              {"Label", labels[id]},
              {"Timestamps", json::array()},
              {"Values", json::array()},
              {"StatusCode", "Complete"}};
    const TimeSeries& ts = values[id];
    auto emit = [&](int64_t t, double v) {
      if (position++ < skip) return;
      if (emitted >= max_points) {
        truncated = true;
        r["StatusCode"] = "PartialData";
        return;
      }
      r["Timestamps"].push_back(Seconds(t));
      r["Values"].push_back(v);
      ++emitted;
    };
    if (descending) {
      for (auto it = ts.rbegin(); it != ts.rend(); ++it) emit(it->first, it->second);
    } else {
      for (const auto& [t, v] : ts) emit(t, v);
    }
    results.push_back(std::move(r));
  }
  json out = {{"MetricDataResults", std::move(results)}, {"Messages", json::array()}};
  if (truncated) out["NextToken"] = MakeToken(skip + emitted, ctx);
  return out;
}

MonitoringService::Outcome MonitoringService::ListMetrics(const std::string& account,
                                                          const json& in) {
  telemetry::ListQuery q;
  q.account = account;
  if (in.contains("Namespace")) q.ns = in["Namespace"].get<std::string>();
  if (in.contains("MetricName")) q.name = in["MetricName"].get<std::string>();
  for (const auto& f : in.value("Dimensions", json::array())) {
    std::optional<std::string> value;
    if (f.contains("Value")) value = f["Value"].get<std::string>();
    q.dimensions.emplace_back(f.at("Name").get<std::string>(), value);
  }
  const int64_t now = ToEpochMillis(clock_->Now());
  // CloudWatch lists metrics with a datapoint in the last two weeks (three hours on request).
  q.active_since_ms = in.value("RecentlyActive", std::string()) == "PT3H" ? now - 3 * 3600 * 1000
                                                                          : now - kTwoWeeksMs;
  json context = in;
  context.erase("NextToken");
  const std::string ctx = account + "\n" + context.dump();
  if (in.contains("NextToken")) {
    auto pos = ReadToken(in["NextToken"], ctx);
    if (!pos) return BadToken();
    q.after_id = *pos;
  }
  q.limit = kListPage + 1;  // one more tells whether another page follows
  auto found = store_->List(q);
  if (!found.ok()) return Internal(found.status());
  json metrics = json::array();
  for (size_t i = 0; i < found->size() && i < kListPage; ++i) {
    const auto& s = (*found)[i];
    metrics.push_back({{"Namespace", s.key.ns},
                       {"MetricName", s.key.name},
                       {"Dimensions", DimensionsJson(s.key.dimensions)}});
  }
  json out = {{"Metrics", std::move(metrics)}};
  if (found->size() > kListPage) out["NextToken"] = MakeToken((*found)[kListPage - 1].id, ctx);
  return out;
}

}  // namespace ty::services
