// GovernancePolicies: the built-in policies a team sets instead of writing functions (required
// tags, limits at create, idle stop, auto-resume, spot fallback), and their one document form.
//
// The same document is read from the server config's `governance:` section (YAML, snake_case
// keys: `idle_stop: {metric, threshold_percent, duration_seconds}`) and from Trainyard's
// UpdateGovernance (JSON, the same keys in PascalCase: `IdleStop: {Metric, ThresholdPercent,
// DurationSeconds}`): one parser, two spellings of its keys. A policy left out is off.
//
// Plain values; no threads.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::events {

// Bounds of a policy document (each parsed list and string is held to them).
inline constexpr size_t kMaxPolicyListEntries = 50;
inline constexpr size_t kMaxPolicyStringBytes = 256;

struct RequiredTagsPolicy {
  enum class Mode { kStop, kRefuse };
  std::vector<std::string> keys;  // every one must be a tag of the job
  // kStop (default): the job is stopped as it starts; kRefuse: CreateTrainingJob is refused.
  Mode mode = Mode::kStop;
};

struct IdleStopPolicy {
  enum class Metric { kCpu, kGpu };  // CPUUtilization | GPUUtilization
  Metric metric = Metric::kCpu;
  // Idle: below this (percent, as the instance metric: 100 per busy core or GPU).
  double threshold_percent = 5;
  // Every instance idle this long while Training: the job is stopped.
  std::chrono::seconds duration{1800};
};

struct AutoResumePolicy {
  // A job that failed after running at least this long is cloned (default 1 h).
  std::chrono::seconds min_runtime{3600};
  int max_resumes = 1;              // clones of one original job, at most
  bool on_algorithm_error = false;  // also clone jobs that failed with AlgorithmError
};

struct SpotFallbackPolicy {
  // Stop a spot job at its Nth interruption and clone it on demand (0: off).
  int after_interruptions = 0;
  // Or once it has waited longer than this for spot capacity (unset: off).
  std::optional<std::chrono::seconds> max_capacity_wait;
};

struct GovernancePolicies {
  std::optional<RequiredTagsPolicy> required_tags;
  std::vector<std::string> allowed_instance_types;  // empty: any
  std::optional<int> max_instance_count;
  std::optional<std::chrono::seconds> max_runtime;  // StoppingCondition.MaxRuntimeInSeconds
  std::optional<IdleStopPolicy> idle_stop;
  std::optional<AutoResumePolicy> auto_resume;
  std::optional<SpotFallbackPolicy> spot_fallback;

  bool empty() const;
};

// Which spelling of the keys a document uses.
enum class PolicyKeys { kConfig, kApi };  // snake_case | PascalCase

// Parses a policy document. kInvalidArgument names the key (in the document's spelling) and
// what it must be: unknown keys, wrong types, out-of-range values and oversized lists are all
// refused. Null means no policies.
Result<GovernancePolicies> ParsePolicies(const nlohmann::json& doc, PolicyKeys keys);
// The document ParsePolicies reads back to the same policies.
nlohmann::json RenderPolicies(const GovernancePolicies& policies, PolicyKeys keys);

const char* Name(IdleStopPolicy::Metric m);    // "CPUUtilization" | "GPUUtilization"
const char* Name(RequiredTagsPolicy::Mode m);  // "stop" | "refuse"

}  // namespace ty::events
