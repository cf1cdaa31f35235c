// Reads a CreateTrainingJob-shaped job spec from YAML or JSON, the way
// `trainyard run` takes it: relative file:// URIs resolve against the
// spec's folder, string maps (HyperParameters, Environment, tag values)
// take YAML numbers as strings, and a missing TrainingJobName gets a
// unique one.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::cli {

// Reads the spec at `path` (JSON when it ends in .json, YAML otherwise). Errors name the file:
// kInvalidArgument for malformed, too deep (common/json.h, server/bounded_yaml.h) or non-mapping
// content; ReadFile's errors for a missing file.
Result<nlohmann::json> LoadJobSpec(const std::string& path);

// LoadJobSpec on text already read: `where` names it in errors, relative file:// URIs resolve
// against `base_dir`. Touches no file (the fuzz target fuzz/fuzz_job_spec.cc drives it).
Result<nlohmann::json> ParseJobSpec(std::string_view text, bool is_json, const std::string& where,
                                    const std::string& base_dir);

// Rewrites "file://relative/x" (and JSON-encoded "\"file://./x\"") to an
// absolute file:/// URI under base_dir.
std::string ResolveFileUri(const std::string& value, const std::string& base_dir);

// "<base>-YYYY-MM-DD-HH-MM-SS-mmm" like the SageMaker SDK's default names.
std::string UniqueJobName(const std::string& base);

}  // namespace ty::cli
