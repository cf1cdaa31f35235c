#include "events/governance.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "model/training_job.h"

namespace ty::events {
namespace {

using model::JobRecord;
using model::SecondaryStatus;
using model::TrainingJobStatus;
using nlohmann::json;

constexpr size_t kMaxJobName = 63;
constexpr int kMaxNameTries = 1000;

std::string PoliciesKey(const std::string& account) { return "governance.policies/" + account; }
std::string ActionsKey(const std::string& account) { return "governance.actions/" + account; }

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

json ActionJson(const GovernanceAction& a) {
  json j = {{"time_ms", ToEpochMillis(a.time)},
            {"job", a.job_name},
            {"arn", a.job_arn},
            {"policy", a.policy},
            {"action", a.action},
            {"message", a.message}};
  if (!a.clone_name.empty()) j["clone"] = a.clone_name;
  return j;
}

std::optional<GovernanceAction> ActionFromJson(const json& j) {
  if (!j.is_object() || !j.contains("time_ms") || !j["time_ms"].is_number_integer()) {
    return std::nullopt;
  }
  GovernanceAction a;
  a.time = FromEpochMillis(j["time_ms"].get<int64_t>());
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  a.job_name = str("job");
  a.job_arn = str("arn");
  a.policy = str("policy");
  a.action = str("action");
  a.message = str("message");
  a.clone_name = str("clone");
  return a;
}

int IntTag(const std::map<std::string, std::string>& tags, const char* key) {
  auto it = tags.find(key);
  if (it == tags.end()) return 0;
  try {
    return std::clamp(std::stoi(it->second), 0, 1 << 20);
  } catch (...) {
    return 0;
  }
}

bool IsGovernanceTag(const std::string& key) { return key.rfind(kGovernanceTag, 0) == 0; }

int CountInterruptions(const JobRecord& job) {
  return static_cast<int>(
      std::count_if(job.transitions.begin(), job.transitions.end(),
                    [](const auto& t) { return t.status == SecondaryStatus::kInterrupted; }));
}

std::string Message(const JobRecord& job) {
  return job.transitions.empty() ? std::string() : job.transitions.back().message;
}

}  // namespace

Governance::Governance(GovernanceOptions options, store::Store* store, const Clock* clock)
    : options_(std::move(options)), store_(store), clock_(clock) {}

Governance::Cached& Governance::CacheFor(const std::string& account) const {
  auto it = accounts_.find(account);
  if (it != accounts_.end()) return it->second;
  Cached c;
  c.policies.policies = options_.defaults;
  return accounts_.emplace(account, std::move(c)).first->second;
}

AccountPolicies Governance::PoliciesFor(const std::string& account) const {
  {
    MutexLock lock(&mu_);
    auto it = accounts_.find(account);
    if (it != accounts_.end()) return it->second.policies;
  }
  // Read outside the lock; a concurrent Update that lands first wins (try_emplace).
  AccountPolicies loaded{options_.defaults, false};
  auto stored = store_->GetSetting(PoliciesKey(account));
  if (stored.ok() && stored->has_value() && **stored != "null") {
    json doc = json::parse(**stored, nullptr, /*allow_exceptions=*/false);
    auto parsed = ParsePolicies(doc, PolicyKeys::kConfig);
    if (parsed.ok()) {
      loaded = {*parsed, true};
    } else {
      std::fprintf(stderr,
                   "trainyard: account %s's stored governance policies do not parse (%s); the "
                   "server's defaults apply\n",
                   account.c_str(), parsed.status().ToString().c_str());
    }
  }
  MutexLock lock(&mu_);
  Cached c;
  c.policies = loaded;
  return accounts_.try_emplace(account, std::move(c)).first->second.policies;
}

Status Governance::Update(const std::string& account, std::optional<GovernancePolicies> policies) {
  if (!options_.allow_account_updates) {
    return Status(StatusCode::kPermissionDenied,
                  "This server's governance policies are set by its configuration "
                  "(governance.allow_account_updates is false).");
  }
  std::string doc = policies ? RenderPolicies(*policies, PolicyKeys::kConfig).dump() : "null";
  TY_RETURN_IF_ERROR(store_->PutSetting(PoliciesKey(account), doc));
  MutexLock lock(&mu_);
  Cached& c = CacheFor(account);
  c.policies =
      policies ? AccountPolicies{*policies, true} : AccountPolicies{options_.defaults, false};
  return Status::Ok();
}

std::vector<GovernanceAction> Governance::RecentActions(const std::string& account,
                                                        size_t limit) const {
  bool loaded = false;
  {
    MutexLock lock(&mu_);
    auto it = accounts_.find(account);
    loaded = it != accounts_.end() && it->second.actions_loaded;
    if (loaded) {
      const auto& a = it->second.actions;
      return {a.begin(), a.begin() + static_cast<long>(std::min(limit, a.size()))};
    }
  }
  std::deque<GovernanceAction> actions;
  auto stored = store_->GetSetting(ActionsKey(account));
  if (stored.ok() && stored->has_value()) {
    json doc = json::parse(**stored, nullptr, /*allow_exceptions=*/false);
    if (doc.is_array()) {
      for (const auto& j : doc) {
        if (auto a = ActionFromJson(j)) actions.push_back(std::move(*a));
        if (actions.size() >= options_.recent_actions) break;
      }
    }
  }
  PoliciesFor(account);  // the account's entry exists from here on
  MutexLock lock(&mu_);
  Cached& c = CacheFor(account);
  if (!c.actions_loaded) {
    // Actions recorded meanwhile (Record loads first, so none) stay in front.
    for (auto& a : actions) c.actions.push_back(std::move(a));
    c.actions_loaded = true;
  }
  return {c.actions.begin(),
          c.actions.begin() + static_cast<long>(std::min(limit, c.actions.size()))};
}

Status Governance::Admit(const std::string& account, const model::JobSpec& spec,
                         const std::vector<store::Tag>& tags) const {
  const GovernancePolicies p = PoliciesFor(account).policies;
  if (!p.allowed_instance_types.empty() &&
      std::find(p.allowed_instance_types.begin(), p.allowed_instance_types.end(),
                spec.instance_type) == p.allowed_instance_types.end()) {
    return InvalidArgument(
        "Governance policy allowed-instance-types: ResourceConfig.InstanceType " +
        spec.instance_type + " is not allowed in this account; use one of " +
        Join(p.allowed_instance_types) + ".");
  }
  if (p.max_instance_count && spec.instance_count > *p.max_instance_count) {
    return InvalidArgument("Governance policy max-instance-count: ResourceConfig.InstanceCount " +
                           std::to_string(spec.instance_count) + " is more than the " +
                           std::to_string(*p.max_instance_count) +
                           " instance(s) a job may use in this account.");
  }
  if (p.max_runtime && spec.max_runtime > *p.max_runtime) {
    return InvalidArgument("Governance policy max-runtime: StoppingCondition.MaxRuntimeInSeconds " +
                           std::to_string(spec.max_runtime.count()) + " is more than the " +
                           std::to_string(p.max_runtime->count()) +
                           " seconds a job may run in this account.");
  }
  if (p.required_tags && p.required_tags->mode == RequiredTagsPolicy::Mode::kRefuse) {
    std::vector<std::string> missing;
    for (const auto& key : p.required_tags->keys) {
      bool found =
          std::any_of(tags.begin(), tags.end(), [&](const store::Tag& t) { return t.key == key; });
      if (!found) missing.push_back(key);
    }
    if (!missing.empty()) {
      return InvalidArgument("Governance policy required-tags: the job lacks the required tag(s) " +
                             Join(missing) + "; add them to Tags.");
    }
  }
  return Status::Ok();
}

void Governance::Record(const JobRecord& job, GovernanceAction action,
                        const std::string& clone_arn) {
  const TimePoint now = clock_->Now();
  action.time = now;
  action.job_name = job.spec.name;
  action.job_arn = job.arn;
  Status s = store_->SetTags(job.arn, {{kGovernanceTag, action.policy + ":" + action.action}});
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot tag %s: %s\n", job.arn.c_str(), s.ToString().c_str());
  }
  json resources = json::array({job.arn});
  json detail = {{"TrainingJobName", job.spec.name},
                 {"TrainingJobArn", job.arn},
                 {"TrainingJobStatus", model::Name(job.status)},
                 {"SecondaryStatus", model::Name(job.secondary)},
                 {"Policy", action.policy},
                 {"Action", action.action},
                 {"Message", action.message},
                 {"CloneTrainingJobName", nullptr},
                 {"CloneTrainingJobArn", nullptr}};
  if (!action.clone_name.empty()) {
    detail["CloneTrainingJobName"] = action.clone_name;
    detail["CloneTrainingJobArn"] = clone_arn;
    resources.push_back(clone_arn);
  }
  json event = {{"version", "0"},
                {"id", RandomUuid()},
                {"detail-type", kEventDetailType},
                {"source", kEventSource},
                {"account", job.account},
                {"time", FormatIso8601(now)},
                {"region", options_.region},
                {"resources", std::move(resources)},
                {"detail", std::move(detail)}};
  store::OutboxEvent e;
  e.account = job.account;
  e.ordering_key = job.arn;
  e.event_json = event.dump(-1, ' ', false, json::error_handler_t::replace);
  e.created_ms = ToEpochMillis(now);
  s = store_->AppendOutbox({e});
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot queue the governance event of %s: %s\n",
                 job.arn.c_str(), s.ToString().c_str());
  }
  std::fprintf(stderr, "trainyard: governance %s: %s %s: %s\n", action.policy.c_str(),
               job.arn.c_str(), action.action.c_str(), action.message.c_str());
  RecentActions(job.account, 0);  // loads the stored ones first, so none is lost
  json stored = json::array();
  {
    MutexLock lock(&mu_);
    Cached& c = CacheFor(job.account);
    c.actions.push_front(std::move(action));
    while (c.actions.size() > options_.recent_actions) c.actions.pop_back();
    for (const auto& a : c.actions) stored.push_back(ActionJson(a));
  }
  s = store_->PutSetting(ActionsKey(job.account),
                         stored.dump(-1, ' ', false, json::error_handler_t::replace));
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: cannot store governance actions: %s\n", s.ToString().c_str());
  }
}

void Governance::StopFor(const JobRecord& job, const std::string& policy, const std::string& why,
                         control::JobActions& actions) {
  if (stopped_by_.count(job.arn) != 0) return;
  stopped_by_[job.arn] = "Training job stopped by governance (" + policy + "): " + why;
  // The current phase says why it ended; the Stopped transition says it again (OnTransition).
  actions.SetStatusMessage(job.arn, "Governance (" + policy + "): " + why + ". Stopping the job.");
  actions.Stop(job.arn, "governance (" + policy + "): " + why);
  Record(job, {{}, {}, {}, policy, "stopped", why, {}});
}

std::string Governance::Clone(const JobRecord& job, const std::string& policy, bool on_demand,
                              control::JobActions& actions) {
  json request = json::parse(job.request_json, nullptr, /*allow_exceptions=*/false);
  if (!request.is_object()) return "";
  std::map<std::string, std::string> tags;
  auto stored = store_->GetTags(job.arn);
  if (stored.ok()) {
    for (const auto& t : *stored) tags[t.key] = t.value;
  }
  const std::string origin = tags.count(kOriginTag) ? tags[kOriginTag] : job.spec.name;
  const int generation = IntTag(tags, kGenerationTag);
  int resumes = IntTag(tags, kResumesTag) + (policy == "auto-resume" ? 1 : 0);
  std::string name;
  for (int n = generation + 1; n <= generation + kMaxNameTries && name.empty(); ++n) {
    std::string suffix = "-r" + std::to_string(n);
    std::string candidate = origin.substr(0, kMaxJobName - suffix.size()) + suffix;
    auto taken = store_->GetJob(job.account, candidate);
    if (!taken.ok() && taken.status().code() == StatusCode::kNotFound) name = candidate;
    if (!name.empty()) {
      std::vector<store::Tag> clone_tags;
      for (const auto& [k, v] : tags) {
        if (!IsGovernanceTag(k)) clone_tags.push_back({k, v});
      }
      clone_tags.push_back({kGovernanceTag, policy + ":clone"});
      clone_tags.push_back({kOriginTag, origin});
      clone_tags.push_back({kGenerationTag, std::to_string(n)});
      clone_tags.push_back({kResumesTag, std::to_string(resumes)});
      model::JobSpec spec = job.spec;
      spec.name = name;
      request["TrainingJobName"] = name;
      if (on_demand) {
        spec.managed_spot = false;
        spec.max_wait.reset();
        request["EnableManagedSpotTraining"] = false;
        if (request.contains("StoppingCondition") && request["StoppingCondition"].is_object()) {
          request["StoppingCondition"].erase("MaxWaitTimeInSeconds");
        }
      }
      json tag_list = json::array();
      for (const auto& t : clone_tags) tag_list.push_back({{"Key", t.key}, {"Value", t.value}});
      request["Tags"] = std::move(tag_list);
      actions.Create(job.account, std::move(spec),
                     request.dump(-1, ' ', false, json::error_handler_t::replace),
                     std::move(clone_tags));
    }
  }
  return name;
}

void Governance::CheckRequiredTags(const JobRecord& job, const GovernancePolicies& p,
                                   control::JobActions& actions) {
  tags_checked_.insert(job.arn);
  auto tags = store_->GetTags(job.arn);
  if (!tags.ok()) return;  // a store error is no reason to stop a job
  std::vector<std::string> missing;
  for (const auto& key : p.required_tags->keys) {
    bool found =
        std::any_of(tags->begin(), tags->end(), [&](const store::Tag& t) { return t.key == key; });
    if (!found) missing.push_back(key);
  }
  if (missing.empty()) return;
  StopFor(job, "required-tags", "the job lacks the required tag(s) " + Join(missing), actions);
}

void Governance::AutoResume(const JobRecord& job, const GovernancePolicies& p,
                            control::JobActions& actions) {
  const AutoResumePolicy& ar = *p.auto_resume;
  const auto ran = std::chrono::milliseconds(job.run_ms);
  if (ran < ar.min_runtime) return;
  GovernanceAction a{{}, {}, {}, "auto-resume", "not-cloned", "", ""};
  // A job long enough to resume that is not resumed says why, as a clone would.
  auto not_cloned = [&](std::string why) {
    actions.SetStatusMessage(job.arn,
                             Message(job) + ". Governance (auto-resume): not cloned: " + why);
    a.message = std::move(why);
    Record(job, std::move(a));
  };
  if (job.failure_reason.rfind("AlgorithmError", 0) == 0 && !ar.on_algorithm_error) {
    not_cloned("the job failed with an AlgorithmError (auto_resume.on_algorithm_error is off)");
    return;
  }
  std::map<std::string, std::string> tags;
  if (auto stored = store_->GetTags(job.arn); stored.ok()) {
    for (const auto& t : *stored) tags[t.key] = t.value;
  }
  const int resumes = IntTag(tags, kResumesTag);
  if (resumes >= ar.max_resumes) {
    not_cloned("the job was already resumed " + std::to_string(resumes) +
               " time(s), the most auto_resume.max_resumes allows");
    return;
  }
  std::string clone = Clone(job, "auto-resume", /*on_demand=*/false, actions);
  if (clone.empty()) {
    not_cloned("no clone could be made (no free name, or an unreadable request)");
    return;
  }
  std::string from = job.spec.checkpoint_uri
                         ? " from its checkpoints at " + *job.spec.checkpoint_uri
                         : " (it has no CheckpointConfig: it starts over)";
  a.action = "cloned";
  a.clone_name = clone;
  a.message = "the job failed after running " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(ran).count()) +
              " s; cloned as " + clone + " to resume" + from;
  actions.SetStatusMessage(job.arn, Message(job) + ". Governance (auto-resume): " + a.message);
  Record(job, std::move(a), model::TrainingJobArn(options_.region, job.account, clone));
}

void Governance::OnTransition(const JobRecord& before, const JobRecord& after,
                              control::JobActions& actions) {
  const std::string& arn = after.arn;
  const GovernancePolicies p = PoliciesFor(after.account).policies;
  if (model::IsTerminal(after.status)) {
    std::string message;
    if (auto it = stopped_by_.find(arn); it != stopped_by_.end()) {
      message = it->second;
      stopped_by_.erase(it);
    }
    if (auto it = fallback_clone_.find(arn); it != fallback_clone_.end()) {
      const std::string why = it->second;
      fallback_clone_.erase(it);
      std::string clone = Clone(after, "spot-fallback", /*on_demand=*/true, actions);
      GovernanceAction a{{}, {}, {}, "spot-fallback", "cloned", "", clone};
      if (clone.empty()) {
        a.action = "not-cloned";
        a.message = "no on-demand clone could be made (no free name, or an unreadable request)";
        Record(after, a);
      } else {
        a.message = why + "; cloned on demand as " + clone;
        Record(after, a, model::TrainingJobArn(options_.region, after.account, clone));
      }
      message += (message.empty() ? "" : "; ") + a.message;
    }
    if (!message.empty()) actions.SetStatusMessage(arn, message);
    if (after.status == TrainingJobStatus::kFailed && before.status != TrainingJobStatus::kFailed &&
        p.auto_resume) {
      AutoResume(after, p, actions);
    }
    tags_checked_.erase(arn);
    idle_.erase(arn);
    spot_waiting_.erase(arn);
    return;
  }
  if (after.status != TrainingJobStatus::kInProgress) return;
  if (p.required_tags && p.required_tags->mode == RequiredTagsPolicy::Mode::kStop &&
      after.secondary == SecondaryStatus::kStarting && tags_checked_.count(arn) == 0) {
    CheckRequiredTags(after, p, actions);
  }
  if (p.spot_fallback && after.spec.managed_spot && stopped_by_.count(arn) == 0) {
    const SpotFallbackPolicy& sf = *p.spot_fallback;
    const int interruptions = CountInterruptions(after);
    if (sf.after_interruptions > 0 && interruptions >= sf.after_interruptions) {
      std::string why = "the spot job was interrupted " + std::to_string(interruptions) +
                        " time(s) (spot_fallback.after_interruptions is " +
                        std::to_string(sf.after_interruptions) + ")";
      fallback_clone_[arn] = why;
      StopFor(after, "spot-fallback", why, actions);
      spot_waiting_.erase(arn);
      return;
    }
    if (after.queued) {
      spot_waiting_.try_emplace(arn, Waiting{clock_->Now(), after.account});
    } else {
      spot_waiting_.erase(arn);
    }
  }
}

void Governance::OnInstanceSamples(const JobRecord& job, int host_index,
                                   std::span<const model::InstanceSample> samples,
                                   control::JobActions& actions) {
  if (job.status != TrainingJobStatus::kInProgress || job.secondary != SecondaryStatus::kTraining ||
      stopped_by_.count(job.arn) != 0) {
    return;
  }
  const GovernancePolicies p = PoliciesFor(job.account).policies;
  if (!p.idle_stop) {
    idle_.erase(job.arn);
    return;
  }
  const IdleStopPolicy& policy = *p.idle_stop;
  IdleState& st = idle_[job.arn];
  if (st.attempt != job.attempt) st = IdleState{job.attempt, {}, {}};
  for (const auto& s : samples) {
    const std::optional<double>& v = policy.metric == IdleStopPolicy::Metric::kGpu ? s.gpu : s.cpu;
    // An instance without the metric (no GPU) is never idle by it.
    if (v && *v < policy.threshold_percent) {
      st.idle_since_ms.try_emplace(host_index, s.timestamp_ms);
    } else {
      st.idle_since_ms.erase(host_index);
    }
    st.last_ms[host_index] = std::max(st.last_ms[host_index], s.timestamp_ms);
  }
  // The job is idle once every instance has been idle for the duration.
  int64_t idle_for = INT64_MAX;
  for (int host = 1; host <= job.spec.instance_count; ++host) {
    auto since = st.idle_since_ms.find(host);
    auto last = st.last_ms.find(host);
    if (since == st.idle_since_ms.end() || last == st.last_ms.end()) return;
    idle_for = std::min(idle_for, last->second - since->second);
  }
  const int64_t need =
      std::chrono::duration_cast<std::chrono::milliseconds>(policy.duration).count();
  if (idle_for < need) return;
  char threshold[32];
  std::snprintf(threshold, sizeof(threshold), "%g", policy.threshold_percent);
  StopFor(job, "idle-stop",
          std::string(Name(policy.metric)) + " stayed below " + threshold + "% for " +
              std::to_string(idle_for / 1000) +
              " s on every instance (idle_stop.duration_seconds " +
              std::to_string(policy.duration.count()) + ")",
          actions);
  idle_.erase(job.arn);
}

void Governance::OnTick(TimePoint now, control::JobActions& actions) {
  std::vector<std::string> due;
  for (const auto& [arn, w] : spot_waiting_) {
    const GovernancePolicies p = PoliciesFor(w.account).policies;
    if (!p.spot_fallback || !p.spot_fallback->max_capacity_wait) continue;
    if (now - w.since > *p.spot_fallback->max_capacity_wait) due.push_back(arn);
  }
  for (const auto& arn : due) {
    auto job = store_->GetJobByArn(arn);
    if (!job.ok() || job->status != TrainingJobStatus::kInProgress) {
      spot_waiting_.erase(arn);
      continue;
    }
    const GovernancePolicies p = PoliciesFor(job->account).policies;
    auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - spot_waiting_[arn].since);
    std::string why = "the spot job waited " + std::to_string(waited.count()) +
                      " s for spot capacity (spot_fallback.max_capacity_wait_seconds is " +
                      std::to_string(p.spot_fallback->max_capacity_wait->count()) + ")";
    spot_waiting_.erase(arn);
    fallback_clone_[arn] = why;
    StopFor(*job, "spot-fallback", why, actions);
  }
}

}  // namespace ty::events
