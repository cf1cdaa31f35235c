// The metric-alarm operations of MonitoringService (monitoring_service.h).
#include <algorithm>
#include <cmath>

#include "common/json.h"
#include "services/monitoring/monitoring_service.h"

namespace ty::services {
namespace {

using api::ApiError;
using nlohmann::json;
using telemetry::AlarmState;
using telemetry::MetricAlarm;

constexpr size_t kMaxActionsPerState = 5;
constexpr int64_t kDefaultMaxRecords = 50;

ApiError InvalidValue(std::string message) {
  return {"InvalidParameterValueException", std::move(message), 400};
}
ApiError Combination(std::string message) {
  return {"InvalidParameterCombinationException", std::move(message), 400};
}
ApiError Missing(std::string message) {
  return {"MissingRequiredParameterException", std::move(message), 400};
}

double Seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

std::vector<std::string> Strings(const json& in, const char* member) {
  std::vector<std::string> out;
  if (auto it = in.find(member); it != in.end()) {
    for (const auto& s : *it) out.push_back(s.get<std::string>());
  }
  return out;
}

json AlarmJson(const MetricAlarm& a, const std::string& arn) {
  json dims = json::array();
  for (const auto& d : a.dimensions) dims.push_back({{"Name", d.name}, {"Value", d.value}});
  json out = {{"AlarmName", a.name},
              {"AlarmArn", arn},
              {"AlarmConfigurationUpdatedTimestamp", Seconds(a.config_updated_ms)},
              {"ActionsEnabled", a.actions_enabled},
              {"OKActions", a.ok_actions},
              {"AlarmActions", a.alarm_actions},
              {"InsufficientDataActions", a.insufficient_data_actions},
              {"StateValue", telemetry::AlarmStateName(a.state)},
              {"StateReason", a.state_reason},
              {"StateUpdatedTimestamp", Seconds(a.state_updated_ms)},
              {"StateTransitionedTimestamp", Seconds(a.state_transitioned_ms)},
              {"MetricName", a.metric_name},
              {"Namespace", a.ns},
              {"Dimensions", dims},
              {"Period", a.period_s},
              {"EvaluationPeriods", a.rule.evaluation_periods},
              {"DatapointsToAlarm", a.rule.datapoints_to_alarm},
              {"Threshold", a.rule.threshold},
              {"ComparisonOperator", telemetry::ComparisonName(a.rule.comparison)},
              {"TreatMissingData", telemetry::MissingDataName(a.rule.missing)}};
  if (!a.description.empty()) out["AlarmDescription"] = a.description;
  if (!a.state_reason_data.empty()) out["StateReasonData"] = a.state_reason_data;
  if (!a.statistic.empty()) out["Statistic"] = a.statistic;
  if (!a.extended_statistic.empty()) out["ExtendedStatistic"] = a.extended_statistic;
  if (!a.unit.empty()) out["Unit"] = a.unit;
  if (!a.evaluate_low_sample_count_percentile.empty()) {
    out["EvaluateLowSampleCountPercentile"] = a.evaluate_low_sample_count_percentile;
  }
  return out;
}

// Index tokens, bound to nothing but a position: the lists are small and sorted by name.
std::optional<size_t> ReadIndex(const json& in, size_t size) {
  if (!in.contains("NextToken")) return 0;
  const std::string tok = in["NextToken"];
  if (tok.empty() || tok.size() > 12) return std::nullopt;
  for (char c : tok) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  size_t v = std::stoull(tok);
  if (v > size) return std::nullopt;
  return v;
}

ApiError BadToken() { return {"InvalidNextToken", "The NextToken is invalid.", 400}; }

}  // namespace

MonitoringService::Outcome MonitoringService::PutMetricAlarm(const std::string& account,
                                                             const json& in) {
  if (in.contains("Metrics") || in.contains("ThresholdMetricId") ||
      in.contains("EvaluationCriteria")) {
    return InvalidValue(
        "Metric math, anomaly detection and PromQL alarms are not served here: give MetricName, "
        "Namespace and Statistic or ExtendedStatistic.");
  }
  MetricAlarm a;
  a.account = account;
  a.name = in.at("AlarmName");
  a.description = in.value("AlarmDescription", "");
  a.actions_enabled = in.value("ActionsEnabled", true);
  if (!in.contains("MetricName") || !in.contains("Namespace")) {
    return Missing("The parameters MetricName and Namespace are required.");
  }
  a.metric_name = in["MetricName"];
  a.ns = in["Namespace"];
  for (const auto& d : in.value("Dimensions", json::array())) {
    a.dimensions.push_back({d.at("Name"), d.at("Value")});
  }
  const bool stat = in.contains("Statistic"), ext = in.contains("ExtendedStatistic");
  if (stat == ext) {
    return Combination(
        "Exactly one of the parameters Statistic and ExtendedStatistic must be "
        "specified.");
  }
  if (stat) {
    a.statistic = in["Statistic"];
  } else {
    a.extended_statistic = in["ExtendedStatistic"];
    auto p = telemetry::ParseAlarmStatistic(a.extended_statistic);
    if (!p || p->kind != telemetry::AlarmStatistic::Kind::kPercentile) {
      return InvalidValue("The value " + a.extended_statistic +
                          " for parameter ExtendedStatistic is not supported: use pNN.NN.");
    }
  }
  if (!in.contains("Period")) return Missing("The parameter Period is required.");
  a.period_s = in["Period"];
  if (!(a.period_s == 10 || a.period_s == 20 || a.period_s == 30 ||
        (a.period_s > 0 && a.period_s % 60 == 0))) {
    return InvalidValue("The parameter Period must be 10, 20, 30 or a multiple of 60.");
  }
  if (!in.contains("EvaluationPeriods") || !in.contains("Threshold") ||
      !in.contains("ComparisonOperator")) {
    return Missing(
        "The parameters EvaluationPeriods, Threshold and ComparisonOperator are "
        "required.");
  }
  a.rule.evaluation_periods = in["EvaluationPeriods"];
  if (a.rule.evaluation_periods < 1) {
    return InvalidValue("The parameter EvaluationPeriods must be at least 1.");
  }
  const int64_t window = a.period_s * a.rule.evaluation_periods;
  if (window > 604800 || (a.period_s < 3600 && window > 86400)) {
    return InvalidValue(
        "The evaluation period (Period × EvaluationPeriods) must not exceed 1 day for periods "
        "under an hour, and 7 days otherwise.");
  }
  a.rule.datapoints_to_alarm = in.value("DatapointsToAlarm", a.rule.evaluation_periods);
  if (a.rule.datapoints_to_alarm < 1 || a.rule.datapoints_to_alarm > a.rule.evaluation_periods) {
    return InvalidValue("DatapointsToAlarm must be between 1 and EvaluationPeriods.");
  }
  const double threshold = in["Threshold"];
  if (!std::isfinite(threshold)) return InvalidValue("The parameter Threshold is invalid.");
  a.rule.threshold = threshold;
  auto cmp = telemetry::ParseComparison(in["ComparisonOperator"]);
  if (!cmp) {
    return InvalidValue("The ComparisonOperator " + in["ComparisonOperator"].get<std::string>() +
                        " (anomaly detection bands) is not served here.");
  }
  a.rule.comparison = *cmp;
  auto missing = telemetry::ParseMissingData(in.value("TreatMissingData", "missing"));
  if (!missing) {
    return InvalidValue(
        "The parameter TreatMissingData must be breaching, notBreaching, ignore "
        "or missing.");
  }
  a.rule.missing = *missing;
  a.unit = in.value("Unit", "");
  a.evaluate_low_sample_count_percentile = in.value("EvaluateLowSampleCountPercentile", "");
  struct ActionList {
    const char* member;
    std::vector<std::string>* into;
  } lists[] = {{"OKActions", &a.ok_actions},
               {"AlarmActions", &a.alarm_actions},
               {"InsufficientDataActions", &a.insufficient_data_actions}};
  for (auto& l : lists) {
    *l.into = Strings(in, l.member);
    if (l.into->size() > kMaxActionsPerState) {
      return InvalidValue(std::string("The collection ") + l.member +
                          " must not have a size greater than 5.");
    }
    for (const auto& arn : *l.into) {
      const auto service = control::ArnService(arn);
      if (service != "sns" && service != "lambda") {
        return InvalidValue("Invalid " + std::string(l.member) + " " + arn +
                            ": only SNS topic and Lambda function ARNs are served here.");
      }
      if (control::ArnAccount(arn) != account) {
        return InvalidValue("Invalid " + std::string(l.member) + " " + arn +
                            ": the target is not in account " + account + ".");
      }
    }
  }
  Status s = alarms_->Put(std::move(a));
  if (s.code() == StatusCode::kResourceExhausted) {
    return ApiError{"LimitExceededFault", s.message(), 400};
  }
  if (!s.ok()) return ApiError{"InternalServiceFault", s.ToString(), 500};
  return json::object();
}

MonitoringService::Outcome MonitoringService::DescribeAlarms(const std::string& account,
                                                             const json& in) {
  const auto names = Strings(in, "AlarmNames");
  if (names.size() > 100) {
    return InvalidValue("The collection AlarmNames must not have a size greater than 100.");
  }
  const std::string prefix = in.value("AlarmNamePrefix", "");
  if (!names.empty() && !prefix.empty()) {
    return Combination("AlarmNames and AlarmNamePrefix are mutually exclusive.");
  }
  const std::string state = in.value("StateValue", "");
  const std::string action_prefix = in.value("ActionPrefix", "");
  const auto types = Strings(in, "AlarmTypes");
  const bool metric_alarms =
      types.empty() || std::find(types.begin(), types.end(), "MetricAlarm") != types.end();
  const int64_t max = in.value("MaxRecords", kDefaultMaxRecords);
  if (max < 1 || max > 100) return InvalidValue("MaxRecords must be between 1 and 100.");
  std::vector<MetricAlarm> found;
  if (metric_alarms) {
    for (auto& a : alarms_->List(account)) {
      if (!names.empty() && std::find(names.begin(), names.end(), a.name) == names.end()) continue;
      if (a.name.rfind(prefix, 0) != 0) continue;
      if (!state.empty() && state != telemetry::AlarmStateName(a.state)) continue;
      if (!action_prefix.empty()) {
        bool any = false;
        for (const auto* list : {&a.ok_actions, &a.alarm_actions, &a.insufficient_data_actions}) {
          for (const auto& arn : *list) any = any || arn.rfind(action_prefix, 0) == 0;
        }
        if (!any) continue;
      }
      found.push_back(std::move(a));
    }
  }
  auto start = ReadIndex(in, found.size());
  if (!start) return BadToken();
  json list = json::array();
  for (size_t i = *start; i < found.size() && i < *start + static_cast<size_t>(max); ++i) {
    list.push_back(AlarmJson(found[i], alarms_->AlarmArn(account, found[i].name)));
  }
  json out = {{"MetricAlarms", list}, {"CompositeAlarms", json::array()}};
  if (*start + max < found.size()) out["NextToken"] = std::to_string(*start + max);
  return out;
}

MonitoringService::Outcome MonitoringService::DescribeAlarmsForMetric(const std::string& account,
                                                                      const json& in) {
  std::vector<telemetry::Dimension> dims;
  for (const auto& d : in.value("Dimensions", json::array())) {
    dims.push_back({d.at("Name"), d.at("Value")});
  }
  const std::string canonical = telemetry::CanonicalDimensions(dims);
  json list = json::array();
  for (const auto& a : alarms_->List(account)) {
    if (a.metric_name != in.at("MetricName").get<std::string>() ||
        a.ns != in.at("Namespace").get<std::string>()) {
      continue;
    }
    if (in.contains("Dimensions") && telemetry::CanonicalDimensions(a.dimensions) != canonical) {
      continue;
    }
    if (in.contains("Statistic") && a.statistic != in["Statistic"].get<std::string>()) continue;
    if (in.contains("ExtendedStatistic") &&
        a.extended_statistic != in["ExtendedStatistic"].get<std::string>()) {
      continue;
    }
    if (in.contains("Period") && a.period_s != in["Period"].get<int64_t>()) continue;
    if (in.contains("Unit") && a.unit != in["Unit"].get<std::string>()) continue;
    list.push_back(AlarmJson(a, alarms_->AlarmArn(account, a.name)));
  }
  return json{{"MetricAlarms", list}};
}

MonitoringService::Outcome MonitoringService::DeleteAlarms(const std::string& account,
                                                           const json& in) {
  const auto names = Strings(in, "AlarmNames");
  if (names.size() > 100) {
    return InvalidValue("The collection AlarmNames must not have a size greater than 100.");
  }
  // "If you specify any incorrect alarm names, the alarms you specify with correct names are
  // still deleted": the unknown ones are skipped.
  (void)alarms_->Delete(account, names);
  return json::object();
}

MonitoringService::Outcome MonitoringService::SetAlarmState(const std::string& account,
                                                            const json& in) {
  auto state = telemetry::ParseAlarmState(in.at("StateValue"));
  if (!state) return InvalidValue("The parameter StateValue is invalid.");
  const std::string data = in.value("StateReasonData", "");
  if (!data.empty()) {
    auto doc = ParseJson(data);
    if (!doc.ok()) {
      return ApiError{"InvalidFormatFault", "StateReasonData is not valid JSON.", 400};
    }
  }
  Status s = alarms_->SetState(account, in.at("AlarmName"), *state, in.at("StateReason"), data);
  if (s.code() == StatusCode::kNotFound) {
    return ApiError{"ResourceNotFound",
                    "Alarm " + in.at("AlarmName").get<std::string>() + " not found", 404};
  }
  if (!s.ok()) return ApiError{"InternalServiceFault", s.ToString(), 500};
  return json::object();
}

MonitoringService::Outcome MonitoringService::EnableAlarmActions(const std::string& account,
                                                                 const json& in) {
  alarms_->SetActionsEnabled(account, Strings(in, "AlarmNames"), true);
  return json::object();
}

MonitoringService::Outcome MonitoringService::DisableAlarmActions(const std::string& account,
                                                                  const json& in) {
  alarms_->SetActionsEnabled(account, Strings(in, "AlarmNames"), false);
  return json::object();
}

MonitoringService::Outcome MonitoringService::DescribeAlarmHistory(const std::string& account,
                                                                   const json& in) {
  const std::string name = in.value("AlarmName", "");
  const std::string type = in.value("HistoryItemType", "");
  const auto types = Strings(in, "AlarmTypes");
  if (!types.empty() && std::find(types.begin(), types.end(), "MetricAlarm") == types.end()) {
    return json{{"AlarmHistoryItems", json::array()}};
  }
  const int64_t from =
      in.contains("StartDate")
          ? static_cast<int64_t>(std::llround(in["StartDate"].get<double>() * 1000))
          : INT64_MIN;
  const int64_t to = in.contains("EndDate")
                         ? static_cast<int64_t>(std::llround(in["EndDate"].get<double>() * 1000))
                         : INT64_MAX;
  const int64_t max = in.value("MaxRecords", int64_t{100});
  if (max < 1 || max > 100) return InvalidValue("MaxRecords must be between 1 and 100.");
  std::vector<telemetry::AlarmHistoryItem> found;
  for (auto& h : alarms_->History(account)) {  // newest first
    if (!name.empty() && h.alarm_name != name) continue;
    if (!type.empty() && h.type != type) continue;
    if (h.timestamp_ms < from || h.timestamp_ms > to) continue;
    found.push_back(std::move(h));
  }
  if (in.value("ScanBy", "TimestampDescending") == "TimestampAscending") {
    std::reverse(found.begin(), found.end());
  }
  auto start = ReadIndex(in, found.size());
  if (!start) return BadToken();
  json list = json::array();
  for (size_t i = *start; i < found.size() && i < *start + static_cast<size_t>(max); ++i) {
    const auto& h = found[i];
    list.push_back({{"AlarmName", h.alarm_name},
                    {"AlarmType", "MetricAlarm"},
                    {"Timestamp", Seconds(h.timestamp_ms)},
                    {"HistoryItemType", h.type},
                    {"HistorySummary", h.summary},
                    {"HistoryData", h.data}});
  }
  json out = {{"AlarmHistoryItems", list}};
  if (*start + max < found.size()) out["NextToken"] = std::to_string(*start + max);
  return out;
}

}  // namespace ty::services
