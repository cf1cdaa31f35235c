// AlarmManager: CloudWatch metric alarms of every account — their configuration, state and
// history — evaluated on the injected clock against the MetricStore, with actions sent to SNS
// topics and Lambda functions through the delivery seam (control/delivery.h) on a
// DeliveryQueue's workers, never on the evaluating thread or an HTTP worker.
//
// Evaluation: every 10 s for high-resolution periods (10, 20, 30 s), every minute (on the
// minute) for periods that are multiples of 60 s, over the sliding window of the newest
// EvaluationPeriods + 2 periods ending at the evaluation time (telemetry/alarm_evaluation.h
// has the semantics). A new alarm starts in INSUFFICIENT_DATA and is evaluated at once; an
// updated alarm keeps its state.
//
// Actions: only on a change of state and only when ActionsEnabled, to the ARNs of the new
// state's list: an SNS topic gets CloudWatch's alarm message (aws-services.md §4.4, Subject
// `ALARM: "<name>" in <Region long name>`), a Lambda function the direct-action payload of
// §4.6. Each outcome is an "Action" history item; each change a "StateUpdate" item; each put a
// "ConfigurationUpdate" item. History keeps at most max_history per account for two weeks.
//
// Persistence: <data_dir>/alarms.json (0600, rewritten atomically after each change), so
// alarms, states and history survive a restart.
//
// Thread-safe: every method may be called from any thread; one mutex guards the alarms and is
// never held across the metric store, a delivery or the file write.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/delivery.h"
#include "control/delivery_queue.h"
#include "telemetry/alarm_evaluation.h"
#include "telemetry/metric_store.h"

namespace ty::telemetry {

struct MetricAlarm {
  std::string account;
  std::string name;
  std::string description;
  bool actions_enabled = true;
  std::vector<std::string> ok_actions, alarm_actions, insufficient_data_actions;
  std::string ns, metric_name;
  std::vector<Dimension> dimensions;
  std::string statistic;           // one of statistic / extended_statistic is set
  std::string extended_statistic;  // pNN
  int64_t period_s = 60;
  std::string unit;  // "" = any
  AlarmRule rule;
  std::string evaluate_low_sample_count_percentile;
  // State.
  AlarmState state = AlarmState::kInsufficientData;
  std::string state_reason = "Unchecked: Initial alarm creation";
  std::string state_reason_data;
  int64_t state_updated_ms = 0;
  int64_t state_transitioned_ms = 0;
  int64_t config_updated_ms = 0;
};

struct AlarmHistoryItem {
  std::string account, alarm_name;
  std::string type;  // ConfigurationUpdate | StateUpdate | Action
  std::string summary;
  std::string data;  // JSON text
  int64_t timestamp_ms = 0;
};

struct AlarmManagerOptions {
  std::string data_dir;  // "" = in memory only (tests)
  std::string region = "us-east-1";
  size_t max_alarms_per_account = 5000;
  size_t max_history_per_account = 2000;
};

class AlarmManager {
 public:
  // Loads <data_dir>/alarms.json when present. `deliveries` and `queue` may be null (no
  // actions). REQUIRES: the pointees outlive the manager.
  static Result<std::unique_ptr<AlarmManager>> Open(AlarmManagerOptions options,
                                                    MetricStore* metrics,
                                                    control::Deliverer* deliveries,
                                                    control::DeliveryQueue* queue,
                                                    const Clock* clock);
  ~AlarmManager();
  AlarmManager(const AlarmManager&) = delete;
  AlarmManager& operator=(const AlarmManager&) = delete;

  // Starts the evaluation thread (every 10 s of the clock). Without it, tests call
  // EvaluateDue.
  void Start();
  // Stops the evaluation thread (idempotent); the destructor does too.
  void Stop();

  // Creates or updates (keeping its state) `alarm` in alarm.account, then evaluates it.
  // kResourceExhausted past max_alarms_per_account.
  Status Put(MetricAlarm alarm);
  std::vector<MetricAlarm> List(const std::string& account) const;
  std::optional<MetricAlarm> Get(const std::string& account, const std::string& name) const;
  // Deletes the named alarms that exist; returns the names that did not.
  std::vector<std::string> Delete(const std::string& account,
                                  const std::vector<std::string>& names);
  // SetAlarmState: kNotFound when there is no such alarm. Actions run if the state changes.
  Status SetState(const std::string& account, const std::string& name, AlarmState state,
                  const std::string& reason, const std::string& reason_data);
  void SetActionsEnabled(const std::string& account, const std::vector<std::string>& names,
                         bool enabled);
  // Newest first.
  std::vector<AlarmHistoryItem> History(const std::string& account) const;

  // Evaluates every alarm due at `now` (see the header comment): what the thread does on
  // each 10-second tick.
  void EvaluateDue(TimePoint now);

  std::string AlarmArn(const std::string& account, const std::string& name) const;
  const AlarmManagerOptions& options() const { return options_; }

  // The message and payloads actions send, exposed for tests.
  std::string SnsMessage(const MetricAlarm& alarm, AlarmState old_state) const;
  std::string SnsSubject(const MetricAlarm& alarm) const;
  std::string LambdaPayload(const MetricAlarm& alarm, AlarmState old_state,
                            const std::string& old_reason, int64_t old_updated_ms) const;

 private:
  AlarmManager(AlarmManagerOptions options, MetricStore* metrics, control::Deliverer* deliveries,
               control::DeliveryQueue* queue, const Clock* clock);
  // The verdict of `alarm` at now_ms (reads the metric store; no lock held).
  AlarmVerdict Evaluate(const MetricAlarm& alarm, int64_t now_ms) const;
  // Applies a new state under mu_; returns the alarm before the change when it changed.
  struct Change {
    MetricAlarm after;
    AlarmState old_state;
    std::string old_reason;
    int64_t old_updated_ms;
  };
  std::optional<Change> ApplyState(const std::string& account, const std::string& name,
                                   AlarmState state, const std::string& reason,
                                   const std::string& reason_data, int64_t now_ms);
  void RunActions(const Change& change);
  void AddHistory(AlarmHistoryItem item) TY_REQUIRES(mu_);
  void Persist();
  Status Load();

  const AlarmManagerOptions options_;
  MetricStore* const metrics_;
  control::Deliverer* const deliveries_;
  control::DeliveryQueue* const queue_;
  const Clock* const clock_;

  mutable Mutex mu_;
  // account -> name -> alarm
  std::map<std::string, std::map<std::string, MetricAlarm>> alarms_ TY_GUARDED_BY(mu_);
  std::map<std::string, std::deque<AlarmHistoryItem>> history_ TY_GUARDED_BY(mu_);
  int64_t version_ TY_GUARDED_BY(mu_) = 0;

  Mutex file_mu_;  // orders writes of alarms.json; held across the write, never with mu_
  int64_t written_version_ TY_GUARDED_BY(file_mu_) = 0;

  Mutex thread_mu_;
  CondVar thread_cv_;
  bool stop_ TY_GUARDED_BY(thread_mu_) = false;
  std::thread thread_;
};

// "US East (N. Virginia)" for "us-east-1"; the code itself for a region not known.
std::string RegionLongName(const std::string& region);

}  // namespace ty::telemetry
