#include "control/job_controller.h"

#include <signal.h>
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

using model::AgentReport;
using model::JobRecord;

namespace {

int HostCpus(int configured) {
  if (configured > 0) return configured;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

double HostMemoryGib(double configured) {
  if (configured > 0) return configured;
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 1;
  return static_cast<double>(pages) * static_cast<double>(page) / (1024.0 * 1024 * 1024);
}

const capacity::InstanceCatalog* CatalogOrBuiltin(const capacity::InstanceCatalog* c) {
  static const capacity::InstanceCatalog kBuiltin = capacity::InstanceCatalog::Builtin();
  return c != nullptr ? c : &kBuiltin;
}

}  // namespace

JobController::JobController(ControllerOptions options, store::Store* store,
                             launch::ProcessLauncher* launcher, const launch::ImageCatalog* images,
                             const Clock* clock, std::vector<JobObserver*> observers,
                             JobEventSource* events)
    : options_([&] {
        options.catalog = CatalogOrBuiltin(options.catalog);
        options.host_cpus = HostCpus(options.host_cpus);
        options.host_memory_gib = HostMemoryGib(options.host_memory_gib);
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
      pool_(options_.capacity, options_.catalog, options_.host_cpus, options_.host_memory_gib),
      market_(options_.spot, clock->Now()) {}

JobController::~JobController() { Shutdown(); }

Status JobController::Start() {
  auto active = store_->ActiveJobs();
  if (!active.ok()) return active.status();
  TimePoint now = clock_->Now();
  for (auto& record : *active) {
    auto job = std::make_unique<ActiveJob>();
    if (record.agent_pid != 0) {
      job->instances.push_back({});
      job->instances[0].agent = {record.agent_pid, record.agent_start_ticks};
      // Instances that had reported their exit were forgotten (pid 0): they completed.
      for (const auto& a : record.other_agents) {
        Instance inst;
        inst.agent = {a.pid, a.start_ticks};
        inst.exited = a.pid == 0;
        job->instances.push_back(inst);
      }
    }
    job->record = std::move(record);
    job->reported = {job->record.status, job->record.secondary};  // reported before the restart
    ActiveJob* raw = job.get();
    active_[raw->record.arn] = std::move(job);
    // Every job may have a network (single-instance ones too); releasing one that has none
    // costs a listing.
    raw->has_network = true;
    bool all_alive = !raw->instances.empty();
    for (const auto& inst : raw->instances) {
      if (!inst.exited && !launcher_->Alive(inst.agent)) all_alive = false;
    }
    if (all_alive) {
      // Re-adopted: its instances are in use, whatever the new config says.
      raw->slots = raw->record.spec.instance_count;
      pool_.ForceAcquire(raw->record.spec.instance_type, raw->slots);
      continue;
    }
    if (raw->instances.empty() && raw->record.status == model::TrainingJobStatus::kInProgress) {
      Apply(raw, {Event::Kind::kStart});  // waiting for capacity: queue again
      continue;
    }
    Event lost{Event::Kind::kAgentLost};
    lost.message = "the Trainyard server restarted and the job's agent was no longer running";
    SignalInstances(raw, SIGKILL, /*even_exited=*/true);  // a partial attempt cannot go on
    raw->instances.clear();
    raw->record.agent_pid = 0;
    raw->record.other_agents.clear();
    Apply(raw, lost);
  }
  // Instance networks of a crashed server's jobs: keep those of re-adopted jobs.
  std::vector<std::string> keep;
  for (const auto& [arn, job] : active_) {
    if (job->has_network && !job->instances.empty()) keep.push_back(arn);
  }
  launcher_->SweepNetworks(keep);
  // Instance volumes (storage/instance_volume.h) a crashed server left mounted: keep those of
  // re-adopted jobs' running attempts.
  std::set<std::string> keep_volumes;
  for (const auto& [arn, job] : active_) {
    const std::string& tree = job->record.instance_dir;
    if (!job->instances.empty() && !tree.empty()) {
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
        // Jobs waiting for capacity have no process to outlive the server:
        // they stay queued and the next server schedules them.
        if (job->record.agent_pid == 0 && job->record.queued) continue;
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
  TimePoint next_tick = clock_->Now();
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
      for (const auto& agent : exiting_) {
        if (launcher_->Alive(agent)) launcher_->Signal(agent, SIGKILL);
      }
      // Networks still being made post their NetworkReady: run it, so they are released.
      for (auto& [arn, t] : network_threads_) t.join();
      network_threads_.clear();
      {
        // Anything posted after the final batch is answered as unavailable by RunOnLoop.
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& task : tasks_) task();
        tasks_.clear();
      }
      ReleaseNetworks(/*now=*/true);
      ReleaseVolumes(/*now=*/true);
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
  // A job that needs more instances than this machine ever hosts would wait forever.
  const int total = pool_.Total(spec.instance_type);
  if (spec.instance_count > total) {
    return Status(StatusCode::kResourceExhausted,
                  "ResourceConfig.InstanceCount " + std::to_string(spec.instance_count) +
                      " is more than the " + std::to_string(total) + " " + spec.instance_type +
                      " instance(s) this server hosts; raise capacity." + spec.instance_type +
                      " (or capacity.\"*\") in the server configuration.");
  }
  std::string arn = model::TrainingJobArn(options_.region, account, spec.name);
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
  if (index > 0) PersistAgents(job);
  const size_t n = job->instances.size();
  if (report.outcome == AgentReport::Outcome::kFailed) {
    // The job is one unit: the first failure is the job's, and the other instances are
    // aborted (SIGUSR2: stop training, keep checkpoints, upload nothing).
    SignalInstances(job, SIGUSR2);
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

void JobController::SignalInstances(ActiveJob* job, int sig, bool even_exited) {
  for (const auto& inst : job->instances) {
    if (inst.agent.pid != 0 && (even_exited || !inst.exited)) launcher_->Signal(inst.agent, sig);
  }
}

void JobController::RetireInstances(ActiveJob* job) {
  for (const auto& inst : job->instances) {
    if (inst.agent.pid != 0) exiting_.push_back(inst.agent);
  }
  job->instances.clear();
}

void JobController::PersistAgents(ActiveJob* job) {
  job->record.other_agents.clear();
  for (size_t i = 1; i < job->instances.size(); ++i) {
    const Instance& inst = job->instances[i];
    job->record.other_agents.push_back(
        inst.exited ? model::AgentProcess{}
                    : model::AgentProcess{inst.agent.pid, inst.agent.start_ticks});
  }
  Persist(job);
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
    // Keep the handle of a still-running agent until it is gone: the record
    // forgets the pid when the job ends, but actions may still target it.
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
  if (job->record.agent_pid != 0) return;
  job->record.other_agents.clear();
  if (!job->instances.empty() && !model::IsTerminal(job->record.status)) {
    // The attempt ended but its agents may still be finishing (or are being
    // killed): watch them until gone. Terminal jobs' agents go in Sweep.
    RetireInstances(job);
  }
  // A placed attempt whose network is still being made (off the loop) has no agent yet, but
  // its capacity is taken: NetworkReady launches onto it. Releasing it here would let a later
  // job start in its place.
  const bool launching = job->network_pending && !job->record.queued &&
                         job->record.status == model::TrainingJobStatus::kInProgress;
  if (job->slots > 0 && !launching) {
    pool_.Release(job->record.spec.instance_type, job->slots);
    job->slots = 0;
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
  // A type whose capacity an older job waits for is closed to younger ones:
  // queued jobs start in order.
  std::map<std::string, int> waiting_ahead;
  for (ActiveJob* job : queued) {
    const model::JobSpec& spec = job->record.spec;
    const std::string& type = spec.instance_type;
    Event wait{Event::Kind::kWaiting};
    if (spec.managed_spot && !market_.Available(type, now)) {
      auto until = market_.UnavailableUntil(type, now);
      if (until && (!wake_at_ || *until < *wake_at_)) wake_at_ = until;
      wait.message = "Waiting for spot capacity: no " + type + " spot capacity is available" +
                     (until ? " (expected back at " + FormatIso8601(*until) + ")" : "");
      Apply(job, wait);
      continue;
    }
    auto ahead = waiting_ahead.find(type);
    if (ahead != waiting_ahead.end() || !pool_.TryAcquire(type, spec.instance_count)) {
      int n = ahead == waiting_ahead.end() ? 0 : ahead->second;
      wait.message = "Waiting for capacity: all " + std::to_string(pool_.Total(type)) + " " + type +
                     " instances of this machine are in use" +
                     (n > 0 ? "; " + std::to_string(n) + " job(s) queued ahead" : "");
      waiting_ahead[type] += 1;
      Apply(job, wait);
      continue;
    }
    job->slots = spec.instance_count;
    Event placed{Event::Kind::kPlaced};
    placed.on_spot = spec.managed_spot;
    if (spec.managed_spot) {
      const capacity::SpotModel& model = market_.ModelFor(type);
      placed.price_fraction = model.price_fraction;
      placed.notice = model.notice;
      // Keyed by name and attempt (not the ARN, whose account differs
      // between servers) so a run replays under the same seed.
      placed.interruption_at = market_.DrawInterruption(
          type, spec.name + "#" + std::to_string(job->record.attempt + 1), now);
    } else {
      placed.notice = options_.stop_policy.stop_grace;
    }
    Apply(job, placed);
  }
}

void JobController::Sweep() {
  // Terminal jobs leave the active set; their agents (exiting on their own
  // after the final report) are watched until gone so they are reaped.
  for (const auto& arn : finished_) {
    auto it = active_.find(arn);
    if (it == active_.end()) continue;
    std::vector<launch::AgentHandle> agents;
    for (const auto& inst : it->second->instances) agents.push_back(inst.agent);
    if (it->second->has_network) networks_to_release_.emplace_back(arn, agents);
    const JobRecord& rec = it->second->record;
    volumes_to_release_.emplace_back(
        JoinPath(options_.data_dir, "jobs/" + rec.account + "/" + rec.spec.name),
        std::move(agents));
    RetireInstances(it->second.get());
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
      SignalInstances(job, SIGTERM);
      break;
    case Action::Kind::kSignalInterrupt:
      // A spot interruption of any instance interrupts the whole job: all restart together.
      SignalInstances(job, SIGUSR1);
      break;
    case Action::Kind::kKill:
      SignalInstances(job, SIGKILL, /*even_exited=*/true);
      break;
  }
}

void JobController::LaunchAgents(ActiveJob* job) {
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

  // Every instance gets its network (its own namespace where the machine allows it), the same
  // on every attempt (the launcher keeps the job's network until the job ends).
  std::vector<model::InstanceNetworkConfig> networks(static_cast<size_t>(count));
  if (job->networks.empty()) {
    launch::NetworkRequest request;
    request.count = count;
    request.isolated = rec.spec.network_isolation;
    request.store_access = options_.pass_s3_credentials && !options_.storage_s3.is_null();
    request.sandboxed = options_.isolation != "none";
    const std::string arn = rec.arn;
    if (launcher_->PreparesNetworkAtOnce(request) && releases_.count(arn) == 0) {
      // Nothing to make in the kernel (the host's network, loopback aliases): no thread hop.
      auto made = launcher_->PrepareNetwork(arn, request);
      if (!made.ok()) {
        return fail("InternalServerError: could not set up the instances' network: " +
                    made.status().message());
      }
      job->has_network = true;
      job->networks = std::move(made).value();
    } else {
      // Making the network runs `ip` and `nft` a few times (~0.1-0.5 s): off the loop, so other
      // jobs' reports and requests are not held up. NetworkReady launches the attempt.
      if (!job->network_pending) {
        job->network_pending = true;
        std::shared_future<void> released;  // the network of an ended job of the same name
        if (auto r = releases_.find(arn); r != releases_.end()) released = r->second;
        // A job of the same name that ended (and was deleted) while its network was still
        // being made may have left that making running: it ends first, and its result, which
        // carries another token, is not taken for this job's.
        if (auto old = network_threads_.find(arn); old != network_threads_.end()) {
          old->second.join();
          network_threads_.erase(old);
        }
        const uint64_t token = next_network_token_++;
        job->network_token = token;
        network_threads_[arn] =
            std::thread([this, arn, request, attempt = rec.attempt, released, token] {
              if (released.valid()) released.wait();
              auto made = std::make_shared<Result<std::vector<model::InstanceNetworkConfig>>>(
                  launcher_->PrepareNetwork(arn, request));
              Post([this, arn, attempt, token, made] {
                NetworkReady(arn, attempt, token, std::move(*made));
              });
            });
      }
      return;
    }
  }
  networks = job->networks;

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

  job->instances.clear();
  for (int i = 1; i <= count; ++i) {
    model::InstanceConfig cfg = base;
    cfg.host_index = i;
    cfg.instance_dir = JoinPath(attempt_dir, hosts[static_cast<size_t>(i - 1)]);
    cfg.log_stream = rec.spec.name + "/" + hosts[static_cast<size_t>(i - 1)] + "-" +
                     first_stream.substr(first_stream.rfind('-') + 1);
    cfg.network = networks[static_cast<size_t>(i - 1)];
    Status s = MakeDirs(cfg.instance_dir);
    Result<launch::AgentHandle> agent =
        s.ok() ? launcher_->Launch(cfg) : Result<launch::AgentHandle>(s);
    if (!agent.ok()) {
      // A partial attempt cannot train: take down the instances already started.
      SignalInstances(job, SIGKILL);
      RetireInstances(job);
      return fail("InternalServerError: could not launch instance " +
                  hosts[static_cast<size_t>(i - 1)] + ": " + agent.status().message());
    }
    Instance inst;
    inst.agent = *agent;
    inst.log_stream = cfg.log_stream;
    job->instances.push_back(inst);
  }
  rec.agent_pid = job->instances[0].agent.pid;
  rec.agent_start_ticks = job->instances[0].agent.start_ticks;
  rec.instance_dir = JoinPath(attempt_dir, "algo-1");
  PersistAgents(job);
}

void JobController::NetworkReady(const std::string& arn, int attempt, uint64_t token,
                                 Result<std::vector<model::InstanceNetworkConfig>> made) {
  ActiveJob* job = FindByArn(arn);
  if (job != nullptr && job->network_token != token) {
    // A making for an earlier job of this name, already joined: this job's own is under way
    // (and makes the same network, whose names follow the ARN).
    return;
  }
  if (auto t = network_threads_.find(arn); t != network_threads_.end()) {
    t->second.join();  // it has posted this task: it is ending
    network_threads_.erase(t);
  }
  if (job == nullptr) {
    // The job ended while its network was being made.
    if (made.ok()) launcher_->ReleaseNetwork(arn);
    return;
  }
  job->network_pending = false;
  const bool network_made = made.ok();
  const std::string network_error = network_made ? "" : made.status().message();
  if (network_made) {
    job->has_network = true;
    job->networks = std::move(made).value();
  }
  const JobRecord& rec = job->record;
  if (rec.attempt != attempt || rec.status != model::TrainingJobStatus::kInProgress || rec.queued ||
      rec.agent_pid != 0 || !job->instances.empty()) {
    return;  // stopped or requeued meanwhile: a later launch uses the network
  }
  if (!network_made) {
    Event e{Event::Kind::kLaunchFailed};
    e.failure_reason =
        "InternalServerError: could not set up the instances' network: " + network_error;
    Apply(job, e);
    return;
  }
  LaunchAgents(job);
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

void JobController::ReleaseNetworks(bool now) {
  std::vector<std::pair<std::string, std::vector<launch::AgentHandle>>> waiting;
  for (auto& entry : networks_to_release_) {
    bool alive = false;
    for (const auto& a : entry.second) alive = alive || (a.pid != 0 && launcher_->Alive(a));
    if (alive && !now) {
      waiting.push_back(std::move(entry));
    } else {
      // Off the loop, like making it; a new job of the same name waits for it (LaunchAgents).
      const std::string arn = entry.first;
      releases_[arn] =
          std::async(std::launch::async, [this, arn] { launcher_->ReleaseNetwork(arn); }).share();
    }
  }
  networks_to_release_.swap(waiting);
  for (auto it = releases_.begin(); it != releases_.end();) {
    if (now) it->second.wait();
    if (it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      it = releases_.erase(it);
    } else {
      ++it;
    }
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

void JobController::ReleaseVolumes(bool now) {
  std::vector<std::pair<std::string, std::vector<launch::AgentHandle>>> waiting;
  for (auto& entry : volumes_to_release_) {
    bool alive = false;
    for (const auto& a : entry.second) alive = alive || (a.pid != 0 && launcher_->Alive(a));
    // A lazy unmount and an unlink: quick enough for the loop.
    if (alive && !now) {
      waiting.push_back(std::move(entry));
    } else {
      ReleaseJobVolumes(entry.first);
    }
  }
  volumes_to_release_.swap(waiting);
}

void JobController::Tick() {
  std::vector<launch::AgentHandle> still;
  for (const auto& agent : exiting_) {
    if (launcher_->Alive(agent)) still.push_back(agent);
  }
  exiting_.swap(still);
  ReleaseNetworks(/*now=*/false);
  ReleaseVolumes(/*now=*/false);
  std::vector<ActiveJob*> jobs;
  for (auto& [arn, job] : active_) jobs.push_back(job.get());
  for (const std::string& type : market_.DueTraceInterruptions(clock_->Now())) {
    for (ActiveJob* job : jobs) {
      if (job->record.spec.instance_type != type || !job->record.attempt_on_spot) continue;
      Event e{Event::Kind::kInterrupt};
      e.message = "spot capacity of " + type + " reclaimed (spot trace)";
      Apply(job, e);
    }
  }
  for (ActiveJob* job : jobs) {
    // An instance whose agent vanished without its exit report takes the attempt down.
    std::optional<size_t> gone;
    for (size_t i = 0; i < job->instances.size() && !gone; ++i) {
      const Instance& inst = job->instances[i];
      if (!inst.exited && !launcher_->Alive(inst.agent)) gone = i;
    }
    if (gone) {
      std::string dir = job->record.instance_dir;
      dir = dir.substr(0, dir.rfind('/') + 1) + "algo-" + std::to_string(*gone + 1);
      Event lost{Event::Kind::kAgentLost};
      lost.message =
          (job->instances.size() > 1 ? "instance algo-" + std::to_string(*gone + 1) + ": " : "") +
          "the instance's agent exited without reporting a result (see " + dir + ".agent.log)";
      SignalInstances(job, SIGKILL);
      job->instances[*gone].agent = {};
      job->record.agent_pid = 0;
      Apply(job, lost);
      continue;
    }
    Apply(job, {Event::Kind::kTick});
  }
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
    if (rec.status != model::TrainingJobStatus::kInProgress || rec.agent_pid == 0) {
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
      v.capacity_total = pool_.Total(st.instance_type);
      v.capacity_in_use = pool_.InUse(st.instance_type);
      for (const auto& [arn, job] : active_) {
        if (job->record.spec.instance_type != st.instance_type) continue;
        if (job->record.queued) v.queued_jobs += 1;
        if (job->record.agent_pid != 0 && job->record.attempt_on_spot) v.running_spot_jobs += 1;
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
