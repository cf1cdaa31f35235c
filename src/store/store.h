// Store: the durable state of Trainyard in one SQLite database (WAL mode)
// under the server's data directory: jobs with their transitions, tags, log
// events and metric samples, and a schema version for migrations.
//
// Thread-safe: every method may be called from any thread (one connection,
// serialised by an internal mutex; SQLite work is short).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "model/training_job.h"

struct sqlite3;

namespace ty::store {

class StatementCache;  // store_internal.h

struct Tag {
  std::string key;
  std::string value;
};

struct LogEvent {
  int64_t seq = 0;     // global, increasing: a cursor for followers
  std::string stream;  // "<job>/algo-<n>-<epoch>"
  int64_t timestamp_ms = 0;
  std::string message;
};

struct MetricSample {
  std::string name;
  int64_t timestamp_ms = 0;
  double value = 0;
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
  // Writes every mutable field of the record (status, transitions, times,
  // metrics, runtime bookkeeping) in one transaction.
  Status UpdateJob(const model::JobRecord& record);
  // kNotFound when the account has no such job.
  Result<model::JobRecord> GetJob(const std::string& account, const std::string& name);
  Result<model::JobRecord> GetJobByArn(const std::string& arn);
  // The job's row id and a counter every UpdateJob increments: (id, version)
  // identifies one state of one job, so a rendering of it can be cached.
  Result<JobVersion> GetJobVersion(const std::string& account, const std::string& name);
  // Removes the job and everything attached to it (tags, logs, metrics).
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

  Status AppendLogEvents(int64_t job_id, const std::vector<LogEvent>& events);
  // Events of a job with seq > after_seq, oldest first, at most limit.
  Result<std::vector<LogEvent>> ReadLogEvents(int64_t job_id, int64_t after_seq, int64_t limit);

  Status AppendMetricSamples(int64_t job_id, const std::vector<MetricSample>& samples);
  Result<std::vector<MetricSample>> ReadMetricSamples(int64_t job_id);

  // Small key/value settings of the server (e.g. the schema's creation time).
  Result<std::optional<std::string>> GetSetting(const std::string& key);
  Status PutSetting(const std::string& key, const std::string& value);

 private:
  explicit Store(sqlite3* db);
  Mutex mu_;
  sqlite3* db_ TY_GUARDED_BY(mu_);  // owned; closed in the destructor
  // Prepared statements keyed by SQL text. Finalised before db_ is closed.
  std::unique_ptr<StatementCache> stmts_ TY_GUARDED_BY(mu_);
};

}  // namespace ty::store
