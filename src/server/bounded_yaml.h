// The one way Trainyard loads YAML written by someone else: job spec files (`trainyard run`) and
// the server config.
//
// yaml-cpp 0.7 guards its own recursive-descent parser at 2,000 levels, but what Trainyard does
// with a document afterwards (converting a job spec to JSON, validating it, freeing the node
// tree) recurses once per level too, and a size is not bounded at all. So, as for JSON
// (common/json.h): the input size is checked first, then the depth is enforced while parsing,
// by an event handler that stops yaml-cpp at the first collection past the limit, before any node
// tree exists; only then is the node tree built.
//
// Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::server {

// Job specs and configs nest about 6 levels; 64 matches the JSON limit (kMaxJsonDepth).
inline constexpr size_t kMaxYamlDepth = 64;
// A job spec or config is a few KB; 4 MiB leaves room for long hyperparameter lists.
inline constexpr size_t kMaxYamlBytes = size_t{4} << 20;

// Parses the first YAML document of `text` (as YAML::Load does; an empty text is a Null node).
// Errors: InvalidArgument saying that the text is larger than `max_bytes`, that it nests
// collections deeper than `max_depth`, or where its syntax is wrong. Never throws.
Result<YAML::Node> LoadYaml(std::string_view text, size_t max_depth = kMaxYamlDepth,
                            size_t max_bytes = kMaxYamlBytes);

// LoadYaml on the contents of the file at `path`; errors name the file. A missing or unreadable
// file is the error ReadFile gives (kNotFound / kIoError).
Result<YAML::Node> LoadYamlFile(const std::string& path);

// A loaded YAML tree as JSON (the governance policies of the config and of
// `trainyard governance set`): plain scalars that read as booleans or numbers become them,
// quoted ones stay strings. Aliases can make a small text a huge or cyclic node graph, so the
// conversion is bounded too: kInvalidArgument past `max_depth` levels or `max_values` values.
Result<nlohmann::json> YamlToJson(const YAML::Node& node, size_t max_depth = kMaxYamlDepth,
                                  size_t max_values = 100000);

}  // namespace ty::server
