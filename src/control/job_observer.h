// JobObserver: the seam through which consumers of job activity (training-metric extraction,
// CloudWatch datapoints, and next EventBridge events, alarms, idle-stop) watch the control loop
// without being edited into it. Observers are handed to the JobController at construction; it
// calls them in registration order.
//
// Thread contract: every callback runs on the controller's loop thread, one at a time. A
// callback must not block (no network, no waiting for another thread; a short local write such
// as a SQLite insert is fine) and must not call back into the JobController's public methods
// (they wait for the loop and would deadlock): it asks for changes through JobActions, which
// the controller carries out on the loop after the callback returns.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "model/agent_protocol.h"
#include "model/training_job.h"
#include "store/store.h"

namespace ty::control {

// What an observer may ask of the controller from inside a callback.
class JobActions {
 public:
  virtual ~JobActions() = default;
  // Sets the last values of training metrics in the job's FinalMetricDataList: each entry
  // replaces the one of the same name or is appended. Persisted once the callback returns.
  virtual void RecordFinalMetrics(const std::string& arn,
                                  const std::vector<model::FinalMetric>& latest) = 0;
  // Stops the job as StopTrainingJob would (alarms, idle-stop, debugger rules); `why` is the
  // status message. Ignored when the job is not InProgress.
  virtual void Stop(const std::string& arn, const std::string& why) = 0;
  // Replaces the status message of the job's current secondary status (what
  // DescribeTrainingJob shows as the last transition's StatusMessage), ended jobs included
  // while the controller still holds them (the callback of their last transition).
  virtual void SetStatusMessage(const std::string& arn, const std::string& message) = 0;
  // Creates a job in `account` as CreateTrainingJob would (governance clones): `spec` is
  // already valid, `request_json` is the CreateTrainingJob body it came from, `tags` are stored
  // before the job's first transition is observed. A refusal (a taken name, an unknown
  // instance type, too few instances) is logged to stderr; the caller picks a free name.
  virtual void Create(const std::string& account, model::JobSpec spec, std::string request_json,
                      std::vector<store::Tag> tags) = 0;
};

class JobObserver {
 public:
  virtual ~JobObserver() = default;
  // The job changed (status, secondary status, times...): `before` and `after` differ.
  virtual void OnTransition(const model::JobRecord& before, const model::JobRecord& after,
                            JobActions& actions) {}
  // Log lines of one of the job's instances were stored (oldest first, one stream).
  virtual void OnLogLines(const model::JobRecord& job, std::span<const store::LogEvent> lines,
                          JobActions& actions) {}
  // Samples of an instance's utilisation arrived with its agent's report (algo-<host_index>).
  virtual void OnInstanceSamples(const model::JobRecord& job, int host_index,
                                 std::span<const model::InstanceSample> samples,
                                 JobActions& actions) {}
  // The controller's timer pass (every ControllerOptions::tick).
  virtual void OnTick(TimePoint now, JobActions& actions) {}
};

}  // namespace ty::control
