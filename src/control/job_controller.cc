#include "control/job_controller.h"

#include <signal.h>

#include <future>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"

namespace ty::control {

using model::AgentReport;
using model::JobRecord;

JobController::JobController(ControllerOptions options, store::Store* store,
                             launch::Launcher* launcher, const launch::ImageCatalog* images,
                             const Clock* clock)
    : options_(std::move(options)),
      store_(store),
      launcher_(launcher),
      images_(images),
      clock_(clock) {}

JobController::~JobController() { Shutdown(); }

Status JobController::Start() {
  auto active = store_->ActiveJobs();
  if (!active.ok()) return active.status();
  TimePoint now = clock_->Now();
  for (auto& record : *active) {
    auto job = std::make_unique<ActiveJob>();
    job->metrics = std::make_unique<telemetry::MetricExtractor>(record.spec.metric_definitions);
    job->agent = {record.agent_pid, record.agent_start_ticks};
    job->record = std::move(record);
    ActiveJob* raw = job.get();
    active_[raw->record.arn] = std::move(job);
    if (raw->agent.pid != 0 && launcher_->Alive(raw->agent)) continue;  // re-adopted
    if (raw->agent.pid == 0 && raw->record.status == model::TrainingJobStatus::kInProgress &&
        raw->record.secondary == model::SecondaryStatus::kStarting) {
      Apply(raw, {Event::Kind::kStart});  // never launched: launch now
      continue;
    }
    Event lost{Event::Kind::kAgentLost};
    lost.message = "the Trainyard server restarted and the job's agent was no longer running";
    Apply(raw, lost);
  }
  Sweep();
  (void)now;
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
    tasks_.push_back([fn = std::move(fn), promise] { promise->set_value(fn()); });
  }
  cv_.notify_all();
  return future.get();
}

void JobController::Loop() {
  TimePoint next_tick = clock_->Now();
  for (;;) {
    std::deque<std::function<void()>> batch;
    bool stop = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, options_.tick, [this] { return !tasks_.empty() || stopping_; });
      batch.swap(tasks_);
      stop = stopping_;
    }
    for (auto& task : batch) task();
    Sweep();
    if (stop) {
      for (const auto& agent : exiting_) {
        if (launcher_->Alive(agent)) launcher_->Signal(agent, SIGKILL);
      }
      // Anything posted after the final batch is answered as unavailable by RunOnLoop.
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& task : tasks_) task();
      tasks_.clear();
      return;
    }
    if (clock_->Now() >= next_tick) {
      Tick();
      Sweep();
      next_tick = clock_->Now() + options_.tick;
    }
  }
}

Result<JobRecord> JobController::Submit(const std::string& account, model::JobSpec spec,
                                        std::string request_json) {
  JobRecord result;
  Status s = RunOnLoop([&]() -> Status {
    std::string arn = model::TrainingJobArn(options_.region, account, spec.name);
    auto job = std::make_unique<ActiveJob>();
    job->record = NewJob(spec, account, arn, request_json, clock_->Now());
    job->record.agent_token = RandomAlnum(40);
    TY_RETURN_IF_ERROR(store_->InsertJob(&job->record));
    job->metrics = std::make_unique<telemetry::MetricExtractor>(spec.metric_definitions);
    ActiveJob* raw = job.get();
    active_[arn] = std::move(job);
    Apply(raw, {Event::Kind::kStart});
    result = raw->record;
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
    if (!stored->instance_dir.empty()) {
      // The instance trees are scratch space of a finished job.
      (void)RemoveAll(JoinPath(options_.data_dir, "jobs/" + account + "/" + name));
    }
    return Status::Ok();
  });
}

Status JobController::HandleReport(const std::string& token, const AgentReport& report) {
  return RunOnLoop([&]() -> Status {
    ActiveJob* job = FindByArn(report.job_arn);
    if (job == nullptr) return NotFound("the job is not active: " + report.job_arn);
    if (token.empty() || token != job->record.agent_token) {
      return Status(StatusCode::kPermissionDenied, "wrong agent token");
    }
    if (report.attempt != job->record.attempt) {
      return NotFound("report from an earlier attempt of " + report.job_arn);
    }
    if (report.seq != 0 && report.seq <= job->last_seq) return Status::Ok();  // a retry
    job->last_seq = std::max(job->last_seq, report.seq);
    switch (report.type) {
      case AgentReport::Type::kPhase: {
        Event e{Event::Kind::kPhase};
        e.phase = report.phase;
        e.message = report.message;
        Apply(job, e);
        break;
      }
      case AgentReport::Type::kLog:
        ApplyLogs(job, report);
        break;
      case AgentReport::Type::kExit: {
        Event e{Event::Kind::kAgentExit};
        e.outcome = report.outcome;
        e.failure_reason = report.failure_reason;
        e.model_artifacts = report.model_artifacts;
        Apply(job, e);
        break;
      }
    }
    return Status::Ok();
  });
}

void JobController::ApplyLogs(ActiveJob* job, const AgentReport& report) {
  std::vector<store::LogEvent> events;
  std::vector<telemetry::Sample> samples;
  events.reserve(report.lines.size());
  for (const auto& line : report.lines) {
    events.push_back({0, report.stream, line.timestamp_ms, line.message});
    if (job->metrics && !job->metrics->empty()) {
      job->metrics->Extract(line.message, line.timestamp_ms, &samples);
    }
  }
  Status s = store_->AppendLogEvents(job->record.id, events);
  if (!s.ok()) std::fprintf(stderr, "trainyard: cannot store log events: %s\n", s.ToString().c_str());
  if (!samples.empty()) {
    std::vector<store::MetricSample> rows;
    for (const auto& smp : samples) rows.push_back({smp.name, smp.timestamp_ms, smp.value});
    s = store_->AppendMetricSamples(job->record.id, rows);
    if (!s.ok()) std::fprintf(stderr, "trainyard: cannot store metrics: %s\n", s.ToString().c_str());
    telemetry::MergeFinalMetrics(samples, &job->record.final_metrics);
    Persist(job);
  }
}

void JobController::Apply(ActiveJob* job, const Event& event) {
  StepResult r = Step(job->record, event, clock_->Now(), options_.stop_policy);
  if (r.changed) {
    // Keep the handle of a still-running agent until it is gone: the record
    // forgets the pid when the job ends, but actions may still target it.
    job->record = std::move(r.job);
    Persist(job);
  }
  for (const auto& action : r.actions) Perform(job, action);
  if (model::IsTerminal(job->record.status)) finished_.push_back(job->record.arn);
}

void JobController::Sweep() {
  // Terminal jobs leave the active set; their agents (exiting on their own
  // after the final report) are watched until gone so they are reaped.
  for (const auto& arn : finished_) {
    auto it = active_.find(arn);
    if (it == active_.end()) continue;
    if (it->second->agent.pid != 0) exiting_.push_back(it->second->agent);
    active_.erase(it);
  }
  finished_.clear();
}

void JobController::Perform(ActiveJob* job, const Action& action) {
  switch (action.kind) {
    case Action::Kind::kLaunch:
      LaunchAgents(job);
      break;
    case Action::Kind::kSignalStop:
      launcher_->Signal(job->agent, SIGTERM);
      break;
    case Action::Kind::kKill:
      launcher_->Signal(job->agent, SIGKILL);
      break;
  }
}

void JobController::LaunchAgents(ActiveJob* job) {
  JobRecord& rec = job->record;
  auto image = images_->Resolve(rec.spec.training_image);
  if (!image.ok()) {
    Event e{Event::Kind::kLaunchFailed};
    e.failure_reason = "ClientError: " + image.status().message();
    Apply(job, e);
    return;
  }
  model::InstanceConfig cfg;
  cfg.job_name = rec.spec.name;
  cfg.job_arn = rec.arn;
  cfg.region = options_.region;
  cfg.account = rec.account;
  cfg.attempt = rec.attempt;
  cfg.host_index = 1;
  cfg.hosts = {"algo-1"};
  std::string attempt_dir = JoinPath(options_.data_dir, "jobs/" + rec.account + "/" + rec.spec.name +
                                                            "/attempt-" + std::to_string(rec.attempt));
  cfg.instance_dir = JoinPath(attempt_dir, "algo-1");
  cfg.log_stream = rec.spec.name + "/algo-1-" + std::to_string(ToEpochSeconds(clock_->Now()));
  cfg.server_url_file = options_.server_url_file;
  cfg.token = rec.agent_token;
  cfg.stop_grace_seconds = options_.stop_policy.stop_grace.count();
  cfg.isolation = options_.isolation;
  cfg.file_roots = options_.file_roots;
  cfg.num_cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cfg.num_gpus = 0;
  cfg.image = std::move(image).value();
  cfg.spec = rec.spec;

  Status s = MakeDirs(cfg.instance_dir);
  Result<launch::AgentHandle> agent = s.ok() ? launcher_->Launch(cfg) : Result<launch::AgentHandle>(s);
  if (!agent.ok()) {
    Event e{Event::Kind::kLaunchFailed};
    e.failure_reason = "InternalServerError: could not launch the instance: " + agent.status().message();
    Apply(job, e);
    return;
  }
  job->agent = *agent;
  rec.agent_pid = agent->pid;
  rec.agent_start_ticks = agent->start_ticks;
  rec.instance_dir = cfg.instance_dir;
  job->last_seq = 0;
  Persist(job);
}

void JobController::Persist(ActiveJob* job) {
  Status s = store_->UpdateJob(job->record);
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot persist job %s: %s\n", job->record.arn.c_str(),
                 s.ToString().c_str());
  }
}

void JobController::Tick() {
  std::vector<launch::AgentHandle> still;
  for (const auto& agent : exiting_) {
    if (launcher_->Alive(agent)) still.push_back(agent);
  }
  exiting_.swap(still);
  std::vector<ActiveJob*> jobs;
  for (auto& [arn, job] : active_) jobs.push_back(job.get());
  for (ActiveJob* job : jobs) {
    if (job->agent.pid != 0 && !launcher_->Alive(job->agent)) {
      Event lost{Event::Kind::kAgentLost};
      lost.message = "the instance's agent exited without reporting a result (see " +
                     job->record.instance_dir + ".agent.log)";
      job->agent = {};
      job->record.agent_pid = 0;
      Apply(job, lost);
      continue;
    }
    Apply(job, {Event::Kind::kTick});
  }
}

JobController::ActiveJob* JobController::FindByArn(const std::string& arn) {
  auto it = active_.find(arn);
  return it == active_.end() ? nullptr : it->second.get();
}

JobController::ActiveJob* JobController::Find(const std::string& account, const std::string& name) {
  return FindByArn(model::TrainingJobArn(options_.region, account, name));
}

}  // namespace ty::control
