// MetricStore: CloudWatch metric datapoints of every account, in their own SQLite database
// (<data_dir>/metrics.db, WAL), apart from the jobs' database: metric ingest and long scans never
// wait on the jobs' connection, and retention churn never bloats it.
//
// A series is (account, namespace, metric name, dimension set); its unit is the last one put.
// Each datapoint is kept three ways:
//   raw        every point as put (a value, a value with a count, or a statistic set), for
//              raw_retention (3 h by default): periods under a minute and exact percentiles;
//   1-minute   count/sum/min/max per series and minute, for minute_retention (15 days);
//   1-hour     the same per hour, for hour_retention (63 days).
// Points older than a tier's retention when put are not written to that tier. Sweep() deletes
// what has aged out of each tier and the series with nothing left (the server runs it every
// sweep_interval), so the database stays bounded however long the server runs.
//
// Queries pick per part of the time range the finest tier that still holds it; a period that is
// a multiple of 60 s (3600 s) reads the 1-minute (1-hour) rollups where they are exact, which is
// cheaper than raw. Percentiles need raw points: exact inside raw retention, unavailable (no
// datapoint) for buckets older than it. A statistic set contributes its average (weighted by its
// count) to percentiles, so those are approximate for data put as statistic sets.
//
// Thread-safe: writes go through one connection under one mutex, queries through a second
// connection under another (WAL lets them run at once).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"

struct sqlite3;

namespace ty::telemetry {

struct MetricStoreOptions {
  int64_t raw_retention_ms = 3LL * 3600 * 1000;
  int64_t minute_retention_ms = 15LL * 24 * 3600 * 1000;
  int64_t hour_retention_ms = 63LL * 24 * 3600 * 1000;
  // Series an account may have at once; a put that would make more is refused.
  int64_t max_series_per_account = 50000;
};

struct Dimension {
  std::string name;
  std::string value;
  bool operator==(const Dimension&) const = default;
};

struct MetricKey {
  std::string account;
  std::string ns;  // namespace
  std::string name;
  std::vector<Dimension> dimensions;  // any order; stored sorted by name
};

// One datapoint as put: `count` samples whose sum/min/max are given (a single value v is
// count 1, sum = min = max = v).
struct PutPoint {
  MetricKey key;
  std::string unit;  // "" is "None"
  int64_t timestamp_ms = 0;
  double count = 1, sum = 0, min = 0, max = 0;
};

// Aggregates of one period bucket [start_ms, start_ms + period).
struct Bucket {
  int64_t start_ms = 0;
  double count = 0, sum = 0, min = 0, max = 0;
  // (value, weight) of the raw points, sorted by value, when asked for and every point of the
  // bucket is still raw; otherwise empty and values_complete is false.
  std::vector<std::pair<double, double>> values;
  bool values_complete = false;
};

struct SeriesInfo {
  int64_t id = 0;
  MetricKey key;
  std::string unit;
  int64_t last_ms = 0;  // newest datapoint's time
};

struct ListQuery {
  std::string account;
  std::optional<std::string> ns, name;
  // Each filter names a dimension the series must have, with this value when one is given.
  std::vector<std::pair<std::string, std::optional<std::string>>> dimensions;
  int64_t active_since_ms = 0;  // only series with a point at or after this time
  int64_t after_id = 0;         // pagination: series ids above this
  size_t limit = 500;
};

class MetricStore {
 public:
  // Opens (creating) <data_dir>/metrics.db, mode 0600.
  static Result<std::unique_ptr<MetricStore>> Open(const std::string& data_dir,
                                                   MetricStoreOptions options = {});
  ~MetricStore();
  MetricStore(const MetricStore&) = delete;
  MetricStore& operator=(const MetricStore&) = delete;

  // Stores the points in one transaction. `now_ms` decides which tiers still take them.
  // kResourceExhausted when a new series would pass max_series_per_account (nothing stored).
  Status Put(const std::vector<PutPoint>& points, int64_t now_ms);

  // The series with exactly this key (dimensions in any order), if any.
  Result<std::optional<SeriesInfo>> Find(const MetricKey& key);
  // Series matching the query, by id, at most limit.
  Result<std::vector<SeriesInfo>> List(const ListQuery& query);

  // The buckets with data of [start_ms, end_ms) for `period_s` (buckets aligned on multiples
  // of the period since the epoch), oldest first. `with_values` fills Bucket::values (for
  // percentiles). At most `max_values` raw points are gathered for them: past that,
  // kResourceExhausted.
  Result<std::vector<Bucket>> Aggregate(int64_t series_id, int64_t start_ms, int64_t end_ms,
                                        int64_t period_s, bool with_values, int64_t now_ms,
                                        size_t max_values = 5'000'000);

  // Deletes what aged out of each tier as of now_ms, and emptied series. Returns rows deleted.
  Result<int64_t> Sweep(int64_t now_ms);

  // Counts of rows per tier (tests, benches).
  struct Counts {
    int64_t series = 0, raw = 0, minute = 0, hour = 0;
  };
  Result<Counts> CountRows();

  const MetricStoreOptions& options() const { return options_; }

 private:
  MetricStore(sqlite3* writer, sqlite3* reader, MetricStoreOptions options, int64_t next_seq);

  const MetricStoreOptions options_;
  Mutex write_mu_;
  sqlite3* writer_ TY_GUARDED_BY(write_mu_);
  int64_t next_seq_ TY_GUARDED_BY(write_mu_);
  Mutex read_mu_;
  sqlite3* reader_ TY_GUARDED_BY(read_mu_);
};

// Runs MetricStore::Sweep every `interval` on its own thread until destroyed (a failed sweep is
// reported on stderr and retried at the next interval).
class MetricSweeper {
 public:
  MetricSweeper(MetricStore* store, std::chrono::milliseconds interval, const Clock* clock);
  ~MetricSweeper();
  MetricSweeper(const MetricSweeper&) = delete;
  MetricSweeper& operator=(const MetricSweeper&) = delete;

 private:
  Mutex mu_;
  CondVar cv_;
  bool stop_ TY_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The canonical text of a dimension set (sorted by name): the series' identity.
std::string CanonicalDimensions(std::vector<Dimension> dims);

}  // namespace ty::telemetry
