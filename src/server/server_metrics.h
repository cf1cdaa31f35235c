// ServerMetrics: the server's own metrics in the Prometheus text exposition format (0.0.4),
// for `GET /metrics`: API requests by service, operation and outcome with latency histograms
// (fed by the router as its RequestObserver), agent reports and the log lines and metric points
// they carried, and, gathered at scrape time by the caller, jobs by status, capacity in use,
// agents connected and the HTTP edge's connection counters.
//
// Label values are bounded sets: service ids and operation names come from the embedded models
// (the router records an operation only once the model knows it), outcomes are "ok" or an
// error type our code produced.
//
// Thread-safe: OnRequest and the ingest counters may be called from every HTTP worker while
// Render runs.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "api/router.h"
#include "common/clock.h"
#include "common/mutex.h"

namespace ty::server {

// One sample of a metric family rendered at scrape time.
struct GaugeSample {
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

struct GaugeFamily {
  std::string name;  // "trainyard_jobs"
  std::string help;
  std::string type = "gauge";  // or "counter"
  std::vector<GaugeSample> samples;
};

class ServerMetrics final : public api::RequestObserver {
 public:
  // Upper bounds (seconds) of the request latency histogram's buckets; +Inf is implied.
  static constexpr std::array<double, 13> kLatencyBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

  void OnRequest(const api::RequestRecord& record) override;

  // An agent report was taken: its log lines, their bytes and its metric points.
  void OnAgentReport(const std::string& agent, int64_t log_lines, int64_t log_bytes,
                     int64_t metric_points, TimePoint now);
  // Agents that reported within `window` of `now` (an agent is a job's instance).
  int64_t AgentsConnected(TimePoint now, std::chrono::seconds window);

  // The whole exposition: the counters kept here, then `gauges` (gathered by the caller).
  std::string Render(const std::vector<GaugeFamily>& gauges);

 private:
  struct Requests {
    int64_t count = 0;
  };
  struct Latency {
    std::array<int64_t, kLatencyBuckets.size()> buckets{};  // non-cumulative
    int64_t count = 0;
    double sum_seconds = 0;
  };
  Mutex mu_;
  // (service, operation, outcome) -> count; (service, operation) -> latency.
  std::map<std::tuple<std::string, std::string, std::string>, Requests> requests_
      TY_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Latency> latency_ TY_GUARDED_BY(mu_);
  int64_t reports_ TY_GUARDED_BY(mu_) = 0;
  int64_t log_lines_ TY_GUARDED_BY(mu_) = 0;
  int64_t log_bytes_ TY_GUARDED_BY(mu_) = 0;
  int64_t metric_points_ TY_GUARDED_BY(mu_) = 0;
  // Last report time per agent; pruned when it grows past a bound.
  std::map<std::string, TimePoint> last_report_ TY_GUARDED_BY(mu_);
};

// Escapes a label value for the exposition format (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view value);

}  // namespace ty::server
