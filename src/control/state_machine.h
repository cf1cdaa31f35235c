// The job state machine: a pure function from (job, event, now) to the new
// job and the actions the controller must carry out. No I/O, no clock: the
// controller service (job_controller.h) feeds it events and performs the
// actions. Statuses, secondary statuses, StatusMessages and timestamps follow
// ../shared/spec/sagemaker-training.md sections 3.2-3.6.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "model/agent_protocol.h"
#include "model/training_job.h"

namespace ty::control {

struct Event {
  enum class Kind {
    kStart,          // a new job: it queues for capacity
    kWaiting,        // the scheduler could not place the queued job; `message` says why
    kPlaced,         // the scheduler reserved capacity: launch the next attempt
    kLaunchFailed,   // launching failed; `failure_reason` says why
    kPending,        // the launched attempt waits in the engine's queue; `message` says why (the
                     // status message until the attempt's first phase report)
    kPhase,          // an agent reported entering `phase`
    kCheckpoint,     // the agent synced the checkpoint directory at `at`
    kAgentExit,      // an agent finished: `outcome`, `failure_reason`, `model_artifacts`; a
                     // `message` is added to the final status message when the job ends
    kAgentLost,      // the attempt's agents vanished without a final report (or the engine
                     // dropped the attempt); `message` says how
    kInterrupt,      // spot capacity is reclaimed: the interruption notice starts; `message` why
    kStopRequested,  // StopTrainingJob
    kTick,           // time passed: check the stopping conditions and the notice/stop deadlines
    kShutdown,       // the server is going away while the job runs
  };
  Kind kind = Kind::kTick;
  model::SecondaryStatus phase = model::SecondaryStatus::kDownloading;
  model::AgentReport::Outcome outcome = model::AgentReport::Outcome::kCompleted;
  std::string message;
  std::string failure_reason;
  std::string model_artifacts;
  TimePoint at;  // kCheckpoint
  // kPlaced: where the attempt runs.
  bool on_spot = false;
  double price_fraction = 1.0;
  std::chrono::milliseconds notice{0};
  std::optional<TimePoint> interruption_at;  // the spot market's draw for this attempt
};

struct Action {
  enum class Kind {
    kLaunch,           // launch the next attempt
    kSignalStop,       // tell the attempt to stop (launch::AttemptSignal::kStop): the agents
                       // forward it, upload, report; a pending attempt is withdrawn
    kSignalInterrupt,  // the spot interruption notice (kNotice): sync, exit
    kKill,             // end the attempt now (kKill): it overstayed its allowance
  };
  Kind kind;
};

struct StepResult {
  model::JobRecord job;
  std::vector<Action> actions;
  bool changed = false;  // the job must be persisted
};

// How long a stopping job may take (grace + artifact upload) before its
// agents are killed.
struct StopPolicy {
  std::chrono::seconds stop_grace{120};
  std::chrono::seconds upload_allowance{300};
};

// A new job as CreateTrainingJob accepts it: InProgress/Starting.
model::JobRecord NewJob(model::JobSpec spec, std::string account, std::string arn,
                        std::string request_json, TimePoint now);

StepResult Step(const model::JobRecord& job, const Event& event, TimePoint now,
                const StopPolicy& policy = {});

// Status messages (kept in one place; tests and the SDK's log printer read them).
inline constexpr char kMsgStarting[] = "Starting the training job";
inline constexpr char kMsgPreparing[] = "Preparing the instances for training";
inline constexpr char kMsgDownloading[] = "Downloading input data";
inline constexpr char kMsgTraining[] = "Training image download completed. Training in progress.";
inline constexpr char kMsgUploading[] = "Uploading generated training model";
inline constexpr char kMsgCompleted[] = "Training job completed";
inline constexpr char kMsgFailed[] = "Training job failed";
inline constexpr char kMsgStopping[] = "Stopping the training job";
inline constexpr char kMsgStopped[] = "Training job stopped";
inline constexpr char kMsgMaxRuntime[] = "Training job stopped: MaxRuntimeInSeconds was exceeded";
inline constexpr char kMsgMaxWait[] = "Training job stopped: MaxWaitTimeInSeconds was exceeded";
inline constexpr char kMsgInterruptedWaiting[] =
    "Training job interrupted: spot capacity was reclaimed. Waiting for spot capacity to restart "
    "from the last checkpoint";

// Whole seconds of billable time for `job` so far: running time of every
// attempt, weighted by the spot price fraction while on spot (at least 1).
int64_t BillableSeconds(const model::JobRecord& job);

}  // namespace ty::control
