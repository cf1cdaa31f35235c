// The profiler rules and their Evaluation. README.md, "Profiler rules", is the contract for what
// each rule computes; keep the two in step.
#include "debugger/profiler_rules.h"

#include <stdlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "common/fs.h"
#include "common/text.h"
#include "debugger/profiler_report.h"
#include "debugger/system_metrics.h"

namespace ty::debugger {

namespace {

using json = nlohmann::json;

// Distinct keys (GPUs, nodes, node×dimension) one rule tracks; more is an Error, not growth.
constexpr size_t kMaxTrackedSeries = 4096;
constexpr int64_t kMaxWindow = 100'000;
// Consecutive failed reads of the store (List/Download errors) before the rule gives up.
constexpr int kMaxStoreFailures = 10;
// Per-minute points the report's charts keep, over all nodes and dimensions (about a week of
// five dimensions on one node).
constexpr size_t kMaxTimelinePoints = 50'000;

// ---- parameters ------------------------------------------------------------------------

enum class ParamKind { kPercentile, kPositiveInt, kPositive };

struct ParamSpec {
  const char* name;
  double default_value;
  ParamKind kind;
};

struct RuleSpecTable {
  const char* rule;
  std::vector<ParamSpec> params;
};

constexpr double kScanDefault = 60.0 * 1000 * 1000;

const std::vector<RuleSpecTable>& RuleTables() {
  static const auto* tables = new std::vector<RuleSpecTable>{
      {"LowGPUUtilization",
       {{"threshold_p95", 70, ParamKind::kPercentile},
        {"threshold_p5", 10, ParamKind::kPercentile},
        {"window", 500, ParamKind::kPositiveInt},
        {"patience", 1000, ParamKind::kPositiveInt},
        {"scan_interval_us", kScanDefault, ParamKind::kPositiveInt}}},
      {"CPUBottleneck",
       {{"threshold", 50, ParamKind::kPercentile},
        {"gpu_threshold", 10, ParamKind::kPercentile},
        {"cpu_threshold", 90, ParamKind::kPercentile},
        {"patience", 1000, ParamKind::kPositiveInt},
        {"scan_interval_us", kScanDefault, ParamKind::kPositiveInt}}},
      {"IOBottleneck",
       {{"threshold", 50, ParamKind::kPercentile},
        {"gpu_threshold", 10, ParamKind::kPercentile},
        {"io_threshold", 50, ParamKind::kPercentile},
        {"patience", 1000, ParamKind::kPositiveInt},
        {"scan_interval_us", kScanDefault, ParamKind::kPositiveInt}}},
      {"GPUMemoryIncrease",
       {{"increase", 5, ParamKind::kPositive},
        {"patience", 1000, ParamKind::kPositiveInt},
        {"window", 10, ParamKind::kPositiveInt},
        {"scan_interval_us", kScanDefault, ParamKind::kPositiveInt}}},
      {"OverallSystemUsage", {{"scan_interval_us", kScanDefault, ParamKind::kPositiveInt}}},
      {"MaxInitializationTime",
       {{"threshold", 20, ParamKind::kPositive},
        {"scan_interval_us", kScanDefault, ParamKind::kPositiveInt}}},
  };
  return *tables;
}

// smdebug_rulesconfig's ProfilerReport.get_rules() that Trainyard does not evaluate (they need
// framework metrics, or analyses outside issue 13's list); their parameters are accepted.
const std::vector<std::string>& NotEvaluatedRules() {
  static const auto* names =
      new std::vector<std::string>{"BatchSize", "Dataloader", "LoadBalancing", "StepOutlier"};
  return *names;
}

const RuleSpecTable* FindTable(std::string_view rule) {
  for (const auto& t : RuleTables()) {
    if (rule == t.rule) return &t;
  }
  return nullptr;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Fmt(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f", v);
  }
  return buf;
}

std::string TimeText(double seconds) {
  return FormatIso8601(FromEpochMillis(static_cast<int64_t>(std::llround(seconds * 1000))));
}

Result<double> ParseNumber(const std::string& rule, const std::string& name,
                           const std::string& text) {
  if (text.empty() || text.size() > 64) {
    return InvalidArgument(rule + " parameter " + name + " must be a number, not \"" +
                           TruncateUtf8(text, 64) + "\"");
  }
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) {
    return InvalidArgument(rule + " parameter " + name + " must be a number, not \"" + text + "\"");
  }
  return v;
}

// The parameters of one rule: defaults overridden by `given` (keys already lower-case).
Result<std::map<std::string, double>> ResolveParams(
    const RuleSpecTable& table, const std::map<std::string, std::string>& given) {
  std::map<std::string, double> out;
  for (const auto& p : table.params) out[p.name] = p.default_value;
  for (const auto& [key, text] : given) {
    const ParamSpec* spec = nullptr;
    for (const auto& p : table.params) {
      if (key == p.name) spec = &p;
    }
    if (spec == nullptr) {
      std::string accepted;
      for (const auto& p : table.params)
        accepted += (accepted.empty() ? "" : ", ") + std::string(p.name);
      return InvalidArgument(TruncateUtf8(key, 64) + " is not a parameter of " + table.rule +
                             "; accepted: " + accepted);
    }
    TY_ASSIGN_OR_RETURN(double v, ParseNumber(table.rule, key, text));
    switch (spec->kind) {
      case ParamKind::kPercentile:
        if (v < 0 || v > 100) {
          return InvalidArgument(std::string(table.rule) + " " + key +
                                 " must be a valid percentile (0 to 100), not " + text);
        }
        break;
      case ParamKind::kPositiveInt:
        if (v <= 0 || v != std::floor(v) || v > 1e15) {
          return InvalidArgument(std::string(table.rule) + " " + key +
                                 " must be a positive integer, not " + text);
        }
        break;
      case ParamKind::kPositive:
        if (v <= 0) {
          return InvalidArgument(std::string(table.rule) + " " + key + " must be positive, not " +
                                 text);
        }
        break;
    }
    out[key] = v;
  }
  if (out.count("window") && out["window"] > kMaxWindow) {
    return InvalidArgument(std::string(table.rule) + " window must be at most " +
                           std::to_string(kMaxWindow));
  }
  return out;
}

json ParamsJson(const std::map<std::string, double>& p) {
  json out = json::object();
  for (const auto& [k, v] : p) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
      out[k] = static_cast<int64_t>(v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

// ---- statistics ------------------------------------------------------------------------

// numpy.percentile's default (linear interpolation between closest ranks).
double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(idx));
  const auto hi = static_cast<size_t>(std::ceil(idx));
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

// Evaluation points in sample time: every `interval` seconds after a series' first sample.
class ScanTimer {
 public:
  explicit ScanTimer(double interval_s) : interval_(interval_s) {}
  // True when `t` reached the next evaluation point (which then moves past `t`).
  bool Crossed(double t) {
    if (!next_) {
      next_ = t + interval_;
      return false;
    }
    if (t < *next_) return false;
    const double steps = std::floor((t - *next_) / interval_) + 1;
    *next_ += steps * interval_;
    return true;
  }

 private:
  double interval_;
  std::optional<double> next_;
};

template <class T>
Result<T*> Slot(std::map<std::string, T>& m, const std::string& key, const T& init) {
  auto it = m.find(key);
  if (it != m.end()) return &it->second;
  if (m.size() >= kMaxTrackedSeries) {
    return ResourceExhausted("more than " + std::to_string(kMaxTrackedSeries) +
                             " distinct metric series");
  }
  return &m.emplace(key, init).first->second;
}

std::string SeriesLabel(const SystemMetricEvent& e) {
  return e.node_id + "/" + (e.name.empty() ? e.type : e.name);
}

// ---- rules -----------------------------------------------------------------------------

struct Outcome {
  bool fired = false;
  std::string details;
  json findings = json::object();
};

class SystemRule {
 public:
  SystemRule(std::string name, std::map<std::string, double> params)
      : name_(std::move(name)), params_(std::move(params)) {}
  virtual ~SystemRule() = default;
  virtual Status OnSample(const SystemMetricEvent& e) = 0;
  // Time-driven checks (MaxInitializationTime); `now` from the evaluation's clock.
  virtual void Tick(TimePoint /*now*/) {}
  // The data is complete: last evaluation, and the details when the rule did not fire.
  virtual void Finish() = 0;
  const std::string& name() const { return name_; }
  const std::map<std::string, double>& params() const { return params_; }
  const Outcome& outcome() const { return outcome_; }
  bool fired() const { return outcome_.fired; }

 protected:
  double P(const char* key) const { return params_.at(key); }
  void Fire(std::string details, json findings) {
    if (outcome_.fired) return;
    outcome_.fired = true;
    outcome_.details = std::move(details);
    outcome_.findings = std::move(findings);
  }
  void Quiet(std::string details, json findings = json::object()) {
    if (outcome_.fired) return;
    outcome_.details = std::move(details);
    outcome_.findings = std::move(findings);
  }

 private:
  std::string name_;
  std::map<std::string, double> params_;
  Outcome outcome_;
};

std::string NoGpuSentence(const std::string& rule) {
  return "No GPU was present: the instance reported no GPU metrics, so " + rule +
         " had nothing to check.";
}

class LowGpuUtilizationRule final : public SystemRule {
 public:
  using SystemRule::SystemRule;

  Status OnSample(const SystemMetricEvent& e) override {
    if (fired() || e.dimension != kGpuUtilization) return Status::Ok();
    const std::string label = SeriesLabel(e);
    TY_ASSIGN_OR_RETURN(Gpu * gpu, Slot(gpus_, label, Gpu(P("scan_interval_us") / 1e6)));
    if (gpu->scan.Crossed(e.timestamp)) Check(label, *gpu);
    // The first `patience` samples (initialization) never enter the window.
    if (++gpu->count > static_cast<int64_t>(P("patience"))) {
      gpu->window.push_back(e.value);
      if (gpu->window.size() > static_cast<size_t>(P("window"))) gpu->window.pop_front();
    }
    gpu->last_ts = e.timestamp;
    return Status::Ok();
  }

  void Finish() override {
    for (auto& [label, gpu] : gpus_) Check(label, gpu);
    if (gpus_.empty()) return Quiet(NoGpuSentence(name()));
    if (checks_ == 0) {
      return Quiet("Fewer than patience (" + Fmt(P("patience")) +
                   ") utilization samples per GPU were recorded, so no GPU was checked.");
    }
    Quiet("GPU utilization looked healthy: in " + std::to_string(checks_) + " checks of " +
              std::to_string(gpus_.size()) + " GPU(s) the 95th percentile stayed at or above " +
              Fmt(P("threshold_p95")) + "% without the 5th percentile falling below " +
              Fmt(P("threshold_p5")) + "%.",
          {{"checks", checks_}, {"gpus", gpus_.size()}});
  }

 private:
  struct Gpu {
    explicit Gpu(double interval) : scan(interval) {}
    std::deque<double> window;
    int64_t count = 0;
    double last_ts = 0;
    ScanTimer scan;
  };

  void Check(const std::string& label, Gpu& gpu) {
    if (fired() || gpu.window.empty()) return;
    ++checks_;
    std::vector<double> values(gpu.window.begin(), gpu.window.end());
    const double p95 = Percentile(values, 95);
    const double p5 = Percentile(values, 5);
    json f = {{"gpu", label},
              {"p95", p95},
              {"p5", p5},
              {"window_samples", values.size()},
              {"time", TimeText(gpu.last_ts)},
              {"timestamp", gpu.last_ts}};
    if (p95 < P("threshold_p95")) {
      f["reason"] = "underutilized";
      Fire("GPU " + label + " is underutilized: the 95th percentile of its utilization over the " +
               "last " + std::to_string(values.size()) + " samples was " + Fmt(p95) +
               "%, below threshold_p95 " + Fmt(P("threshold_p95")) + "% (at " +
               TimeText(gpu.last_ts) + ").",
           f);
    } else if (p5 < P("threshold_p5")) {
      f["reason"] = "fluctuating";
      Fire("GPU " + label + " utilization fluctuates: over the last " +
               std::to_string(values.size()) + " samples its 95th percentile was " + Fmt(p95) +
               "% but its 5th percentile " + Fmt(p5) + "%, below threshold_p5 " +
               Fmt(P("threshold_p5")) + "% (at " + TimeText(gpu.last_ts) + ").",
           f);
    }
  }

  std::map<std::string, Gpu> gpus_;
  int64_t checks_ = 0;
};

// CPUBottleneck and IOBottleneck: the fraction of sampling rounds in which the GPUs idle while
// CPU utilization (or I/O wait) is high.
class BottleneckRule final : public SystemRule {
 public:
  BottleneckRule(std::string name, std::map<std::string, double> params, bool io)
      : SystemRule(std::move(name), std::move(params)), io_(io) {}

  Status OnSample(const SystemMetricEvent& e) override {
    if (fired()) return Status::Ok();
    const bool is_metric = e.dimension == (io_ ? kIoWaitPercentage : kCpuUtilization);
    const bool is_gpu = e.dimension == kGpuUtilization;
    if (!is_metric && !is_gpu) return Status::Ok();
    if (is_gpu) gpu_seen_ = true;
    if (is_metric) metric_seen_ = true;
    TY_ASSIGN_OR_RETURN(Node * node, Slot(nodes_, e.node_id, Node(P("scan_interval_us") / 1e6)));
    const std::string series = e.name + "\x1f" + e.dimension;
    if (node->round.seen.count(series)) CloseRound(e.node_id, *node);
    Round& r = node->round;
    if (r.seen.empty()) r.timestamp = e.timestamp;
    if (r.seen.size() < 1024) r.seen.insert(series);
    if (is_gpu) {
      r.gpu_sum += e.value;
      ++r.gpu_n;
    } else {
      r.metric_sum += e.value;
      ++r.metric_n;
    }
    return Status::Ok();
  }

  void Finish() override {
    for (auto& [id, node] : nodes_) {
      CloseRound(id, node);
      Evaluate(id, node);
    }
    if (!gpu_seen_) return Quiet(NoGpuSentence(name()));
    if (!metric_seen_) {
      return Quiet(std::string("No ") + std::string(io_ ? kIoWaitPercentage : kCpuUtilization) +
                   " samples were reported, so " + name() + " had nothing to check.");
    }
    int64_t checked = 0, bottlenecks = 0;
    for (const auto& [id, node] : nodes_) {
      checked += node.checked;
      bottlenecks += node.bottlenecks;
    }
    if (checked == 0) {
      return Quiet("Fewer than patience (" + Fmt(P("patience")) +
                   ") sampling rounds with GPU data were recorded, so nothing was checked.");
    }
    Quiet("No " + std::string(io_ ? "I/O" : "CPU") + " bottleneck: " + std::to_string(bottlenecks) +
              " of " + std::to_string(checked) + " checked sampling rounds (" +
              Fmt(100.0 * bottlenecks / checked) + "%) had GPUs idle under " +
              (io_ ? "high I/O wait" : "high CPU load") + ", not more than threshold " +
              Fmt(P("threshold")) + "%.",
          {{"checked", checked}, {"bottlenecks", bottlenecks}});
  }

 private:
  struct Round {
    double timestamp = 0;
    double metric_sum = 0, gpu_sum = 0;
    int metric_n = 0, gpu_n = 0;
    std::set<std::string> seen;
  };
  struct Node {
    explicit Node(double interval) : scan(interval) {}
    Round round;
    int64_t datapoints = 0, checked = 0, bottlenecks = 0;
    double first_bottleneck = 0, last_bottleneck = 0, last_ts = 0;
    ScanTimer scan;
  };

  void CloseRound(const std::string& id, Node& node) {
    Round r = std::move(node.round);
    node.round = Round{};
    if (r.seen.empty()) return;
    if (r.metric_n > 0 && r.gpu_n > 0) {
      ++node.datapoints;
      if (node.datapoints > static_cast<int64_t>(P("patience"))) {
        ++node.checked;
        const double metric = r.metric_sum / r.metric_n;
        const double gpu = r.gpu_sum / r.gpu_n;
        const double metric_threshold = P(io_ ? "io_threshold" : "cpu_threshold");
        if (metric > metric_threshold && gpu < P("gpu_threshold")) {
          if (node.bottlenecks == 0) node.first_bottleneck = r.timestamp;
          ++node.bottlenecks;
          node.last_bottleneck = r.timestamp;
        }
      }
    }
    node.last_ts = r.timestamp;
    if (node.scan.Crossed(r.timestamp)) Evaluate(id, node);
  }

  void Evaluate(const std::string& id, const Node& node) {
    if (fired() || node.checked == 0) return;
    const double pct = 100.0 * static_cast<double>(node.bottlenecks) / node.checked;
    if (pct <= P("threshold")) return;
    const std::string what =
        io_ ? "I/O wait above io_threshold " + Fmt(P("io_threshold")) + "%"
            : "CPU utilization above cpu_threshold " + Fmt(P("cpu_threshold")) + "%";
    Fire(std::string(io_ ? "I/O" : "CPU") + " bottleneck on " + id + ": in " +
             std::to_string(node.bottlenecks) + " of " + std::to_string(node.checked) +
             " sampling rounds (" + Fmt(pct) + "%, more than threshold " + Fmt(P("threshold")) +
             "%) the GPUs averaged under gpu_threshold " + Fmt(P("gpu_threshold")) + "% with " +
             what + ", between " + TimeText(node.first_bottleneck) + " and " +
             TimeText(node.last_bottleneck) + ".",
         {{"node", id},
          {"bottlenecks", node.bottlenecks},
          {"checked", node.checked},
          {"percent", pct},
          {"first_bottleneck_time", TimeText(node.first_bottleneck)},
          {"last_bottleneck_time", TimeText(node.last_bottleneck)},
          {"evaluated_at", TimeText(node.last_ts)}});
  }

  bool io_;
  bool gpu_seen_ = false, metric_seen_ = false;
  std::map<std::string, Node> nodes_;
};

class GpuMemoryIncreaseRule final : public SystemRule {
 public:
  using SystemRule::SystemRule;

  Status OnSample(const SystemMetricEvent& e) override {
    if (fired() || e.dimension != kGpuMemoryUtilization) return Status::Ok();
    const std::string label = SeriesLabel(e);
    TY_ASSIGN_OR_RETURN(Gpu * gpu, Slot(gpus_, label, Gpu(P("scan_interval_us") / 1e6)));
    if (gpu->scan.Crossed(e.timestamp)) Check(label, *gpu);
    // The first `patience` samples (initialization) never enter the window.
    if (++gpu->count > static_cast<int64_t>(P("patience"))) {
      gpu->window.push_back(e.value);
      if (gpu->window.size() > static_cast<size_t>(P("window"))) gpu->window.pop_front();
    }
    gpu->last_ts = e.timestamp;
    return Status::Ok();
  }

  void Finish() override {
    for (auto& [label, gpu] : gpus_) Check(label, gpu);
    if (gpus_.empty()) return Quiet(NoGpuSentence(name()));
    if (checks_ < 2) {
      return Quiet("Too few GPU memory samples (patience " + Fmt(P("patience")) + ", window " +
                   Fmt(P("window")) + ") to compare two moving averages.");
    }
    Quiet("GPU memory stayed level: no moving average of " + Fmt(P("window")) +
              " samples rose more than " + Fmt(P("increase")) + " points over the previous one.",
          {{"checks", checks_}});
  }

 private:
  struct Gpu {
    explicit Gpu(double interval) : scan(interval) {}
    std::deque<double> window;
    int64_t count = 0;
    double last_ts = 0;
    std::optional<double> previous;
    double previous_ts = 0;
    ScanTimer scan;
  };

  void Check(const std::string& label, Gpu& gpu) {
    if (fired() || gpu.window.size() < static_cast<size_t>(P("window"))) return;
    ++checks_;
    double sum = 0;
    for (double v : gpu.window) sum += v;
    const double avg = sum / static_cast<double>(gpu.window.size());
    if (gpu.previous && avg - *gpu.previous > P("increase")) {
      Fire("GPU memory on " + label + " increased: its moving average over " + Fmt(P("window")) +
               " samples rose from " + Fmt(*gpu.previous) + "% (at " + TimeText(gpu.previous_ts) +
               ") to " + Fmt(avg) + "% (at " + TimeText(gpu.last_ts) + "), more than increase " +
               Fmt(P("increase")) + " points.",
           {{"gpu", label},
            {"previous_average", *gpu.previous},
            {"previous_time", TimeText(gpu.previous_ts)},
            {"average", avg},
            {"time", TimeText(gpu.last_ts)},
            {"timestamp", gpu.last_ts}});
      return;
    }
    gpu.previous = avg;
    gpu.previous_ts = gpu.last_ts;
  }

  std::map<std::string, Gpu> gpus_;
  int64_t checks_ = 0;
};

// Values rounded to 0.1 in [0, 100] (utilizations are percentages); min, max and mean exact.
class Histogram {
 public:
  void Add(double v) {
    const double clamped = std::clamp(v, 0.0, 100.0);
    ++bins_[static_cast<size_t>(std::llround(clamped * 10))];
    min_ = n_ == 0 ? v : std::min(min_, v);
    max_ = n_ == 0 ? v : std::max(max_, v);
    sum_ += v;
    ++n_;
  }
  double Quantile(double q) const {
    const auto rank = static_cast<int64_t>(std::ceil(q / 100.0 * static_cast<double>(n_)));
    int64_t seen = 0;
    for (size_t i = 0; i < bins_.size(); ++i) {
      seen += bins_[i];
      if (seen >= std::max<int64_t>(rank, 1)) return static_cast<double>(i) / 10.0;
    }
    return 100;
  }
  json Summary() const {
    auto r1 = [](double v) { return std::round(v * 100) / 100; };
    return {{"samples", n_},       {"min", r1(min_)},
            {"max", r1(max_)},     {"mean", r1(sum_ / static_cast<double>(n_))},
            {"p50", Quantile(50)}, {"p95", Quantile(95)},
            {"p99", Quantile(99)}};
  }
  int64_t count() const { return n_; }

 private:
  std::array<int64_t, 1001> bins_{};
  double min_ = 0, max_ = 0, sum_ = 0;
  int64_t n_ = 0;
};

class OverallSystemUsageRule final : public SystemRule {
 public:
  using SystemRule::SystemRule;

  Status OnSample(const SystemMetricEvent& e) override {
    TY_ASSIGN_OR_RETURN(Histogram * h, Slot(hists_, e.node_id + "\x1f" + e.dimension, Histogram{}));
    h->Add(e.value);
    ++samples_;
    return Status::Ok();
  }

  void Finish() override {
    Quiet("Summarized " + std::to_string(samples_) + " samples of " +
              std::to_string(hists_.size()) +
              " node metrics (percentiles per node and metric in the findings); this rule "
              "reports and never fires.",
          Usage());
  }

  json Usage() const {
    json out = json::object();
    for (const auto& [key, h] : hists_) {
      const size_t sep = key.find('\x1f');
      out[key.substr(0, sep)][key.substr(sep + 1)] = h.Summary();
    }
    return out;
  }

 private:
  std::map<std::string, Histogram> hists_;
  int64_t samples_ = 0;
};

// The earliest time a training step became visible: the first object of the debug hook's
// index/ (one per saved step) or of the profiler's framework/ metrics. nullopt: none yet.
using StepProbe = std::function<Result<std::optional<TimePoint>>()>;

class MaxInitializationTimeRule final : public SystemRule {
 public:
  MaxInitializationTimeRule(std::string name, std::map<std::string, double> params, StepProbe probe,
                            bool has_step_source)
      : SystemRule(std::move(name), std::move(params)),
        probe_(std::move(probe)),
        has_step_source_(has_step_source) {}

  Status OnSample(const SystemMetricEvent& e) override {
    if (!first_sample_ || e.timestamp < *first_sample_) first_sample_ = e.timestamp;
    return Status::Ok();
  }

  void Tick(TimePoint now) override {
    if (fired() || step_time_) return;
    if (!first_tick_) first_tick_ = now;
    if (has_step_source_) {
      auto step = probe_();
      if (step.ok() && step->has_value()) step_time_ = **step;  // a failed probe retries later
    }
    const double origin = Origin();
    const double limit_s = P("threshold") * 60;
    if (step_time_) {
      const double init = ToEpochMillis(*step_time_) / 1000.0 - origin;
      if (init > limit_s) {
        Fire("Initialization took " + Fmt(init / 60) + " minutes: the first step appeared at " +
                 TimeText(ToEpochMillis(*step_time_) / 1000.0) +
                 ", after the first system sample at " + TimeText(origin) +
                 ", more than threshold " + Fmt(P("threshold")) + " minutes.",
             {{"initialization_seconds", init},
              {"first_step_time", TimeText(ToEpochMillis(*step_time_) / 1000.0)},
              {"start_time", TimeText(origin)}});
      }
      return;
    }
    if (!has_step_source_) return;
    const double waited = ToEpochMillis(now) / 1000.0 - origin;
    if (waited > limit_s) {
      Fire("No training step appeared within threshold " + Fmt(P("threshold")) +
               " minutes of the first system sample at " + TimeText(origin) + " (waited " +
               Fmt(waited / 60) + " minutes).",
           {{"waited_seconds", waited}, {"start_time", TimeText(origin)}});
    }
  }

  void Finish() override {
    if (step_time_) {
      const double init = ToEpochMillis(*step_time_) / 1000.0 - Origin();
      return Quiet("The first step appeared " + Fmt(std::max(init, 0.0)) +
                       " s after the first system sample, within threshold " + Fmt(P("threshold")) +
                       " minutes.",
                   {{"initialization_seconds", init}});
    }
    if (!has_step_source_) {
      return Quiet(
          "No step information was available (the job has no DebugHookConfig and writes no "
          "framework metrics), so the initialization time could not be measured.");
    }
    Quiet("The job ended before any step was saved, within threshold " + Fmt(P("threshold")) +
          " minutes.");
  }

 private:
  double Origin() const {
    if (first_sample_) return *first_sample_;
    return first_tick_ ? ToEpochMillis(*first_tick_) / 1000.0 : 0;
  }

  StepProbe probe_;
  bool has_step_source_;
  std::optional<double> first_sample_;
  std::optional<TimePoint> first_tick_;
  std::optional<TimePoint> step_time_;
};

// ---- the evaluation --------------------------------------------------------------------

struct RuleSetup {
  std::string rule;
  std::map<std::string, double> params;
};

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/ty_profiler_XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    if (!path_.empty()) (void)RemoveAll(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ProfilerRuleEvaluation final : public Evaluation {
 public:
  ProfilerRuleEvaluation(const model::RuleSpec& spec, const EvaluationContext& ctx,
                         storage::ObjectStore* store,
                         std::vector<std::unique_ptr<SystemRule>> rules, bool report,
                         std::unique_ptr<ScratchDir> scratch, const Clock& clock)
      : configuration_name_(spec.configuration_name),
        rule_name_(spec.rule),
        job_name_(ctx.spec ? ctx.spec->name : ""),
        trial_uri_(ctx.trial_uri),
        open_store_(ctx.open_store),
        rules_(std::move(rules)),
        report_(report),
        scratch_(std::move(scratch)),
        reader_(store, ctx.trial_uri, scratch_->path()),
        clock_(clock) {}

  EvaluationResult Advance(const AdvanceLimits& limits) override {
    if (result_.status != RuleStatus::kInProgress) return result_;
    const auto deadline = std::chrono::steady_clock::now() + limits.budget;
    Status s = reader_.Poll([this](const SystemMetricEvent& e) { return OnSample(e); }, deadline,
                            limits.training_ended, limits.max_tensor_bytes);
    if (!s.ok()) {
      const bool data_error =
          s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kResourceExhausted;
      if (data_error || ++store_failures_ >= kMaxStoreFailures) {
        return Fail((data_error ? "" : "Could not read the profiler output: ") + s.message());
      }
      return result_;
    }
    store_failures_ = 0;
    const TimePoint now = clock_.Now();
    for (auto& r : rules_) r->Tick(now);
    result_.steps_evaluated = reader_.samples_read();

    const bool done = limits.training_ended && reader_.caught_up();
    if (done) {
      for (auto& r : rules_) r->Finish();
    }
    if (!report_) {
      const Outcome& o = rules_.front()->outcome();
      if (o.fired) return Conclude(RuleStatus::kIssuesFound, o.details, o.findings);
      if (done) return Conclude(RuleStatus::kNoIssuesFound, o.details, o.findings);
      return result_;
    }
    // ProfilerReport runs to the end of the job; it rewrites the report when a rule first fires.
    size_t fired = 0;
    for (const auto& r : rules_) fired += r->fired() ? 1 : 0;
    if (done || fired > reported_fired_) {
      reported_fired_ = fired;
      Status w = WriteReport(done);
      if (!w.ok() && done) return Fail("Could not write the profiler report: " + w.message());
    }
    if (!done) return result_;
    std::string names;
    for (const auto& r : rules_) {
      if (r->fired()) names += (names.empty() ? "" : ", ") + r->name();
    }
    const std::string where = ProfilerReportOutputUri(trial_uri_, configuration_name_);
    json findings = {{"report", where + "profiler-report.html"}, {"rules", json::object()}};
    for (const auto& r : rules_) {
      findings["rules"][r->name()] = r->fired() ? "IssuesFound" : "NoIssuesFound";
    }
    if (fired > 0) {
      return Conclude(RuleStatus::kIssuesFound,
                      std::to_string(fired) + " of " + std::to_string(rules_.size()) +
                          " profiler rules found issues (" + names + "); report: " + where +
                          "profiler-report.html",
                      findings);
    }
    return Conclude(RuleStatus::kNoIssuesFound,
                    "None of the " + std::to_string(rules_.size()) +
                        " profiler rules found issues; report: " + where + "profiler-report.html",
                    findings);
  }

 private:
  Status OnSample(const SystemMetricEvent& e) {
    if (first_ts_ == 0 || e.timestamp < first_ts_) first_ts_ = e.timestamp;
    last_ts_ = std::max(last_ts_, e.timestamp);
    if (e.dimension == kGpuUtilization || e.dimension == kGpuMemoryUtilization) gpu_ = true;
    if (report_) AddToTimeline(e);
    for (auto& r : rules_) TY_RETURN_IF_ERROR(r->OnSample(e));
    return Status::Ok();
  }

  // Per-minute means of the charted dimensions, for the report; bounded in points.
  void AddToTimeline(const SystemMetricEvent& e) {
    if (e.dimension != kCpuUtilization && e.dimension != kGpuUtilization &&
        e.dimension != kGpuMemoryUtilization && e.dimension != kIoWaitPercentage &&
        e.dimension != "MemoryUsedPercent") {
      return;
    }
    auto& series = timeline_[e.node_id + "\x1f" + e.dimension];
    const auto minute = static_cast<int64_t>(e.timestamp) / 60 * 60;
    auto it = series.find(minute);
    if (it == series.end()) {
      if (timeline_points_ >= kMaxTimelinePoints) return;
      ++timeline_points_;
      it = series.emplace(minute, std::pair<double, int64_t>{0, 0}).first;
    }
    it->second.first += e.value;
    ++it->second.second;
  }

  json TimelineJson() const {
    json out = json::object();
    for (const auto& [key, points] : timeline_) {
      const size_t sep = key.find('\x1f');
      json arr = json::array();
      for (const auto& [minute, acc] : points) {
        arr.push_back(
            {minute, std::round(acc.first / static_cast<double>(acc.second) * 100) / 100});
      }
      out[key.substr(0, sep)][key.substr(sep + 1)] = std::move(arr);
    }
    return out;
  }

  EvaluationResult Conclude(RuleStatus status, const std::string& details, const json& findings) {
    result_.status = status;
    result_.details = TruncateUtf8(details, 1024);
    result_.findings = findings;
    result_.steps_evaluated = reader_.samples_read();
    return result_;
  }

  EvaluationResult Fail(const std::string& why) {
    return Conclude(RuleStatus::kError, why, json::object());
  }

  Status WriteReport(bool final) {
    ProfilerReportData d;
    d.job_name = job_name_;
    d.configuration_name = configuration_name_;
    d.profiler_uri = trial_uri_;
    d.final = final;
    d.nodes = reader_.node_ids();
    d.samples = reader_.samples_read();
    d.files = static_cast<int64_t>(reader_.files_seen());
    d.first_timestamp = first_ts_;
    d.last_timestamp = last_ts_;
    d.gpu_present = gpu_;
    d.not_evaluated = NotEvaluatedRules();
    d.timeline = TimelineJson();
    for (const auto& r : rules_) {
      ProfilerRuleSummary s;
      s.rule = r->name();
      s.status = r->fired() ? "IssuesFound" : (final ? "NoIssuesFound" : "InProgress");
      s.details = r->outcome().details;
      if (s.details.empty()) s.details = "Evaluating: no issue found so far.";
      s.parameters = ParamsJson(r->params());
      s.findings = r->outcome().findings;
      if (auto* usage = dynamic_cast<OverallSystemUsageRule*>(r.get())) {
        d.system_usage = usage->Usage();
      }
      d.rules.push_back(std::move(s));
    }
    const std::string base = ProfilerReportOutputUri(trial_uri_, configuration_name_);
    TY_ASSIGN_OR_RETURN(storage::ObjectStore * store, open_store_(base));
    auto put = [&](const std::string& rel, const std::string& text) -> Status {
      const std::string local = JoinPath(scratch_->path(), "report.out");
      TY_RETURN_IF_ERROR(WriteFileAtomic(local, text, 0644, false));
      Status st = store->UploadFile(local, base + rel);
      (void)RemoveAll(local);
      return st;
    };
    const auto handler = json::error_handler_t::replace;
    for (size_t i = 0; i < d.rules.size(); ++i) {
      json one = RenderProfilerReportJson(d)["Rules"][i];
      TY_RETURN_IF_ERROR(
          put("profiler-reports/" + d.rules[i].rule + ".json", one.dump(2, ' ', false, handler)));
    }
    TY_RETURN_IF_ERROR(
        put("profiler-report.json", RenderProfilerReportJson(d).dump(2, ' ', false, handler)));
    return put("profiler-report.html", RenderProfilerReportHtml(d));
  }

  std::string configuration_name_;
  std::string rule_name_;
  std::string job_name_;
  std::string trial_uri_;
  std::function<Result<storage::ObjectStore*>(const std::string&)> open_store_;
  std::vector<std::unique_ptr<SystemRule>> rules_;
  bool report_;
  std::unique_ptr<ScratchDir> scratch_;
  SystemMetricsReader reader_;
  const Clock& clock_;
  EvaluationResult result_;
  int store_failures_ = 0;
  size_t reported_fired_ = 0;
  double first_ts_ = 0, last_ts_ = 0;
  bool gpu_ = false;
  std::map<std::string, std::map<int64_t, std::pair<double, int64_t>>> timeline_;
  size_t timeline_points_ = 0;
};

// ---- Python dict literal ---------------------------------------------------------------

class DictParser {
 public:
  explicit DictParser(std::string_view s) : s_(s) {}

  Result<std::map<std::string, std::string>> Parse() {
    std::map<std::string, std::string> out;
    Skip();
    if (!Eat('{')) return Err("expected '{'");
    Skip();
    if (Eat('}')) return End(std::move(out));
    while (true) {
      Skip();
      TY_ASSIGN_OR_RETURN(std::string key, String());
      Skip();
      if (!Eat(':')) return Err("expected ':'");
      Skip();
      TY_ASSIGN_OR_RETURN(std::string value, Scalar());
      if (out.size() >= 256) return Err("more than 256 entries");
      out[key] = value;
      Skip();
      if (Eat('}')) return End(std::move(out));
      if (!Eat(',')) return Err("expected ',' or '}'");
      Skip();
      if (Eat('}')) return End(std::move(out));  // Python allows a trailing comma
    }
  }

 private:
  Result<std::map<std::string, std::string>> End(std::map<std::string, std::string> out) {
    Skip();
    if (i_ != s_.size()) return Err("unexpected text after '}'");
    return out;
  }
  Status Err(const std::string& what) const {
    return InvalidArgument("custom_rule_parameters is not a dict literal: " + what + " at offset " +
                           std::to_string(i_));
  }
  void Skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  Result<std::string> String() {
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return Err("expected a string");
    const char quote = s_[i_++];
    std::string out;
    while (i_ < s_.size() && s_[i_] != quote) {
      char c = s_[i_++];
      if (c == '\\') {
        if (i_ >= s_.size()) break;
        c = s_[i_++];
        if (c == 'n')
          c = '\n';
        else if (c == 't')
          c = '\t';
      }
      if (out.size() >= 256) return Err("a string longer than 256 bytes");
      out += c;
    }
    if (!Eat(quote)) return Err("unterminated string");
    return out;
  }
  Result<std::string> Scalar() {
    if (i_ < s_.size() && (s_[i_] == '\'' || s_[i_] == '"')) return String();
    const size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                              s_[i_] == '-' || s_[i_] == '+' || s_[i_] == '_')) {
      ++i_;
    }
    std::string word(s_.substr(start, i_ - start));
    if (word.empty()) return Err("expected a value");
    if (word.size() > 256) return Err("a value longer than 256 bytes");
    if (word == "true") return std::string("True");
    if (word == "false") return std::string("False");
    if (word == "null") return std::string("None");
    if (word == "True" || word == "False" || word == "None") return word;
    char* end = nullptr;
    const double v = std::strtod(word.c_str(), &end);
    if (end != word.c_str() + word.size() || !std::isfinite(v)) {
      return Err("\"" + word + "\" is not a number, string or boolean");
    }
    return word;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// ProfilerReport's per-rule overrides: "<Rule>_<parameter>" keys (rule case-insensitive, as
// smdebug_rulesconfig accepts them), from custom_rule_parameters and from top-level keys.
Status AddOverride(const std::string& key, const std::string& value,
                   std::map<std::string, std::map<std::string, std::string>>* out) {
  const size_t us = key.find('_');
  if (us == std::string::npos || us == 0 || us + 1 >= key.size()) {
    return InvalidArgument("Key " + TruncateUtf8(key, 64) +
                           " does not follow naming scheme: <rule_name>_<parameter_name>");
  }
  const std::string rule = Lower(key.substr(0, us));
  const std::string param = Lower(key.substr(us + 1));
  for (const auto& t : RuleTables()) {
    if (Lower(t.rule) == rule) {
      (*out)[t.rule][param] = value;
      return Status::Ok();
    }
  }
  for (const auto& n : NotEvaluatedRules()) {
    if (Lower(n) == rule) return Status::Ok();  // accepted; that rule does not run here
  }
  std::string names;
  for (const auto& t : RuleTables()) names += (names.empty() ? "" : ", ") + std::string(t.rule);
  for (const auto& n : NotEvaluatedRules()) names += ", " + n;
  return InvalidArgument(
      TruncateUtf8(key.substr(0, us), 64) +
      " is an invalid rule name! Accepted case insensitive rule names are: " + names);
}

Result<std::unique_ptr<SystemRule>> MakeRule(const std::string& rule,
                                             const std::map<std::string, std::string>& given,
                                             const StepProbe& probe, bool has_step_source) {
  const RuleSpecTable* table = FindTable(rule);
  if (table == nullptr) return InvalidArgument("unknown profiler rule " + rule);
  TY_ASSIGN_OR_RETURN(auto params, ResolveParams(*table, given));
  if (rule == "LowGPUUtilization") {
    return std::unique_ptr<SystemRule>(new LowGpuUtilizationRule(rule, std::move(params)));
  }
  if (rule == "CPUBottleneck" || rule == "IOBottleneck") {
    return std::unique_ptr<SystemRule>(
        new BottleneckRule(rule, std::move(params), rule == "IOBottleneck"));
  }
  if (rule == "GPUMemoryIncrease") {
    return std::unique_ptr<SystemRule>(new GpuMemoryIncreaseRule(rule, std::move(params)));
  }
  if (rule == "OverallSystemUsage") {
    return std::unique_ptr<SystemRule>(new OverallSystemUsageRule(rule, std::move(params)));
  }
  return std::unique_ptr<SystemRule>(
      new MaxInitializationTimeRule(rule, std::move(params), probe, has_step_source));
}

using OpenStore = std::function<Result<storage::ObjectStore*>(const std::string&)>;

Result<std::optional<TimePoint>> EarliestObject(const OpenStore& open_store,
                                                const std::string& uri) {
  TY_ASSIGN_OR_RETURN(storage::ObjectStore * store, open_store(uri));
  TY_ASSIGN_OR_RETURN(auto listed, store->List(uri));
  std::optional<TimePoint> earliest;
  for (const auto& o : listed) {
    if (!earliest || o.mtime < *earliest) earliest = o.mtime;
  }
  return earliest;
}

}  // namespace

const std::vector<std::string>& ProfilerRuleNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const auto& t : RuleTables()) v->push_back(t.rule);
    v->push_back("ProfilerReport");
    return v;
  }();
  return *names;
}

Result<std::map<std::string, std::string>> ParsePythonDictLiteral(std::string_view text) {
  if (text.size() > 64 * 1024) {
    return InvalidArgument("custom_rule_parameters is longer than 64 KiB");
  }
  return DictParser(text).Parse();
}

Result<std::unique_ptr<Evaluation>> MakeProfilerRuleEvaluation(const model::RuleSpec& rule,
                                                               const EvaluationContext& context,
                                                               const Clock& clock) {
  if (context.trial_uri.empty() || !context.open_store) {
    return InvalidArgument("profiler rule " + rule.rule +
                           " needs the job's profiler output, but the job has no ProfilerConfig "
                           "output path");
  }
  const std::string& name = rule.rule;
  const bool report = name == "ProfilerReport";
  if (!report && FindTable(name) == nullptr) {
    std::string names;
    for (const auto& n : ProfilerRuleNames()) names += (names.empty() ? "" : ", ") + n;
    return InvalidArgument("Unknown profiler rule \"" + TruncateUtf8(name, 128) +
                           "\"; Trainyard evaluates " + names);
  }

  // Step evidence for MaxInitializationTime: the debug hook's index/ and framework metrics.
  std::vector<std::string> step_uris;
  if (context.spec != nullptr && context.spec->debug_hook) {
    const std::string debug = model::DebugOutputUri(*context.spec);
    if (!debug.empty()) step_uris.push_back(debug + "index/");
  }
  std::string trial = context.trial_uri;
  if (trial.back() != '/') trial += '/';
  step_uris.push_back(trial + "framework/");
  const bool has_step_source = step_uris.size() > 1;
  // Captures no pointer into `context` (its spec may not outlive the evaluation).
  StepProbe probe = [open = context.open_store, step_uris]() -> Result<std::optional<TimePoint>> {
    std::optional<TimePoint> earliest;
    for (const auto& uri : step_uris) {
      TY_ASSIGN_OR_RETURN(auto t, EarliestObject(open, uri));
      if (t && (!earliest || *t < *earliest)) earliest = t;
    }
    return earliest;
  };
  std::vector<std::unique_ptr<SystemRule>> rules;
  if (report) {
    std::map<std::string, std::map<std::string, std::string>> overrides;
    for (const auto& [key, value] : rule.parameters) {
      if (key == "rule_to_invoke" || key == "base_trial") continue;
      if (key == "opt_out_telemetry") {
        const std::string v = Lower(value);
        if (v != "true" && v != "false") {
          return InvalidArgument(
              "ProfilerReport accepts only boolean values for opt_out_telemetry");
        }
        continue;  // Trainyard collects no telemetry either way
      }
      if (key == "custom_rule_parameters") {
        TY_ASSIGN_OR_RETURN(auto dict, ParsePythonDictLiteral(value));
        for (const auto& [k, v] : dict) TY_RETURN_IF_ERROR(AddOverride(k, v, &overrides));
        continue;
      }
      TY_RETURN_IF_ERROR(AddOverride(key, value, &overrides));
    }
    for (const auto& t : RuleTables()) {
      auto made = MakeRule(t.rule, overrides[t.rule], probe, has_step_source);
      if (!made.ok()) return made.status().WithPrefix("ProfilerReport: ");
      rules.push_back(std::move(*made));
    }
  } else {
    std::map<std::string, std::string> given;
    for (const auto& [key, value] : rule.parameters) {
      if (key == "rule_to_invoke" || key == "base_trial") continue;
      given[key] = value;
    }
    TY_ASSIGN_OR_RETURN(auto made, MakeRule(name, given, probe, has_step_source));
    rules.push_back(std::move(made));
  }

  TY_ASSIGN_OR_RETURN(storage::ObjectStore * store, context.open_store(context.trial_uri));
  auto scratch = std::make_unique<ScratchDir>();
  if (scratch->path().empty()) return Internal("cannot create a scratch directory");
  return std::unique_ptr<Evaluation>(new ProfilerRuleEvaluation(
      rule, context, store, std::move(rules), report, std::move(scratch), clock));
}

Result<std::unique_ptr<Evaluation>> MakeProfilerRuleEvaluation(const model::RuleSpec& rule,
                                                               const EvaluationContext& context) {
  return MakeProfilerRuleEvaluation(rule, context, *SystemClock::Default());
}

}  // namespace ty::debugger
