#include "store/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <array>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "model/serialization.h"
#include "store/store_internal.h"

namespace ty::store {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return Status::Ok();
  std::string msg = std::string(what) + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errcode(db) == rc)
    msg += std::string(" (") + sqlite3_errmsg(db) + ")";
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return AlreadyExists(std::move(msg));
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return NotFound(std::move(msg));
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return InvalidArgument(std::move(msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    // A full disk is the operator's to fix and passes: callers retry (agents keep their lines).
    case SQLITE_FULL:
      return Unavailable(std::move(msg));
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_NOLFS:
      return IoError(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::string what = err != nullptr ? err : sql;
  sqlite3_free(err);
  return SqliteStatus(db, rc, what);
}

namespace {

using model::JobRecord;

// Schema migrations, in order: entry i takes the schema from version i to i+1.
// Append only; never edit a released entry.
constexpr std::array<const char*, 8> kMigrations = {
    // v1
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  name TEXT NOT NULL,
  arn TEXT NOT NULL UNIQUE COLLATE NOCASE,
  request_json TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  status TEXT NOT NULL,
  secondary TEXT NOT NULL,
  transitions_json TEXT NOT NULL,
  failure_reason TEXT NOT NULL,
  model_artifacts TEXT NOT NULL,
  creation_ms INTEGER NOT NULL,
  last_modified_ms INTEGER NOT NULL,
  start_ms INTEGER,
  end_ms INTEGER,
  training_s INTEGER,
  billable_s INTEGER,
  final_metrics_json TEXT NOT NULL,
  stop_reason TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  agent_token TEXT NOT NULL,
  agent_pid INTEGER NOT NULL,
  agent_start_ticks INTEGER NOT NULL,
  instance_dir TEXT NOT NULL,
  UNIQUE (account, name)
);
CREATE INDEX jobs_account_creation ON jobs (account, creation_ms);
CREATE INDEX jobs_account_modified ON jobs (account, last_modified_ms);
CREATE INDEX jobs_status ON jobs (status);
CREATE TABLE tags (
  arn TEXT NOT NULL COLLATE NOCASE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (arn, key)
);
CREATE TABLE log_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  stream TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX log_events_job_seq ON log_events (job_id, seq);
CREATE TABLE metric_samples (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  value REAL NOT NULL
);
CREATE INDEX metric_samples_job ON metric_samples (job_id);
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
    // v2: a counter bumped by every UpdateJob, so readers can cache renderings of a job.
    R"sql(ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;)sql",
    // v3: scheduling and spot bookkeeping across attempts (model::RuntimeToJson).
    R"sql(ALTER TABLE jobs ADD COLUMN runtime_json TEXT NOT NULL DEFAULT '{}';)sql",
    // v4: CloudWatch Logs. Job log lines become events of streams of the account's group
    // /aws/sagemaker/TrainingJobs (keeping their seq, so old cursors stay valid); events gain an
    // ingestion time (their timestamp, for lines that predate it). Streams name their job
    // (SET NULL: the log outlives the job). events.group_id is denormalised so a group's events
    // are read by time from one index (FilterLogEvents).
    R"sql(
CREATE TABLE log_groups (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  name TEXT NOT NULL,
  creation_ms INTEGER NOT NULL,
  UNIQUE (account, name)
);
CREATE TABLE log_streams (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id INTEGER NOT NULL REFERENCES log_groups (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  job_id INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
  creation_ms INTEGER NOT NULL,
  first_event_ms INTEGER,
  last_event_ms INTEGER,
  last_ingestion_ms INTEGER,
  stored_bytes INTEGER NOT NULL DEFAULT 0,
  last_seq INTEGER NOT NULL DEFAULT 0,
  UNIQUE (group_id, name)
);
CREATE INDEX log_streams_job ON log_streams (job_id);
CREATE TABLE stream_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id INTEGER NOT NULL REFERENCES log_streams (id) ON DELETE CASCADE,
  group_id INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  ingest_ms INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE TEMP TABLE v4_lines AS
  SELECT e.seq AS seq, j.account AS account, e.job_id AS job_id, e.ts_ms AS ts_ms,
         e.message AS message,
         CASE WHEN e.stream = '' THEN j.name || '/trainyard'
              WHEN substr(e.stream, 1, length(j.name) + 1) = j.name || '/' THEN e.stream
              ELSE j.name || '/' || e.stream END AS stream
  FROM log_events e JOIN jobs j ON j.id = e.job_id;
INSERT INTO log_groups (account, name, creation_ms)
  SELECT account, '/aws/sagemaker/TrainingJobs', MIN(ts_ms) FROM v4_lines GROUP BY account;
INSERT INTO log_streams (group_id, name, job_id, creation_ms, first_event_ms, last_event_ms,
                         last_ingestion_ms, stored_bytes, last_seq)
  SELECT g.id, l.stream, MIN(l.job_id), MIN(l.ts_ms), MIN(l.ts_ms), MAX(l.ts_ms), MAX(l.ts_ms),
         SUM(length(CAST(l.message AS BLOB))), MAX(l.seq)
  FROM v4_lines l JOIN log_groups g ON g.account = l.account
  GROUP BY g.id, l.stream;
INSERT INTO stream_events (seq, stream_id, group_id, ts_ms, ingest_ms, message)
  SELECT l.seq, s.id, s.group_id, l.ts_ms, l.ts_ms, l.message
  FROM v4_lines l JOIN log_groups g ON g.account = l.account
                  JOIN log_streams s ON s.group_id = g.id AND s.name = l.stream
  ORDER BY l.seq;
DROP TABLE v4_lines;
DROP TABLE log_events;
CREATE INDEX stream_events_stream ON stream_events (stream_id);
CREATE INDEX stream_events_group_time ON stream_events (group_id, ts_ms);
)sql",
    // v5: the event outbox. An event is written in the transaction of the change it reports
    // (UpdateJob), so a crash can lose neither; the dispatcher deletes it once routed.
    R"sql(
CREATE TABLE event_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  ordering_key TEXT NOT NULL,
  event_json TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
)sql",
    // v6: EventBridge rules and targets of each account's default bus, and the deliveries of
    // routed events to targets (pending, or dead letters once dead_ms is set).
    R"sql(
CREATE TABLE event_rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  bus TEXT NOT NULL,
  name TEXT NOT NULL,
  event_pattern TEXT NOT NULL,
  schedule TEXT NOT NULL,
  state TEXT NOT NULL,
  description TEXT NOT NULL,
  role_arn TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  last_fired_ms INTEGER,
  UNIQUE (account, bus, name)
);
CREATE TABLE event_targets (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  rule_id INTEGER NOT NULL REFERENCES event_rules (id) ON DELETE CASCADE,
  target_id TEXT NOT NULL,
  arn TEXT NOT NULL,
  target_json TEXT NOT NULL,
  UNIQUE (rule_id, target_id)
);
CREATE TABLE event_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  rule_arn TEXT NOT NULL,
  target_id TEXT NOT NULL,
  target_arn TEXT NOT NULL,
  lane TEXT NOT NULL,
  event_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  next_ms INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  max_age_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  dead_ms INTEGER
);
CREATE INDEX event_deliveries_dead ON event_deliveries (account, dead_ms, id);
)sql",
    // v7: the rule evaluations of jobs' debugger and profiler rules (debugger/rule_manager). They
    // are looked up by job and, for DescribeProcessingJob, by (account, processing-job name).
    R"sql(
CREATE TABLE rule_evaluations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_arn TEXT NOT NULL COLLATE NOCASE,
  account TEXT NOT NULL,
  kind TEXT NOT NULL,
  configuration_name TEXT NOT NULL,
  evaluation_name TEXT NOT NULL,
  evaluation_arn TEXT NOT NULL,
  status TEXT NOT NULL,
  details TEXT NOT NULL,
  creation_ms INTEGER NOT NULL,
  last_modified_ms INTEGER NOT NULL,
  end_ms INTEGER,
  fired_step INTEGER,
  findings_json TEXT NOT NULL,
  steps_evaluated INTEGER NOT NULL,
  last_step INTEGER,
  UNIQUE (job_arn, kind, configuration_name)
);
CREATE UNIQUE INDEX rule_evaluations_name ON rule_evaluations (account, evaluation_name);
CREATE INDEX rule_evaluations_status ON rule_evaluations (status);
)sql",
    // v8: the launcher's opaque handle of a job's current attempt (launch/launcher.h) replaces
    // the agent pids. A previous server's running attempt (agent_pid, agent_start_ticks and the
    // other instances' [pid, ticks] in runtime_json.other_agents, pid 0 once exited) becomes the
    // LocalLauncher handle "local:<pid>/<ticks>,<pid>/<ticks>,..." (algo-1 first, 0/0 for an
    // exited instance) plus runtime_json.instances_exited. agent_pid and agent_start_ticks stay
    // (SQLite keeps columns) and are 0 from now on.
    R"sql(
ALTER TABLE jobs ADD COLUMN attempt_handle TEXT NOT NULL DEFAULT '';
UPDATE jobs SET
  attempt_handle = 'local:' || agent_pid || '/' || agent_start_ticks || COALESCE(
    (SELECT group_concat(',' || json_extract(value, '$[0]') || '/' || json_extract(value, '$[1]'),
                         '')
     FROM json_each(jobs.runtime_json, '$.other_agents')), ''),
  runtime_json = json_set(runtime_json, '$.instances_exited', json('[false' || COALESCE(
    (SELECT group_concat(CASE WHEN json_extract(value, '$[0]') = 0 THEN ',true' ELSE ',false' END,
                         '')
     FROM json_each(jobs.runtime_json, '$.other_agents')), '') || ']'))
WHERE agent_pid != 0 AND json_valid(runtime_json);
UPDATE jobs SET runtime_json = json_remove(runtime_json, '$.other_agents'), agent_pid = 0,
  agent_start_ticks = 0 WHERE json_valid(runtime_json);
)sql",
};

// Used only while opening, before the statement cache exists.
Result<int64_t> ReadSchemaVersion(sqlite3* db) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &raw, nullptr);
  StmtPtr stmt(raw);
  TY_RETURN_IF_ERROR(SqliteStatus(db, rc, "read schema version"));
  rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return int64_t{0};
  if (rc != SQLITE_ROW) return SqliteStatus(db, rc, "read schema version");
  return static_cast<int64_t>(sqlite3_column_int64(stmt.get(), 0));
}

Status Migrate(sqlite3* db) {
  TY_RETURN_IF_ERROR(
      Exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  const auto target = static_cast<int64_t>(kMigrations.size());
  for (int64_t next = 0; next < target; ++next) {
    // IMMEDIATE takes the write lock up front, so two processes opening the
    // same directory cannot both apply a step; the version is re-read inside.
    TY_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
    auto version = ReadSchemaVersion(db);
    Status st = version.status();
    if (st.ok() && *version > target) {
      st = FailedPrecondition("database schema version " + std::to_string(*version) +
                              " is newer than this server supports (" + std::to_string(target) +
                              ")");
    }
    if (st.ok() && *version == next) {
      st = Exec(db, kMigrations[static_cast<size_t>(next)]);
      if (st.ok()) {
        std::string set = "DELETE FROM schema_version; INSERT INTO schema_version VALUES (" +
                          std::to_string(next + 1) + ")";
        st = Exec(db, set.c_str());
      }
    }
    if (!st.ok()) {
      (void)Exec(db, "ROLLBACK");
      return st.WithPrefix("migrating schema to v" + std::to_string(next + 1));
    }
    TY_RETURN_IF_ERROR(Exec(db, "COMMIT"));
  }
  return Status::Ok();
}

constexpr const char* kJobColumns =
    "id, account, arn, request_json, spec_json, status, secondary, transitions_json, "
    "failure_reason, model_artifacts, creation_ms, last_modified_ms, start_ms, end_ms, "
    "training_s, billable_s, final_metrics_json, stop_reason, attempt, agent_token, "
    "attempt_handle, instance_dir, runtime_json";

std::string SelectJobs(const std::string& where_and_order) {
  return std::string("SELECT ") + kJobColumns + " FROM jobs " + where_and_order;
}

std::optional<int64_t> OptMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return ToEpochMillis(*t);
}

std::optional<TimePoint> OptTime(const std::optional<int64_t>& ms) {
  if (!ms) return std::nullopt;
  return FromEpochMillis(*ms);
}

Result<nlohmann::json> ParseColumn(const std::string& text, const char* column) {
  auto j = ParseJson(text);
  if (!j.ok()) return Internal(std::string("corrupt JSON in jobs.") + column);
  return j;
}

// Reads the columns of kJobColumns, in that order.
Result<JobRecord> RowToRecord(const ScopedStmt& s) {
  JobRecord r;
  r.id = s.Int(0);
  r.account = s.Text(1);
  r.arn = s.Text(2);
  r.request_json = s.Text(3);
  TY_ASSIGN_OR_RETURN(auto spec_json, ParseColumn(s.Text(4), "spec_json"));
  TY_ASSIGN_OR_RETURN(r.spec, model::SpecFromJson(spec_json));
  auto status = model::ParseTrainingJobStatus(s.Text(5));
  auto secondary = model::ParseSecondaryStatus(s.Text(6));
  auto stop_reason = model::ParseStopReason(s.Text(17));
  if (!status || !secondary || !stop_reason) {
    return Internal("corrupt status in job row " + std::to_string(r.id));
  }
  r.status = *status;
  r.secondary = *secondary;
  r.stop_reason = *stop_reason;
  TY_ASSIGN_OR_RETURN(auto transitions_json, ParseColumn(s.Text(7), "transitions_json"));
  TY_ASSIGN_OR_RETURN(r.transitions, model::TransitionsFromJson(transitions_json));
  r.failure_reason = s.Text(8);
  r.model_artifacts = s.Text(9);
  r.creation_time = FromEpochMillis(s.Int(10));
  r.last_modified_time = FromEpochMillis(s.Int(11));
  r.training_start_time = OptTime(s.OptInt(12));
  r.training_end_time = OptTime(s.OptInt(13));
  r.training_time_seconds = s.OptInt(14);
  r.billable_time_seconds = s.OptInt(15);
  TY_ASSIGN_OR_RETURN(auto metrics_json, ParseColumn(s.Text(16), "final_metrics_json"));
  TY_ASSIGN_OR_RETURN(r.final_metrics, model::FinalMetricsFromJson(metrics_json));
  r.attempt = static_cast<int>(s.Int(18));
  r.agent_token = s.Text(19);
  r.attempt_handle = s.Text(20);
  r.instance_dir = s.Text(21);
  TY_ASSIGN_OR_RETURN(auto runtime_json, ParseColumn(s.Text(22), "runtime_json"));
  TY_RETURN_IF_ERROR(model::RuntimeFromJson(runtime_json, &r));
  return r;
}

Result<std::vector<JobRecord>> ReadAll(ScopedStmt& s) {
  std::vector<JobRecord> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    TY_ASSIGN_OR_RETURN(auto r, RowToRecord(s));
    out.push_back(std::move(r));
  }
  return out;
}

Result<JobRecord> ReadOne(ScopedStmt& s, const std::string& what) {
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFound(what);
  return RowToRecord(s);
}

// Binds the mutable fields shared by INSERT and UPDATE at parameters
// first..first+18, in the order of kMutableColumns.
constexpr const char* kMutableColumns =
    "request_json, spec_json, status, secondary, transitions_json, failure_reason, "
    "model_artifacts, last_modified_ms, start_ms, end_ms, training_s, billable_s, "
    "final_metrics_json, stop_reason, attempt, agent_token, attempt_handle, instance_dir, "
    "runtime_json";
constexpr int kMutableCount = 19;

void BindMutable(ScopedStmt& s, int first, const JobRecord& r) {
  int i = first;
  s.Bind(i++, r.request_json);
  s.Bind(i++, model::SpecToJson(r.spec).dump());
  s.Bind(i++, model::Name(r.status));
  s.Bind(i++, model::Name(r.secondary));
  s.Bind(i++, model::TransitionsToJson(r.transitions).dump());
  s.Bind(i++, r.failure_reason);
  s.Bind(i++, r.model_artifacts);
  s.Bind(i++, ToEpochMillis(r.last_modified_time));
  s.Bind(i++, OptMillis(r.training_start_time));
  s.Bind(i++, OptMillis(r.training_end_time));
  s.Bind(i++, r.training_time_seconds);
  s.Bind(i++, r.billable_time_seconds);
  s.Bind(i++, model::FinalMetricsToJson(r.final_metrics).dump());
  s.Bind(i++, model::Name(r.stop_reason));
  s.Bind(i++, static_cast<int64_t>(r.attempt));
  s.Bind(i++, r.agent_token);
  s.Bind(i++, r.attempt_handle);
  s.Bind(i++, r.instance_dir);
  s.Bind(i++, model::RuntimeToJson(r).dump());
}

std::string Placeholders(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += i == 0 ? "?" : ", ?";
  return out;
}

}  // namespace

std::string DatabasePath(const std::string& data_dir) { return JoinPath(data_dir, "trainyard.db"); }

namespace {

// The database and the files SQLite keeps beside it hold every account's jobs:
// readable by the server's user only. SQLite creates -wal and -shm with the
// mode of the database file, so creating that one 0600 covers the others.
Status RestrictDatabaseFiles(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("cannot open " + path, errno);
  int rc = ::fchmod(fd, 0600);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("chmod 0600 " + path, err);
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string side = path + suffix;
    if (::chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return ErrnoStatus("chmod 0600 " + side, errno);
    }
  }
  return Status::Ok();
}

// What an operator reads when the database cannot be trusted.
Status Damaged(const std::string& path, const std::string& detail) {
  return FailedPrecondition(
      "the database " + path + " is damaged (" + detail +
      "). Stop here: restore it from a copy made with `trainyard admin backup` (stop the server, "
      "copy the backup over " +
      path + " and delete " + path + "-wal and " + path +
      "-shm), or move the data dir aside to start an empty server.");
}

// Runs `PRAGMA quick_check` (cheaper than integrity_check: no index contents):
// Ok when the database reads as sound.
Status QuickCheck(sqlite3* db, const std::string& path, const char* pragma = "quick_check") {
  sqlite3_stmt* raw = nullptr;
  std::string sql = std::string("PRAGMA ") + pragma;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return Damaged(path, sqlite3_errstr(rc));
  std::string problems;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    std::string line = text != nullptr ? text : "";
    if (line == "ok") continue;
    if (!problems.empty()) problems += "; ";
    problems += line;
    if (problems.size() > 300) break;
  }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Damaged(path, sqlite3_errstr(rc));
  if (!problems.empty()) return Damaged(path, problems);
  return Status::Ok();
}

bool IsDamage(int rc) { return (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT; }

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& data_dir) {
  TY_RETURN_IF_ERROR(MakeDirs(data_dir));
  const std::string path = DatabasePath(data_dir);
  TY_RETURN_IF_ERROR(RestrictDatabaseFiles(path));
  sqlite3* raw = nullptr;
  // NOMUTEX: the Store serialises all use of its one connection itself.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);  // sqlite3_open_v2 returns a handle to close even on failure
  TY_RETURN_IF_ERROR(SqliteStatus(db.get(), rc, "open " + path));
  sqlite3_extended_result_codes(db.get(), 1);
  TY_RETURN_IF_ERROR(SqliteStatus(db.get(), sqlite3_busy_timeout(db.get(), 5000), "busy_timeout"));
  // "file is not a database" shows at the first read: check before anything writes.
  TY_RETURN_IF_ERROR(QuickCheck(db.get(), path));
  Status st = Exec(db.get(), "PRAGMA journal_mode=WAL");
  if (st.ok()) st = Exec(db.get(), "PRAGMA synchronous=NORMAL");
  if (st.ok()) st = Exec(db.get(), "PRAGMA foreign_keys=ON");
  if (st.ok()) st = Migrate(db.get()).WithPrefix(path);
  if (!st.ok() && IsDamage(sqlite3_extended_errcode(db.get()))) return Damaged(path, st.message());
  TY_RETURN_IF_ERROR(st);
  TY_RETURN_IF_ERROR(RestrictDatabaseFiles(path));  // the -wal and -shm of an older server
  return std::unique_ptr<Store>(new Store(db.release()));
}

Status BackupDatabase(const std::string& data_dir, const std::string& out_path) {
  const std::string path = DatabasePath(data_dir);
  if (!PathExists(path)) return NotFound("no database at " + path);
  sqlite3* raw = nullptr;
  // Read-write without CREATE: a WAL reader must be able to use the -shm file
  // the running server shares; nothing is written to the source.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr src(raw);
  TY_RETURN_IF_ERROR(SqliteStatus(src.get(), rc, "open " + path));
  sqlite3_extended_result_codes(src.get(), 1);
  TY_RETURN_IF_ERROR(
      SqliteStatus(src.get(), sqlite3_busy_timeout(src.get(), 5000), "busy_timeout"));

  // The copy is written beside its destination and renamed into place, so a
  // failed backup never leaves a half-written file under the final name.
  const std::string tmp = out_path + ".partial";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("cannot create " + tmp, errno);
  ::close(fd);
  Status st = [&]() -> Status {
    raw = nullptr;
    int orc =
        sqlite3_open_v2(tmp.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr dst(raw);
    TY_RETURN_IF_ERROR(SqliteStatus(dst.get(), orc, "open " + tmp));
    sqlite3_backup* b = sqlite3_backup_init(dst.get(), "main", src.get(), "main");
    if (b == nullptr) return SqliteStatus(dst.get(), sqlite3_errcode(dst.get()), "backup " + path);
    // One step over every page: the whole copy is read in one read transaction,
    // so it is one consistent state even while the server writes (WAL readers
    // do not block the writer, nor it them).
    int step;
    while ((step = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || step == SQLITE_LOCKED) {
      sqlite3_sleep(50);
    }
    int done = sqlite3_backup_finish(b);
    if (step != SQLITE_DONE) return SqliteStatus(dst.get(), step, "backup " + path);
    TY_RETURN_IF_ERROR(SqliteStatus(dst.get(), done, "backup " + path));
    // The copy is a plain rollback-journal database (one file), checked before it is trusted.
    TY_RETURN_IF_ERROR(Exec(dst.get(), "PRAGMA journal_mode=DELETE"));
    return QuickCheck(dst.get(), out_path, "integrity_check");
  }();
  if (st.ok() && ::rename(tmp.c_str(), out_path.c_str()) != 0) {
    st = ErrnoStatus("cannot rename " + tmp + " to " + out_path, errno);
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Store::Store(sqlite3* db) : db_(db), stmts_(std::make_unique<StatementCache>(db)) {}

Store::~Store() {
  stmts_.reset();  // statements must be finalised before the connection closes
  sqlite3_close(db_);
}

Status Store::InsertJob(model::JobRecord* record) { return InsertJob(record, {}, {}); }

Status Store::InsertJob(model::JobRecord* record, const std::vector<Tag>& tags,
                        const std::vector<OutboxEvent>& events) {
  static const std::string kSql =
      std::string(
          "INSERT INTO jobs (account, name, arn, creation_ms, agent_pid, agent_start_ticks, ") +
      kMutableColumns + ") VALUES (?, ?, ?, ?, 0, 0, " + Placeholders(kMutableCount) + ")";
  MutexLock lock(&mu_);
  Transaction txn(db_);
  const bool batch = !tags.empty() || !events.empty();
  if (batch) TY_RETURN_IF_ERROR(txn.Begin());
  {
    TY_STMT(s, kSql);
    s.Bind(1, record->account);
    s.Bind(2, record->spec.name);
    s.Bind(3, record->arn);
    s.Bind(4, ToEpochMillis(record->creation_time));
    BindMutable(s, 5, *record);
    Status st = s.Exec();
    if (st.code() == StatusCode::kAlreadyExists) {
      return AlreadyExists("training job " + record->spec.name + " already exists");
    }
    TY_RETURN_IF_ERROR(st);
  }
  const int64_t id = sqlite3_last_insert_rowid(db_);
  for (const auto& t : tags) {
    TY_STMT(s,
            "INSERT INTO tags (arn, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value");
    s.Bind(1, record->arn);
    s.Bind(2, t.key);
    s.Bind(3, t.value);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  TY_RETURN_IF_ERROR(AppendOutboxLocked(events));
  if (batch) TY_RETURN_IF_ERROR(txn.Commit());
  record->id = id;
  return Status::Ok();
}

Status Store::UpdateJob(const model::JobRecord& record) { return UpdateJob(record, {}); }

Status Store::UpdateJob(const model::JobRecord& record, const std::vector<OutboxEvent>& events) {
  static const std::string kSql = [] {
    std::string cols = kMutableColumns;
    std::string sets;
    size_t pos = 0;
    while (pos < cols.size()) {
      size_t comma = cols.find(',', pos);
      if (comma == std::string::npos) comma = cols.size();
      std::string col = cols.substr(pos, comma - pos);
      col.erase(0, col.find_first_not_of(' '));
      sets += (sets.empty() ? "" : ", ") + col + " = ?";
      pos = comma + 1;
    }
    return "UPDATE jobs SET " + sets + ", version = version + 1 WHERE id = ?";
  }();
  MutexLock lock(&mu_);
  // One UPDATE is atomic on its own; with events, they and it commit together.
  Transaction txn(db_);
  if (!events.empty()) TY_RETURN_IF_ERROR(txn.Begin());
  {
    TY_STMT(s, kSql);
    BindMutable(s, 1, record);
    s.Bind(kMutableCount + 1, record.id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  if (sqlite3_changes(db_) == 0) {
    return NotFound("training job " + record.spec.name + " (id " + std::to_string(record.id) +
                    ") does not exist");
  }
  if (events.empty()) return Status::Ok();
  TY_RETURN_IF_ERROR(AppendOutboxLocked(events));
  return txn.Commit();
}

Status Store::AppendOutboxLocked(const std::vector<OutboxEvent>& events) {
  for (const auto& e : events) {
    TY_STMT(s,
            "INSERT INTO event_outbox (account, ordering_key, event_json, created_ms) "
            "VALUES (?, ?, ?, ?)");
    s.Bind(1, e.account);
    s.Bind(2, e.ordering_key);
    s.Bind(3, e.event_json);
    s.Bind(4, e.created_ms);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return Status::Ok();
}

Status Store::AppendOutbox(const std::vector<OutboxEvent>& events) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  TY_RETURN_IF_ERROR(AppendOutboxLocked(events));
  return txn.Commit();
}

Result<std::vector<OutboxEvent>> Store::ReadOutbox(int64_t after_seq, int64_t limit) {
  MutexLock lock(&mu_);
  TY_STMT(s,
          "SELECT seq, account, ordering_key, event_json, created_ms FROM event_outbox "
          "WHERE seq > ? ORDER BY seq LIMIT ?");
  s.Bind(1, after_seq);
  s.Bind(2, limit);
  std::vector<OutboxEvent> out;
  while (true) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.Int(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4)});
  }
  return out;
}

Status Store::DeleteOutbox(int64_t seq) {
  MutexLock lock(&mu_);
  TY_STMT(s, "DELETE FROM event_outbox WHERE seq = ?");
  s.Bind(1, seq);
  return s.Exec();
}

Result<model::JobRecord> Store::GetJob(const std::string& account, const std::string& name) {
  static const std::string kSql = SelectJobs("WHERE account = ? AND name = ?");
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, account);
  s.Bind(2, name);
  return ReadOne(s, "training job " + name + " does not exist");
}

Result<JobVersion> Store::GetJobVersion(const std::string& account, const std::string& name) {
  MutexLock lock(&mu_);
  TY_STMT(s, "SELECT id, version FROM jobs WHERE account = ? AND name = ?");
  s.Bind(1, account);
  s.Bind(2, name);
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFound("training job " + name + " does not exist");
  return JobVersion{s.Int(0), s.Int(1)};
}

Result<model::JobRecord> Store::GetJobByArn(const std::string& arn) {
  // jobs.arn is declared COLLATE NOCASE, so this compare (and its index) is
  // case-insensitive.
  static const std::string kSql = SelectJobs("WHERE arn = ?");
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, arn);
  return ReadOne(s, "no training job with ARN " + arn);
}

Status Store::DeleteJob(const std::string& account, const std::string& name) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  int64_t id = 0;
  std::string arn;
  {
    TY_STMT(s, "SELECT id, arn FROM jobs WHERE account = ? AND name = ?");
    s.Bind(1, account);
    s.Bind(2, name);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFound("training job " + name + " does not exist");
    id = s.Int(0);
    arn = s.Text(1);
  }
  // Log streams stay (CloudWatch keeps a job's log after DeleteTrainingJob); the
  // foreign key unties them from the job.
  {
    TY_STMT(s, "DELETE FROM metric_samples WHERE job_id = ?");
    s.Bind(1, id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  {
    TY_STMT(s, "DELETE FROM tags WHERE arn = ?");
    s.Bind(1, arn);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  {
    TY_STMT(s, "DELETE FROM rule_evaluations WHERE job_arn = ?");
    s.Bind(1, arn);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  {
    TY_STMT(s, "DELETE FROM jobs WHERE id = ?");
    s.Bind(1, id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<std::vector<model::JobRecord>> Store::ListJobs(const JobQuery& q) {
  // The SQL text depends only on which filters are set and the ordering, so
  // at most 2^6 * 3 * 2 distinct statements end up in the cache.
  std::string where = "WHERE account = ?";
  if (q.created_after_ms) where += " AND creation_ms > ?";
  if (q.created_before_ms) where += " AND creation_ms < ?";
  if (q.modified_after_ms) where += " AND last_modified_ms > ?";
  if (q.modified_before_ms) where += " AND last_modified_ms < ?";
  // instr, not LIKE: '%' and '_' in the user's substring must match literally.
  if (!q.name_contains.empty()) where += " AND instr(lower(name), lower(?)) > 0";
  if (q.status) where += " AND status = ?";
  const char* key = "creation_ms";
  switch (q.sort_by) {
    case JobQuery::SortBy::kCreationTime:
      key = "creation_ms";
      break;
    case JobQuery::SortBy::kName:
      key = "name";
      break;
    case JobQuery::SortBy::kStatus:
      key = "status";
      break;
  }
  const char* dir = q.ascending ? " ASC" : " DESC";
  const std::string sql =
      SelectJobs(where + " ORDER BY " + key + dir + ", id" + dir + " LIMIT ? OFFSET ?");
  MutexLock lock(&mu_);
  TY_STMT(s, sql);
  int i = 1;
  s.Bind(i++, q.account);
  if (q.created_after_ms) s.Bind(i++, *q.created_after_ms);
  if (q.created_before_ms) s.Bind(i++, *q.created_before_ms);
  if (q.modified_after_ms) s.Bind(i++, *q.modified_after_ms);
  if (q.modified_before_ms) s.Bind(i++, *q.modified_before_ms);
  if (!q.name_contains.empty()) s.Bind(i++, q.name_contains);
  if (q.status) s.Bind(i++, model::Name(*q.status));
  s.Bind(i++, q.limit);
  s.Bind(i++, q.offset < 0 ? int64_t{0} : q.offset);
  return ReadAll(s);
}

Result<std::vector<model::JobRecord>> Store::AllJobs(const std::string& account) {
  static const std::string kSql =
      SelectJobs("WHERE account = ? ORDER BY creation_ms DESC, id DESC");
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, account);
  return ReadAll(s);
}

Result<int64_t> Store::CountJobs() {
  MutexLock lock(&mu_);
  TY_STMT(s, "SELECT COUNT(*) FROM jobs");
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : int64_t{0};
}

Result<std::vector<std::pair<std::string, int64_t>>> Store::CountJobsByStatus() {
  MutexLock lock(&mu_);
  TY_STMT(s, "SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status");
  std::vector<std::pair<std::string, int64_t>> out;
  while (true) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.emplace_back(s.Text(0), s.Int(1));
  }
  return out;
}

Result<std::vector<model::JobRecord>> Store::ActiveJobs() {
  static const std::string kSql = SelectJobs("WHERE status IN (?, ?) ORDER BY id");
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, model::Name(model::TrainingJobStatus::kInProgress));
  s.Bind(2, model::Name(model::TrainingJobStatus::kStopping));
  return ReadAll(s);
}

Status Store::SetTags(const std::string& arn, const std::vector<Tag>& tags) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  for (const Tag& t : tags) {
    // ON CONFLICT keeps the row (and so the tag's position) and replaces the value.
    TY_STMT(s,
            "INSERT INTO tags (arn, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value");
    s.Bind(1, arn);
    s.Bind(2, t.key);
    s.Bind(3, t.value);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Status Store::DeleteTags(const std::string& arn, const std::vector<std::string>& keys) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  for (const std::string& key : keys) {
    TY_STMT(s, "DELETE FROM tags WHERE arn = ? AND key = ?");
    s.Bind(1, arn);
    s.Bind(2, key);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<std::vector<Tag>> Store::GetTags(const std::string& arn) {
  MutexLock lock(&mu_);
  TY_STMT(s, "SELECT key, value FROM tags WHERE arn = ? ORDER BY rowid");
  s.Bind(1, arn);
  std::vector<Tag> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.Text(0), s.Text(1)});
  }
  return out;
}

Status Store::AppendMetricSamples(int64_t job_id, const std::vector<MetricSample>& samples) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  for (const MetricSample& m : samples) {
    TY_STMT(s, "INSERT INTO metric_samples (job_id, name, ts_ms, value) VALUES (?, ?, ?, ?)");
    s.Bind(1, job_id);
    s.Bind(2, m.name);
    s.Bind(3, m.timestamp_ms);
    s.Bind(4, m.value);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<std::vector<MetricSample>> Store::ReadMetricSamples(int64_t job_id) {
  MutexLock lock(&mu_);
  TY_STMT(s,
          "SELECT name, ts_ms, value FROM metric_samples WHERE job_id = ? "
          "ORDER BY ts_ms, rowid");
  s.Bind(1, job_id);
  std::vector<MetricSample> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.Text(0), s.Int(1), s.Double(2)});
  }
  return out;
}

Result<std::optional<std::string>> Store::GetSetting(const std::string& key) {
  MutexLock lock(&mu_);
  TY_STMT(s, "SELECT value FROM settings WHERE key = ?");
  s.Bind(1, key);
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(s.Text(0));
}

Status Store::PutSetting(const std::string& key, const std::string& value) {
  MutexLock lock(&mu_);
  TY_STMT(s,
          "INSERT INTO settings (key, value) VALUES (?, ?) "
          "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  s.Bind(1, key);
  s.Bind(2, value);
  return s.Exec();
}

}  // namespace ty::store
