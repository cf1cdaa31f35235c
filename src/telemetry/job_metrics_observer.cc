#include "telemetry/job_metrics_observer.h"

#include <cstdio>

namespace ty::telemetry {

JobMetricsObserver::JobMetricsObserver(store::Store* jobs, MetricStore* metrics, const Clock* clock)
    : jobs_(jobs), metrics_(metrics), clock_(clock) {}

void JobMetricsObserver::OnTransition(const model::JobRecord& before, const model::JobRecord& after,
                                      control::JobActions&) {
  if (model::IsTerminal(after.status)) extractors_.erase(after.arn);
}

void JobMetricsObserver::Put(const std::vector<PutPoint>& points, const std::string& arn) {
  if (metrics_ == nullptr || points.empty()) return;
  Status s = metrics_->Put(points, ToEpochMillis(clock_->Now()));
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot store CloudWatch datapoints of %s: %s\n", arn.c_str(),
                 s.ToString().c_str());
  }
}

void JobMetricsObserver::OnLogLines(const model::JobRecord& job,
                                    std::span<const store::LogEvent> lines,
                                    control::JobActions& actions) {
  auto it = extractors_.find(job.arn);
  if (it == extractors_.end()) {
    auto made = std::make_unique<MetricExtractor>(job.spec.metric_definitions);
    it = extractors_.emplace(job.arn, made->empty() ? nullptr : std::move(made)).first;
  }
  if (!it->second) return;
  std::vector<Sample> samples;
  for (const auto& line : lines) it->second->Extract(line.message, line.timestamp_ms, &samples);
  if (samples.empty()) return;
  std::vector<store::MetricSample> rows;
  std::vector<PutPoint> points;
  for (const auto& smp : samples) {
    rows.push_back({smp.name, smp.timestamp_ms, smp.value});
    PutPoint p;
    p.key = {job.account, kTrainingJobsNamespace, smp.name, {{"TrainingJobName", job.spec.name}}};
    p.unit = "None";
    p.timestamp_ms = smp.timestamp_ms;
    p.sum = p.min = p.max = smp.value;
    points.push_back(std::move(p));
  }
  Status s = jobs_->AppendMetricSamples(job.id, rows);
  if (!s.ok()) std::fprintf(stderr, "trainyard: cannot store metrics: %s\n", s.ToString().c_str());
  std::vector<model::FinalMetric> latest;
  MergeFinalMetrics(samples, &latest);
  actions.RecordFinalMetrics(job.arn, latest);
  Put(points, job.arn);
}

void JobMetricsObserver::OnInstanceSamples(const model::JobRecord& job, int host_index,
                                           std::span<const model::InstanceSample> samples,
                                           control::JobActions&) {
  if (metrics_ == nullptr) return;
  const std::vector<Dimension> host = {
      {"Host", job.spec.name + "/algo-" + std::to_string(host_index)}};
  std::vector<PutPoint> points;
  auto add = [&](const char* name, const std::optional<double>& v, int64_t t) {
    if (!v) return;
    PutPoint p;
    p.key = {job.account, kTrainingJobsNamespace, name, host};
    p.unit = "Percent";
    p.timestamp_ms = t;
    p.sum = p.min = p.max = *v;
    points.push_back(std::move(p));
  };
  for (const auto& s : samples) {
    add("CPUUtilization", s.cpu, s.timestamp_ms);
    add("MemoryUtilization", s.memory, s.timestamp_ms);
    add("DiskUtilization", s.disk, s.timestamp_ms);
    add("GPUUtilization", s.gpu, s.timestamp_ms);
    add("GPUMemoryUtilization", s.gpu_memory, s.timestamp_ms);
  }
  Put(points, job.arn);
}

}  // namespace ty::telemetry
