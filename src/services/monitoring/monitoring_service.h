// MonitoringService: CloudWatch metrics (SigV4 service `monitoring`, X-Amz-Target prefix
// GraniteServiceVersion20100801, validated against src/api/data/cloudwatch-model.json) over the
// MetricStore (telemetry/metric_store.h):
//   PutMetricData        Value, Values/Counts or StatisticValues; Timestamp (two weeks back to
//                        two hours ahead), StorageResolution 1 or 60; any namespace but AWS/...
//   GetMetricData        MetricStat queries (Average, Sum, Minimum, Maximum, SampleCount, pNN),
//                        metric math (services/monitoring/metric_math.h), ReturnData, Label,
//                        ScanBy, MaxDatapoints and NextToken
//   GetMetricStatistics  Statistics or ExtendedStatistics, Period, Unit
//   ListMetrics          Namespace, MetricName and Dimensions filters, RecentlyActive, NextToken
// and metric alarms over the AlarmManager (telemetry/alarm_manager.h), when one is given:
//   PutMetricAlarm       Statistic or ExtendedStatistic; Period 10, 20, 30 or n×60; M of N;
//                        TreatMissingData; actions to SNS topics and Lambda functions of the
//                        caller's account (5 per state); no metric math or anomaly bands
//   DescribeAlarms       AlarmNames, AlarmNamePrefix, StateValue, ActionPrefix, AlarmTypes,
//                        MaxRecords (≤ 100), NextToken
//   DescribeAlarmsForMetric, DeleteAlarms (unknown names are skipped), SetAlarmState,
//   EnableAlarmActions, DisableAlarmActions, DescribeAlarmHistory
// Every call sees only the caller's account. Bounds: 1,000 datums per put, 150 values per datum,
// 500 queries per GetMetricData, 100,800 datapoints per answer (MaxDatapoints), 1,440 per
// GetMetricStatistics, 1,000,000 period buckets per GetMetricData; a NextToken is bound to its
// account and request.
//
// Thread-safe: Call may run on any number of HTTP workers at once.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "api/service.h"
#include "common/clock.h"
#include "telemetry/alarm_manager.h"
#include "telemetry/metric_store.h"

namespace ty::services {

class MonitoringService final : public api::Service {
 public:
  // `alarms` may be null: the alarm operations then answer InvalidAction.
  MonitoringService(telemetry::MetricStore* store, const Clock* clock,
                    telemetry::AlarmManager* alarms = nullptr);

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  Outcome PutMetricData(const std::string& account, const Json& in);
  Outcome GetMetricData(const std::string& account, const Json& in);
  Outcome GetMetricStatistics(const std::string& account, const Json& in);
  Outcome ListMetrics(const std::string& account, const Json& in);
  // services/monitoring/alarm_operations.cc
  Outcome PutMetricAlarm(const std::string& account, const Json& in);
  Outcome DescribeAlarms(const std::string& account, const Json& in);
  Outcome DescribeAlarmsForMetric(const std::string& account, const Json& in);
  Outcome DeleteAlarms(const std::string& account, const Json& in);
  Outcome SetAlarmState(const std::string& account, const Json& in);
  Outcome EnableAlarmActions(const std::string& account, const Json& in);
  Outcome DisableAlarmActions(const std::string& account, const Json& in);
  Outcome DescribeAlarmHistory(const std::string& account, const Json& in);

  const std::shared_ptr<const api::ServiceModel> model_;
  telemetry::MetricStore* const store_;
  const Clock* const clock_;
  telemetry::AlarmManager* const alarms_;
};

}  // namespace ty::services
