// Internals of the built-in debugger rules (rules.cc), exposed for tests and the benchmark:
// the per-step rule logic and the evaluation loop that drives it over a Trial.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "debugger/evaluation.h"
#include "debugger/trial.h"

namespace ty::debugger {

// A rule's condition held.
struct Finding {
  std::string
      details;  // "VanishingGradient: gradient/x abs mean 3.1e-09 < threshold 1e-07 at step 12"
  nlohmann::json findings = nlohmann::json::object();
};

// One rule's decision logic, fed every saved, complete global step once, in order.
// Thread contract: used by one thread at a time.
class RuleLogic {
 public:
  virtual ~RuleLogic() = default;
  // Evaluates `step`. nullopt: the condition did not hold. Errors: Unavailable = not ready yet
  // (another trial lags behind; the step is offered again later, and the logic must not have
  // changed its state); anything else ends the evaluation in Error.
  virtual Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) = 0;
  // Called on every Advance before steps are evaluated (wall-clock rules).
  virtual std::optional<Finding> Poll(Trial& /*trial*/, bool /*ended*/) { return std::nullopt; }
  // Called once when the output is exhausted, after the last step.
  virtual Result<std::optional<Finding>> Finish(Trial& /*trial*/) {
    return std::optional<Finding>();
  }
};

// The rule `name` with its RuleParameters; InvalidArgument for an unknown rule or a bad value.
Result<std::unique_ptr<RuleLogic>> MakeRuleLogic(const std::string& name,
                                                 const std::map<std::string, std::string>& params,
                                                 const EvaluationContext& context);

// The names of the built-in debugger rules, sorted.
const std::vector<std::string>& BuiltInRuleNames();

}  // namespace ty::debugger
