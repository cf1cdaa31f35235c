#include "telemetry/metric_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace ty::telemetry {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kHourMs = 3'600'000;

const char* const kSchema = R"sql(
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  dims TEXT NOT NULL,
  unit TEXT NOT NULL,
  last_ms INTEGER NOT NULL,
  UNIQUE (account, ns, name, dims)
);
CREATE TABLE IF NOT EXISTS raw (
  series INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, n, sum, lo, hi,
  PRIMARY KEY (series, ts, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS m1 (
  series INTEGER NOT NULL, ts INTEGER NOT NULL, n, sum, lo, hi,
  PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS h1 (
  series INTEGER NOT NULL, ts INTEGER NOT NULL, n, sum, lo, hi,
  PRIMARY KEY (series, ts)
) WITHOUT ROWID;
)sql";

Status SqlStatus(sqlite3* db, int rc, const std::string& what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return Status::Ok();
  std::string msg = "metrics database: " + what + ": " + sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errcode(db) == rc)
    msg += std::string(" (") + sqlite3_errmsg(db) + ")";
  if ((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_BUSY) return Unavailable(std::move(msg));
  if ((rc & 0xff) == SQLITE_IOERR) return IoError(std::move(msg));
  return Internal(std::move(msg));
}

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::string what = err != nullptr ? err : sql;
  sqlite3_free(err);
  return SqlStatus(db, rc, what);
}

// A statement prepared for one use; finalized on scope exit. Statements here are few and
// cheap to prepare next to the work they do (batches, scans).
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Status status() const { return SqlStatus(db_, rc_, "prepare"); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  // A count or value: an integral one is bound as an integer (SQLite stores 0 and 1 in no
  // bytes and small integers in one or two).
  void BindNumber(int i, double v) {
    if (v == std::floor(v) && std::fabs(v) < 9e15) {
      sqlite3_bind_int64(stmt_, i, static_cast<int64_t>(v));
    } else {
      sqlite3_bind_double(stmt_, i, v);
    }
  }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  int Step() { return sqlite3_step(stmt_); }
  Status Run(const std::string& what) {
    int rc = Step();
    Status s = rc == SQLITE_DONE ? Status::Ok() : SqlStatus(db_, rc, what);
    Reset();
    return s;
  }
  int64_t Int(int c) const { return sqlite3_column_int64(stmt_, c); }
  double Real(int c) const { return sqlite3_column_double(stmt_, c); }
  bool Null(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
  std::string Text(int c) const {
    const unsigned char* t = sqlite3_column_text(stmt_, c);
    return t == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(t),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, c)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {}
  ~Txn() {
    if (open_) (void)Exec(db_, "ROLLBACK");
  }
  Status Begin() {
    TY_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    TY_RETURN_IF_ERROR(Exec(db_, "COMMIT"));
    open_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

Result<sqlite3*> OpenDb(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqlStatus(db, rc, "open " + path);
    sqlite3_close(db);
    return s;
  }
  Status s = SqlStatus(db, sqlite3_busy_timeout(db, 5000), "busy_timeout");
  if (s.ok()) s = Exec(db, "PRAGMA journal_mode=WAL");
  // Metrics are telemetry: a crash may lose the last second of them, never the database.
  if (s.ok()) s = Exec(db, "PRAGMA synchronous=NORMAL");
  if (!s.ok()) {
    sqlite3_close(db);
    return s;
  }
  return db;
}

int64_t FloorTo(int64_t t, int64_t step) {
  int64_t r = t % step;
  return r < 0 ? t - r - step : t - r;
}

int64_t CeilTo(int64_t t, int64_t step) {
  int64_t f = FloorTo(t, step);
  return f == t ? t : f + step;
}

std::vector<Dimension> ParseDimensions(const std::string& text) {
  std::vector<Dimension> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& d : j) {
    if (d.is_array() && d.size() == 2 && d[0].is_string() && d[1].is_string()) {
      out.push_back({d[0].get<std::string>(), d[1].get<std::string>()});
    }
  }
  return out;
}

struct Agg {
  double n = 0, sum = 0, lo = 0, hi = 0;
  void Add(double cn, double csum, double clo, double chi) {
    if (n == 0) {
      lo = clo;
      hi = chi;
    } else {
      lo = std::min(lo, clo);
      hi = std::max(hi, chi);
    }
    n += cn;
    sum += csum;
  }
};

}  // namespace

std::string CanonicalDimensions(std::vector<Dimension> dims) {
  std::sort(dims.begin(), dims.end(), [](const Dimension& a, const Dimension& b) {
    return a.name != b.name ? a.name < b.name : a.value < b.value;
  });
  nlohmann::json j = nlohmann::json::array();
  for (const auto& d : dims) j.push_back({d.name, d.value});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::unique_ptr<MetricStore>> MetricStore::Open(const std::string& data_dir,
                                                       MetricStoreOptions options) {
  TY_RETURN_IF_ERROR(MakeDirs(data_dir));
  const std::string path = JoinPath(data_dir, "metrics.db");
  TY_ASSIGN_OR_RETURN(sqlite3 * writer, OpenDb(path));
  for (const char* suffix : {"", "-wal", "-shm"}) (void)::chmod((path + suffix).c_str(), 0600);
  Status s = Exec(writer, kSchema);
  int64_t next_seq = 1;
  if (s.ok()) {
    // Points of one series and time are told apart by seq, which must not repeat across runs.
    Stmt max(writer, "SELECT COALESCE(MAX(seq), 0) FROM raw");
    s = max.status();
    if (s.ok() && max.Step() == SQLITE_ROW) next_seq = max.Int(0) + 1;
  }
  if (!s.ok()) {
    sqlite3_close(writer);
    return s;
  }
  auto reader = OpenDb(path);
  if (!reader.ok()) {
    sqlite3_close(writer);
    return reader.status();
  }
  return std::unique_ptr<MetricStore>(new MetricStore(writer, *reader, options, next_seq));
}

MetricStore::MetricStore(sqlite3* writer, sqlite3* reader, MetricStoreOptions options,
                         int64_t next_seq)
    : options_(options), writer_(writer), next_seq_(next_seq), reader_(reader) {}

MetricStore::~MetricStore() {
  {
    MutexLock lock(&read_mu_);
    sqlite3_close(reader_);
  }
  MutexLock lock(&write_mu_);
  sqlite3_close(writer_);
}

Status MetricStore::Put(const std::vector<PutPoint>& points, int64_t now_ms) {
  if (points.empty()) return Status::Ok();
  MutexLock lock(&write_mu_);
  Txn txn(writer_);
  TY_RETURN_IF_ERROR(txn.Begin());
  Stmt find(writer_,
            "SELECT id FROM series WHERE account = ? AND ns = ? AND name = ? AND dims = ?");
  Stmt count(writer_, "SELECT COUNT(*) FROM series WHERE account = ?");
  Stmt insert_series(writer_,
                     "INSERT INTO series (account, ns, name, dims, unit, last_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?)");
  Stmt touch(writer_, "UPDATE series SET unit = ?, last_ms = MAX(last_ms, ?) WHERE id = ?");
  Stmt raw(writer_,
           "INSERT INTO raw (series, ts, seq, n, sum, lo, hi) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const char* upsert =
      " (series, ts, n, sum, lo, hi) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (series, ts) DO UPDATE "
      "SET n = n + excluded.n, sum = sum + excluded.sum, lo = MIN(lo, excluded.lo), "
      "hi = MAX(hi, excluded.hi)";
  Stmt m1(writer_, (std::string("INSERT INTO m1") + upsert).c_str());
  Stmt h1(writer_, (std::string("INSERT INTO h1") + upsert).c_str());
  for (Stmt* st : {&find, &count, &insert_series, &touch, &raw, &m1, &h1}) {
    TY_RETURN_IF_ERROR(st->status());
  }

  std::map<std::string, int64_t> ids;  // account \0 ns \0 name \0 dims -> series id
  std::map<int64_t, std::pair<std::string, int64_t>> touched;  // id -> (unit, newest ts)
  std::map<std::pair<int64_t, int64_t>, Agg> minutes, hours;
  const int64_t raw_cut = now_ms - options_.raw_retention_ms;
  const int64_t minute_cut = now_ms - options_.minute_retention_ms;
  const int64_t hour_cut = now_ms - options_.hour_retention_ms;
  for (const PutPoint& p : points) {
    if (p.timestamp_ms < hour_cut) continue;  // older than anything kept
    const std::string dims = CanonicalDimensions(p.key.dimensions);
    std::string k = p.key.account + '\0' + p.key.ns + '\0' + p.key.name + '\0' + dims;
    auto it = ids.find(k);
    int64_t id = 0;
    if (it != ids.end()) {
      id = it->second;
    } else {
      find.Bind(1, p.key.account);
      find.Bind(2, p.key.ns);
      find.Bind(3, p.key.name);
      find.Bind(4, dims);
      int rc = find.Step();
      if (rc == SQLITE_ROW) id = find.Int(0);
      find.Reset();
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlStatus(writer_, rc, "find series");
      if (id == 0) {
        count.Bind(1, p.key.account);
        int64_t n = count.Step() == SQLITE_ROW ? count.Int(0) : 0;
        count.Reset();
        if (n >= options_.max_series_per_account) {
          return Status(StatusCode::kResourceExhausted,
                        "The account has " + std::to_string(n) +
                            " metrics, the most this server keeps for one account.");
        }
        insert_series.Bind(1, p.key.account);
        insert_series.Bind(2, p.key.ns);
        insert_series.Bind(3, p.key.name);
        insert_series.Bind(4, dims);
        insert_series.Bind(5, p.unit.empty() ? std::string("None") : p.unit);
        insert_series.Bind(6, p.timestamp_ms);
        TY_RETURN_IF_ERROR(insert_series.Run("insert series"));
        id = sqlite3_last_insert_rowid(writer_);
      }
      ids.emplace(std::move(k), id);
    }
    auto& t = touched[id];
    t.first = p.unit.empty() ? "None" : p.unit;
    t.second = std::max(t.second, p.timestamp_ms);
    if (p.timestamp_ms >= raw_cut) {
      raw.Bind(1, id);
      raw.Bind(2, p.timestamp_ms);
      raw.Bind(3, next_seq_++);
      raw.BindNumber(4, p.count);
      raw.BindNumber(5, p.sum);
      // A single value keeps only its sum: min and max are the same number.
      if (p.count == 1 && p.min == p.sum && p.max == p.sum) {
        raw.BindNull(6);
        raw.BindNull(7);
      } else {
        raw.BindNumber(6, p.min);
        raw.BindNumber(7, p.max);
      }
      TY_RETURN_IF_ERROR(raw.Run("insert point"));
    }
    if (p.timestamp_ms >= minute_cut) {
      minutes[{id, FloorTo(p.timestamp_ms, kMinuteMs)}].Add(p.count, p.sum, p.min, p.max);
    }
    hours[{id, FloorTo(p.timestamp_ms, kHourMs)}].Add(p.count, p.sum, p.min, p.max);
  }
  for (auto* tier : {&minutes, &hours}) {
    Stmt& st = tier == &minutes ? m1 : h1;
    for (const auto& [key, a] : *tier) {
      st.Bind(1, key.first);
      st.Bind(2, key.second);
      st.BindNumber(3, a.n);
      st.BindNumber(4, a.sum);
      st.BindNumber(5, a.lo);
      st.BindNumber(6, a.hi);
      TY_RETURN_IF_ERROR(st.Run("update rollup"));
    }
  }
  for (const auto& [id, t] : touched) {
    touch.Bind(1, t.first);
    touch.Bind(2, t.second);
    touch.Bind(3, id);
    TY_RETURN_IF_ERROR(touch.Run("update series"));
  }
  return txn.Commit();
}

Result<std::optional<SeriesInfo>> MetricStore::Find(const MetricKey& key) {
  MutexLock lock(&read_mu_);
  Stmt st(reader_,
          "SELECT id, unit, last_ms, dims FROM series WHERE account = ? AND ns = ? AND name = ? "
          "AND dims = ?");
  TY_RETURN_IF_ERROR(st.status());
  st.Bind(1, key.account);
  st.Bind(2, key.ns);
  st.Bind(3, key.name);
  st.Bind(4, CanonicalDimensions(key.dimensions));
  int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<SeriesInfo>();
  if (rc != SQLITE_ROW) return SqlStatus(reader_, rc, "find series");
  SeriesInfo info;
  info.id = st.Int(0);
  info.unit = st.Text(1);
  info.last_ms = st.Int(2);
  info.key = key;
  info.key.dimensions = ParseDimensions(st.Text(3));
  return std::optional<SeriesInfo>(std::move(info));
}

Result<std::vector<SeriesInfo>> MetricStore::List(const ListQuery& q) {
  std::string sql =
      "SELECT id, ns, name, dims, unit, last_ms FROM series WHERE account = ? AND id > ? AND "
      "last_ms >= ?";
  if (q.ns) sql += " AND ns = ?";
  if (q.name) sql += " AND name = ?";
  sql += " ORDER BY id";
  MutexLock lock(&read_mu_);
  Stmt st(reader_, sql.c_str());
  TY_RETURN_IF_ERROR(st.status());
  int i = 1;
  st.Bind(i++, q.account);
  st.Bind(i++, q.after_id);
  st.Bind(i++, q.active_since_ms);
  if (q.ns) st.Bind(i++, *q.ns);
  if (q.name) st.Bind(i++, *q.name);
  std::vector<SeriesInfo> out;
  int rc;
  while (out.size() < q.limit && (rc = st.Step()) == SQLITE_ROW) {
    SeriesInfo s;
    s.id = st.Int(0);
    s.key.account = q.account;
    s.key.ns = st.Text(1);
    s.key.name = st.Text(2);
    s.key.dimensions = ParseDimensions(st.Text(3));
    s.unit = st.Text(4);
    s.last_ms = st.Int(5);
    bool match = true;
    for (const auto& [name, value] : q.dimensions) {
      const std::string& wanted = name;  // clang 14 cannot capture a structured binding
      auto d = std::find_if(s.key.dimensions.begin(), s.key.dimensions.end(),
                            [&](const Dimension& x) { return x.name == wanted; });
      if (d == s.key.dimensions.end() || (value && d->value != *value)) match = false;
    }
    if (match) out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<Bucket>> MetricStore::Aggregate(int64_t series_id, int64_t start_ms,
                                                   int64_t end_ms, int64_t period_s,
                                                   bool with_values, int64_t now_ms,
                                                   size_t max_values) {
  if (period_s <= 0) return InvalidArgument("period must be positive");
  const int64_t period_ms = period_s * 1000;
  const int64_t start = FloorTo(start_ms, period_ms);
  // The finest tier a query needs for recent data: rollups are exact for whole minutes (hours)
  // and cheaper than raw points, but only raw points give percentiles.
  int first_tier = 0;
  if (!with_values && period_ms % kMinuteMs == 0) first_tier = period_ms % kHourMs == 0 ? 2 : 1;
  const int64_t cutoffs[3] = {now_ms - options_.raw_retention_ms,
                              now_ms - options_.minute_retention_ms,
                              now_ms - options_.hour_retention_ms};
  const int64_t resolution[3] = {1, kMinuteMs, kHourMs};
  const char* tables[3] = {"raw", "m1", "h1"};

  std::map<int64_t, Bucket> buckets;
  size_t values = 0;
  MutexLock lock(&read_mu_);
  int64_t upper = end_ms;
  for (int tier = first_tier; tier < 3 && upper > start; ++tier) {
    // This tier serves [lower, upper); the next, coarser one what is older. The boundary falls
    // on the coarser tier's resolution so none of its buckets is read in part.
    int64_t lower = start;
    if (tier < 2) lower = std::max(start, CeilTo(cutoffs[tier], resolution[tier + 1]));
    if (lower < upper) {
      std::string sql = std::string("SELECT ts, n, sum, lo, hi FROM ") + tables[tier] +
                        " WHERE series = ? AND ts >= ? AND ts < ?";
      Stmt st(reader_, sql.c_str());
      TY_RETURN_IF_ERROR(st.status());
      st.Bind(1, series_id);
      st.Bind(2, lower);
      st.Bind(3, upper);
      int rc;
      while ((rc = st.Step()) == SQLITE_ROW) {
        const int64_t ts = st.Int(0);
        const double n = st.Real(1), sum = st.Real(2);
        const double lo = st.Null(3) ? sum : st.Real(3);
        const double hi = st.Null(4) ? sum : st.Real(4);
        const int64_t b = FloorTo(ts, period_ms);
        auto [it, fresh] = buckets.try_emplace(b);
        Bucket& bk = it->second;
        if (fresh) {
          bk.start_ms = b;
          bk.min = lo;
          bk.max = hi;
          bk.values_complete = with_values && tier == 0;
        } else {
          bk.min = std::min(bk.min, lo);
          bk.max = std::max(bk.max, hi);
        }
        bk.count += n;
        bk.sum += sum;
        if (tier != 0) {
          bk.values_complete = false;
          bk.values.clear();
        } else if (bk.values_complete) {
          if (++values > max_values) {
            return Status(StatusCode::kResourceExhausted,
                          "more than " + std::to_string(max_values) +
                              " datapoints for percentiles in one query");
          }
          // A statistic set counts as its average, weighted by its count.
          bk.values.emplace_back(lo == hi ? lo : sum / n, n);
        }
      }
      if (rc != SQLITE_DONE) return SqlStatus(reader_, rc, "read datapoints");
    }
    upper = std::min(upper, lower);
  }
  std::vector<Bucket> out;
  out.reserve(buckets.size());
  for (auto& [b, bk] : buckets) {
    if (bk.count <= 0) continue;
    if (bk.values_complete) std::sort(bk.values.begin(), bk.values.end());
    out.push_back(std::move(bk));
  }
  return out;
}

Result<int64_t> MetricStore::Sweep(int64_t now_ms) {
  std::vector<int64_t> ids;
  {
    MutexLock lock(&read_mu_);
    Stmt st(reader_, "SELECT id FROM series ORDER BY id");
    TY_RETURN_IF_ERROR(st.status());
    while (st.Step() == SQLITE_ROW) ids.push_back(st.Int(0));
  }
  const int64_t cuts[3] = {now_ms - options_.raw_retention_ms,
                           now_ms - options_.minute_retention_ms,
                           now_ms - options_.hour_retention_ms};
  int64_t deleted = 0;
  // A few hundred series per transaction: ingest waits for the write lock at most that long.
  constexpr size_t kChunk = 256;
  for (size_t from = 0; from < ids.size(); from += kChunk) {
    MutexLock lock(&write_mu_);
    Txn txn(writer_);
    TY_RETURN_IF_ERROR(txn.Begin());
    Stmt raw(writer_, "DELETE FROM raw WHERE series = ? AND ts < ?");
    Stmt m1(writer_, "DELETE FROM m1 WHERE series = ? AND ts < ?");
    Stmt h1(writer_, "DELETE FROM h1 WHERE series = ? AND ts < ?");
    for (Stmt* st : {&raw, &m1, &h1}) TY_RETURN_IF_ERROR(st->status());
    for (size_t i = from; i < std::min(ids.size(), from + kChunk); ++i) {
      int tier = 0;
      for (Stmt* st : {&raw, &m1, &h1}) {
        st->Bind(1, ids[i]);
        // Rollup rows are dropped once their whole bucket has aged out.
        st->Bind(2, tier == 0 ? cuts[0] : FloorTo(cuts[tier], tier == 1 ? kMinuteMs : kHourMs));
        TY_RETURN_IF_ERROR(st->Run("sweep"));
        deleted += sqlite3_changes(writer_);
        ++tier;
      }
    }
    TY_RETURN_IF_ERROR(txn.Commit());
  }
  MutexLock lock(&write_mu_);
  Stmt gone(writer_, "DELETE FROM series WHERE last_ms < ?");
  TY_RETURN_IF_ERROR(gone.status());
  gone.Bind(1, cuts[2]);
  TY_RETURN_IF_ERROR(gone.Run("sweep series"));
  deleted += sqlite3_changes(writer_);
  return deleted;
}

Result<MetricStore::Counts> MetricStore::CountRows() {
  MutexLock lock(&read_mu_);
  Counts c;
  int64_t* fields[4] = {&c.series, &c.raw, &c.minute, &c.hour};
  const char* sql[4] = {"SELECT COUNT(*) FROM series", "SELECT COUNT(*) FROM raw",
                        "SELECT COUNT(*) FROM m1", "SELECT COUNT(*) FROM h1"};
  for (int i = 0; i < 4; ++i) {
    Stmt st(reader_, sql[i]);
    TY_RETURN_IF_ERROR(st.status());
    if (st.Step() == SQLITE_ROW) *fields[i] = st.Int(0);
  }
  return c;
}

MetricSweeper::MetricSweeper(MetricStore* store, std::chrono::milliseconds interval,
                             const Clock* clock) {
  thread_ = std::thread([this, store, interval, clock] {
    MutexLock lock(&mu_);
    while (!stop_) {
      lock.Unlock();
      auto swept = store->Sweep(ToEpochMillis(clock->Now()));
      if (!swept.ok()) {
        std::fprintf(stderr, "trainyard: sweeping aged metrics failed: %s\n",
                     swept.status().ToString().c_str());
      }
      lock.Lock();
      const auto until = std::chrono::steady_clock::now() + interval;
      while (!stop_ && cv_.WaitUntil(&mu_, until)) {
      }
    }
  });
}

MetricSweeper::~MetricSweeper() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  thread_.join();
}

}  // namespace ty::telemetry
