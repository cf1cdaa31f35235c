// The debugger and profiler members of CreateTrainingJob (DebugHookConfig,
// DebugRuleConfigurations, TensorBoardOutputConfig, ProfilerConfig,
// ProfilerRuleConfigurations) turned into JobSpec's debug_hook, debug_rules,
// tensorboard, profiler and profiler_rules. Pure functions; no I/O.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "model/training_job.h"
#include "services/sagemaker/training_job_request.h"

namespace ty::services {

// SageMaker's allowed ProfilingIntervalInMilliseconds values.
inline constexpr int64_t kProfilingIntervalsMs[] = {100, 200, 500, 1000, 5000, 60000};

// Fills spec's debugger/profiler members from `body`. REQUIRES: spec->name and
// spec->output_path are set (the defaults of the hook's and the profiler's
// S3OutputPath), body passed model validation. kInvalidArgument naming the member:
// a rule image other than a regional built-in rules image (custom rule images are
// not supported yet), a rule without rule_to_invoke, a repeated
// RuleConfigurationName, more than 20 rules, a ProfilingIntervalInMilliseconds
// SageMaker does not offer, framework-profiling ProfilingParameters, a LocalPath
// outside /opt/ml, a URI outside the file roots.
Status ParseDebuggerMembers(const nlohmann::json& body, const RequestPolicy& policy,
                            model::JobSpec* spec);

// True when `image` is
// `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-debugger-rules:latest` for one of
// SageMaker's regional (region, account) pairs.
bool IsBuiltInRulesImage(const std::string& image);

// The collections built-in rule `rule` needs saved (spec section 2.5), with their
// CollectionParameters; empty for rules that need none (or are unknown).
std::vector<model::CollectionConfig> RuleCollections(const std::string& rule);

// Adds to `collections` what `rule` needs: its table collections and the names in
// its RuleParameters["collection_names"] (comma-separated). A collection already
// there keeps its parameters; keys it lacks are filled from the table.
void MergeRuleCollections(const model::RuleSpec& rule,
                          std::vector<model::CollectionConfig>* collections);

}  // namespace ty::services
