#include "telemetry/alarm_manager.h"

#include <sys/stat.h>
#include <algorithm>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/json.h"

namespace ty::telemetry {
namespace {

using nlohmann::json;
using Ordered = nlohmann::ordered_json;
constexpr int64_t kTwoWeeksMs = 14LL * 24 * 3600 * 1000;
constexpr const char* kFile = "alarms.json";

// "2022-07-09T02:39:54.536+0000": the time format of CloudWatch's alarm messages.
std::string MessageTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03d+0000", buf, static_cast<int>(ms % 1000));
  return out;
}

// ISO 8601 with milliseconds and Z (the Lambda payload's times).
std::string IsoTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

// "AVERAGE", "SAMPLE_COUNT": the Trigger's Statistic.
std::string UpperSnake(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(s[i]))) out += '_';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
  }
  return out;
}

json AlarmToJson(const MetricAlarm& a) {
  json dims = json::array();
  for (const auto& d : a.dimensions) dims.push_back({{"Name", d.name}, {"Value", d.value}});
  return {{"account", a.account},
          {"name", a.name},
          {"description", a.description},
          {"actions_enabled", a.actions_enabled},
          {"ok_actions", a.ok_actions},
          {"alarm_actions", a.alarm_actions},
          {"insufficient_data_actions", a.insufficient_data_actions},
          {"namespace", a.ns},
          {"metric_name", a.metric_name},
          {"dimensions", dims},
          {"statistic", a.statistic},
          {"extended_statistic", a.extended_statistic},
          {"period", a.period_s},
          {"unit", a.unit},
          {"comparison", ComparisonName(a.rule.comparison)},
          {"threshold", a.rule.threshold},
          {"evaluation_periods", a.rule.evaluation_periods},
          {"datapoints_to_alarm", a.rule.datapoints_to_alarm},
          {"treat_missing_data", MissingDataName(a.rule.missing)},
          {"evaluate_low_sample_count_percentile", a.evaluate_low_sample_count_percentile},
          {"state", AlarmStateName(a.state)},
          {"state_reason", a.state_reason},
          {"state_reason_data", a.state_reason_data},
          {"state_updated_ms", a.state_updated_ms},
          {"state_transitioned_ms", a.state_transitioned_ms},
          {"config_updated_ms", a.config_updated_ms}};
}

MetricAlarm AlarmFromJson(const json& j) {
  MetricAlarm a;
  a.account = j.at("account");
  a.name = j.at("name");
  a.description = j.value("description", "");
  a.actions_enabled = j.value("actions_enabled", true);
  a.ok_actions = j.value("ok_actions", std::vector<std::string>{});
  a.alarm_actions = j.value("alarm_actions", std::vector<std::string>{});
  a.insufficient_data_actions = j.value("insufficient_data_actions", std::vector<std::string>{});
  a.ns = j.value("namespace", "");
  a.metric_name = j.value("metric_name", "");
  for (const auto& d : j.value("dimensions", json::array())) {
    a.dimensions.push_back({d.at("Name"), d.at("Value")});
  }
  a.statistic = j.value("statistic", "");
  a.extended_statistic = j.value("extended_statistic", "");
  a.period_s = j.value("period", int64_t{60});
  a.unit = j.value("unit", "");
  a.rule.comparison =
      ParseComparison(j.value("comparison", "")).value_or(Comparison::kGreaterOrEqual);
  a.rule.threshold = j.value("threshold", 0.0);
  a.rule.evaluation_periods = j.value("evaluation_periods", 1);
  a.rule.datapoints_to_alarm = j.value("datapoints_to_alarm", 1);
  a.rule.missing =
      ParseMissingData(j.value("treat_missing_data", "")).value_or(MissingData::kMissing);
  a.evaluate_low_sample_count_percentile = j.value("evaluate_low_sample_count_percentile", "");
  a.state = ParseAlarmState(j.value("state", "")).value_or(AlarmState::kInsufficientData);
  a.state_reason = j.value("state_reason", "");
  a.state_reason_data = j.value("state_reason_data", "");
  a.state_updated_ms = j.value("state_updated_ms", int64_t{0});
  a.state_transitioned_ms = j.value("state_transitioned_ms", int64_t{0});
  a.config_updated_ms = j.value("config_updated_ms", int64_t{0});
  return a;
}

const std::vector<std::string>& ActionsFor(const MetricAlarm& a) {
  switch (a.state) {
    case AlarmState::kOk:
      return a.ok_actions;
    case AlarmState::kAlarm:
      return a.alarm_actions;
    case AlarmState::kInsufficientData:
      break;
  }
  return a.insufficient_data_actions;
}

}  // namespace

std::string RegionLongName(const std::string& region) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"us-east-1", "US East (N. Virginia)"},
      {"us-east-2", "US East (Ohio)"},
      {"us-west-1", "US West (N. California)"},
      {"us-west-2", "US West (Oregon)"},
      {"ca-central-1", "Canada (Central)"},
      {"eu-west-1", "EU (Ireland)"},
      {"eu-west-2", "EU (London)"},
      {"eu-west-3", "EU (Paris)"},
      {"eu-central-1", "EU (Frankfurt)"},
      {"eu-north-1", "EU (Stockholm)"},
      {"eu-south-1", "EU (Milan)"},
      {"ap-northeast-1", "Asia Pacific (Tokyo)"},
      {"ap-northeast-2", "Asia Pacific (Seoul)"},
      {"ap-northeast-3", "Asia Pacific (Osaka)"},
      {"ap-southeast-1", "Asia Pacific (Singapore)"},
      {"ap-southeast-2", "Asia Pacific (Sydney)"},
      {"ap-south-1", "Asia Pacific (Mumbai)"},
      {"ap-east-1", "Asia Pacific (Hong Kong)"},
      {"sa-east-1", "South America (Sao Paulo)"},
      {"me-south-1", "Middle East (Bahrain)"},
      {"af-south-1", "Africa (Cape Town)"},
  };
  for (const auto& [code, name] : kNames) {
    if (region == code) return name;
  }
  return region;
}

AlarmManager::AlarmManager(AlarmManagerOptions options, MetricStore* metrics,
                           control::Deliverer* deliveries, control::DeliveryQueue* queue,
                           const Clock* clock)
    : options_(std::move(options)),
      metrics_(metrics),
      deliveries_(deliveries),
      queue_(queue),
      clock_(clock) {}

Result<std::unique_ptr<AlarmManager>> AlarmManager::Open(AlarmManagerOptions options,
                                                         MetricStore* metrics,
                                                         control::Deliverer* deliveries,
                                                         control::DeliveryQueue* queue,
                                                         const Clock* clock) {
  std::unique_ptr<AlarmManager> m(
      new AlarmManager(std::move(options), metrics, deliveries, queue, clock));
  TY_RETURN_IF_ERROR(m->Load());
  return m;
}

AlarmManager::~AlarmManager() { Stop(); }

void AlarmManager::Stop() {
  {
    MutexLock lock(&thread_mu_);
    stop_ = true;
  }
  thread_cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void AlarmManager::Start() {
  thread_ = std::thread([this] {
    MutexLock lock(&thread_mu_);
    int64_t last_tick = 0;
    while (!stop_) {
      const int64_t now = ToEpochMillis(clock_->Now());
      const int64_t tick = now / 10000 * 10000;  // the 10-second boundary just passed
      if (tick > last_tick) {
        // A late wake-up that skipped a minute boundary still evaluates the minute alarms.
        const bool skipped_minute =
            last_tick > 0 && tick / 60000 != last_tick / 60000 && tick % 60000 != 0;
        last_tick = tick;
        lock.Unlock();
        if (skipped_minute) EvaluateDue(FromEpochMillis(tick / 60000 * 60000));
        EvaluateDue(FromEpochMillis(tick));
        lock.Lock();
        continue;
      }
      // Until the next boundary on the injected clock, re-read at least every second.
      const int64_t wait = std::clamp<int64_t>(tick + 10000 - now, 1, 1000);
      thread_cv_.WaitFor(&thread_mu_, std::chrono::milliseconds(wait));
    }
  });
}

Status AlarmManager::Load() {
  if (options_.data_dir.empty()) return Status::Ok();
  const std::string path = JoinPath(options_.data_dir, kFile);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::Ok();
  TY_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto parsed = ParseJson(text);
  if (!parsed.ok()) return parsed.status().WithPrefix(path);
  const json& doc = *parsed;
  MutexLock lock(&mu_);
  // A file edited by hand may lack members: refuse it with its name rather than throw.
  try {
    for (const auto& j : doc.value("alarms", json::array())) {
      MetricAlarm a = AlarmFromJson(j);
      alarms_[a.account][a.name] = std::move(a);
    }
    for (const auto& j : doc.value("history", json::array())) {
      AlarmHistoryItem h{j.at("account"), j.at("alarm_name"),  j.at("type"),
                         j.at("summary"), j.value("data", ""), j.value("timestamp_ms", int64_t{0})};
      history_[h.account].push_back(std::move(h));
    }
  } catch (const json::exception& e) {
    return InvalidArgument(path + ": not an alarms file of this server: " + e.what());
  }
  return Status::Ok();
}

void AlarmManager::Persist() {
  if (options_.data_dir.empty()) return;
  std::string text;
  int64_t version = 0;
  {
    MutexLock lock(&mu_);
    json alarms = json::array(), history = json::array();
    for (const auto& [account, by_name] : alarms_) {
      for (const auto& [name, a] : by_name) alarms.push_back(AlarmToJson(a));
    }
    for (const auto& [account, items] : history_) {
      for (const auto& h : items) {
        history.push_back({{"account", h.account},
                           {"alarm_name", h.alarm_name},
                           {"type", h.type},
                           {"summary", h.summary},
                           {"data", h.data},
                           {"timestamp_ms", h.timestamp_ms}});
      }
    }
    text = json{{"alarms", alarms}, {"history", history}}.dump();
    version = version_;
  }
  MutexLock lock(&file_mu_);
  if (version <= written_version_) return;  // a later snapshot is on disk already
  Status s = WriteFileAtomic(JoinPath(options_.data_dir, kFile), text, 0600);
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: saving alarms failed: %s\n", s.ToString().c_str());
    return;
  }
  written_version_ = version;
}

void AlarmManager::AddHistory(AlarmHistoryItem item) {
  auto& items = history_[item.account];
  items.push_front(std::move(item));
  const int64_t oldest = items.front().timestamp_ms - kTwoWeeksMs;
  while (!items.empty() &&
         (items.size() > options_.max_history_per_account || items.back().timestamp_ms < oldest)) {
    items.pop_back();
  }
  ++version_;
}

std::string AlarmManager::AlarmArn(const std::string& account, const std::string& name) const {
  return "arn:aws:cloudwatch:" + options_.region + ":" + account + ":alarm:" + name;
}

Status AlarmManager::Put(MetricAlarm alarm) {
  const int64_t now = ToEpochMillis(clock_->Now());
  alarm.config_updated_ms = now;
  {
    MutexLock lock(&mu_);
    auto& by_name = alarms_[alarm.account];
    auto it = by_name.find(alarm.name);
    const bool update = it != by_name.end();
    if (!update && by_name.size() >= options_.max_alarms_per_account) {
      return ResourceExhausted("The maximum number of alarms (" +
                               std::to_string(options_.max_alarms_per_account) +
                               ") for this account has been reached.");
    }
    if (update) {
      alarm.state = it->second.state;
      alarm.state_reason = it->second.state_reason;
      alarm.state_reason_data = it->second.state_reason_data;
      alarm.state_updated_ms = it->second.state_updated_ms;
      alarm.state_transitioned_ms = it->second.state_transitioned_ms;
    } else {
      alarm.state = AlarmState::kInsufficientData;
      alarm.state_reason = "Unchecked: Initial alarm creation";
      alarm.state_updated_ms = alarm.state_transitioned_ms = now;
    }
    AddHistory({alarm.account, alarm.name, "ConfigurationUpdate",
                std::string("Alarm \"") + alarm.name + "\" " + (update ? "updated" : "created"),
                json{{"type", update ? "Update" : "Create"},
                     {"updatedAlarm", json::parse(AlarmToJson(alarm).dump())}}
                    .dump(),
                now});
    by_name[alarm.name] = alarm;
  }
  Persist();
  // "Immediately set to INSUFFICIENT_DATA … then evaluated".
  AlarmVerdict v = Evaluate(alarm, now);
  if (auto change = ApplyState(alarm.account, alarm.name, v.state, v.reason, "", now)) {
    RunActions(*change);
  }
  return Status::Ok();
}

std::vector<MetricAlarm> AlarmManager::List(const std::string& account) const {
  MutexLock lock(&mu_);
  std::vector<MetricAlarm> out;
  auto it = alarms_.find(account);
  if (it == alarms_.end()) return out;
  for (const auto& [name, a] : it->second) out.push_back(a);
  return out;
}

std::optional<MetricAlarm> AlarmManager::Get(const std::string& account,
                                             const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = alarms_.find(account);
  if (it == alarms_.end()) return std::nullopt;
  auto a = it->second.find(name);
  if (a == it->second.end()) return std::nullopt;
  return a->second;
}

std::vector<std::string> AlarmManager::Delete(const std::string& account,
                                              const std::vector<std::string>& names) {
  std::vector<std::string> missing;
  {
    MutexLock lock(&mu_);
    auto& by_name = alarms_[account];
    for (const auto& n : names) {
      if (by_name.erase(n) == 0) {
        missing.push_back(n);
      } else {
        ++version_;
      }
    }
    if (by_name.empty()) alarms_.erase(account);
  }
  Persist();
  return missing;
}

void AlarmManager::SetActionsEnabled(const std::string& account,
                                     const std::vector<std::string>& names, bool enabled) {
  const int64_t now = ToEpochMillis(clock_->Now());
  {
    MutexLock lock(&mu_);
    auto it = alarms_.find(account);
    if (it == alarms_.end()) return;
    for (const auto& n : names) {
      auto a = it->second.find(n);
      if (a == it->second.end()) continue;
      a->second.actions_enabled = enabled;
      a->second.config_updated_ms = now;
      AddHistory({account, n, "ConfigurationUpdate", std::string("Alarm \"") + n + "\" updated",
                  json{{"type", "Update"}, {"actionsEnabled", enabled}}.dump(), now});
    }
  }
  Persist();
}

Status AlarmManager::SetState(const std::string& account, const std::string& name, AlarmState state,
                              const std::string& reason, const std::string& reason_data) {
  if (!Get(account, name)) return NotFound("Alarm " + name + " not found");
  const int64_t now = ToEpochMillis(clock_->Now());
  if (auto change = ApplyState(account, name, state, reason, reason_data, now)) {
    RunActions(*change);
  }
  return Status::Ok();
}

std::vector<AlarmHistoryItem> AlarmManager::History(const std::string& account) const {
  MutexLock lock(&mu_);
  auto it = history_.find(account);
  if (it == history_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::optional<AlarmManager::Change> AlarmManager::ApplyState(
    const std::string& account, const std::string& name, AlarmState state,
    const std::string& reason, const std::string& reason_data, int64_t now_ms) {
  std::optional<Change> change;
  {
    MutexLock lock(&mu_);
    auto it = alarms_.find(account);
    if (it == alarms_.end()) return std::nullopt;
    auto a = it->second.find(name);
    if (a == it->second.end()) return std::nullopt;
    MetricAlarm& alarm = a->second;
    if (alarm.state == state) return std::nullopt;  // actions only on a change
    Change c{alarm, alarm.state, alarm.state_reason, alarm.state_updated_ms};
    alarm.state = state;
    alarm.state_reason = reason;
    alarm.state_reason_data = reason_data;
    alarm.state_updated_ms = alarm.state_transitioned_ms = now_ms;
    c.after = alarm;
    AddHistory({account, name, "StateUpdate",
                std::string("Alarm updated from ") + AlarmStateName(c.old_state) + " to " +
                    AlarmStateName(state),
                json{{"version", "1.0"},
                     {"oldState",
                      {{"stateValue", AlarmStateName(c.old_state)}, {"stateReason", c.old_reason}}},
                     {"newState", {{"stateValue", AlarmStateName(state)}, {"stateReason", reason}}}}
                    .dump(),
                now_ms});
    change = std::move(c);
  }
  Persist();
  return change;
}

void AlarmManager::RunActions(const Change& change) {
  const MetricAlarm& a = change.after;
  if (!a.actions_enabled || deliveries_ == nullptr || queue_ == nullptr) return;
  for (const std::string& arn : ActionsFor(a)) {
    control::Delivery d;
    d.account = a.account;
    d.target_arn = arn;
    d.source_arn = AlarmArn(a.account, a.name);
    const std::string_view service = control::ArnService(arn);
    if (service == "lambda") {
      d.payload = LambdaPayload(a, change.old_state, change.old_reason, change.old_updated_ms);
      d.principal = "lambda.alarms.cloudwatch.amazonaws.com";
    } else {
      d.payload = SnsMessage(a, change.old_state);
      d.subject = SnsSubject(a);
      d.principal = "cloudwatch.amazonaws.com";
    }
    const std::string account = a.account, name = a.name;
    auto record = [this, account, name, arn](const control::DeliveryResult& r, int attempts) {
      const int64_t now = ToEpochMillis(clock_->Now());
      {
        MutexLock lock(&mu_);
        AddHistory(
            {account, name, "Action",
             r.ok() ? "Successfully executed action " + arn
                    : "Failed to execute action " + arn + ". Received error: \"" + r.error + "\"",
             json{{"actionState", r.ok() ? "Succeeded" : "Failed"},
                  {"stateUpdateTimestamp", now},
                  {"attempts", attempts},
                  {"error", r.error}}
                 .dump(),
             now});
      }
      Persist();
    };
    control::Deliverer* deliveries = deliveries_;
    if (!queue_->Enqueue(
            arn, [deliveries, d] { return deliveries->Deliver(d); }, record)) {
      record(control::DeliveryResult::Failed("the delivery queue is full"), 0);
    }
  }
}

AlarmVerdict AlarmManager::Evaluate(const MetricAlarm& a, int64_t now_ms) const {
  const int periods = EvaluationRange(a.rule);
  // Sub-periods of 10 s for high-resolution alarms, 1 min otherwise: they divide the period,
  // so the window can slide by an evaluation interval rather than by a whole period.
  const int64_t g = a.period_s % 60 == 0 ? 60 : 10;
  const int64_t end = now_ms / (g * 1000) * (g * 1000);
  const int64_t start = end - a.period_s * 1000 * periods;
  const std::string stat_name = a.statistic.empty() ? a.extended_statistic : a.statistic;
  auto stat =
      ParseAlarmStatistic(stat_name).value_or(AlarmStatistic{AlarmStatistic::Kind::kAverage});
  std::vector<Bucket> sub;
  if (metrics_ != nullptr) {
    auto series = metrics_->Find({a.account, a.ns, a.metric_name, a.dimensions});
    if (series.ok() && *series && (a.unit.empty() || (*series)->unit == a.unit)) {
      auto got = metrics_->Aggregate((*series)->id, start, end, g,
                                     stat.kind == AlarmStatistic::Kind::kPercentile, now_ms);
      if (got.ok()) {
        sub = std::move(got).value();
      } else {
        std::fprintf(stderr, "trainyard: alarm %s: reading its metric failed: %s\n", a.name.c_str(),
                     got.status().ToString().c_str());
      }
    }
  }
  return EvaluateAlarm(a.rule, FoldRange(sub, end, a.period_s, periods, stat), a.state);
}

void AlarmManager::EvaluateDue(TimePoint now) {
  const int64_t now_ms = ToEpochMillis(now);
  const bool on_minute = (now_ms / 1000) % 60 == 0;
  std::vector<MetricAlarm> due;
  {
    MutexLock lock(&mu_);
    for (const auto& [account, by_name] : alarms_) {
      for (const auto& [name, a] : by_name) {
        if (a.period_s < 60 || a.period_s % 60 != 0 || on_minute) due.push_back(a);
      }
    }
  }
  for (const MetricAlarm& a : due) {
    AlarmVerdict v = Evaluate(a, now_ms);
    json data = {{"version", "1.0"},
                 {"queryDate", MessageTime(now_ms)},
                 {"statistic", a.statistic.empty() ? a.extended_statistic : a.statistic},
                 {"period", a.period_s},
                 {"threshold", a.rule.threshold}};
    json recent = json::array();
    for (const auto& p : v.evaluated) recent.push_back(*p.value);
    data["recentDatapoints"] = recent;
    if (auto change = ApplyState(a.account, a.name, v.state, v.reason, data.dump(), now_ms)) {
      RunActions(*change);
    }
  }
}

std::string AlarmManager::SnsSubject(const MetricAlarm& a) const {
  return std::string(AlarmStateName(a.state)) + ": \"" + a.name + "\" in " +
         RegionLongName(options_.region);
}

std::string AlarmManager::SnsMessage(const MetricAlarm& a, AlarmState old_state) const {
  Ordered dims = Ordered::array();
  for (const auto& d : a.dimensions) {
    dims.push_back(Ordered{{"value", d.value}, {"name", d.name}});
  }
  Ordered trigger;
  trigger["MetricName"] = a.metric_name;
  trigger["Namespace"] = a.ns;
  if (!a.extended_statistic.empty()) {
    trigger["StatisticType"] = "ExtendedStatistic";
    trigger["ExtendedStatistic"] = a.extended_statistic;
  } else {
    trigger["StatisticType"] = "Statistic";
    trigger["Statistic"] = UpperSnake(a.statistic);
  }
  trigger["Unit"] = a.unit.empty() ? Ordered(nullptr) : Ordered(a.unit);
  trigger["Dimensions"] = dims;
  trigger["Period"] = a.period_s;
  trigger["EvaluationPeriods"] = a.rule.evaluation_periods;
  trigger["DatapointsToAlarm"] = a.rule.datapoints_to_alarm;
  trigger["ComparisonOperator"] = ComparisonName(a.rule.comparison);
  trigger["Threshold"] = a.rule.threshold;
  trigger["TreatMissingData"] = MissingDataName(a.rule.missing);
  trigger["EvaluateLowSampleCountPercentile"] = a.evaluate_low_sample_count_percentile;
  Ordered m;
  m["AlarmName"] = a.name;
  m["AlarmDescription"] = a.description.empty() ? Ordered(nullptr) : Ordered(a.description);
  m["AWSAccountId"] = a.account;
  m["AlarmConfigurationUpdatedTimestamp"] = MessageTime(a.config_updated_ms);
  m["NewStateValue"] = AlarmStateName(a.state);
  m["NewStateReason"] = a.state_reason;
  m["StateChangeTime"] = MessageTime(a.state_updated_ms);
  m["Region"] = RegionLongName(options_.region);
  m["AlarmArn"] = AlarmArn(a.account, a.name);
  m["OldStateValue"] = AlarmStateName(old_state);
  m["OKActions"] = a.ok_actions;
  m["AlarmActions"] = a.alarm_actions;
  m["InsufficientDataActions"] = a.insufficient_data_actions;
  m["Trigger"] = trigger;
  return m.dump();
}

std::string AlarmManager::LambdaPayload(const MetricAlarm& a, AlarmState old_state,
                                        const std::string& old_reason,
                                        int64_t old_updated_ms) const {
  Ordered dims = Ordered::object();
  for (const auto& d : a.dimensions) dims[d.name] = d.value;
  Ordered metric_stat;
  metric_stat["metric"] =
      Ordered{{"namespace", a.ns}, {"name", a.metric_name}, {"dimensions", dims}};
  metric_stat["period"] = a.period_s;
  metric_stat["stat"] = a.statistic.empty() ? a.extended_statistic : a.statistic;
  if (!a.unit.empty()) metric_stat["unit"] = a.unit;
  Ordered metric;
  metric["id"] = "m1";
  metric["metricStat"] = metric_stat;
  metric["returnData"] = true;
  Ordered config;
  config["description"] = a.description;
  config["metrics"] = Ordered::array({metric});
  Ordered data;
  data["alarmName"] = a.name;
  data["state"] = Ordered{{"value", AlarmStateName(a.state)},
                          {"reason", a.state_reason},
                          {"timestamp", IsoTime(a.state_updated_ms)}};
  data["previousState"] = Ordered{{"value", AlarmStateName(old_state)},
                                  {"reason", old_reason},
                                  {"timestamp", IsoTime(old_updated_ms)}};
  data["configuration"] = config;
  Ordered p;
  p["source"] = "aws.cloudwatch";
  p["alarmArn"] = AlarmArn(a.account, a.name);
  p["accountId"] = a.account;
  p["time"] = IsoTime(a.state_updated_ms);
  p["region"] = options_.region;
  p["alarmData"] = data;
  return p.dump();
}

}  // namespace ty::telemetry
