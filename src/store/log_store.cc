// The CloudWatch Logs half of the Store: log groups, streams and events (see store.h).
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "store/store.h"
#include "store/store_internal.h"

namespace ty::store {

namespace {

// CloudWatch counts each event as its message's UTF-8 bytes plus 26.
constexpr int64_t kEventOverheadBytes = 26;

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The smallest string greater than every string starting with `prefix`, or ""
// when there is none (the prefix is all 0xFF bytes).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xFF) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

constexpr const char* kGroupColumns =
    "g.id, g.account, g.name, g.creation_ms, "
    "(SELECT COALESCE(SUM(stored_bytes), 0) FROM log_streams WHERE group_id = g.id)";

LogGroupRow RowToGroup(const ScopedStmt& s) {
  return {s.Int(0), s.Text(1), s.Text(2), s.Int(3), s.Int(4)};
}

constexpr const char* kStreamColumns =
    "id, group_id, name, creation_ms, first_event_ms, last_event_ms, last_ingestion_ms, "
    "stored_bytes, last_seq";

LogStreamRow RowToStream(const ScopedStmt& s) {
  LogStreamRow r;
  r.id = s.Int(0);
  r.group_id = s.Int(1);
  r.name = s.Text(2);
  r.creation_ms = s.Int(3);
  r.first_event_ms = s.OptInt(4);
  r.last_event_ms = s.OptInt(5);
  r.last_ingestion_ms = s.OptInt(6);
  r.stored_bytes = s.Int(7);
  r.last_seq = s.Int(8);
  return r;
}

StreamEvent RowToEvent(const ScopedStmt& s) {
  return {s.Int(0), s.Int(1), s.Int(2), s.Int(3), s.Text(4), {}};
}

}  // namespace

Result<int64_t> Store::GroupIdLocked(const std::string& account, const std::string& name,
                                     int64_t now_ms) {
  {
    TY_STMT(s, "SELECT id FROM log_groups WHERE account = ? AND name = ?");
    s.Bind(1, account);
    s.Bind(2, name);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) return s.Int(0);
  }
  TY_STMT(s, "INSERT INTO log_groups (account, name, creation_ms) VALUES (?, ?, ?)");
  s.Bind(1, account);
  s.Bind(2, name);
  s.Bind(3, now_ms);
  TY_RETURN_IF_ERROR(s.Exec());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Status Store::AppendLocked(int64_t stream_id, const std::vector<const LogEvent*>& events,
                           int64_t ingest_ms) {
  if (events.empty()) return Status::Ok();
  int64_t group_id = 0;
  {
    TY_STMT(s, "SELECT group_id FROM log_streams WHERE id = ?");
    s.Bind(1, stream_id);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFound("log stream " + std::to_string(stream_id) + " does not exist");
    group_id = s.Int(0);
  }
  int64_t first = INT64_MAX, last = INT64_MIN, bytes = 0, seq = 0;
  for (const LogEvent* e : events) {
    TY_STMT(s,
            "INSERT INTO stream_events (stream_id, group_id, ts_ms, ingest_ms, message) "
            "VALUES (?, ?, ?, ?, ?)");
    s.Bind(1, stream_id);
    s.Bind(2, group_id);
    s.Bind(3, e->timestamp_ms);
    s.Bind(4, e->ingestion_ms != 0 ? e->ingestion_ms : ingest_ms);
    s.Bind(5, e->message);
    TY_RETURN_IF_ERROR(s.Exec());
    seq = sqlite3_last_insert_rowid(db_);
    first = std::min(first, e->timestamp_ms);
    last = std::max(last, e->timestamp_ms);
    bytes += static_cast<int64_t>(e->message.size());
  }
  TY_STMT(s,
          "UPDATE log_streams SET first_event_ms = MIN(COALESCE(first_event_ms, ?1), ?1), "
          "last_event_ms = MAX(COALESCE(last_event_ms, ?2), ?2), last_ingestion_ms = ?3, "
          "stored_bytes = stored_bytes + ?4, last_seq = ?5 WHERE id = ?6");
  s.Bind(1, first);
  s.Bind(2, last);
  s.Bind(3, ingest_ms);
  s.Bind(4, bytes);
  s.Bind(5, seq);
  s.Bind(6, stream_id);
  return s.Exec();
}

Status Store::AppendLogEvents(int64_t job_id, const std::vector<LogEvent>& events) {
  const int64_t now = WallNowMs();
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  std::string account, job;
  {
    TY_STMT(s, "SELECT account, name FROM jobs WHERE id = ?");
    s.Bind(1, job_id);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFound("training job " + std::to_string(job_id) + " does not exist");
    account = s.Text(0);
    job = s.Text(1);
  }
  // Group the batch by stream, keeping each stream's order (a batch is usually one stream).
  std::map<std::string, std::vector<const LogEvent*>> by_stream;
  for (const LogEvent& e : events) {
    std::string name = e.stream.empty()                    ? job + "/trainyard"
                       : e.stream.rfind(job + "/", 0) == 0 ? e.stream
                                                           : job + "/" + e.stream;
    by_stream[std::move(name)].push_back(&e);
  }
  if (by_stream.empty()) return txn.Commit();
  TY_ASSIGN_OR_RETURN(int64_t group_id, GroupIdLocked(account, kTrainingJobLogGroup, now));
  for (const auto& [name, list] : by_stream) {
    int64_t stream_id = 0;
    {
      TY_STMT(s, "SELECT id FROM log_streams WHERE group_id = ? AND name = ?");
      s.Bind(1, group_id);
      s.Bind(2, name);
      TY_ASSIGN_OR_RETURN(bool row, s.Step());
      if (row) stream_id = s.Int(0);
    }
    if (stream_id == 0) {
      TY_STMT(s,
              "INSERT INTO log_streams (group_id, name, job_id, creation_ms) VALUES (?, ?, ?, ?)");
      s.Bind(1, group_id);
      s.Bind(2, name);
      s.Bind(3, job_id);
      s.Bind(4, now);
      TY_RETURN_IF_ERROR(s.Exec());
      stream_id = sqlite3_last_insert_rowid(db_);
    } else {
      // A stream left by a deleted job of the same name is the new job's now.
      TY_STMT(s, "UPDATE log_streams SET job_id = ? WHERE id = ? AND job_id IS NULL");
      s.Bind(1, job_id);
      s.Bind(2, stream_id);
      TY_RETURN_IF_ERROR(s.Exec());
    }
    TY_RETURN_IF_ERROR(AppendLocked(stream_id, list, now));
  }
  return txn.Commit();
}

Result<std::vector<LogEvent>> Store::ReadLogEvents(int64_t job_id, int64_t after_seq,
                                                   int64_t limit) {
  MutexLock lock(&mu_);
  TY_STMT(s,
          "SELECT e.seq, st.name, e.ts_ms, e.message, e.ingest_ms FROM stream_events e "
          "JOIN log_streams st ON st.id = e.stream_id "
          "WHERE e.stream_id IN (SELECT id FROM log_streams WHERE job_id = ?) AND e.seq > ? "
          "ORDER BY e.seq LIMIT ?");
  s.Bind(1, job_id);
  s.Bind(2, after_seq);
  s.Bind(3, limit);
  std::vector<LogEvent> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.Int(0), s.Text(1), s.Int(2), s.Text(3), s.Int(4)});
  }
  return out;
}

Result<LogGroupRow> Store::CreateLogGroup(const std::string& account, const std::string& name,
                                          int64_t now_ms) {
  MutexLock lock(&mu_);
  TY_STMT(s, "INSERT INTO log_groups (account, name, creation_ms) VALUES (?, ?, ?)");
  s.Bind(1, account);
  s.Bind(2, name);
  s.Bind(3, now_ms);
  Status st = s.Exec();
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists("The specified log group already exists");
  }
  TY_RETURN_IF_ERROR(st);
  return LogGroupRow{sqlite3_last_insert_rowid(db_), account, name, now_ms, 0};
}

Result<LogGroupRow> Store::GetLogGroup(const std::string& account, const std::string& name) {
  static const std::string kSql =
      std::string("SELECT ") + kGroupColumns + " FROM log_groups g WHERE account = ? AND name = ?";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, account);
  s.Bind(2, name);
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFound("The specified log group does not exist.");
  return RowToGroup(s);
}

Result<std::vector<LogGroupRow>> Store::ListLogGroups(const std::string& account,
                                                      const std::string& prefix,
                                                      const std::string& contains,
                                                      const std::string& after_name,
                                                      int64_t limit) {
  const std::string end = PrefixEnd(prefix);
  std::string sql = std::string("SELECT ") + kGroupColumns +
                    " FROM log_groups g WHERE account = ? AND name >= ? AND name > ?";
  if (!end.empty()) sql += " AND name < ?";
  if (!contains.empty()) sql += " AND instr(lower(name), lower(?)) > 0";
  sql += " ORDER BY name LIMIT ?";
  MutexLock lock(&mu_);
  TY_STMT(s, sql);
  int i = 1;
  s.Bind(i++, account);
  s.Bind(i++, prefix);
  s.Bind(i++, after_name);
  if (!end.empty()) s.Bind(i++, end);
  if (!contains.empty()) s.Bind(i++, contains);
  s.Bind(i++, limit);
  std::vector<LogGroupRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToGroup(s));
  }
  return out;
}

Status Store::DeleteLogGroup(const std::string& account, const std::string& name) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  int64_t id = 0;
  {
    TY_STMT(s, "SELECT id FROM log_groups WHERE account = ? AND name = ?");
    s.Bind(1, account);
    s.Bind(2, name);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFound("The specified log group does not exist.");
    id = s.Int(0);
  }
  // Events by their group index first: cheaper than cascading per stream.
  for (const char* sql :
       {"DELETE FROM stream_events WHERE group_id = ?",
        "DELETE FROM log_streams WHERE group_id = ?", "DELETE FROM log_groups WHERE id = ?"}) {
    TY_STMT(s, sql);
    s.Bind(1, id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<LogStreamRow> Store::CreateLogStream(int64_t group_id, const std::string& name,
                                            int64_t now_ms) {
  MutexLock lock(&mu_);
  TY_STMT(s, "INSERT INTO log_streams (group_id, name, creation_ms) VALUES (?, ?, ?)");
  s.Bind(1, group_id);
  s.Bind(2, name);
  s.Bind(3, now_ms);
  Status st = s.Exec();
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists("The specified log stream already exists");
  }
  if (st.code() == StatusCode::kNotFound)
    return NotFound("The specified log group does not exist.");
  TY_RETURN_IF_ERROR(st);
  LogStreamRow r;
  r.id = sqlite3_last_insert_rowid(db_);
  r.group_id = group_id;
  r.name = name;
  r.creation_ms = now_ms;
  return r;
}

Result<LogStreamRow> Store::GetLogStream(int64_t group_id, const std::string& name) {
  static const std::string kSql =
      std::string("SELECT ") + kStreamColumns + " FROM log_streams WHERE group_id = ? AND name = ?";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, group_id);
  s.Bind(2, name);
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFound("The specified log stream does not exist.");
  return RowToStream(s);
}

Result<std::vector<LogStreamRow>> Store::ListLogStreams(const StreamQuery& q) {
  std::string sql =
      std::string("SELECT ") + kStreamColumns + " FROM log_streams WHERE group_id = ?";
  const char* dir = q.descending ? " DESC" : "";
  const char* cmp = q.descending ? " < " : " > ";
  std::string end;
  if (q.by_last_event) {
    if (q.after_time_id) {
      sql += std::string(" AND (COALESCE(last_event_ms, 0), id)") + cmp + "(?, ?)";
    }
    sql += std::string(" ORDER BY COALESCE(last_event_ms, 0)") + dir + ", id" + dir;
  } else {
    if (!q.prefix.empty()) {
      sql += " AND name >= ?";
      end = PrefixEnd(q.prefix);
      if (!end.empty()) sql += " AND name < ?";
    }
    if (q.after_name) sql += std::string(" AND name") + cmp + "?";
    sql += std::string(" ORDER BY name") + dir;
  }
  sql += " LIMIT ?";
  MutexLock lock(&mu_);
  TY_STMT(s, sql);
  int i = 1;
  s.Bind(i++, q.group_id);
  if (q.by_last_event) {
    if (q.after_time_id) {
      s.Bind(i++, q.after_time_id->first);
      s.Bind(i++, q.after_time_id->second);
    }
  } else {
    if (!q.prefix.empty()) {
      s.Bind(i++, q.prefix);
      if (!end.empty()) s.Bind(i++, end);
    }
    if (q.after_name) s.Bind(i++, *q.after_name);
  }
  s.Bind(i++, q.limit);
  std::vector<LogStreamRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToStream(s));
  }
  return out;
}

Status Store::DeleteLogStream(int64_t group_id, const std::string& name) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  int64_t id = 0;
  {
    TY_STMT(s, "SELECT id FROM log_streams WHERE group_id = ? AND name = ?");
    s.Bind(1, group_id);
    s.Bind(2, name);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return NotFound("The specified log stream does not exist.");
    id = s.Int(0);
  }
  for (const char* sql :
       {"DELETE FROM stream_events WHERE stream_id = ?", "DELETE FROM log_streams WHERE id = ?"}) {
    TY_STMT(s, sql);
    s.Bind(1, id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Status Store::PutStreamEvents(int64_t stream_id,
                              const std::vector<std::pair<int64_t, std::string>>& events,
                              int64_t ingest_ms) {
  std::vector<LogEvent> rows;
  rows.reserve(events.size());
  for (const auto& [ts, message] : events) rows.push_back({0, "", ts, message, ingest_ms});
  std::vector<const LogEvent*> ptrs;
  ptrs.reserve(rows.size());
  for (const LogEvent& e : rows) ptrs.push_back(&e);
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  TY_RETURN_IF_ERROR(AppendLocked(stream_id, ptrs, ingest_ms));
  return txn.Commit();
}

Result<std::vector<StreamEvent>> Store::ReadStreamEvents(const StreamRead& r) {
  std::string sql =
      "SELECT seq, stream_id, ts_ms, ingest_ms, message FROM stream_events "
      "WHERE stream_id = ? AND seq > ? AND seq < ?";
  if (r.start_ms) sql += " AND ts_ms >= ?";
  if (r.end_ms) sql += " AND ts_ms < ?";
  sql += r.newest_first ? " ORDER BY seq DESC LIMIT ?" : " ORDER BY seq LIMIT ?";
  MutexLock lock(&mu_);
  TY_STMT(s, sql);
  int i = 1;
  s.Bind(i++, r.stream_id);
  s.Bind(i++, r.after_seq);
  s.Bind(i++, r.before_seq);
  if (r.start_ms) s.Bind(i++, *r.start_ms);
  if (r.end_ms) s.Bind(i++, *r.end_ms);
  s.Bind(i++, r.limit);
  std::vector<StreamEvent> out;
  int64_t bytes = 0;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    int64_t size = sqlite3_column_bytes(s.get(), 4) + kEventOverheadBytes;
    if (!out.empty() && bytes + size > r.max_bytes) break;
    bytes += size;
    out.push_back(RowToEvent(s));
  }
  if (r.newest_first) std::reverse(out.begin(), out.end());
  return out;
}

Result<std::vector<StreamEvent>> Store::ScanGroupEvents(const GroupScan& g) {
  std::string sql =
      "SELECT e.seq, e.stream_id, e.ts_ms, e.ingest_ms, e.message, s.name "
      "FROM stream_events e JOIN log_streams s ON s.id = e.stream_id "
      "WHERE e.group_id = ?1 AND e.ts_ms >= ?2 AND (e.ts_ms > ?2 OR e.seq > ?3)";
  if (g.start_ms) sql += " AND e.ts_ms >= ?4";
  if (g.end_ms) sql += " AND e.ts_ms < ?5";
  sql += " ORDER BY e.ts_ms, e.seq LIMIT ?6";
  MutexLock lock(&mu_);
  TY_STMT(s, sql);
  s.Bind(1, g.group_id);
  s.Bind(2, g.after_ts);
  s.Bind(3, g.after_seq);
  if (g.start_ms) s.Bind(4, *g.start_ms);
  if (g.end_ms) s.Bind(5, *g.end_ms);
  s.Bind(6, g.limit);
  std::vector<StreamEvent> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToEvent(s));
    out.back().stream = s.Text(5);
  }
  return out;
}

}  // namespace ty::store
