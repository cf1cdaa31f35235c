// The built-in profiler rules over system metrics (system_metrics.h): LowGPUUtilization,
// CPUBottleneck, IOBottleneck, GPUMemoryIncrease, OverallSystemUsage, MaxInitializationTime,
// and ProfilerReport, which runs all six and writes a report (profiler_report.h).
//
// Parameters are smdebug_rulesconfig's (profiler_rules/rules.py): names, defaults and
// validation (percentiles in [0, 100], counts positive integers), sent as strings by the SDK
// (ProfilerRule.to_profiler_rule_config_dict applies str() to every value). What each rule
// computes is ours (AWS's implementations are not public); README.md, "Profiler rules", states
// it exactly. The rules are time-based: they read new samples on every Advance, evaluate at
// every scan_interval_us of sample time and once more when the job ended and every file is read.
// Rules that need GPU data end NoIssuesFound, saying no GPU was present, on a machine without.
//
// Thread contract: free functions are thread-safe; an Evaluation is used by one thread at a time.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "debugger/evaluation.h"
#include "model/training_job.h"

namespace ty::debugger {

// The rules this file evaluates ("ProfilerReport" included), in report order.
const std::vector<std::string>& ProfilerRuleNames();

// MakeProfilerRuleEvaluation with an explicit clock (MaxInitializationTime measures waiting time
// on it). `clock` must outlive the evaluation. InvalidArgument, with a sentence fit for
// StatusDetails, for an unknown rule, an unknown parameter, a bad value, or a context without
// trial_uri/open_store.
Result<std::unique_ptr<Evaluation>> MakeProfilerRuleEvaluation(const model::RuleSpec& rule,
                                                               const EvaluationContext& context,
                                                               const Clock& clock);

// Parses ProfilerReport's custom_rule_parameters: the SDK sends str() of a Python dict, e.g.
// "{'CPUBottleneck_threshold': 20, 'LowGPUUtilization_window': 100}"; JSON objects are accepted
// too. Keys must be strings; values strings, numbers, True/False/None (true/false/null); each
// value is returned as text (strings unquoted, booleans "True"/"False", None as "None").
// Bounded: 64 KiB of text, 256 entries, 256-byte keys and values. InvalidArgument otherwise.
Result<std::map<std::string, std::string>> ParsePythonDictLiteral(std::string_view text);

}  // namespace ty::debugger
