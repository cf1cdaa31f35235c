// Governance: the built-in policies (events/governance_policy.h) at work. It is
//   - an AdmissionCheck: CreateTrainingJob is refused (ValidationException) for a job outside
//     the account's limits (instance types, instance count, MaxRuntime) or, in refuse mode,
//     without its required tags;
//   - a JobObserver: a job without its required tags is stopped as it starts (stop mode); a
//     job whose every instance stays below the idle threshold for the idle duration while
//     Training is stopped; a job that failed after running at least T is cloned (auto-resume,
//     at most K clones of one original; not for AlgorithmError unless asked); a spot job at
//     its Nth interruption, or waiting longer than W for spot capacity, is stopped and, once
//     stopped, cloned on demand.
//
// Policies are per account: the server config's `governance:` section sets every account's
// defaults; an account may replace its own (never another's: the caller's account is the only
// one an operation names) through Trainyard.UpdateGovernance, unless the config says
// `allow_account_updates: false`. An account's policies are kept in the store's settings
// ("governance.policies/<account>"), so they survive a restart.
//
// Every action is visible on the job: the tag trainyard:governance = <policy>:<action>, its
// status message, and an event on the account's bus (source "trainyard.governance",
// detail-type "Trainyard Governance Action", in the store's outbox), plus a bounded record
// of the account's recent actions (setting "governance.actions/<account>").
//
// A clone is a new job made from the original's CreateTrainingJob request, named
// <original>-r<n> (at most 63 characters, the first free n). It keeps the original's
// CheckpointConfig, so it resumes from the last synced checkpoint, and the original's tags,
// plus trainyard:governance-origin (the first job of the chain), -generation (n) and
// -resumes (auto-resume clones so far along the chain, which K bounds).
//
// Threads: the JobObserver callbacks run on the controller's loop (the state they keep is
// loop-only). Admit, PoliciesFor, Update and RecentActions may run on any thread; the
// per-account policies and actions are guarded by a mutex, never held across the store's
// writes of more than one small row.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/admission.h"
#include "control/job_observer.h"
#include "events/governance_policy.h"
#include "store/store.h"

namespace ty::events {

inline constexpr char kGovernanceTag[] = "trainyard:governance";  // <policy>:<action>
inline constexpr char kOriginTag[] = "trainyard:governance-origin";
inline constexpr char kGenerationTag[] = "trainyard:governance-generation";
inline constexpr char kResumesTag[] = "trainyard:governance-resumes";
inline constexpr char kEventSource[] = "trainyard.governance";
inline constexpr char kEventDetailType[] = "Trainyard Governance Action";

struct GovernanceOptions {
  std::string region = "us-east-1";
  GovernancePolicies defaults;        // every account's policies until it sets its own
  bool allow_account_updates = true;  // false: only the config sets policies
  size_t recent_actions = 100;        // actions kept per account
};

// One thing a policy did to a job.
struct GovernanceAction {
  TimePoint time;
  std::string job_name;
  std::string job_arn;
  std::string policy;      // required-tags | idle-stop | auto-resume | spot-fallback
  std::string action;      // stopped | cloned | not-cloned
  std::string message;     // why, in a sentence
  std::string clone_name;  // the new job, for clones
};

// An account's policies and where they come from.
struct AccountPolicies {
  GovernancePolicies policies;
  bool own = false;  // the account set them (else the server's defaults)
};

class Governance final : public control::JobObserver, public control::AdmissionCheck {
 public:
  // `store` and `clock` outlive this object.
  Governance(GovernanceOptions options, store::Store* store, const Clock* clock);

  // The account's policies. A stored document that no longer parses falls back to the
  // defaults (and says so on stderr).
  AccountPolicies PoliciesFor(const std::string& account) const;
  // Replaces the account's policies (nullopt: back to the server's defaults) and persists
  // them. kPermissionDenied when the config forbids account updates; a store error as is.
  Status Update(const std::string& account, std::optional<GovernancePolicies> policies);
  // The account's latest actions, newest first, at most `limit`.
  std::vector<GovernanceAction> RecentActions(const std::string& account, size_t limit) const;
  bool allow_account_updates() const { return options_.allow_account_updates; }

  // control::AdmissionCheck
  Status Admit(const std::string& account, const model::JobSpec& spec,
               const std::vector<store::Tag>& tags) const override;

  // control::JobObserver
  void OnTransition(const model::JobRecord& before, const model::JobRecord& after,
                    control::JobActions& actions) override;
  void OnInstanceSamples(const model::JobRecord& job, int host_index,
                         std::span<const model::InstanceSample> samples,
                         control::JobActions& actions) override;
  void OnTick(TimePoint now, control::JobActions& actions) override;

 private:
  struct Cached {
    AccountPolicies policies;
    std::deque<GovernanceAction> actions;  // newest first
    bool actions_loaded = false;
  };
  // Per attempt of a Training job: since when each instance has been idle.
  struct IdleState {
    int attempt = 0;
    std::map<int, int64_t> idle_since_ms;  // by host index
    std::map<int, int64_t> last_ms;        // the instance's latest sample
  };
  struct Waiting {
    TimePoint since;
    std::string account;
  };

  Cached& CacheFor(const std::string& account) const TY_REQUIRES(mu_);
  // Tags the job, writes the event, records the action.
  void Record(const model::JobRecord& job, GovernanceAction action,
              const std::string& clone_arn = "");
  // Stops the job for `policy`, remembering why for its final status message.
  void StopFor(const model::JobRecord& job, const std::string& policy, const std::string& why,
               control::JobActions& actions);
  // Creates the clone of `job` (on demand when `on_demand`); its name, or "" when none is free.
  std::string Clone(const model::JobRecord& job, const std::string& policy, bool on_demand,
                    control::JobActions& actions);
  void CheckRequiredTags(const model::JobRecord& job, const GovernancePolicies& p,
                         control::JobActions& actions);
  void AutoResume(const model::JobRecord& job, const GovernancePolicies& p,
                  control::JobActions& actions);

  const GovernanceOptions options_;
  store::Store* const store_;
  const Clock* const clock_;

  mutable Mutex mu_;
  mutable std::map<std::string, Cached> accounts_ TY_GUARDED_BY(mu_);

  // Loop thread only:
  std::set<std::string> tags_checked_;                 // ARNs
  std::map<std::string, IdleState> idle_;              // by ARN
  std::map<std::string, Waiting> spot_waiting_;        // spot jobs waiting for capacity, by ARN
  std::map<std::string, std::string> stopped_by_;      // ARN -> the status message of our stop
  std::map<std::string, std::string> fallback_clone_;  // ARN -> clone on demand once it ends
};

}  // namespace ty::events
