// JSON forms of the typed domain values, for persistence and for the
// agent's instance file. A serialization edge: nlohmann/json is allowed here.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "model/training_job.h"

namespace ty::model {

nlohmann::json SpecToJson(const JobSpec& spec);
Result<JobSpec> SpecFromJson(const nlohmann::json& j);

nlohmann::json TransitionsToJson(const std::vector<StatusTransition>& transitions);
Result<std::vector<StatusTransition>> TransitionsFromJson(const nlohmann::json& j);

nlohmann::json FinalMetricsToJson(const std::vector<FinalMetric>& metrics);
Result<std::vector<FinalMetric>> FinalMetricsFromJson(const nlohmann::json& j);

// The scheduling/spot bookkeeping of a JobRecord (queued ... interruptions).
nlohmann::json RuntimeToJson(const JobRecord& job);
Status RuntimeFromJson(const nlohmann::json& j, JobRecord* job);

}  // namespace ty::model
