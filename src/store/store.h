// Store: the durable state of Trainyard in one SQLite database (WAL mode)
// under the server's data directory: jobs with their transitions, tags,
// CloudWatch-style log groups, streams and events (a job's log lines are the
// events of its streams in its account's group /aws/sagemaker/TrainingJobs),
// metric samples, the event outbox, and a schema version for migrations.
//
// Thread-safe: every method may be called from any thread (one connection,
// serialised by an internal mutex; SQLite work is short).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "model/rule_evaluation.h"
#include "model/training_job.h"

struct sqlite3;

namespace ty::store {

class StatementCache;  // store_internal.h

struct Tag {
  std::string key;
  std::string value;
};

// The log group every account's training jobs log into.
inline constexpr const char* kTrainingJobLogGroup = "/aws/sagemaker/TrainingJobs";

// One line of a job's log, as the controller appends it and old readers read it.
struct LogEvent {
  int64_t seq = 0;     // global, increasing: a cursor for followers
  std::string stream;  // "<job>/algo-<n>-<epoch>"
  int64_t timestamp_ms = 0;
  std::string message;
  int64_t ingestion_ms = 0;  // AppendLogEvents: 0 means now
};

// A log group of one account.
struct LogGroupRow {
  int64_t id = 0;
  std::string account;
  std::string name;
  int64_t creation_ms = 0;
  int64_t stored_bytes = 0;  // sum of its streams'
};

// A log stream of one group. Event times are those of its events (absent until one).
struct LogStreamRow {
  int64_t id = 0;  // never reused: a token naming a deleted stream cannot reach a new one
  int64_t group_id = 0;
  std::string name;
  int64_t creation_ms = 0;
  std::optional<int64_t> first_event_ms, last_event_ms, last_ingestion_ms;
  int64_t stored_bytes = 0;  // UTF-8 bytes of its messages
  int64_t last_seq = 0;      // seq of its newest event; 0 when empty
};

// An event of a stream.
struct StreamEvent {
  int64_t seq = 0;  // global, increasing in ingestion order
  int64_t stream_id = 0;
  int64_t timestamp_ms = 0;
  int64_t ingestion_ms = 0;
  std::string message;
  std::string stream;  // its stream's name (ScanGroupEvents only)
};

// A page of a stream's events: seq in (after_seq, before_seq), timestamp in
// [start_ms, end_ms). Oldest-first pages take the first events of the range,
// newest-first pages the last; both come back in seq order. A page stops at
// `limit` events or before its message bytes (+26 per event, CloudWatch's
// accounting) would pass max_bytes; it holds at least one event if any match.
struct StreamRead {
  int64_t stream_id = 0;
  int64_t after_seq = 0;
  int64_t before_seq = INT64_MAX;
  std::optional<int64_t> start_ms, end_ms;
  bool newest_first = false;
  int64_t limit = 10000;
  int64_t max_bytes = 1 << 20;
};

// DescribeLogStreams: a group's streams by name or by last event time (streams
// without events count as time 0, ties by id), after a cursor, at most `limit`.
struct StreamQuery {
  int64_t group_id = 0;
  std::string prefix;  // by name only
  bool by_last_event = false;
  bool descending = false;
  // The last row of the previous page: its name (by name) or (time, id).
  std::optional<std::string> after_name;
  std::optional<std::pair<int64_t, int64_t>> after_time_id;
  int64_t limit = 50;
};

// FilterLogEvents: a group's events in (timestamp, seq) order after the
// cursor (after_ts, after_seq), timestamp in [start_ms, end_ms), at most
// `limit` rows. Stream and pattern filtering is the caller's.
struct GroupScan {
  int64_t group_id = 0;
  std::optional<int64_t> start_ms, end_ms;
  int64_t after_ts = INT64_MIN;
  int64_t after_seq = 0;
  int64_t limit = 1000;
};

struct MetricSample {
  std::string name;
  int64_t timestamp_ms = 0;
  double value = 0;
};

// An event in the durable outbox, waiting for the events dispatcher (events/) to route it.
struct OutboxEvent {
  int64_t seq = 0;           // assigned on insert; increasing
  std::string account;       // whose event bus it is on
  std::string ordering_key;  // events of one key are delivered in seq order (a job's ARN)
  std::string event_json;    // the whole EventBridge event: envelope and detail
  int64_t created_ms = 0;
};

// An EventBridge rule of one account's event bus.
struct RuleRow {
  int64_t id = 0;  // never reused
  std::string account;
  std::string bus = "default";
  std::string name;
  std::string event_pattern;  // JSON text; "" for a schedule-only rule
  std::string schedule;       // "rate(...)" / "cron(...)"; "" for a pattern rule
  std::string state = "ENABLED";
  std::string description;
  std::string role_arn;
  int64_t created_ms = 0;
  std::optional<int64_t> last_fired_ms;  // scheduled rules: when it last fired
};

// A target of a rule: its Id, its ARN and the whole Target as PutTargets took it (JSON).
struct TargetRow {
  int64_t rule_id = 0;
  std::string target_id;
  std::string arn;
  std::string target_json;
};

// One event on its way to one target: pending until delivered (then deleted), or a dead letter
// (dead_ms set) once its retries or age ran out or the target refused it for good.
struct DeliveryRow {
  int64_t id = 0;  // assigned on insert; increasing
  std::string account;
  std::string rule_arn;
  std::string target_id;
  std::string target_arn;
  // Deliveries of one non-empty lane are delivered one at a time in id order (a job's events to
  // one target); "" is a lane of its own.
  std::string lane;
  std::string event_id;
  std::string payload;  // what the target receives (after Input/InputPath/InputTransformer)
  int64_t created_ms = 0;
  int attempts = 0;
  int64_t next_ms = 0;  // when to try (again)
  int max_attempts = 0;
  int64_t max_age_ms = 0;
  std::string last_error;
  std::optional<int64_t> dead_ms;
};

struct JobVersion {
  int64_t id = 0;
  int64_t version = 0;
};

// Filters of ListTrainingJobs, applied in SQL.
struct JobQuery {
  std::string account;
  std::optional<int64_t> created_after_ms, created_before_ms;
  std::optional<int64_t> modified_after_ms, modified_before_ms;
  std::string name_contains;
  std::optional<model::TrainingJobStatus> status;
  enum class SortBy { kCreationTime, kName, kStatus } sort_by = SortBy::kCreationTime;
  bool ascending = false;
  int64_t offset = 0;
  int64_t limit = 100;
};

// DIR/trainyard.db: the database of the data dir DIR.
std::string DatabasePath(const std::string& data_dir);

// Copies the database of `data_dir` to `out_path` through SQLite's online
// backup API: one consistent state, taken while a server may be using the
// database. The copy is a single file (mode 0600) that passed integrity_check;
// it is written to `out_path`.partial and renamed, so `out_path` is either the
// whole copy or untouched. kNotFound when there is no database; I/O errors as
// kIoError; a damaged source as kFailedPrecondition.
Status BackupDatabase(const std::string& data_dir, const std::string& out_path);

class Store {
 public:
  // Opens (creating if needed) DIR/trainyard.db, checks it (PRAGMA quick_check)
  // and migrates the schema. The database files are made mode 0600.
  // kFailedPrecondition naming the file and what to do when it is damaged
  // (not a database, or failing the check).
  static Result<std::unique_ptr<Store>> Open(const std::string& data_dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Inserts a new job; kAlreadyExists if (account, name) is taken.
  // Sets record->id.
  Status InsertJob(model::JobRecord* record);
  // The same, with the job's tags and the outbox events reporting its creation, all in one
  // transaction.
  Status InsertJob(model::JobRecord* record, const std::vector<Tag>& tags,
                   const std::vector<OutboxEvent>& events);
  // Writes every mutable field of the record (status, transitions, times,
  // metrics, runtime bookkeeping) in one transaction.
  Status UpdateJob(const model::JobRecord& record);
  // The same, and appends `events` to the outbox in the same transaction: the change and the
  // events that report it are both stored or neither is.
  Status UpdateJob(const model::JobRecord& record, const std::vector<OutboxEvent>& events);

  // ---- The event outbox (at-least-once delivery of events that survives a crash) ----
  // Appends events (their seq is assigned) in one transaction.
  Status AppendOutbox(const std::vector<OutboxEvent>& events);
  // Events with seq > after_seq, oldest first, at most limit.
  Result<std::vector<OutboxEvent>> ReadOutbox(int64_t after_seq, int64_t limit);
  // Removes one event once it is routed (absent: Ok).
  Status DeleteOutbox(int64_t seq);
  // kNotFound when the account has no such job.
  Result<model::JobRecord> GetJob(const std::string& account, const std::string& name);
  Result<model::JobRecord> GetJobByArn(const std::string& arn);
  // The job's row id and a counter every UpdateJob increments: (id, version)
  // identifies one state of one job, so a rendering of it can be cached.
  Result<JobVersion> GetJobVersion(const std::string& account, const std::string& name);
  // Removes the job and what is attached to it (tags, metrics). Its log streams
  // stay in the log group, no longer tied to the job (see AppendLogEvents).
  Status DeleteJob(const std::string& account, const std::string& name);
  // Jobs matching the query, in its order, at most query.limit of them.
  Result<std::vector<model::JobRecord>> ListJobs(const JobQuery& query);
  // Every job of an account (for Search, which filters in memory).
  Result<std::vector<model::JobRecord>> AllJobs(const std::string& account);
  // How many jobs the database holds, over every account.
  Result<int64_t> CountJobs();
  // (status, number of jobs) over every account, for the server's own metrics.
  Result<std::vector<std::pair<std::string, int64_t>>> CountJobsByStatus();
  // Jobs whose status is InProgress or Stopping (to re-adopt after restart).
  Result<std::vector<model::JobRecord>> ActiveJobs();

  // Tags: keyed by resource ARN. SetTags adds or overwrites by key.
  Status SetTags(const std::string& arn, const std::vector<Tag>& tags);
  Status DeleteTags(const std::string& arn, const std::vector<std::string>& keys);
  Result<std::vector<Tag>> GetTags(const std::string& arn);

  // Appends a job's log lines to its account's group kTrainingJobLogGroup,
  // each to its stream (created on first use, and tied to the job). A stream
  // name that is not under "<job>/" is put under it ("" -> "<job>/trainyard"),
  // so a prefix "<job>/" finds every stream of the job. kNotFound: no such job.
  // The streams and their events outlive the job (as in CloudWatch): only
  // DeleteLogGroup / DeleteLogStream remove them.
  Status AppendLogEvents(int64_t job_id, const std::vector<LogEvent>& events);
  // Events of the job's streams with seq > after_seq, oldest first, at most
  // limit. Empty once the job is deleted (its streams are then no longer its).
  Result<std::vector<LogEvent>> ReadLogEvents(int64_t job_id, int64_t after_seq, int64_t limit);

  // ---- CloudWatch Logs: groups, streams and events, per account ----
  // kAlreadyExists when the account has the group.
  Result<LogGroupRow> CreateLogGroup(const std::string& account, const std::string& name,
                                     int64_t now_ms);
  // kNotFound when the account has no such group.
  Result<LogGroupRow> GetLogGroup(const std::string& account, const std::string& name);
  // The account's groups by name, names starting with `prefix` and holding
  // `contains` (case-insensitive; empty: any), name > after_name, at most limit.
  Result<std::vector<LogGroupRow>> ListLogGroups(const std::string& account,
                                                 const std::string& prefix,
                                                 const std::string& contains,
                                                 const std::string& after_name, int64_t limit);
  // Removes the group with its streams and events. kNotFound: no such group.
  Status DeleteLogGroup(const std::string& account, const std::string& name);
  // kAlreadyExists when the group has the stream; kNotFound when the group is gone.
  Result<LogStreamRow> CreateLogStream(int64_t group_id, const std::string& name, int64_t now_ms);
  // kNotFound when the group has no such stream.
  Result<LogStreamRow> GetLogStream(int64_t group_id, const std::string& name);
  Result<std::vector<LogStreamRow>> ListLogStreams(const StreamQuery& query);
  // Removes the stream and its events. kNotFound: no such stream.
  Status DeleteLogStream(int64_t group_id, const std::string& name);
  // Appends events (timestamp_ms, message) to a stream in order, all with
  // ingestion time ingest_ms, and updates the stream's times and bytes.
  // kNotFound when the stream is gone.
  Status PutStreamEvents(int64_t stream_id,
                         const std::vector<std::pair<int64_t, std::string>>& events,
                         int64_t ingest_ms);
  Result<std::vector<StreamEvent>> ReadStreamEvents(const StreamRead& read);
  Result<std::vector<StreamEvent>> ScanGroupEvents(const GroupScan& scan);

  // ---- EventBridge: rules, targets and deliveries (event_store.cc) ----
  // Creates the rule or updates the one of (account, bus, name), keeping its targets and creation
  // time; sets row->id and row->created_ms (now_ms for a new rule).
  Status PutRule(RuleRow* row, int64_t now_ms);
  // kNotFound when the account has no such rule.
  Result<RuleRow> GetRule(const std::string& account, const std::string& bus,
                          const std::string& name);
  // The bus's rules by name, names starting with `prefix`, name > after_name, at most limit.
  Result<std::vector<RuleRow>> ListRules(const std::string& account, const std::string& bus,
                                         const std::string& prefix, const std::string& after_name,
                                         int64_t limit);
  // The account's ENABLED rules with an event pattern, with their targets (for routing).
  Result<std::vector<std::pair<RuleRow, std::vector<TargetRow>>>> EnabledPatternRules(
      const std::string& account);
  // Every account's ENABLED scheduled rules.
  Result<std::vector<RuleRow>> EnabledScheduledRules();
  // kNotFound when the account has no such rule.
  Status SetRuleState(const std::string& account, const std::string& bus, const std::string& name,
                      const std::string& state);
  // Ok when absent (DeleteRule is idempotent); kFailedPrecondition while it has targets.
  Status DeleteRule(const std::string& account, const std::string& bus, const std::string& name);
  // Adds or replaces targets by Id; kNotFound when the rule is gone.
  Status PutTargets(int64_t rule_id, const std::vector<TargetRow>& targets);
  Status RemoveTargets(int64_t rule_id, const std::vector<std::string>& ids);
  // The rule's targets in the order they were first put, Id > after_id, at most limit.
  Result<std::vector<TargetRow>> ListTargets(int64_t rule_id, const std::string& after_id,
                                             int64_t limit);
  // Stores the deliveries of outbox event `seq` (ids assigned) and removes the event, in one
  // transaction: routed exactly once, even across a crash.
  Status RouteOutboxEvent(int64_t seq, std::vector<DeliveryRow>* deliveries);
  // Stores the deliveries of a scheduled rule's firing and records it fired at fired_ms.
  Status FireScheduledRule(int64_t rule_id, int64_t fired_ms, std::vector<DeliveryRow>* deliveries);
  // Deliveries still to make, oldest first.
  Result<std::vector<DeliveryRow>> PendingDeliveries();
  Status DeleteDelivery(int64_t id);
  // Records a failed attempt: the next try at next_ms.
  Status RetryDelivery(int64_t id, int attempts, int64_t next_ms, const std::string& error);
  // Makes it a dead letter; the account keeps its newest `keep` dead letters.
  Status BuryDelivery(int64_t id, int attempts, int64_t dead_ms, const std::string& error,
                      int64_t keep);
  // The account's dead letters, newest first, id < before_id (0: from the newest), at most limit.
  Result<std::vector<DeliveryRow>> DeadLetters(const std::string& account, int64_t before_id,
                                               int64_t limit);

  // ---- Rule evaluations of jobs' debugger and profiler rules (rule_store.cc) ----
  // Stores the rows that are not stored yet (by job, kind and configuration name); the others
  // are left as they are.
  Status InsertRuleEvaluations(const std::vector<model::RuleEvaluation>& rows);
  // Writes the row's mutable fields (status, details, times, findings, progress) and appends
  // `events` to the outbox, in one transaction. With `describe_changed` the job's version is
  // bumped too (its DescribeTrainingJob rendering changed). kNotFound when the row is gone (the
  // job was deleted).
  Status UpdateRuleEvaluation(const model::RuleEvaluation& row,
                              const std::vector<OutboxEvent>& events, bool describe_changed);
  // The job's rows (every kind), in insertion order.
  Result<std::vector<model::RuleEvaluation>> RuleEvaluations(const std::string& job_arn);
  // Rows still InProgress or Stopping (to restart after a server restart).
  Result<std::vector<model::RuleEvaluation>> UnfinishedRuleEvaluations();
  // The row whose processing job is named `evaluation_name` in `account`; kNotFound otherwise.
  Result<model::RuleEvaluation> RuleEvaluationByName(const std::string& account,
                                                     const std::string& evaluation_name);

  Status AppendMetricSamples(int64_t job_id, const std::vector<MetricSample>& samples);
  Result<std::vector<MetricSample>> ReadMetricSamples(int64_t job_id);

  // Small key/value settings of the server (e.g. the schema's creation time).
  Result<std::optional<std::string>> GetSetting(const std::string& key);
  Status PutSetting(const std::string& key, const std::string& value);

 private:
  explicit Store(sqlite3* db);
  // Finds or creates (account, group) and (group, stream); REQUIRES: mu_ held
  // inside a write transaction.
  Result<int64_t> GroupIdLocked(const std::string& account, const std::string& name, int64_t now_ms)
      TY_REQUIRES(mu_);
  Status AppendOutboxLocked(const std::vector<OutboxEvent>& events) TY_REQUIRES(mu_);
  Status AppendLocked(int64_t stream_id, const std::vector<const LogEvent*>& events,
                      int64_t ingest_ms) TY_REQUIRES(mu_);
  Mutex mu_;
  sqlite3* db_ TY_GUARDED_BY(mu_);  // owned; closed in the destructor
  // Prepared statements keyed by SQL text. Finalised before db_ is closed.
  std::unique_ptr<StatementCache> stmts_ TY_GUARDED_BY(mu_);
};

}  // namespace ty::store
