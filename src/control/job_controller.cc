#include "control/job_controller.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"
#include "model/failure_reason.h"
#include "storage/instance_volume.h"

namespace ty::control {

using launch::AttemptSignal;
using launch::AttemptState;
using model::AgentReport;
using model::JobRecord;

namespace {

int HostCpus(int configured) {
  if (configured > 0) return configured;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

const capacity::InstanceCatalog* CatalogOrBuiltin(const capacity::InstanceCatalog* c) {
  static const capacity::InstanceCatalog kBuiltin = capacity::InstanceCatalog::Builtin();
  return c != nullptr ? c : &kBuiltin;
}

launch::PlacementRequest PlacementFor(const JobRecord& rec) {
  launch::PlacementRequest req;
  req.job_arn = rec.arn;
  req.instance_type = rec.spec.instance_type;
  req.instance_count = std::max(1, rec.spec.instance_count);
  req.spot = rec.spec.managed_spot;
  return req;
}

// "algo-<i>" of a 0-based instance index.
std::string Host(size_t index) { return "algo-" + std::to_string(index + 1); }

}  // namespace

JobController::JobController(ControllerOptions options, store::Store* store,
                             launch::Launcher* launcher, const launch::ImageCatalog* images,
                             const Clock* clock, std::vector<JobObserver*> observers,
                             JobEventSource* events)
    : options_([&] {
        options.catalog = CatalogOrBuiltin(options.catalog);
        options.host_cpus = HostCpus(options.host_cpus);
        return std::move(options);
      }()),
      store_(store),
      launcher_(launcher),
      images_(images),
      clock_(clock),
      observers_(std::move(observers)),
      events_(events),
      server_dirs_([this] {
        std::vector<std::string> dirs;
        std::string dir = options_.data_dir;
        while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
        if (!dir.empty()) dirs.push_back(dir);
        auto real = RealPath(dir.empty() ? "." : dir);
        if (real.ok() && *real != dir) dirs.push_back(*real);
        return dirs;
      }()),
      market_(options_.spot, clock->Now()) {}

JobController::~JobController() { Shutdown(); }

Status JobController::Start() {
  auto active = store_->ActiveJobs();
  if (!active.ok()) return active.status();
  const TimePoint now = clock_->Now();
  std::vector<ActiveJob*> with_attempt;
  std::vector<launch::AttemptHandle> handles;
  for (auto& record : *active) {
    auto job = std::make_unique<ActiveJob>();
    if (!record.attempt_handle.empty()) {
      job->attempt = {record.attempt_handle};
      // Instances that had reported their exit stay done.
      const size_t n = static_cast<size_t>(std::max(1, record.spec.instance_count));
      job->instances.resize(n);
      for (size_t i = 0; i < n && i < record.instances_exited.size(); ++i) {
        job->instances[i].exited = record.instances_exited[i];
      }
    }
    job->record = std::move(record);
    job->reported = {job->record.status, job->record.secondary};  // reported before the restart
    ActiveJob* raw = job.get();
    active_[raw->record.arn] = std::move(job);
    if (!raw->attempt.empty()) {
      with_attempt.push_back(raw);
      handles.push_back(raw->attempt);
    }
  }
  // One question for every attempt a previous server left.
  std::vector<AttemptState> states;
  if (!handles.empty()) states = launcher_->Poll(handles);
  states.resize(handles.size(), AttemptState{AttemptState::Phase::kUnknown,
                                             "the launcher did not answer for the attempt"});
  std::vector<launch::AttemptHandle> keep_attempts;
  std::vector<std::string> keep_jobs;
  for (size_t k = 0; k < with_attempt.size(); ++k) {
    ActiveJob* job = with_attempt[k];
    const AttemptState& st = states[k];
    bool runs = false;
    switch (st.phase) {
      case AttemptState::Phase::kStarting:
      case AttemptState::Phase::kPending:
        runs = true;
        break;
      case AttemptState::Phase::kUnknown:
        // The engine cannot be asked now: adopted, and lost if it stays unknown (Tick).
        runs = true;
        job->unknown_since = now;
        break;
      case AttemptState::Phase::kRunning:
        runs = true;
        for (size_t i = 0; i < job->instances.size(); ++i) {
          if (!job->instances[i].exited && i < st.alive.size() && !st.alive[i]) runs = false;
        }
        break;
      case AttemptState::Phase::kEnded:
      case AttemptState::Phase::kFailed:
        break;
    }
    if (runs) {
      // Re-adopted: its capacity is in use, whatever the new config says.
      job->placement = PlacementFor(job->record);
      launcher_->Adopt(job->placement);
      job->placed = true;
      keep_attempts.push_back(job->attempt);
      keep_jobs.push_back(job->record.arn);
      continue;
    }
    // A partial attempt cannot go on.
    SignalAttempt(job, AttemptSignal::kKill, /*even_exited=*/true);
    Event lost{Event::Kind::kAgentLost};
    lost.message = "the Trainyard server restarted and the job's agent was no longer running";
    Apply(job, lost);
  }
  for (auto& [arn, job] : active_) {
    if (job->attempt.empty() && job->record.attempt_handle.empty() &&
        job->record.status == model::TrainingJobStatus::kInProgress) {
      Apply(job.get(), {Event::Kind::kStart});  // waiting for capacity: queue again
    } else if (job->attempt.empty() && !model::IsTerminal(job->record.status)) {
      Event lost{Event::Kind::kAgentLost};  // stopping, with nothing left running
      lost.message = "the Trainyard server restarted and the job's agent was no longer running";
      Apply(job.get(), lost);
    }
  }
  // What a crashed server's launcher left (attempts, instance networks): keep the re-adopted.
  launcher_->Sweep(keep_attempts, keep_jobs);
  // Instance volumes (storage/instance_volume.h) a crashed server left mounted: keep those of
  // re-adopted jobs' running attempts.
  std::set<std::string> keep_volumes;
  for (const auto& [arn, job] : active_) {
    const std::string& tree = job->record.instance_dir;
    if (!job->record.attempt_handle.empty() && !tree.empty()) {
      keep_volumes.insert(tree.substr(0, tree.rfind('/')));
    }
  }
  std::vector<std::string> swept =
      storage::SweepInstanceVolumes(JoinPath(options_.data_dir, "jobs"), keep_volumes);
  if (!swept.empty()) {
    std::string names;
    for (const auto& n : swept) names += " " + n;
    std::fprintf(stderr, "trainyard: released instance volumes left by an earlier server:%s\n",
                 names.c_str());
  }
  Sweep();
  Schedule();
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void JobController::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !thread_.joinable()) {
      stopping_ = true;
      return;
    }
    tasks_.push_back([this] {
      for (auto& [arn, job] : active_) {
        // Jobs waiting for capacity have no process to outlive the server:
        // they stay queued and the next server schedules them.
        if (job->record.attempt_handle.empty() && job->record.queued) continue;
        Apply(job.get(), {Event::Kind::kShutdown});
      }
    });
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void JobController::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(fn));
  }
  cv_.notify_all();
}

Status JobController::RunOnLoop(std::function<Status()> fn) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Unavailable("the server is shutting down");
    // Whatever fn changed (capacity freed, a job queued) is scheduled before
    // the caller hears back, so it observes a settled state.
    tasks_.push_back([this, fn = std::move(fn), promise] {
      Status s = fn();
      Sweep();
      Schedule();
      promise->set_value(std::move(s));
    });
  }
  cv_.notify_all();
  return future.get();
}

void JobController::Loop() {
  // Start() has just done what a tick would (polled every attempt, scheduled).
  TimePoint next_tick = clock_->Now() + options_.tick;
  for (;;) {
    std::deque<std::function<void()>> batch;
    bool stop = false;
    // Sleep until the next tick, or until spot capacity a queued job waits
    // for comes back, whichever is first: a restart should not wait a tick.
    auto wait = options_.tick;
    if (wake_at_) {
      wait = std::clamp(
          std::chrono::duration_cast<std::chrono::milliseconds>(*wake_at_ - clock_->Now()),
          std::chrono::milliseconds(0), options_.tick);
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, wait, [this] { return !tasks_.empty() || stopping_; });
      batch.swap(tasks_);
      stop = stopping_;
    }
    for (auto& task : batch) task();
    Sweep();
    if (!stop && !batch.empty()) Schedule();
    if (stop) {
      // Nothing of ours outlives the server: ended attempts still finishing are ended now.
      if (!retired_.empty()) {
        std::vector<launch::AttemptHandle> handles;
        for (const auto& r : retired_) handles.push_back(r.attempt);
        std::vector<AttemptState> states = launcher_->Poll(handles);
        for (size_t i = 0; i < handles.size(); ++i) {
          const bool ended = i < states.size() && (states[i].phase == AttemptState::Phase::kEnded ||
                                                   states[i].phase == AttemptState::Phase::kFailed);
          if (!ended) launcher_->Signal(handles[i], AttemptSignal::kKill);
        }
      }
      {
        // Anything posted after the final batch is answered as unavailable by RunOnLoop.
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& task : tasks_) task();
        tasks_.clear();
      }
      for (const auto& r : retired_) launcher_->ReleaseAttempt(r.attempt);
      retired_.clear();
      ReleaseEndedJobs(/*now=*/true);
      return;
    }
    if (clock_->Now() >= next_tick) {
      Tick();
      Sweep();
      Schedule();
      next_tick = clock_->Now() + options_.tick;
    } else if (wake_at_ && clock_->Now() >= *wake_at_) {
      Schedule();
    }
  }
}

Status JobController::CheckSpec(const model::JobSpec& spec) const {
  if (options_.catalog->Find(spec.instance_type) == nullptr) {
    return InvalidArgument("ResourceConfig.InstanceType " + spec.instance_type +
                           " is not in this server's instance catalog; add it under "
                           "instance_types in the server configuration.");
  }
  if (spec.instance_count > 1 && options_.isolation == "none") {
    return InvalidArgument(
        "ResourceConfig.InstanceCount " + std::to_string(spec.instance_count) +
        " needs instance isolation: each instance gets its own /etc/hosts naming the others "
        "through bubblewrap, and this server runs jobs without it (isolation: none).");
  }
  if (spec.network_isolation && options_.isolation == "none") {
    return InvalidArgument(
        "EnableNetworkIsolation needs instance isolation (a network namespace the training "
        "process enters through bubblewrap), and this server runs jobs without it "
        "(isolation: none).");
  }
  return Status::Ok();
}

Result<JobRecord> JobController::SubmitOnLoop(const std::string& account, model::JobSpec spec,
                                              std::string request_json,
                                              const std::vector<store::Tag>& tags) {
  std::string arn = model::TrainingJobArn(options_.region, account, spec.name);
  // A job the launcher can never run (more instances than it ever hosts) would wait forever.
  launch::PlacementRequest placement;
  placement.job_arn = arn;
  placement.instance_type = spec.instance_type;
  placement.instance_count = std::max(1, spec.instance_count);
  placement.spot = spec.managed_spot;
  TY_RETURN_IF_ERROR(launcher_->CheckRunnable(placement));
  auto job = std::make_unique<ActiveJob>();
  job->record = NewJob(std::move(spec), account, arn, std::move(request_json), clock_->Now());
  job->record.agent_token = RandomAlnum(40);
  job->reported = {job->record.status, job->record.secondary};
  std::vector<store::OutboxEvent> events;
  if (events_ != nullptr) events = events_->StateChangeEvents(job->record, tags, clock_->Now());
  // One transaction: observers of the first transition (governance) see the job's tags, and its
  // creation event carries them.
  TY_RETURN_IF_ERROR(store_->InsertJob(&job->record, tags, events));
  if (!events.empty()) events_->Committed();
  ActiveJob* raw = job.get();
  active_[arn] = std::move(job);
  Apply(raw, {Event::Kind::kStart});
  Schedule();
  // Apply may have ended the job (an observer stopped it) and Sweep may not have run: the
  // record is still held.
  return raw->record;
}

Result<JobRecord> JobController::Submit(const std::string& account, model::JobSpec spec,
                                        std::string request_json,
                                        const std::vector<store::Tag>& tags) {
  TY_RETURN_IF_ERROR(CheckSpec(spec));
  JobRecord result;
  Status s = RunOnLoop([&]() -> Status {
    TY_ASSIGN_OR_RETURN(result,
                        SubmitOnLoop(account, std::move(spec), std::move(request_json), tags));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return result;
}

Status JobController::Stop(const std::string& account, const std::string& name) {
  return RunOnLoop([&]() -> Status {
    ActiveJob* job = Find(account, name);
    if (job == nullptr) {
      auto stored = store_->GetJob(account, name);
      if (!stored.ok()) return stored.status();
      return FailedPrecondition("The request was rejected because the training job is in status " +
                                std::string(model::Name(stored->status)) + ".");
    }
    if (job->record.status != model::TrainingJobStatus::kInProgress) {
      return FailedPrecondition("The request was rejected because the training job is in status " +
                                std::string(model::Name(job->record.status)) + ".");
    }
    Apply(job, {Event::Kind::kStopRequested});
    return Status::Ok();
  });
}

Status JobController::Delete(const std::string& account, const std::string& name) {
  return RunOnLoop([&]() -> Status {
    if (Find(account, name) != nullptr) {
      return AlreadyExists("The training job " + name +
                           " cannot be deleted while it is in progress or stopping; stop it and "
                           "wait for it to end first.");
    }
    auto stored = store_->GetJob(account, name);
    if (!stored.ok()) return stored.status();
    TY_RETURN_IF_ERROR(store_->DeleteJob(account, name));
    // The instance trees are scratch space of a finished job (unmounted first, should a
    // straggling agent still have kept them). Removed even when the record names none: a launch
    // that failed half way leaves trees but no instance_dir, and a tree without its job makes
    // the next server start refuse (it reads as a lost database).
    std::string job_dir = JoinPath(options_.data_dir, "jobs/" + account + "/" + name);
    ReleaseJobVolumes(job_dir);
    (void)RemoveAll(job_dir);
    return Status::Ok();
  });
}

Status JobController::HandleReport(const std::string& token, const AgentReport& report) {
  return RunOnLoop([&]() -> Status {
    ActiveJob* job = FindByArn(report.job_arn);
    if (job == nullptr) {
      // The job ended while this instance was still stopping (another instance failed it):
      // its last lines still belong in the job's log.
      if (report.type == AgentReport::Type::kLog) return ApplyLateLogs(token, report);
      return NotFound("the job is not active: " + report.job_arn);
    }
    if (token.empty() || token != job->record.agent_token) {
      return Status(StatusCode::kPermissionDenied, "wrong agent token");
    }
    if (report.attempt != job->record.attempt) {
      return NotFound("report from an earlier attempt of " + report.job_arn);
    }
    if (report.host_index < 1 || static_cast<size_t>(report.host_index) > job->instances.size()) {
      return NotFound("report from an instance the job does not run: algo-" +
                      std::to_string(report.host_index));
    }
    const size_t index = static_cast<size_t>(report.host_index - 1);
    Instance& inst = job->instances[index];
    if (report.lost_lines > inst.lost_lines) {
      inst.lost_lines = report.lost_lines;
      inst.lost_reason = report.lost_reason;
    }
    if (report.seq != 0 && report.seq <= inst.last_seq) return Status::Ok();  // a retry
    if (inst.exited) return Status::Ok();
    if (report.type == AgentReport::Type::kLog) {
      if (inst.log_stream.empty()) inst.log_stream = report.stream;
      // Not acknowledged unless stored: the agent keeps the lines and retries.
      TY_RETURN_IF_ERROR(ApplyLogs(job, report));
    }
    inst.last_seq = std::max(inst.last_seq, report.seq);
    switch (report.type) {
      case AgentReport::Type::kPhase: {
        // The job's phases are its first instance's (they all stage and train alike).
        if (index != 0) break;
        Event e{Event::Kind::kPhase};
        e.phase = report.phase;
        e.message = report.message;
        Apply(job, e);
        break;
      }
      case AgentReport::Type::kLog:
        break;  // stored above
      case AgentReport::Type::kCheckpoint: {
        Event e{Event::Kind::kCheckpoint};
        e.at = FromEpochMillis(report.synced_at_ms);
        Apply(job, e);
        break;
      }
      case AgentReport::Type::kExit:
        InstanceExited(job, index, report);
        break;
    }
    return Status::Ok();
  });
}

void JobController::InstanceExited(ActiveJob* job, size_t index, const AgentReport& report) {
  Instance& inst = job->instances[index];
  inst.exited = true;
  inst.outcome = report.outcome;
  inst.failure_reason = report.failure_reason;
  inst.model_artifacts = report.model_artifacts;
  // Remembered, so a restarted server re-adopts the attempt without waiting for this instance.
  auto& exited = job->record.instances_exited;
  exited.resize(job->instances.size(), false);
  exited[index] = true;
  Persist(job);
  const size_t n = job->instances.size();
  if (report.outcome == AgentReport::Outcome::kFailed) {
    // The job is one unit: the first failure is the job's, and the other instances are
    // aborted (stop training, keep checkpoints, upload nothing).
    SignalAttempt(job, AttemptSignal::kAbort);
    Event e{Event::Kind::kAgentExit};
    e.outcome = report.outcome;
    e.failure_reason = report.failure_reason;
    e.message = NoteLostLines(job);
    if (n > 1 && !e.failure_reason.empty()) {
      e.failure_reason += " (on algo-" + std::to_string(index + 1) + ")";
    }
    Apply(job, e);
    return;
  }
  for (const auto& i : job->instances) {
    if (!i.exited) return;  // the attempt goes on until every instance is done
  }
  // Every instance is done: an interruption or a stop on any of them is the job's.
  Event e{Event::Kind::kAgentExit};
  e.outcome = AgentReport::Outcome::kCompleted;
  for (const auto& i : job->instances) {
    // Interrupted wins over stopped, which wins over completed.
    if (i.outcome == AgentReport::Outcome::kInterrupted ||
        (i.outcome == AgentReport::Outcome::kStopped &&
         e.outcome == AgentReport::Outcome::kCompleted)) {
      e.outcome = i.outcome;
    }
  }
  e.model_artifacts = job->instances[0].model_artifacts;  // algo-1 uploads the merged model
  e.message = NoteLostLines(job);
  Apply(job, e);
}

void JobController::SignalAttempt(ActiveJob* job, AttemptSignal signal, bool even_exited) {
  if (job->attempt.empty()) return;
  std::vector<int> which;
  for (size_t i = 0; i < job->instances.size(); ++i) {
    if (even_exited || !job->instances[i].exited) which.push_back(static_cast<int>(i));
  }
  if (which.empty() && !job->instances.empty()) return;  // every instance is done
  // All of them: no list (the engine may not address instances one by one).
  if (which.size() == job->instances.size()) which.clear();
  launcher_->Signal(job->attempt, signal, which);
}

void JobController::RetireAttempt(ActiveJob* job) {
  if (!job->attempt.empty()) retired_.push_back({job->attempt, job->record.arn, std::nullopt});
  job->attempt = {};
  job->instances.clear();
  job->unknown_since.reset();
}

Status JobController::ApplyLateLogs(const std::string& token, const AgentReport& report) {
  // "arn:aws:sagemaker:<region>:<account>:training-job/<name>"
  const std::string& arn = report.job_arn;
  size_t slash = arn.find(":training-job/");
  size_t colon = slash == std::string::npos ? std::string::npos : arn.rfind(':', slash - 1);
  if (colon == std::string::npos) return NotFound("the job is not active: " + arn);
  auto stored = store_->GetJob(arn.substr(colon + 1, slash - colon - 1),
                               arn.substr(slash + sizeof(":training-job/") - 1));
  if (!stored.ok() || stored->arn != arn || stored->attempt != report.attempt || token.empty() ||
      token != stored->agent_token) {
    return NotFound("the job is not active: " + arn);
  }
  std::vector<store::LogEvent> events;
  for (const auto& line : report.lines) {
    events.push_back({0, report.stream, line.timestamp_ms, line.message});
  }
  return store_->AppendLogEvents(stored->id, events);
}

std::string JobController::NoteLostLines(ActiveJob* job) {
  int64_t lost = 0;
  std::string why;
  for (const auto& inst : job->instances) {
    lost += inst.lost_lines;
    if (inst.lost_lines > 0 && why.empty()) why = inst.lost_reason;
  }
  if (lost == 0) return "";
  std::string note = "trainyard: " + std::to_string(lost) + " log line" +
                     (lost == 1 ? " was" : "s were") +
                     " lost: " + (why.empty() ? "the agent could not deliver them" : why);
  std::string stream = job->instances.empty() || job->instances[0].log_stream.empty()
                           ? job->last_stream
                           : job->instances[0].log_stream;
  Status s =
      store_->AppendLogEvents(job->record.id, {{0, stream, ToEpochMillis(clock_->Now()), note}});
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: %s: cannot store the note \"%s\": %s\n",
                 job->record.arn.c_str(), note.c_str(), s.ToString().c_str());
  }
  return note;
}

Status JobController::ApplyLogs(ActiveJob* job, const AgentReport& report) {
  std::vector<store::LogEvent> events;
  events.reserve(report.lines.size());
  for (const auto& line : report.lines) {
    events.push_back({0, report.stream, line.timestamp_ms, line.message});
  }
  if (!events.empty()) {
    Status s = store_->AppendLogEvents(job->record.id, events);
    if (!s.ok()) {
      std::fprintf(stderr, "trainyard: cannot store log events of %s: %s\n",
                   job->record.arn.c_str(), s.ToString().c_str());
      return s;
    }
  }
  if (observers_.empty()) return Status::Ok();
  // Observers may ask for changes (final metrics, a stop) that end or move the job: they see
  // a copy, and the job is looked up again afterwards.
  const JobRecord record = job->record;
  if (!events.empty()) {
    Notify([&](JobObserver* o, JobActions& a) { o->OnLogLines(record, events, a); });
  }
  if (!report.samples.empty()) {
    Notify([&](JobObserver* o, JobActions& a) {
      o->OnInstanceSamples(record, report.host_index, report.samples, a);
    });
  }
  return Status::Ok();
}

namespace {

// The JobActions an observer gets: requests collected during callbacks, carried out after.
class CollectedActions final : public JobActions {
 public:
  void RecordFinalMetrics(const std::string& arn,
                          const std::vector<model::FinalMetric>& latest) override {
    finals.emplace_back(arn, latest);
  }
  void Stop(const std::string& arn, const std::string& why) override {
    stops.emplace_back(arn, why);
  }
  void SetStatusMessage(const std::string& arn, const std::string& message) override {
    messages.emplace_back(arn, message);
  }
  void Create(const std::string& account, model::JobSpec spec, std::string request_json,
              std::vector<store::Tag> tags) override {
    creates.push_back({account, std::move(spec), std::move(request_json), std::move(tags)});
  }
  struct Creation {
    std::string account;
    model::JobSpec spec;
    std::string request_json;
    std::vector<store::Tag> tags;
  };
  std::vector<std::pair<std::string, std::vector<model::FinalMetric>>> finals;
  std::vector<std::pair<std::string, std::string>> stops;
  std::vector<std::pair<std::string, std::string>> messages;
  std::vector<Creation> creates;
};

}  // namespace

void JobController::Notify(const std::function<void(JobObserver*, JobActions&)>& fn) {
  CollectedActions actions;
  for (JobObserver* o : observers_) fn(o, actions);
  for (auto& [arn, latest] : actions.finals) {
    ActiveJob* job = FindByArn(arn);
    if (job == nullptr) continue;
    auto& finals = job->record.final_metrics;
    for (auto& m : latest) {
      auto it = std::find_if(finals.begin(), finals.end(),
                             [&](const model::FinalMetric& f) { return f.name == m.name; });
      if (it != finals.end()) {
        *it = std::move(m);
      } else {
        finals.push_back(std::move(m));
      }
    }
    Persist(job);
  }
  // Messages before stops: a message asked for with a stop says why the current phase ended,
  // and the stop's own transitions (observed again) come after it.
  for (const auto& [arn, message] : actions.messages) {
    ActiveJob* job = FindByArn(arn);
    if (job == nullptr || job->record.transitions.empty()) continue;
    job->record.transitions.back().message = message;
    Persist(job);
  }
  for (const auto& [arn, why] : actions.stops) {
    ActiveJob* job = FindByArn(arn);
    if (job == nullptr || job->record.status != model::TrainingJobStatus::kInProgress) continue;
    Event e{Event::Kind::kStopRequested};
    e.message = why;
    Apply(job, e);  // may notify again (the transition): nested requests are carried out there
  }
  for (auto& c : actions.creates) {
    const std::string name = c.spec.name;
    Status s = CheckSpec(c.spec);
    if (s.ok()) {
      s = SubmitOnLoop(c.account, std::move(c.spec), std::move(c.request_json), c.tags).status();
    }
    if (!s.ok()) {
      std::fprintf(stderr, "trainyard: an observer's new job %s was refused: %s\n", name.c_str(),
                   s.ToString().c_str());
    }
  }
}

void JobController::Apply(ActiveJob* job, const Event& event) {
  // Reasons come from the agent and from here, both of which see host paths.
  Event public_event = event;
  if (!public_event.failure_reason.empty()) {
    public_event.failure_reason = model::HideServerPaths(event.failure_reason, server_dirs_);
  }
  StepResult r = Step(job->record, public_event, clock_->Now(), options_.stop_policy);
  std::optional<JobRecord> before;
  if (r.changed) {
    if (!observers_.empty()) before = std::move(job->record);
    // The record forgets the attempt's handle when the attempt ends; job->attempt keeps it
    // until Reconcile retires it, as actions of this step may still target it.
    job->record = std::move(r.job);
    Persist(job);
  }
  for (const auto& action : r.actions) Perform(job, action);
  Reconcile(job);
  if (model::IsTerminal(job->record.status)) finished_.push_back(job->record.arn);
  if (before) {
    const JobRecord after = job->record;
    Notify([&](JobObserver* o, JobActions& a) { o->OnTransition(*before, after, a); });
  }
}

void JobController::Reconcile(ActiveJob* job) {
  if (!job->record.attempt_handle.empty()) return;
  if (!model::IsTerminal(job->record.status)) {
    // The attempt ended but its agents may still be finishing (or are being killed): watch it
    // until gone. Terminal jobs' attempts go in Sweep.
    RetireAttempt(job);
  }
  if (job->placed) {
    launcher_->Unplace(job->placement);
    job->placed = false;
  }
}

void JobController::Schedule() {
  std::vector<ActiveJob*> queued;
  for (auto& [arn, job] : active_) {
    if (job->record.queued && job->record.status == model::TrainingJobStatus::kInProgress) {
      queued.push_back(job.get());
    }
  }
  std::sort(queued.begin(), queued.end(), [](const ActiveJob* a, const ActiveJob* b) {
    if (a->record.creation_time != b->record.creation_time) {
      return a->record.creation_time < b->record.creation_time;
    }
    return a->record.id < b->record.id;
  });
  TimePoint now = clock_->Now();
  wake_at_.reset();
  const bool engine_spot = launcher_->OwnsSpotCapacity();
  // A type whose capacity an older job waits for is closed to younger ones: queued jobs start
  // in order. By type: how many wait, and what the launcher said to the first.
  std::map<std::string, std::pair<int, std::string>> waiting_ahead;
  for (ActiveJob* job : queued) {
    const model::JobSpec& spec = job->record.spec;
    const std::string& type = spec.instance_type;
    // An ended job of the same name whose resources are still being released: its successor
    // waits for that (the loop is woken when it is done).
    if (Releasing(job->record.arn)) continue;
    Event wait{Event::Kind::kWaiting};
    if (spec.managed_spot && !engine_spot && !market_.Available(type, now)) {
      auto until = market_.UnavailableUntil(type, now);
      if (until && (!wake_at_ || *until < *wake_at_)) wake_at_ = until;
      wait.message = "Waiting for spot capacity: no " + type + " spot capacity is available" +
                     (until ? " (expected back at " + FormatIso8601(*until) + ")" : "");
      Apply(job, wait);
      continue;
    }
    if (auto ahead = waiting_ahead.find(type); ahead != waiting_ahead.end()) {
      wait.message = ahead->second.second + "; " + std::to_string(ahead->second.first) +
                     " job(s) queued ahead";
      ahead->second.first += 1;
      Apply(job, wait);
      continue;
    }
    const launch::PlacementRequest request = PlacementFor(job->record);
    launch::Placement placement = launcher_->Place(request);
    if (!placement.placed) {
      wait.message = placement.waiting.empty() ? "Waiting for capacity" : placement.waiting;
      waiting_ahead[type] = {1, wait.message};
      Apply(job, wait);
      continue;
    }
    job->placed = true;
    job->placement = request;
    Event placed{Event::Kind::kPlaced};
    placed.on_spot = spec.managed_spot;
    if (spec.managed_spot) {
      const capacity::SpotModel& model = market_.ModelFor(type);
      placed.price_fraction = model.price_fraction;
      placed.notice = model.notice;
      // The engine's own spot capacity is reclaimed by the engine (a preemption), not drawn.
      // Keyed by name and attempt (not the ARN, whose account differs between servers) so a
      // run replays under the same seed.
      if (!engine_spot) {
        placed.interruption_at = market_.DrawInterruption(
            type, spec.name + "#" + std::to_string(job->record.attempt + 1), now);
      }
    } else {
      placed.notice = options_.stop_policy.stop_grace;
    }
    if (placement.notice) placed.notice = *placement.notice;
    Apply(job, placed);
  }
}

void JobController::Sweep() {
  // Terminal jobs leave the active set; their attempts (exiting on their own after the final
  // report) are watched until gone, then the job's resources are released.
  for (const auto& arn : finished_) {
    auto it = active_.find(arn);
    if (it == active_.end()) continue;
    const JobRecord& rec = it->second->record;
    ended_jobs_.push_back(
        {arn, JoinPath(options_.data_dir, "jobs/" + rec.account + "/" + rec.spec.name)});
    RetireAttempt(it->second.get());
    if (it->second->placed) launcher_->Unplace(it->second->placement);
    active_.erase(it);
  }
  finished_.clear();
  // A job that ended with nothing running is released at once (its successor of the same name
  // may be waiting for that).
  if (!ended_jobs_.empty()) ReleaseEndedJobs(/*now=*/false);
}

void JobController::Perform(ActiveJob* job, const Action& action) {
  switch (action.kind) {
    case Action::Kind::kLaunch:
      LaunchAttempt(job);
      break;
    case Action::Kind::kSignalStop:
      SignalAttempt(job, AttemptSignal::kStop);
      break;
    case Action::Kind::kSignalInterrupt:
      // A spot interruption of any instance interrupts the whole job: all restart together.
      SignalAttempt(job, AttemptSignal::kNotice);
      break;
    case Action::Kind::kKill:
      SignalAttempt(job, AttemptSignal::kKill, /*even_exited=*/true);
      break;
  }
}

void JobController::LaunchAttempt(ActiveJob* job) {
  JobRecord& rec = job->record;
  auto fail = [&](std::string reason) {
    Event e{Event::Kind::kLaunchFailed};
    e.failure_reason = std::move(reason);
    Apply(job, e);
  };
  auto image = images_->Resolve(rec.spec.training_image);
  if (!image.ok()) return fail("ClientError: " + image.status().message());
  const int count = std::max(1, rec.spec.instance_count);
  std::vector<std::string> hosts;
  for (int i = 1; i <= count; ++i) hosts.push_back("algo-" + std::to_string(i));

  launch::AttemptPlan plan;
  plan.job_arn = rec.arn;
  plan.attempt = rec.attempt;
  plan.spot = rec.attempt_on_spot;
  plan.instance_type = rec.spec.instance_type;
  // Every instance gets its network (its own namespace where the machine allows it), the same
  // on every attempt: the launcher keeps the job's network until ReleaseJob.
  plan.network.count = count;
  plan.network.isolated = rec.spec.network_isolation;
  plan.network.store_access = options_.pass_s3_credentials && !options_.storage_s3.is_null();
  plan.network.sandboxed = options_.isolation != "none";

  model::InstanceConfig base;
  base.job_name = rec.spec.name;
  base.job_arn = rec.arn;
  base.region = options_.region;
  base.account = rec.account;
  base.attempt = rec.attempt;
  base.hosts = hosts;
  std::string job_dir = JoinPath(options_.data_dir, "jobs/" + rec.account + "/" + rec.spec.name);
  std::string attempt_dir = JoinPath(job_dir, "attempt-" + std::to_string(rec.attempt));
  // Each attempt gets its own streams, even when attempts start within a second.
  int64_t epoch = ToEpochSeconds(clock_->Now());
  std::string first_stream = rec.spec.name + "/algo-1-" + std::to_string(epoch);
  while (first_stream <= job->last_stream && !job->last_stream.empty()) {
    first_stream = rec.spec.name + "/algo-1-" + std::to_string(++epoch);
  }
  job->last_stream = first_stream;
  base.server_url_file = options_.server_url_file;
  base.token = rec.agent_token;
  base.stop_grace_seconds = options_.stop_policy.stop_grace.count();
  base.isolation = options_.isolation;
  base.sandbox = options_.sandbox;
  auto own_roots = options_.account_file_roots.find(rec.account);
  base.file_roots =
      own_roots != options_.account_file_roots.end() ? own_roots->second : options_.file_roots;
  base.storage_s3 = options_.storage_s3;
  base.pass_s3_credentials = options_.pass_s3_credentials;
  base.python_dir = options_.python_dir;
  // SM_NUM_CPUS / SM_NUM_GPUS describe the instance type, as on SageMaker.
  const capacity::InstanceType* type = options_.catalog->Find(rec.spec.instance_type);
  base.num_cpus = type != nullptr ? type->vcpus : options_.host_cpus;
  base.num_gpus = type != nullptr ? type->gpus : 0;
  base.memory_gib = type != nullptr ? type->memory_gib : 0;
  base.max_processes = type != nullptr ? capacity::MaxProcesses(*type) : 0;
  base.enforce_limits = options_.enforce_instance_limits;
  base.volumes = options_.instance_volumes;
  base.notice_seconds = (rec.attempt_notice_ms + 999) / 1000;
  base.log_buffer_lines = options_.agent_log_buffer_lines;
  base.metrics_interval_ms = options_.metrics_interval_ms;
  base.image = std::move(image).value();
  base.spec = rec.spec;

  // Earlier attempts' instance trees are scratch (checkpoints live at the
  // checkpoint URI); their agent logs stay for diagnosis. A tree can hold a
  // large restored checkpoint: rename it aside now (constant time) and
  // delete it off the loop, so the restart does not wait for it.
  std::vector<std::string> doomed;
  for (int a = 1; a < rec.attempt; ++a) {
    // A mounted tree cannot be renamed, and its volume is done with: the attempt's agents have
    // reported their end.
    storage::ReleaseAttemptVolumes(JoinPath(job_dir, "attempt-" + std::to_string(a)));
    for (const auto& host : hosts) {
      std::string old_tree = JoinPath(job_dir, "attempt-" + std::to_string(a) + "/" + host);
      std::string aside = old_tree + ".removing";
      if (::rename(old_tree.c_str(), aside.c_str()) == 0 || PathExists(aside)) {
        doomed.push_back(aside);
      }
    }
  }
  if (!doomed.empty()) {
    std::thread([doomed = std::move(doomed)] {
      for (const auto& d : doomed) (void)RemoveAll(d);
    }).detach();
  }

  std::vector<Instance> instances;
  for (int i = 1; i <= count; ++i) {
    model::InstanceConfig cfg = base;
    cfg.host_index = i;
    cfg.instance_dir = JoinPath(attempt_dir, hosts[static_cast<size_t>(i - 1)]);
    cfg.log_stream = rec.spec.name + "/" + hosts[static_cast<size_t>(i - 1)] + "-" +
                     first_stream.substr(first_stream.rfind('-') + 1);
    Status s = MakeDirs(cfg.instance_dir);
    if (!s.ok()) {
      return fail("InternalServerError: could not launch instance " +
                  hosts[static_cast<size_t>(i - 1)] + ": " + s.message());
    }
    Instance inst;
    inst.log_stream = cfg.log_stream;
    instances.push_back(inst);
    plan.instances.push_back(std::move(cfg));
  }
  Result<launch::AttemptHandle> handle = launcher_->LaunchAttempt(plan);
  if (!handle.ok() || handle->empty()) {
    return fail(
        "InternalServerError: could not launch the instances: " +
        (handle.ok() ? std::string("the launcher returned no handle") : handle.status().message()));
  }
  job->attempt = *handle;
  job->instances = std::move(instances);
  job->unknown_since.reset();
  rec.attempt_handle = handle->id;
  rec.instances_exited.assign(static_cast<size_t>(count), false);
  rec.instance_dir = JoinPath(attempt_dir, "algo-1");
  Persist(job);
}

void JobController::Persist(ActiveJob* job) {
  const std::pair state{job->record.status, job->record.secondary};
  std::vector<store::OutboxEvent> events;
  if (events_ != nullptr && state != job->reported) {
    // Tags change through the API (AddTags), so each event reads them as they are now.
    auto tags = store_->GetTags(job->record.arn);
    if (!tags.ok()) {
      std::fprintf(stderr, "trainyard: cannot read the tags of %s for its event: %s\n",
                   job->record.arn.c_str(), tags.status().ToString().c_str());
    }
    events = events_->StateChangeEvents(job->record, tags.ok() ? *tags : std::vector<store::Tag>{},
                                        clock_->Now());
  }
  Status s = store_->UpdateJob(job->record, events);
  if (s.ok() && events_ != nullptr && state != job->reported) {
    job->reported = state;
    if (!events.empty()) events_->Committed();
  }
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot persist job %s: %s\n", job->record.arn.c_str(),
                 s.ToString().c_str());
  }
}

void JobController::ReleaseJobVolumes(const std::string& job_dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(job_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().filename().string().rfind("attempt-", 0) == 0 && it->is_directory(ec)) {
      storage::ReleaseAttemptVolumes(it->path().string());
    }
  }
}

void JobController::ReleaseEndedJobs(bool now) {
  std::vector<EndedJob> waiting;
  for (auto& ended : ended_jobs_) {
    const bool runs = std::any_of(retired_.begin(), retired_.end(),
                                  [&](const RetiredAttempt& r) { return r.job_arn == ended.arn; });
    if (runs && !now) {
      waiting.push_back(std::move(ended));
      continue;
    }
    // A lazy unmount and an unlink: quick enough for the loop.
    ReleaseJobVolumes(ended.job_dir);
    const std::string arn = ended.arn;
    if (auto old = releases_.find(arn); old != releases_.end()) old->second.wait();
    // Off the loop (removing a network takes a while); the loop is woken when it is done, so a
    // new job of the same name waiting for it is placed.
    releases_[arn] = std::async(std::launch::async, [this, arn] {
                       launcher_->ReleaseJob(arn);
                       Post([] {});
                     }).share();
  }
  ended_jobs_.swap(waiting);
  for (auto it = releases_.begin(); it != releases_.end();) {
    if (now) it->second.wait();
    if (it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      it = releases_.erase(it);
    } else {
      ++it;
    }
  }
}

bool JobController::Releasing(const std::string& arn) const {
  if (std::any_of(ended_jobs_.begin(), ended_jobs_.end(),
                  [&](const EndedJob& e) { return e.arn == arn; })) {
    return true;
  }
  auto it = releases_.find(arn);
  return it != releases_.end() &&
         it->second.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

void JobController::PollAttempts(std::vector<ActiveJob*>* lost) {
  std::vector<launch::AttemptHandle> handles;
  std::vector<ActiveJob*> owners;
  for (auto& [arn, job] : active_) {
    if (job->attempt.empty() || job->record.attempt_handle.empty()) continue;
    handles.push_back(job->attempt);
    owners.push_back(job.get());
  }
  const size_t first_retired = handles.size();
  for (const auto& r : retired_) handles.push_back(r.attempt);
  if (handles.empty()) return;
  std::vector<AttemptState> states = launcher_->Poll(handles);
  states.resize(handles.size(), AttemptState{AttemptState::Phase::kUnknown,
                                             "the launcher did not answer for the attempt"});
  const TimePoint now = clock_->Now();
  // Ended attempts: released once nothing of them runs (or once the engine has not been
  // reachable for the tolerance: what it still holds is its own to end).
  std::vector<RetiredAttempt> still;
  for (size_t i = 0; i < retired_.size(); ++i) {
    RetiredAttempt& r = retired_[i];
    const AttemptState& st = states[first_retired + i];
    bool gone = false;
    switch (st.phase) {
      case AttemptState::Phase::kEnded:
      case AttemptState::Phase::kFailed:
        gone = true;
        break;
      case AttemptState::Phase::kRunning:
        gone = std::none_of(st.alive.begin(), st.alive.end(), [](bool a) { return a; }) &&
               !st.alive.empty();
        r.unknown_since.reset();
        break;
      case AttemptState::Phase::kUnknown:
        if (!r.unknown_since) r.unknown_since = now;
        gone = now - *r.unknown_since >= options_.unknown_tolerance;
        break;
      default:
        r.unknown_since.reset();
        break;
    }
    if (gone) {
      launcher_->ReleaseAttempt(r.attempt);
    } else {
      still.push_back(std::move(r));
    }
  }
  retired_.swap(still);
  for (size_t i = 0; i < first_retired; ++i) {
    ActiveJob* job = owners[i];
    // An earlier state's events may have ended this attempt (an observer stopped a job...).
    if (FindByArn(job->record.arn) != job || job->attempt != handles[i] ||
        job->record.attempt_handle.empty()) {
      continue;
    }
    if (ApplyAttemptState(job, states[i])) lost->push_back(job);
  }
}

bool JobController::ApplyAttemptState(ActiveJob* job, const AttemptState& st) {
  using Phase = AttemptState::Phase;
  if (st.phase != Phase::kUnknown) job->unknown_since.reset();
  // The engine took the attempt's resources away (a preemption of a spot job): an interruption,
  // whatever the agents manage to report. Applied before the loss, so the job waits for spot
  // capacity again (within MaxWait) instead of failing.
  auto interrupt_if_preempted = [&] {
    if (!st.preempted || job->record.notice_deadline || !job->record.attempt_on_spot) return;
    Event e{Event::Kind::kInterrupt};
    e.message = st.reason.empty() ? "spot capacity reclaimed (preempted)" : st.reason;
    Apply(job, e);
  };
  switch (st.phase) {
    case Phase::kStarting:
      return false;
    case Phase::kPending: {
      Event e{Event::Kind::kPending};
      e.message = std::string(job->record.attempt_on_spot ? "Waiting for spot capacity: "
                                                          : "Waiting for capacity: ") +
                  (st.reason.empty() ? "the attempt is queued" : st.reason);
      Apply(job, e);
      return false;
    }
    case Phase::kRunning: {
      interrupt_if_preempted();
      if (job->record.attempt_handle.empty()) return false;
      // An instance whose agent vanished without its exit report takes the attempt down.
      for (size_t i = 0; i < job->instances.size(); ++i) {
        if (job->instances[i].exited || i >= st.alive.size() || st.alive[i]) continue;
        std::string dir = job->record.instance_dir;
        dir = dir.substr(0, dir.rfind('/') + 1) + Host(i);
        LoseAttempt(job, (job->instances.size() > 1 ? "instance " + Host(i) + ": " : "") +
                             "the instance's agent exited without reporting a result (see " + dir +
                             ".agent.log)");
        return true;
      }
      return false;
    }
    case Phase::kEnded: {
      interrupt_if_preempted();
      if (job->record.attempt_handle.empty()) return false;
      std::string missing;
      for (size_t i = 0; i < job->instances.size(); ++i) {
        if (!job->instances[i].exited) missing += (missing.empty() ? "" : ", ") + Host(i);
      }
      std::string message = "the attempt ended without a result from " +
                            (missing.empty() ? std::string("its instances") : missing);
      if (!st.reason.empty()) message += ": " + st.reason;
      LoseAttempt(job, message);
      return true;
    }
    case Phase::kFailed: {
      Event e{Event::Kind::kLaunchFailed};
      e.failure_reason =
          "InternalServerError: " +
          (st.reason.empty() ? std::string("the attempt could not start") : st.reason);
      Apply(job, e);  // retried by RetryStrategy like any launch failure
      return true;
    }
    case Phase::kUnknown: {
      const TimePoint now = clock_->Now();
      if (!job->unknown_since) job->unknown_since = now;
      if (now - *job->unknown_since < options_.unknown_tolerance) return false;
      const auto secs =
          std::chrono::duration_cast<std::chrono::seconds>(options_.unknown_tolerance).count();
      LoseAttempt(job, "the cluster could not be reached for " + std::to_string(secs) + " s" +
                           (st.reason.empty() ? "" : ": " + st.reason));
      return true;
    }
  }
  return false;
}

void JobController::LoseAttempt(ActiveJob* job, const std::string& message) {
  SignalAttempt(job, AttemptSignal::kKill);  // a partial attempt cannot go on
  Event lost{Event::Kind::kAgentLost};
  lost.message = message;
  Apply(job, lost);
}

void JobController::Tick() {
  std::vector<ActiveJob*> lost;
  PollAttempts(&lost);
  ReleaseEndedJobs(/*now=*/false);
  std::vector<ActiveJob*> jobs;
  for (auto& [arn, job] : active_) {
    if (std::find(lost.begin(), lost.end(), job.get()) == lost.end()) jobs.push_back(job.get());
  }
  // Spot interruptions of the simulated market; an engine with spot capacity of its own
  // preempts by itself (reported by Poll).
  if (!launcher_->OwnsSpotCapacity()) {
    for (const std::string& type : market_.DueTraceInterruptions(clock_->Now())) {
      for (ActiveJob* job : jobs) {
        if (job->record.spec.instance_type != type || !job->record.attempt_on_spot) continue;
        Event e{Event::Kind::kInterrupt};
        e.message = "spot capacity of " + type + " reclaimed (spot trace)";
        Apply(job, e);
      }
    }
  }
  for (ActiveJob* job : jobs) Apply(job, {Event::Kind::kTick});
  if (!observers_.empty()) {
    const TimePoint now = clock_->Now();
    Notify([&](JobObserver* o, JobActions& a) { o->OnTick(now, a); });
  }
}

Status JobController::Interrupt(const std::string& account, const std::string& name) {
  return RunOnLoop([&]() -> Status {
    ActiveJob* job = Find(account, name);
    if (job == nullptr) {
      TY_RETURN_IF_ERROR(store_->GetJob(account, name).status());
      return FailedPrecondition("Training job " + name +
                                " has ended; only a running job can be interrupted.");
    }
    const JobRecord& rec = job->record;
    if (!rec.spec.managed_spot) {
      return FailedPrecondition(
          "Training job " + name +
          " does not use managed spot training; only spot instances are interrupted.");
    }
    if (rec.status != model::TrainingJobStatus::kInProgress || rec.attempt_handle.empty()) {
      return FailedPrecondition("Training job " + name +
                                " has no running instance to interrupt (it is " +
                                model::Name(rec.secondary) + ").");
    }
    if (rec.notice_deadline) {
      return FailedPrecondition("Training job " + name + " is already being interrupted.");
    }
    Event e{Event::Kind::kInterrupt};
    e.message = "spot capacity reclaimed (injected with trainyard spot interrupt)";
    Apply(job, e);
    return Status::Ok();
  });
}

Status JobController::MakeSpotUnavailable(const std::string& instance_type,
                                          std::chrono::milliseconds duration) {
  if (options_.catalog->Find(instance_type) == nullptr) {
    return InvalidArgument("Unknown instance type " + instance_type + ".");
  }
  if (duration.count() <= 0) return InvalidArgument("The duration must be positive.");
  return RunOnLoop([&]() -> Status {
    market_.MakeUnavailable(instance_type, duration, clock_->Now());
    return Status::Ok();
  });
}

Result<std::vector<SpotTypeView>> JobController::SpotStatus() {
  std::vector<SpotTypeView> out;
  Status s = RunOnLoop([&]() -> Status {
    std::vector<std::string> types;
    for (const auto& [arn, job] : active_) types.push_back(job->record.spec.instance_type);
    for (auto& st : market_.Status(clock_->Now(), types)) {
      SpotTypeView v;
      const capacity::InstanceType* t = options_.catalog->Find(st.instance_type);
      v.on_demand_price = t != nullptr ? t->on_demand_price : 0;
      const launch::CapacityView capacity = launcher_->Capacity(st.instance_type);
      v.capacity_total = capacity.total;
      v.capacity_in_use = capacity.in_use;
      for (const auto& [arn, job] : active_) {
        if (job->record.spec.instance_type != st.instance_type) continue;
        if (job->record.queued) v.queued_jobs += 1;
        if (!job->record.attempt_handle.empty() && job->record.attempt_on_spot) {
          v.running_spot_jobs += 1;
        }
      }
      v.market = std::move(st);
      out.push_back(std::move(v));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

void JobController::TickForTesting() {
  (void)RunOnLoop([this] {
    Tick();
    Sweep();
    Schedule();
    return Status::Ok();
  });
}

JobController::ActiveJob* JobController::FindByArn(const std::string& arn) {
  auto it = active_.find(arn);
  return it == active_.end() ? nullptr : it->second.get();
}

JobController::ActiveJob* JobController::Find(const std::string& account, const std::string& name) {
  return FindByArn(model::TrainingJobArn(options_.region, account, name));
}

}  // namespace ty::control
