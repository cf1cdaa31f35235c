// JobController: the control loop. Owns every active job (InProgress or
// Stopping): feeds the pure state machine (state_machine.h) with events from
// the API, the agents, the launcher, the spot market and the clock, persists each change to
// the Store, and carries out the resulting actions through the launcher (launch/launcher.h):
// one attempt at a time per job, launched at once, told what to do in meanings
// (AttemptSignal), watched with one batched Poll per tick.
// It is also the scheduler: queued jobs ask the launcher for a placement in creation order,
// spot jobs only while the simulated spot market has capacity of their type (unless the
// launcher's engine has spot capacity of its own, Launcher::OwnsSpotCapacity).
//
// Observers (control/job_observer.h) registered at construction see every transition, every
// stored batch of log lines, every batch of instance samples and every tick; training-metric
// extraction and CloudWatch datapoints are such observers (telemetry/), not part of the loop.
//
// Threads: one control-loop thread owns all job state. Public methods may be
// called from any thread; they post work to the loop and wait for its result.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "capacity/instance_catalog.h"
#include "capacity/spot_market.h"
#include "common/clock.h"
#include "common/status.h"
#include "control/job_events.h"
#include "control/job_observer.h"
#include "control/state_machine.h"
#include "launch/image_catalog.h"
#include "launch/launcher.h"
#include "model/agent_protocol.h"
#include "model/training_job.h"
#include "store/store.h"

namespace ty::control {

struct ControllerOptions {
  std::string data_dir;  // jobs' instance trees live in <data_dir>/jobs
  std::string region = "us-east-1";
  std::string server_url_file;          // agents read the control plane's URL here
  std::vector<std::string> file_roots;  // where file:// URIs may point
  // Accounts with their own roots, instead of file_roots.
  std::map<std::string, std::vector<std::string>> account_file_roots;
  int64_t agent_log_buffer_lines = 20000;  // model::InstanceConfig::log_buffer_lines
  int64_t metrics_interval_ms = 1000;      // model::InstanceConfig::metrics_interval_ms
  nlohmann::json storage_s3;               // the S3 store handed to agents (InstanceConfig)
  bool pass_s3_credentials = false;        // see InstanceConfig::pass_s3_credentials
  std::string python_dir;                  // see InstanceConfig::python_dir ("": none)
  std::string isolation = "auto";          // auto | bwrap | none (passed to agents)
  model::SandboxConfig sandbox;            // how bwrap holds training processes (passed to agents)
  // Hold each instance to its type's CPUs and memory with a cgroup where the machine allows it.
  bool enforce_instance_limits = true;
  // VolumeSizeInGB: auto | watch | off (passed to agents; storage/instance_volume.h).
  std::string instance_volumes = "auto";
  StopPolicy stop_policy;               // stop grace (default 120 s) and upload allowance
  std::chrono::milliseconds tick{200};  // how often timers and attempts' states are checked
  // How long an attempt whose state the launcher cannot tell (AttemptState::kUnknown, e.g.
  // slurmctld is down) is tolerated before it counts as lost: a job never sticks InProgress.
  std::chrono::milliseconds unknown_tolerance{60000};
  const capacity::InstanceCatalog* catalog = nullptr;  // required
  capacity::SpotMarketConfig spot;                     // the spot market model
  int host_cpus = 0;  // 0: this machine's (SM_NUM_CPUS of a type not in the catalog)
};

// What `trainyard spot status` shows: the market and the launcher's capacity.
struct SpotTypeView {
  capacity::SpotTypeStatus market;
  double on_demand_price = 0;  // USD per hour; 0 when the type is not in the catalog
  int capacity_total = 0;
  int capacity_in_use = 0;
  int running_spot_jobs = 0;
  int queued_jobs = 0;
};

class JobController {
 public:
  // `observers` (not owned) outlive the controller; they are called in this order. `events`
  // (not owned, may be null: no events) outlives it too: every change of a job's status or
  // secondary status, and its creation, stores the events it returns with the change.
  JobController(ControllerOptions options, store::Store* store, launch::Launcher* launcher,
                const launch::ImageCatalog* images, const Clock* clock,
                std::vector<JobObserver*> observers = {}, JobEventSource* events = nullptr);
  ~JobController();

  // Re-adopts jobs left active by a previous server (their attempts still
  // running or pending, asked through the launcher's Poll) or fails them, has the launcher sweep
  // what else a previous server left, then starts the loop.
  Status Start();
  // Stops the loop: agents of running jobs are killed and their jobs fail
  // with InternalServerError (a job's processes never outlive the server);
  // jobs waiting for capacity stay queued for the next server.
  void Shutdown();

  // Accepts a validated job, with its tags (stored before observers see the job).
  // kAlreadyExists when the name is taken.
  Result<model::JobRecord> Submit(const std::string& account, model::JobSpec spec,
                                  std::string request_json,
                                  const std::vector<store::Tag>& tags = {});
  // kNotFound: no such job; kFailedPrecondition: not InProgress.
  Status Stop(const std::string& account, const std::string& name);
  // kNotFound; kAlreadyExists (ResourceInUse) when the job is not terminal.
  Status Delete(const std::string& account, const std::string& name);
  // An agent's report. kPermissionDenied for a wrong token, kNotFound for a
  // job that is no longer active (the agent should stop retrying).
  Status HandleReport(const std::string& token, const model::AgentReport& report);

  // Fault injection. Interrupt: the job's spot instance gets its
  // interruption notice now (kNotFound; kFailedPrecondition when the job is
  // not running on spot capacity). MakeSpotUnavailable: spot capacity of the
  // type is gone for `duration` (kInvalidArgument for an unknown type).
  Status Interrupt(const std::string& account, const std::string& name);
  Status MakeSpotUnavailable(const std::string& instance_type, std::chrono::milliseconds duration);
  // Every instance type the market names or a job uses, sorted.
  Result<std::vector<SpotTypeView>> SpotStatus();

  // Runs one timer pass now (tests on a fake clock).
  void TickForTesting();

 private:
  // One instance (algo-<i>) of the current attempt.
  struct Instance {
    int64_t last_seq = 0;
    bool exited = false;  // its exit report arrived
    model::AgentReport::Outcome outcome = model::AgentReport::Outcome::kCompleted;
    std::string failure_reason;
    std::string model_artifacts;
    std::string log_stream;  // where its lines go (the note on lost lines too)
    int64_t lost_lines = 0;  // log lines its agent dropped (AgentReport::lost_lines)
    std::string lost_reason;
  };

  struct ActiveJob {
    model::JobRecord record;
    // The current attempt's instances, algo-1 first (empty between attempts).
    std::vector<Instance> instances;
    // The current attempt's handle. Kept when the record forgets it (the attempt ended) until
    // the attempt is retired: actions of that step (a kill) still target it.
    launch::AttemptHandle attempt;
    bool placed = false;                     // the launcher holds capacity for the current attempt
    launch::PlacementRequest placement;      // what was placed (for Unplace)
    std::string last_stream;                 // the previous attempt's log stream (never repeats)
    std::optional<TimePoint> unknown_since;  // the launcher could not tell its state since then
    // The (status, secondary status) its last stored event reported: Persist emits an event
    // when the record has moved on from it.
    std::pair<model::TrainingJobStatus, model::SecondaryStatus> reported{};
  };

  // An attempt that ended (for its job), watched until nothing of it runs; then released.
  struct RetiredAttempt {
    launch::AttemptHandle attempt;
    std::string job_arn;
    std::optional<TimePoint> unknown_since;
  };
  // A terminal job whose launcher resources (ReleaseJob) and instance volumes are released once
  // none of its attempts runs (algo-1 reads its siblings' trees until it has uploaded the model;
  // a stopping instance may still sync checkpoints through the job's network).
  struct EndedJob {
    std::string arn;
    std::string job_dir;
  };

  void Loop();
  // What Submit refuses before reaching the loop (catalog, isolation).
  Status CheckSpec(const model::JobSpec& spec) const;
  // Loop-thread only: inserts the job and starts it (Submit, and observers' JobActions::Create).
  Result<model::JobRecord> SubmitOnLoop(const std::string& account, model::JobSpec spec,
                                        std::string request_json,
                                        const std::vector<store::Tag>& tags);
  // Runs fn on the loop thread and waits for it.
  Status RunOnLoop(std::function<Status()> fn);
  void Post(std::function<void()> fn);

  // Loop-thread only.
  void Apply(ActiveJob* job, const Event& event);
  // After an attempt ends: it is retired (watched until gone), its capacity is given back.
  void Reconcile(ActiveJob* job);
  // Places queued jobs through the launcher, oldest first.
  void Schedule();
  void Perform(ActiveJob* job, const Action& action);
  // Builds the attempt's plan (every instance's config) and launches it.
  void LaunchAttempt(ActiveJob* job);
  void Persist(ActiveJob* job);
  void Tick();
  // One launcher Poll for every attempt: active jobs' states become events (into `lost` go the
  // jobs whose attempt was lost this tick); retired attempts that are gone are released.
  void PollAttempts(std::vector<ActiveJob*>* lost);
  // Maps a Poll state of the job's current attempt onto events; true when the attempt was lost.
  bool ApplyAttemptState(ActiveJob* job, const launch::AttemptState& state);
  // The attempt cannot go on: what runs of it is killed and the job gets kAgentLost.
  void LoseAttempt(ActiveJob* job, const std::string& message);
  void Sweep();
  // Stores the report's lines; an error (e.g. a full disk) when they could not be stored,
  // which the agent sees as retryable.
  Status ApplyLogs(ActiveJob* job, const model::AgentReport& report);
  // When the job's agents dropped log lines: writes "trainyard: N log lines were lost: why"
  // to the job's log and returns that sentence (for the status message); else "".
  std::string NoteLostLines(ActiveJob* job);
  // Log lines of an instance still stopping after its job ended: stored when the token and
  // attempt are the job's last (a retried report may store its lines twice).
  Status ApplyLateLogs(const std::string& token, const model::AgentReport& report);
  // An instance reported its exit: the job's attempt ends when one fails (the others are
  // aborted) or when all have exited.
  void InstanceExited(ActiveJob* job, size_t index, const model::AgentReport& report);
  // Signals the instances of the attempt that have not exited (all of them, with `even_exited`).
  void SignalAttempt(ActiveJob* job, launch::AttemptSignal signal, bool even_exited = false);
  // The job's attempt goes to retired_ (watched until gone).
  void RetireAttempt(ActiveJob* job);
  // Releases the launcher resources and instance volumes of ended jobs none of whose attempts
  // runs any more (all of them, waiting for the releases, with `now`).
  void ReleaseEndedJobs(bool now);
  // Releases the instance volumes of every attempt under `job_dir`.
  void ReleaseJobVolumes(const std::string& job_dir);
  // True while the launcher still releases what an ended job of this ARN held.
  bool Releasing(const std::string& arn) const;
  // Calls fn on every observer, then carries out what they asked for (JobActions).
  void Notify(const std::function<void(JobObserver*, JobActions&)>& fn);
  ActiveJob* FindByArn(const std::string& arn);
  ActiveJob* Find(const std::string& account, const std::string& name);

  const ControllerOptions options_;
  store::Store* const store_;
  launch::Launcher* const launcher_;
  const launch::ImageCatalog* const images_;
  const Clock* const clock_;
  const std::vector<JobObserver*> observers_;
  JobEventSource* const events_;
  // The data dir as configured and as the kernel spells it: FailureReasons never show paths
  // under it (model::HideServerPaths).
  const std::vector<std::string> server_dirs_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;

  // Loop thread only:
  capacity::SpotMarket market_;
  std::optional<TimePoint> wake_at_;  // the earliest end of an outage a queued job waits for
  std::map<std::string, std::unique_ptr<ActiveJob>> active_;  // by ARN
  std::vector<std::string> finished_;                         // ARNs that turned terminal, to sweep
  std::vector<RetiredAttempt> retired_;
  std::vector<EndedJob> ended_jobs_;
  // By ARN: the launcher releasing an ended job (off the loop). A new job of the same name is
  // not placed until it is done.
  std::map<std::string, std::shared_future<void>> releases_;
};

}  // namespace ty::control
