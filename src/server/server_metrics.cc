#include "server/server_metrics.h"

#include <cmath>
#include <cstdio>

namespace ty::server {

namespace {

constexpr size_t kMaxTrackedAgents = 100000;

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

std::string Labels(const std::vector<std::pair<std::string, std::string>>& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
  }
  return out + "}";
}

void Header(std::string* out, const std::string& name, const std::string& help,
            const std::string& type) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void ServerMetrics::OnRequest(const api::RequestRecord& record) {
  std::string service(record.service.empty() ? "unknown" : record.service);
  std::string operation(record.operation.empty() ? "unknown" : record.operation);
  std::string outcome(record.error_type.empty() ? "ok" : record.error_type);
  double seconds = std::chrono::duration<double>(record.latency).count();
  MutexLock lock(&mu_);
  requests_[{service, operation, outcome}].count++;
  Latency& l = latency_[{service, operation}];
  l.count++;
  l.sum_seconds += seconds;
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (seconds <= kLatencyBuckets[i]) {
      l.buckets[i]++;
      break;
    }
  }
}

void ServerMetrics::OnAgentReport(const std::string& agent, int64_t log_lines, int64_t log_bytes,
                                  int64_t metric_points, TimePoint now) {
  MutexLock lock(&mu_);
  reports_++;
  log_lines_ += log_lines;
  log_bytes_ += log_bytes;
  metric_points_ += metric_points;
  if (last_report_.size() >= kMaxTrackedAgents && !last_report_.contains(agent)) {
    last_report_.clear();  // a bound, not a cache: the next reports refill it
  }
  last_report_[agent] = now;
}

int64_t ServerMetrics::AgentsConnected(TimePoint now, std::chrono::seconds window) {
  MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto it = last_report_.begin(); it != last_report_.end();) {
    if (now - it->second > window * 10) {
      it = last_report_.erase(it);  // long gone: forget it
      continue;
    }
    if (now - it->second <= window) ++n;
    ++it;
  }
  return n;
}

std::string ServerMetrics::Render(const std::vector<GaugeFamily>& gauges) {
  std::string out;
  {
    MutexLock lock(&mu_);
    Header(&out, "trainyard_api_requests_total",
           "API requests answered, by service, operation and outcome (ok or the error type).",
           "counter");
    for (const auto& [key, r] : requests_) {
      const auto& [service, operation, outcome] = key;
      out += "trainyard_api_requests_total" +
             Labels({{"service", service}, {"operation", operation}, {"outcome", outcome}}) + " " +
             Number(static_cast<double>(r.count)) + "\n";
    }
    Header(&out, "trainyard_api_request_duration_seconds",
           "Time from a request's arrival at the router to its response, by service and "
           "operation.",
           "histogram");
    for (const auto& [key, l] : latency_) {
      const auto& [service, operation] = key;
      int64_t cumulative = 0;
      for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
        cumulative += l.buckets[i];
        out += "trainyard_api_request_duration_seconds_bucket" +
               Labels({{"service", service},
                       {"operation", operation},
                       {"le", Number(kLatencyBuckets[i])}}) +
               " " + Number(static_cast<double>(cumulative)) + "\n";
      }
      std::string base = Labels({{"service", service}, {"operation", operation}});
      out += "trainyard_api_request_duration_seconds_bucket" +
             Labels({{"service", service}, {"operation", operation}, {"le", "+Inf"}}) + " " +
             Number(static_cast<double>(l.count)) + "\n";
      out +=
          "trainyard_api_request_duration_seconds_sum" + base + " " + Number(l.sum_seconds) + "\n";
      out += "trainyard_api_request_duration_seconds_count" + base + " " +
             Number(static_cast<double>(l.count)) + "\n";
    }
    Header(&out, "trainyard_agent_reports_total", "Agent reports taken.", "counter");
    out += "trainyard_agent_reports_total " + Number(static_cast<double>(reports_)) + "\n";
    Header(&out, "trainyard_log_lines_ingested_total", "Job log lines taken from agent reports.",
           "counter");
    out += "trainyard_log_lines_ingested_total " + Number(static_cast<double>(log_lines_)) + "\n";
    Header(&out, "trainyard_log_bytes_ingested_total",
           "Bytes of job log lines taken from agent reports.", "counter");
    out += "trainyard_log_bytes_ingested_total " + Number(static_cast<double>(log_bytes_)) + "\n";
    Header(&out, "trainyard_metric_points_ingested_total",
           "Instance metric points taken from agent reports.", "counter");
    out += "trainyard_metric_points_ingested_total " + Number(static_cast<double>(metric_points_)) +
           "\n";
  }
  for (const GaugeFamily& g : gauges) {
    Header(&out, g.name, g.help, g.type);
    for (const GaugeSample& s : g.samples) {
      out += g.name + Labels(s.labels) + " " + Number(s.value) + "\n";
    }
  }
  return out;
}

}  // namespace ty::server
