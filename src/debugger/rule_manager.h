// RuleManager: evaluates the debugger and profiler rules of training jobs beside them, on the
// control plane. It is a JobObserver of the controller (it learns of jobs and their ends from
// transitions, and applies outcomes and rule actions on the controller's loop in OnTick) and owns
// a small pool of worker threads that drive one debugger::Evaluation per rule through Advance().
//
// Statuses follow SageMaker (spec §3.2): a job's rules are InProgress from its creation; a rule
// becomes IssuesFound, NoIssuesFound or Error as its evaluation concludes. When the job ends
// Stopped or Failed, rules still InProgress go Stopping, evaluate what is there (at most
// `stop_grace`) and end Stopped (or IssuesFound if they fire meanwhile). After a Completed job a
// rule goes on until its data is exhausted. Every change DescribeTrainingJob shows is stored with a
// "SageMaker Training Job State Change" event in one transaction.
//
// When a job with a DebugHookConfig reaches a terminal status, the empty training_job_end.ts
// marker is put in its debug-output prefix (if absent) before its evaluations are told that
// training ended. For a managed-spot job with a CheckpointConfig, debugger-rule steps past the
// newest latest-global-step-seen of <checkpoint>/metadata.json are held back until the job ends (an
// interrupted attempt may rewrite them). On IssuesFound the rule's actions run: StopTraining (and
// StalledTrainingRule's stop_training_on_fire) stops the one InProgress job of the same account
// whose name starts with the prefix; sms/email are logged, not delivered.
//
// Bounds: `threads` evaluations advance at once, each read is bounded by max_tensor_bytes, and
// the state store is read only up to kMaxMetadataBytes.
//
// Thread contract: the JobObserver callbacks run on the controller's loop (as job_observer.h
// requires: no blocking I/O there, only short SQLite work); Start/Shutdown from the owner's
// thread. Everything else runs on the pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/job_observer.h"
#include "debugger/evaluation.h"
#include "model/rule_evaluation.h"
#include "model/training_job.h"
#include "storage/object_stores.h"
#include "store/store.h"

namespace ty::debugger {

struct RuleManagerOptions {
  int threads = 2;                                 // evaluations advanced at once
  std::chrono::milliseconds poll_interval{1000};   // between two Advance() of one rule
  uint64_t max_tensor_bytes = 64ull << 20;         // AdvanceLimits::max_tensor_bytes
  std::chrono::seconds stop_grace{60};             // Stopping -> Stopped at the latest
  std::chrono::milliseconds advance_budget{1000};  // AdvanceLimits::budget
  std::string scratch_dir;  // small temporary files (state store copies, the end marker)
};

// The state store (spec §4) is a small JSON array; anything larger is not read.
inline constexpr uint64_t kMaxMetadataBytes = 1 << 20;

// How the rules of an account reach storage: file:// only within the account's file roots,
// s3:// through the server's S3 settings. Thread-safe.
class AccountStorage {
 public:
  virtual ~AccountStorage() = default;
  // The store serving `uri` for `account`.
  virtual Result<storage::ObjectStore*> Open(const std::string& account,
                                             const std::string& uri) = 0;
  // Whether a rule of `job` may read the trial `uri` (RuleParameters other_trial_N):
  // InvalidArgument with a sentence fit for StatusDetails otherwise.
  virtual Status CheckTrial(const std::string& account, const std::string& uri,
                            const model::JobSpec& job) = 0;
};

// The server's AccountStorage: one storage::ObjectStores per account, confined to the account's
// own file roots (or the server's when it has none). An s3:// trial must be in a bucket the job
// itself writes (its S3OutputPath's, its hook's or its checkpoints').
class RootsAccountStorage final : public AccountStorage {
 public:
  RootsAccountStorage(std::vector<std::string> file_roots,
                      std::map<std::string, std::vector<std::string>> account_file_roots,
                      std::optional<storage::S3Settings> s3);
  Result<storage::ObjectStore*> Open(const std::string& account, const std::string& uri) override;
  Status CheckTrial(const std::string& account, const std::string& uri,
                    const model::JobSpec& job) override;

 private:
  const std::vector<std::string>& RootsOf(const std::string& account) const;
  const std::vector<std::string> file_roots_;
  const std::map<std::string, std::vector<std::string>> account_file_roots_;
  const std::optional<storage::S3Settings> s3_;
  Mutex mu_;
  std::map<std::string, std::unique_ptr<storage::ObjectStores>> stores_ TY_GUARDED_BY(mu_);
};

// The evaluations a rule becomes; injectable so tests can drive the manager with fakes.
struct EvaluationFactories {
  std::function<Result<std::unique_ptr<Evaluation>>(const model::RuleSpec&,
                                                    const EvaluationContext&)>
      debug = MakeDebugRuleEvaluation;
  std::function<Result<std::unique_ptr<Evaluation>>(const model::RuleSpec&,
                                                    const EvaluationContext&)>
      profiler = MakeProfilerRuleEvaluation;
};

// Renders the state-change events of a job whose rule evaluations are now `rules` (the server
// reads the job's tags and builds events::TrainingJobStateChangeEvent); `committed` is told once
// they are stored (the dispatcher's Wake). Either may be empty: no events.
struct RuleEventSink {
  std::function<std::vector<store::OutboxEvent>(
      const model::JobRecord&, const std::vector<model::RuleEvaluation>&, TimePoint)>
      make;
  std::function<void()> committed;
};

// One parsed action of RuleParameters' action_json (smdebug's rules/action/action.py).
struct RuleAction {
  std::string name;      // "stoptraining" | "sms" | "email"
  std::string prefix;    // stoptraining: training_job_prefix ("" = the rule's own job)
  std::string endpoint;  // sms / email
};
// Parses action_json as the SDK sends it (ActionList.serialize(): a list of objects whose quotes
// may arrive backslash-escaped) or as a plain JSON object or list. Bounded (64 KiB, depth 4,
// 20 actions). InvalidArgument with a sentence for StatusDetails.
Result<std::vector<RuleAction>> ParseActionJson(const std::string& text);

class RuleManager final : public control::JobObserver {
 public:
  // `store`, `storage` and `clock` outlive the manager.
  RuleManager(RuleManagerOptions options, store::Store* store, AccountStorage* storage,
              const Clock* clock, RuleEventSink events = {}, EvaluationFactories factories = {});
  ~RuleManager() override;

  // Restarts the evaluations a previous server left unfinished (terminal ones are kept as they
  // are), takes on active jobs whose rules have no rows yet, and starts the workers.
  Status Start();
  // Stops the workers (an Advance in progress finishes first). Idempotent.
  void Shutdown();

  void OnTransition(const model::JobRecord& before, const model::JobRecord& after,
                    control::JobActions& actions) override;
  void OnTick(TimePoint now, control::JobActions& actions) override;

  // How many rules are being evaluated (tests, metrics).
  size_t ActiveEvaluations();

 private:
  struct JobState;
  struct Task;
  struct Outcome;

  // Loop thread (or Start): inserts the job's missing rows and creates tasks for its unfinished
  // ones, once per job.
  void TakeOn(const model::JobRecord& job) TY_EXCLUDES(mu_);
  void JobEnded(const model::JobRecord& job) TY_EXCLUDES(mu_);
  void Apply(const Outcome& outcome, control::JobActions& actions);
  void RunActions(const model::JobRecord& job, const model::RuleSpec& rule,
                  const model::RuleEvaluation& row, control::JobActions& actions);
  // Stores `row` (and, when DescribeTrainingJob changes, an event); false on failure.
  bool Persist(const model::JobRecord& job, std::vector<model::RuleEvaluation> rows,
               const model::RuleEvaluation& row, bool describe_changed);

  void Worker();
  // Pool: one step of a task.
  void Step(Task* task);
  // Pool: the through_step of a spot job's evaluations (nullopt: no hold-back).
  std::optional<int64_t> HoldBack(const JobState& job);
  // Pool: places training_job_end.ts (when absent) under the job's debug-output prefix.
  void PlaceEndMarker(const JobState& job);
  Result<std::unique_ptr<Evaluation>> MakeEvaluation(Task* task);

  const RuleManagerOptions options_;
  store::Store* const store_;
  AccountStorage* const storage_;
  const Clock* const clock_;
  const RuleEventSink events_;
  const EvaluationFactories factories_;

  Mutex mu_;
  CondVar cv_;
  bool shutdown_ TY_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<JobState>> jobs_ TY_GUARDED_BY(mu_);  // by job ARN
  std::map<std::string, std::unique_ptr<Task>> tasks_ TY_GUARDED_BY(mu_);     // by TaskKey
  std::vector<Outcome> outcomes_ TY_GUARDED_BY(mu_);  // for the loop (OnTick)
  // Loop thread only: jobs a rule's StopTraining stopped, and the message their final Stopped
  // transition shows (the controller's own "Training job stopped" would hide the rule).
  std::map<std::string, std::string> stop_messages_;
  std::vector<std::thread> workers_;
};

}  // namespace ty::debugger
