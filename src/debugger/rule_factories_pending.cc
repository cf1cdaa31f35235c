// Placeholder factories until the rule implementations land (debugger rules: rules.cc;
// profiler rules: profiler_rules.cc). Each branch that implements one deletes its half.
#include "debugger/evaluation.h"

namespace ty::debugger {

Result<std::unique_ptr<Evaluation>> MakeDebugRuleEvaluation(const model::RuleSpec& rule,
                                                            const EvaluationContext&) {
  return FailedPrecondition("debugger rule " + rule.rule + " is not implemented yet");
}

}  // namespace ty::debugger
