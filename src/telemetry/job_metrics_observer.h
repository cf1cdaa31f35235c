// JobMetricsObserver: the controller's first observer (control/job_observer.h). It turns job
// activity into metrics:
//  - training metrics: each stored log line is matched against the job's MetricDefinitions
//    (MetricExtractor); a sample goes to the job's samples in the jobs' Store, to its
//    FinalMetricDataList (through JobActions) and, when a MetricStore is given, to CloudWatch
//    as a datapoint at the line's time: namespace /aws/sagemaker/TrainingJobs, dimension
//    TrainingJobName=<job>, unit None (what the SageMaker SDK's TrainingJobAnalytics reads);
//  - instance metrics: an agent's utilisation samples become datapoints of namespace
//    /aws/sagemaker/TrainingJobs, dimension Host=<job>/algo-<i>, unit Percent
//    (CPUUtilization, MemoryUtilization, DiskUtilization, GPUUtilization, GPUMemoryUtilization).
// Datapoints belong to the job's account.
//
// Thread contract: called on the controller's loop only (like every observer).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "control/job_observer.h"
#include "store/store.h"
#include "telemetry/metric_extractor.h"
#include "telemetry/metric_store.h"

namespace ty::telemetry {

inline constexpr char kTrainingJobsNamespace[] = "/aws/sagemaker/TrainingJobs";

class JobMetricsObserver final : public control::JobObserver {
 public:
  // `metrics` may be null (no CloudWatch datapoints). Neither is owned.
  JobMetricsObserver(store::Store* jobs, MetricStore* metrics, const Clock* clock);

  void OnTransition(const model::JobRecord& before, const model::JobRecord& after,
                    control::JobActions& actions) override;
  void OnLogLines(const model::JobRecord& job, std::span<const store::LogEvent> lines,
                  control::JobActions& actions) override;
  void OnInstanceSamples(const model::JobRecord& job, int host_index,
                         std::span<const model::InstanceSample> samples,
                         control::JobActions& actions) override;

 private:
  void Put(const std::vector<PutPoint>& points, const std::string& arn);

  store::Store* const jobs_;
  MetricStore* const metrics_;
  const Clock* const clock_;
  // By ARN, made at a job's first lines (null when it defines no metric), dropped at its end.
  std::map<std::string, std::unique_ptr<MetricExtractor>> extractors_;
};

}  // namespace ty::telemetry
