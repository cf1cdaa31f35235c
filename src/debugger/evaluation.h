// Evaluation: one rule of one training job (a DebugRuleConfigurations or
// ProfilerRuleConfigurations entry), evaluated incrementally over the output the job writes.
// It is the seam between the rules (debugger rules over the hook's tensors, profiler rules over
// system metrics) and what drives them (debugger/rule_manager: threads, persistence, statuses,
// actions). An evaluation reads only the job's own output prefixes; it never touches the
// control plane.
//
// Thread contract: one Evaluation is used by one thread at a time; different evaluations may
// run on different threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "model/training_job.h"
#include "storage/object_store.h"

namespace ty::debugger {

// SageMaker's RuleEvaluationStatus.
enum class RuleStatus { kInProgress, kIssuesFound, kNoIssuesFound, kError, kStopping, kStopped };
const char* Name(RuleStatus s);
std::optional<RuleStatus> ParseRuleStatus(const std::string& s);

// What an evaluation has concluded so far.
struct EvaluationResult {
  // InProgress until the rule fired (IssuesFound), the output is exhausted with no finding
  // (NoIssuesFound) or the rule cannot go on (Error). Once it leaves InProgress it stays.
  RuleStatus status = RuleStatus::kInProgress;
  std::string details;                // StatusDetails (<= 1024 chars): why, in a sentence
  std::optional<int64_t> fired_step;  // IssuesFound: the global step where the condition held
  nlohmann::json findings = nlohmann::json::object();  // the values that triggered it
  int64_t steps_evaluated = 0;       // complete steps evaluated so far, each exactly once
  std::optional<int64_t> last_step;  // the last step evaluated
};

// The bounds of one Advance() call.
struct AdvanceLimits {
  // Evaluate steps only up to this global step (nullopt: every complete step). The steps a spot
  // job wrote after its last synced checkpoint can be rewritten by the next attempt, so the
  // manager holds them back until a checkpoint covers them or the job ends.
  std::optional<int64_t> through_step;
  // The job ended and its output is final (training_job_end.ts is in the trial): whatever is
  // complete is evaluated and then the result is NoIssuesFound unless the rule fired.
  bool training_ended = false;
  // Return after about this long even when more is ready; the next call goes on from there.
  std::chrono::milliseconds budget{1000};
  // A tensor (or file) larger than this is not read: the evaluation ends in Error.
  uint64_t max_tensor_bytes = 64ull << 20;
  // A step is evaluated only once it has been listed this long (until training ended). The
  // store receives index files in no guaranteed order (the sync uploads files as they settle),
  // and once a later step is evaluated an earlier one that lands late is never evaluated; the
  // grace gives it time to land. 0: evaluate as soon as listed (unit tests).
  std::chrono::milliseconds listing_grace{0};
};

class Evaluation {
 public:
  virtual ~Evaluation() = default;
  // Reads what appeared since the last call and evaluates what is ready, never a step twice.
  // Malformed output (a truncated record, a bad CRC, an index pointing nowhere) ends the
  // evaluation in Error with a clear details sentence; it never throws or crashes.
  virtual EvaluationResult Advance(const AdvanceLimits& limits) = 0;
};

// Where an evaluation reads.
struct EvaluationContext {
  // The trial: "<S3OutputPath>/<job>/debug-output/" for debugger rules,
  // ".../profiler-output/" for profiler rules (model::DebugOutputUri / ProfilerOutputUri).
  std::string trial_uri;
  // SimilarAcrossRuns: the other trials (RuleParameters other_trial_0, other_trial_1, ...),
  // already checked to belong to the job's account.
  std::vector<std::string> other_trials;
  // Opens the store serving a URI (the server's storage::ObjectStores, confined to the
  // account's file roots). Called from the evaluating thread.
  std::function<Result<storage::ObjectStore*>(const std::string& uri)> open_store;
  // The job the rule belongs to (its hook config, for collections the rule reads).
  const model::JobSpec* spec = nullptr;
  // Wall time for rules that measure it (StalledTrainingRule); nullptr: the system clock.
  const Clock* clock = nullptr;
};

// The rule named by `rule.rule` (RuleParameters' rule_to_invoke), with its parameters parsed
// from `rule.parameters`. InvalidArgument, with a sentence fit for StatusDetails, for an
// unknown rule name or a bad parameter value; the manager shows that as the rule's Error.
Result<std::unique_ptr<Evaluation>> MakeDebugRuleEvaluation(const model::RuleSpec& rule,
                                                            const EvaluationContext& context);
Result<std::unique_ptr<Evaluation>> MakeProfilerRuleEvaluation(const model::RuleSpec& rule,
                                                               const EvaluationContext& context);

}  // namespace ty::debugger
