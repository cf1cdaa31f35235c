// Reads a CreateTrainingJob-shaped job spec from YAML or JSON, the way
// `trainyard run` takes it: relative file:// URIs resolve against the
// spec's folder, string maps (HyperParameters, Environment, tag values)
// take YAML numbers as strings, and a missing TrainingJobName gets a
// unique one.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::cli {

Result<nlohmann::json> LoadJobSpec(const std::string& path);

// Rewrites "file://relative/x" (and JSON-encoded "\"file://./x\"") to an
// absolute file:/// URI under base_dir.
std::string ResolveFileUri(const std::string& value, const std::string& base_dir);

// "<base>-YYYY-MM-DD-HH-MM-SS-mmm" like the SageMaker SDK's default names.
std::string UniqueJobName(const std::string& base);

}  // namespace ty::cli
