// Placeholder factory until the profiler rules land (profiler_rules.cc), which delete this file.
#include "debugger/evaluation.h"

namespace ty::debugger {

Result<std::unique_ptr<Evaluation>> MakeProfilerRuleEvaluation(const model::RuleSpec& rule,
                                                               const EvaluationContext&) {
  return FailedPrecondition("profiler rule " + rule.rule + " is not implemented yet");
}

}  // namespace ty::debugger
