#include "debugger/rule_manager.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/crypto.h"
#include "common/json.h"
#include "storage/uri.h"

namespace ty::debugger {

using model::JobRecord;
using model::RuleEvaluation;
using model::RuleKind;
using nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

struct RuleManager::JobState {
  JobRecord job;  // as taken on; never reassigned (evaluations hold &job.spec)
  bool ended = false;
  bool stopped = false;  // ended Stopped or Failed
  std::string end_status;
  bool marker_pending = false;  // training_job_end.ts still to place
  bool marker_busy = false;
  int live_tasks = 0;
};

struct RuleManager::Task {
  std::shared_ptr<JobState> job;
  RuleKind kind = RuleKind::kDebug;
  model::RuleSpec rule;
  std::unique_ptr<Evaluation> eval;
  bool made = false;
  bool busy = false;
  bool stopping = false;
  TimePoint stop_deadline;
  SteadyTime due;
  std::optional<EvaluationResult> reported;  // the last result handed to the loop
};

struct RuleManager::Outcome {
  std::string job_arn;
  RuleKind kind = RuleKind::kDebug;
  std::string configuration_name;
  std::string status;
  EvaluationResult result;
};

namespace {

std::string TaskKey(const std::string& arn, RuleKind kind, const std::string& name) {
  return arn + "\n" + model::Name(kind) + "\n" + name;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const model::RuleSpec* FindRule(const model::JobSpec& spec, RuleKind kind,
                                const std::string& name) {
  const auto& rules = kind == RuleKind::kDebug ? spec.debug_rules : spec.profiler_rules;
  for (const auto& r : rules) {
    if (r.configuration_name == name) return &r;
  }
  return nullptr;
}

bool SameProgress(const EvaluationResult& a, const EvaluationResult& b) {
  return a.status == b.status && a.details == b.details && a.fired_step == b.fired_step &&
         a.steps_evaluated == b.steps_evaluated && a.last_step == b.last_step &&
         a.findings == b.findings;
}

std::string BucketOf(const std::string& uri) {
  auto parsed = storage::ParseStorageUri(uri);
  return parsed.ok() && parsed->scheme == "s3" ? parsed->bucket : "";
}

std::string Dir(std::string uri) {
  if (!uri.empty() && uri.back() != '/') uri += '/';
  return uri;
}

constexpr size_t kMaxActionJsonBytes = 64 << 10;
constexpr size_t kMaxActions = 20;
constexpr size_t kMaxOtherTrials = 20;

}  // namespace

// ---- Actions ----

Result<std::vector<RuleAction>> ParseActionJson(const std::string& text) {
  if (text.size() > kMaxActionJsonBytes) {
    return InvalidArgument("action_json is longer than 64 KiB");
  }
  std::string trimmed = text;
  trimmed.erase(0, trimmed.find_first_not_of(" \t\r\n"));
  if (trimmed.empty()) return std::vector<RuleAction>{};
  // smdebug lowercases the whole string before parsing it (rules/action/action.py).
  auto parsed = ParseJson(Lower(trimmed), 4);
  if (!parsed.ok()) {
    // ActionList.serialize() writes \" for every quote: unescape once and retry.
    std::string unescaped;
    for (size_t i = 0; i < trimmed.size(); ++i) {
      if (trimmed[i] == '\\' && i + 1 < trimmed.size() && trimmed[i + 1] == '"') continue;
      unescaped += trimmed[i];
    }
    parsed = ParseJson(Lower(unescaped), 4);
    if (!parsed.ok()) {
      return InvalidArgument("action_json is not a JSON object or list of actions: " +
                             parsed.status().message());
    }
  }
  json list = parsed->is_array() ? *parsed : json::array({*parsed});
  if (!parsed->is_array() && !parsed->is_object()) {
    return InvalidArgument("action_json must be a JSON object or a list of objects");
  }
  if (list.size() > kMaxActions) return InvalidArgument("action_json has more than 20 actions");
  std::vector<RuleAction> out;
  for (const auto& a : list) {
    if (!a.is_object() || !a.contains("name") || !a["name"].is_string()) {
      return InvalidArgument("each action of action_json needs a \"name\"");
    }
    RuleAction action;
    action.name = a["name"].get<std::string>();
    auto str = [&](const char* key) {
      auto it = a.find(key);
      return it != a.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (action.name == "stoptraining") {
      action.prefix = str("training_job_prefix");
    } else if (action.name == "sms" || action.name == "email") {
      action.endpoint = str("endpoint");
    } else {
      return InvalidArgument("unknown action \"" + action.name +
                             "\" in action_json (allowed: stoptraining, sms, email)");
    }
    out.push_back(std::move(action));
  }
  return out;
}

// ---- Storage ----

RootsAccountStorage::RootsAccountStorage(
    std::vector<std::string> file_roots,
    std::map<std::string, std::vector<std::string>> account_file_roots,
    std::optional<storage::S3Settings> s3)
    : file_roots_(std::move(file_roots)),
      account_file_roots_(std::move(account_file_roots)),
      s3_(std::move(s3)) {}

const std::vector<std::string>& RootsAccountStorage::RootsOf(const std::string& account) const {
  auto it = account_file_roots_.find(account);
  return it == account_file_roots_.end() ? file_roots_ : it->second;
}

Result<storage::ObjectStore*> RootsAccountStorage::Open(const std::string& account,
                                                        const std::string& uri) {
  storage::ObjectStores* stores = nullptr;
  {
    MutexLock lock(&mu_);
    auto& slot = stores_[account];
    if (!slot) {
      slot = std::make_unique<storage::ObjectStores>(storage::StorageConfig{RootsOf(account), s3_});
    }
    stores = slot.get();
  }
  return stores->For(uri);
}

Status RootsAccountStorage::CheckTrial(const std::string& account, const std::string& uri,
                                       const model::JobSpec& job) {
  auto parsed = storage::ParseStorageUri(uri);
  if (!parsed.ok()) {
    return InvalidArgument("other trial '" + uri +
                           "' is not a valid URI: " + parsed.status().message());
  }
  if (parsed->scheme == "file") {
    Status s = storage::CheckWithinRoots(parsed->path, RootsOf(account));
    if (!s.ok()) {
      return InvalidArgument("other trial '" + uri +
                             "' is outside the file roots of the job's account");
    }
    return Status::Ok();
  }
  // Buckets are not owned by accounts here: a trial may be read from a bucket the job writes.
  std::vector<std::string> buckets = {BucketOf(job.output_path)};
  if (job.debug_hook) buckets.push_back(BucketOf(job.debug_hook->s3_output_path));
  if (job.checkpoint_uri) buckets.push_back(BucketOf(*job.checkpoint_uri));
  for (const auto& b : buckets) {
    if (!b.empty() && b == parsed->bucket) return Status::Ok();
  }
  return InvalidArgument("other trial '" + uri +
                         "' is in a bucket the job does not write; a rule reads only trials in "
                         "its job's own buckets");
}

// ---- The manager ----

RuleManager::RuleManager(RuleManagerOptions options, store::Store* store, AccountStorage* storage,
                         const Clock* clock, RuleEventSink events, EvaluationFactories factories)
    : options_(std::move(options)),
      store_(store),
      storage_(storage),
      clock_(clock),
      events_(std::move(events)),
      factories_(std::move(factories)) {}

RuleManager::~RuleManager() { Shutdown(); }

Status RuleManager::Start() {
  if (!options_.scratch_dir.empty()) ::mkdir(options_.scratch_dir.c_str(), 0700);
  // Unfinished evaluations restart from the beginning of their trial (an evaluation keeps no
  // state across processes); terminal ones are kept as they are.
  TY_ASSIGN_OR_RETURN(auto unfinished, store_->UnfinishedRuleEvaluations());
  std::vector<std::string> arns;
  for (const auto& r : unfinished) {
    if (std::find(arns.begin(), arns.end(), r.job_arn) == arns.end()) arns.push_back(r.job_arn);
  }
  for (const auto& arn : arns) {
    auto job = store_->GetJobByArn(arn);
    if (job.ok()) TakeOn(*job);
  }
  TY_ASSIGN_OR_RETURN(auto active, store_->ActiveJobs());
  for (const auto& job : active) {
    if (!job.spec.debug_rules.empty() || !job.spec.profiler_rules.empty()) TakeOn(job);
  }
  const int n = std::max(1, options_.threads);
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { Worker(); });
  return Status::Ok();
}

void RuleManager::Shutdown() {
  {
    MutexLock lock(&mu_);
    shutdown_ = true;
  }
  cv_.SignalAll();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

size_t RuleManager::ActiveEvaluations() {
  MutexLock lock(&mu_);
  return tasks_.size();
}

void RuleManager::TakeOn(const JobRecord& job) {
  {
    MutexLock lock(&mu_);
    if (jobs_.count(job.arn) != 0) return;
  }
  std::vector<RuleEvaluation> initial;
  for (const auto& r : job.spec.debug_rules) {
    initial.push_back(model::InitialRuleEvaluation(job, RuleKind::kDebug, r.configuration_name));
  }
  for (const auto& r : job.spec.profiler_rules) {
    initial.push_back(model::InitialRuleEvaluation(job, RuleKind::kProfiler, r.configuration_name));
  }
  Status s = store_->InsertRuleEvaluations(initial);
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot store the rule evaluations of %s: %s\n",
                 job.arn.c_str(), s.ToString().c_str());
  }
  auto rows = store_->RuleEvaluations(job.arn);
  if (!rows.ok()) {
    std::fprintf(stderr, "trainyard: cannot read the rule evaluations of %s: %s\n", job.arn.c_str(),
                 rows.status().ToString().c_str());
    return;
  }
  auto state = std::make_shared<JobState>();
  state->job = job;
  state->ended = model::IsTerminal(job.status);
  state->stopped = state->ended && job.status != model::TrainingJobStatus::kCompleted;
  state->end_status = model::Name(job.status);
  state->marker_pending = state->ended && !model::DebugOutputUri(job.spec).empty();
  const TimePoint now = clock_->Now();
  MutexLock lock(&mu_);
  if (jobs_.count(job.arn) != 0) return;
  for (const auto& row : *rows) {
    if (model::IsTerminalRuleStatus(row.status)) continue;
    const model::RuleSpec* rule = FindRule(state->job.spec, row.kind, row.configuration_name);
    if (rule == nullptr) continue;
    auto task = std::make_unique<Task>();
    task->job = state;
    task->kind = row.kind;
    task->rule = *rule;
    task->stopping = row.status == "Stopping" || state->stopped;
    task->stop_deadline = now + options_.stop_grace;
    task->due = std::chrono::steady_clock::now();
    ++state->live_tasks;
    tasks_[TaskKey(job.arn, row.kind, row.configuration_name)] = std::move(task);
  }
  jobs_[job.arn] = state;
  cv_.SignalAll();
}

void RuleManager::JobEnded(const JobRecord& job) {
  const bool has_rules = !job.spec.debug_rules.empty() || !job.spec.profiler_rules.empty();
  const bool has_hook = !model::DebugOutputUri(job.spec).empty();
  if (!has_rules && !has_hook) return;
  if (has_rules) TakeOn(job);
  const bool stopped = job.status != model::TrainingJobStatus::kCompleted;
  const TimePoint now = clock_->Now();
  {
    MutexLock lock(&mu_);
    auto& state = jobs_[job.arn];
    if (!state) {
      state = std::make_shared<JobState>();
      state->job = job;
    }
    if (!state->ended) {
      state->ended = true;
      state->stopped = stopped;
      state->end_status = model::Name(job.status);
      state->marker_pending = has_hook;
    }
    for (auto& [key, task] : tasks_) {
      if (task->job != state) continue;
      task->due = std::chrono::steady_clock::now();
      if (stopped && !task->stopping) {
        task->stopping = true;
        task->stop_deadline = now + options_.stop_grace;
      }
    }
    if (state->live_tasks == 0 && !state->marker_pending) jobs_.erase(job.arn);
  }
  cv_.SignalAll();
  if (!stopped || !has_rules) return;
  // SageMaker stops the rule jobs of a stopped training job: Stopping while they evaluate what
  // is there, then Stopped.
  auto rows = store_->RuleEvaluations(job.arn);
  if (!rows.ok()) return;
  for (size_t i = 0; i < rows->size(); ++i) {
    RuleEvaluation& row = (*rows)[i];
    if (row.status != "InProgress") continue;
    row.status = "Stopping";
    row.details = "The training job " + std::string(model::Name(job.status)) +
                  "; evaluating the steps it wrote before stopping.";
    row.last_modified_time = now;
    Persist(job, *rows, row, /*describe_changed=*/true);
  }
}

void RuleManager::OnTransition(const JobRecord& before, const JobRecord& after,
                               control::JobActions& actions) {
  if (auto it = stop_messages_.find(after.arn); it != stop_messages_.end()) {
    if (after.status == model::TrainingJobStatus::kStopped) {
      actions.SetStatusMessage(after.arn, it->second);
    }
    if (model::IsTerminal(after.status)) stop_messages_.erase(it);
  }
  const bool has_rules = !after.spec.debug_rules.empty() || !after.spec.profiler_rules.empty();
  if (model::IsTerminal(after.status)) {
    if (!model::IsTerminal(before.status) || before.arn != after.arn) JobEnded(after);
    return;
  }
  if (has_rules) TakeOn(after);
}

void RuleManager::OnTick(TimePoint, control::JobActions& actions) {
  std::vector<Outcome> outcomes;
  {
    MutexLock lock(&mu_);
    outcomes.swap(outcomes_);
  }
  for (const auto& o : outcomes) Apply(o, actions);
}

bool RuleManager::Persist(const JobRecord& job, std::vector<RuleEvaluation> rows,
                          const RuleEvaluation& row, bool describe_changed) {
  for (auto& r : rows) {
    if (r.kind == row.kind && r.configuration_name == row.configuration_name) r = row;
  }
  std::vector<store::OutboxEvent> events;
  if (describe_changed && events_.make) events = events_.make(job, rows, clock_->Now());
  Status s = store_->UpdateRuleEvaluation(row, events, describe_changed);
  if (!s.ok()) {
    if (s.code() != StatusCode::kNotFound) {
      std::fprintf(stderr, "trainyard: cannot store rule %s of %s: %s\n",
                   row.configuration_name.c_str(), row.job_arn.c_str(), s.ToString().c_str());
    }
    return false;
  }
  if (!events.empty() && events_.committed) events_.committed();
  return true;
}

void RuleManager::Apply(const Outcome& o, control::JobActions& actions) {
  auto job = store_->GetJobByArn(o.job_arn);
  if (!job.ok()) return;  // deleted meanwhile
  auto rows = store_->RuleEvaluations(o.job_arn);
  if (!rows.ok()) return;
  const RuleEvaluation* old = nullptr;
  for (const auto& r : *rows) {
    if (r.kind == o.kind && r.configuration_name == o.configuration_name) old = &r;
  }
  if (old == nullptr || model::IsTerminalRuleStatus(old->status)) return;
  RuleEvaluation next = *old;
  const bool final = model::IsTerminalRuleStatus(o.status);
  // A stopping rule that reports progress stays Stopping (and keeps saying why).
  next.status = o.status == "InProgress" && old->status == "Stopping" ? "Stopping" : o.status;
  if (final || !o.result.details.empty()) {
    next.details = model::TruncateStatusDetails(o.result.details);
  }
  next.fired_step = o.result.fired_step;
  next.findings_json = o.result.findings.dump(-1, ' ', false, json::error_handler_t::replace);
  next.steps_evaluated = o.result.steps_evaluated;
  next.last_step = o.result.last_step;
  const bool describe_changed = next.status != old->status || next.details != old->details;
  if (!describe_changed && next.fired_step == old->fired_step &&
      next.findings_json == old->findings_json && next.steps_evaluated == old->steps_evaluated &&
      next.last_step == old->last_step) {
    return;
  }
  const TimePoint now = clock_->Now();
  if (describe_changed) next.last_modified_time = now;
  if (final) next.end_time = now;
  if (!Persist(*job, *rows, next, describe_changed)) return;
  if (next.status == "IssuesFound") {
    const model::RuleSpec* rule = FindRule(job->spec, next.kind, next.configuration_name);
    if (rule != nullptr) RunActions(*job, *rule, next, actions);
  }
}

void RuleManager::RunActions(const JobRecord& job, const model::RuleSpec& rule,
                             const RuleEvaluation& row, control::JobActions& actions) {
  std::vector<std::string> prefixes;
  if (auto it = rule.parameters.find("action_json"); it != rule.parameters.end()) {
    auto parsed = ParseActionJson(it->second);
    if (!parsed.ok()) {
      std::fprintf(stderr, "trainyard: rule %s of %s: %s; no action taken\n",
                   rule.configuration_name.c_str(), job.arn.c_str(),
                   parsed.status().message().c_str());
    } else {
      for (const auto& a : *parsed) {
        if (a.name == "stoptraining") {
          prefixes.push_back(a.prefix.empty() ? job.spec.name : a.prefix);
        } else {
          std::fprintf(stderr,
                       "trainyard: rule %s of %s fired: its %s action to %s is not delivered "
                       "(Trainyard sends no SMS or email)\n",
                       rule.configuration_name.c_str(), job.arn.c_str(), a.name.c_str(),
                       a.endpoint.c_str());
        }
      }
    }
  }
  if (rule.rule == "StalledTrainingRule") {
    auto on = rule.parameters.find("stop_training_on_fire");
    if (on != rule.parameters.end() && Lower(on->second) == "true") {
      auto p = rule.parameters.find("training_job_name_prefix");
      prefixes.push_back(p != rule.parameters.end() && !p->second.empty() ? p->second
                                                                          : job.spec.name);
    }
  }
  const std::string message =
      "Stopped by debugger rule " + rule.configuration_name + " (IssuesFound" +
      (row.fired_step ? " at step " + std::to_string(*row.fired_step) : std::string()) + ")";
  for (const auto& prefix : prefixes) {
    // smdebug's StopTrainingAction: the InProgress jobs whose names start with the prefix
    // (compared lowercased, as smdebug lowercases the action), stopped only when exactly one
    // matches. Only the rule's own account is searched.
    store::JobQuery q;
    q.account = job.account;
    q.status = model::TrainingJobStatus::kInProgress;
    q.name_contains = prefix;
    q.limit = 100;
    auto jobs = store_->ListJobs(q);
    if (!jobs.ok()) continue;
    std::vector<const JobRecord*> matches;
    for (const auto& j : *jobs) {
      if (Lower(j.spec.name).starts_with(Lower(prefix))) matches.push_back(&j);
    }
    if (matches.size() != 1) {
      std::fprintf(stderr,
                   "trainyard: rule %s of %s fired: StopTraining prefix '%s' matches %zu "
                   "InProgress jobs; a job is stopped only when exactly one matches\n",
                   rule.configuration_name.c_str(), job.arn.c_str(), prefix.c_str(),
                   matches.size());
      continue;
    }
    actions.SetStatusMessage(matches[0]->arn, message);
    actions.Stop(matches[0]->arn, message);
    if (stop_messages_.size() < 10000) stop_messages_[matches[0]->arn] = message;
  }
}

// ---- The pool ----

void RuleManager::Worker() {
  while (true) {
    std::shared_ptr<JobState> marker;
    Task* task = nullptr;
    {
      MutexLock lock(&mu_);
      while (true) {
        if (shutdown_) return;
        for (auto& [arn, state] : jobs_) {
          if (state->marker_pending && !state->marker_busy) {
            marker = state;
            state->marker_busy = true;
            break;
          }
        }
        if (marker) break;
        const SteadyTime now = std::chrono::steady_clock::now();
        SteadyTime next = now + options_.poll_interval;
        for (auto& [key, t] : tasks_) {
          // An ended job's rules wait for its end marker: then their trial is final.
          if (t->busy || t->job->marker_pending) continue;
          if (t->due <= now) {
            if (task == nullptr || t->due < task->due) task = t.get();
          } else {
            next = std::min(next, t->due);
          }
        }
        if (task != nullptr) {
          task->busy = true;
          break;
        }
        cv_.WaitUntil(&mu_, next);
      }
    }
    if (marker) {
      PlaceEndMarker(*marker);
      {
        MutexLock lock(&mu_);
        marker->marker_pending = false;
        marker->marker_busy = false;
        if (marker->live_tasks == 0) jobs_.erase(marker->job.arn);
      }
      cv_.SignalAll();
      continue;
    }
    Step(task);
  }
}

Result<std::unique_ptr<Evaluation>> RuleManager::MakeEvaluation(Task* task) {
  const model::JobSpec& spec = task->job->job.spec;
  const std::string& account = task->job->job.account;
  EvaluationContext ctx;
  ctx.spec = &spec;
  ctx.clock = clock_;
  ctx.trial_uri =
      task->kind == RuleKind::kDebug ? model::DebugOutputUri(spec) : model::ProfilerOutputUri(spec);
  if (ctx.trial_uri.empty()) {
    return FailedPrecondition(task->kind == RuleKind::kDebug
                                  ? "The training job has no DebugHookConfig: no debugging data "
                                    "is saved for the rule to evaluate."
                                  : "The training job has no ProfilerConfig (or profiling is "
                                    "disabled): no system metrics are saved for the rule.");
  }
  for (size_t i = 0; i < kMaxOtherTrials; ++i) {
    auto it = task->rule.parameters.find("other_trial_" + std::to_string(i));
    if (it == task->rule.parameters.end()) break;
    TY_RETURN_IF_ERROR(storage_->CheckTrial(account, it->second, spec));
    ctx.other_trials.push_back(it->second);
  }
  AccountStorage* storage = storage_;
  ctx.open_store = [storage, account](const std::string& uri) {
    return storage->Open(account, uri);
  };
  return task->kind == RuleKind::kDebug ? factories_.debug(task->rule, ctx)
                                        : factories_.profiler(task->rule, ctx);
}

void RuleManager::Step(Task* t) {
  bool ended = false;
  bool stopping = false;
  TimePoint deadline;
  std::shared_ptr<JobState> job;
  {
    MutexLock lock(&mu_);
    job = t->job;
    ended = job->ended && !job->marker_pending;
    stopping = t->stopping;
    deadline = t->stop_deadline;
  }
  EvaluationResult r;
  if (!t->made) {
    t->made = true;
    auto made = MakeEvaluation(t);
    if (made.ok()) {
      t->eval = std::move(made).value();
    } else {
      r.status = RuleStatus::kError;
      r.details = made.status().message();
    }
  }
  if (t->eval) {
    AdvanceLimits limits;
    limits.training_ended = ended;
    limits.budget = options_.advance_budget;
    limits.max_tensor_bytes = options_.max_tensor_bytes;
    limits.listing_grace = std::chrono::seconds(2);
    // Only tensors are rewritten by a resumed attempt; system metrics are never held back.
    if (!ended && t->kind == RuleKind::kDebug) limits.through_step = HoldBack(*job);
    try {
      r = t->eval->Advance(limits);
    } catch (const std::exception& e) {
      // The contract says it never throws; if one does, the rule ends and the server goes on.
      r.status = RuleStatus::kError;
      r.details = std::string("InternalServerError: the rule evaluation failed: ") + e.what();
    }
  }
  std::string status = Name(r.status);
  bool final = r.status != RuleStatus::kInProgress;
  if (stopping && r.status == RuleStatus::kNoIssuesFound) {
    status = "Stopped";
    r.details = "The training job " + job->end_status + "; the rule evaluated " +
                std::to_string(r.steps_evaluated) + " step(s) and found no issues.";
  } else if (stopping && !final && ended && clock_->Now() >= deadline) {
    status = "Stopped";
    final = true;
    r.details = "The training job " + job->end_status + "; the rule was stopped after " +
                std::to_string(r.steps_evaluated) + " step(s) without finding issues.";
  }
  MutexLock lock(&mu_);
  if (final || !t->reported || !SameProgress(*t->reported, r)) {
    outcomes_.push_back({job->job.arn, t->kind, t->rule.configuration_name, status, r});
    t->reported = r;
  }
  t->busy = false;
  t->due = std::chrono::steady_clock::now() + options_.poll_interval;
  if (final) {
    --job->live_tasks;
    tasks_.erase(TaskKey(job->job.arn, t->kind, t->rule.configuration_name));
    if (job->live_tasks == 0 && job->ended && !job->marker_pending) jobs_.erase(job->job.arn);
  }
  cv_.SignalAll();
}

std::optional<int64_t> RuleManager::HoldBack(const JobState& state) {
  const model::JobSpec& spec = state.job.spec;
  if (!spec.managed_spot || !spec.checkpoint_uri || spec.checkpoint_uri->empty()) {
    return std::nullopt;
  }
  // Until a checkpoint's state says otherwise, every step may still be rewritten.
  constexpr int64_t kNothing = -1;
  const std::string uri = Dir(*spec.checkpoint_uri) + "metadata.json";
  auto store = storage_->Open(state.job.account, uri);
  if (!store.ok()) return kNothing;
  auto listed = (*store)->List(uri);
  if (!listed.ok()) return kNothing;
  const storage::ObjectInfo* info = nullptr;
  for (const auto& o : *listed) {
    if (o.key.empty() || o.key == "metadata.json") info = &o;
  }
  if (info == nullptr || info->size > kMaxMetadataBytes) return kNothing;
  std::string dir = options_.scratch_dir.empty() ? "/tmp" : options_.scratch_dir;
  std::string local = dir + "/metadata-" + RandomAlnum(16) + ".json";
  Status s = (*store)->DownloadFile(uri, local);
  std::string text;
  if (s.ok()) {
    std::ifstream in(local, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  ::unlink(local.c_str());
  if (!s.ok() || text.size() > kMaxMetadataBytes) return kNothing;
  auto parsed = ParseJson(text, 4);
  if (!parsed.ok() || !parsed->is_array()) return kNothing;
  // The newest state is the one with the largest latest-global-step-seen (as the hook sorts).
  std::optional<int64_t> seen;
  for (const auto& e : *parsed) {
    if (!e.is_object()) continue;
    auto it = e.find("latest-global-step-seen");
    if (it == e.end() || !it->is_number_integer()) continue;
    int64_t v = it->get<int64_t>();
    if (!seen || v > *seen) seen = v;
  }
  return seen.value_or(kNothing);
}

void RuleManager::PlaceEndMarker(const JobState& state) {
  const std::string prefix = model::DebugOutputUri(state.job.spec);
  if (prefix.empty()) return;
  const std::string uri = Dir(prefix) + "training_job_end.ts";
  auto store = storage_->Open(state.job.account, uri);
  if (!store.ok()) {
    std::fprintf(stderr, "trainyard: cannot place %s: %s\n", uri.c_str(),
                 store.status().ToString().c_str());
    return;
  }
  auto listed = (*store)->List(uri);
  if (listed.ok()) {
    for (const auto& o : *listed) {
      if (o.key.empty() || o.key == "training_job_end.ts") return;  // the hook wrote it
    }
  }
  std::string dir = options_.scratch_dir.empty() ? "/tmp" : options_.scratch_dir;
  std::string local = dir + "/end-" + RandomAlnum(16) + ".ts";
  { std::ofstream(local, std::ios::binary | std::ios::trunc); }
  Status s = (*store)->UploadFile(local, uri);
  ::unlink(local.c_str());
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot place %s: %s\n", uri.c_str(), s.ToString().c_str());
  }
}

}  // namespace ty::debugger
