// Search over TrainingJob records: SearchExpression evaluation (Filters,
// NestedFilters, SubExpressions, And/Or), sorting by any property path, on
// records rendered by SearchRecordJson.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::services {

// Checks the expression's own rules (operators valid for the value types,
// at most one Contains, at most 50 nodes). kInvalidArgument with the reason.
Status CheckSearchExpression(const nlohmann::json& expression);

// True when `record` satisfies `expression` (an empty expression matches all).
bool MatchesSearchExpression(const nlohmann::json& record, const nlohmann::json& expression);

// Sorts records by the property at `sort_by` (e.g. "CreationTime",
// "Metrics.validation:accuracy"); records lacking it go last.
void SortSearchRecords(std::vector<nlohmann::json>* records, const std::string& sort_by,
                       bool ascending);

// The values at a property path: lists are fanned out (any element may
// match); "Tags.<k>", "Metrics.<name>", "HyperParameters.<k>" are resolved
// the way SageMaker Search names them.
std::vector<const nlohmann::json*> ResolveProperty(const nlohmann::json& record,
                                                   const std::string& path);

}  // namespace ty::services
