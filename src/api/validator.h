// Request validation against the SageMaker service model, producing the errors
// AWS (Coral) returns for the same request:
//  - a JSON value of the wrong type (string where a structure or integer is
//    expected, ...) -> SerializationException, 400; the walk stops there;
//  - constraint violations (missing required member, length, pattern, enum,
//    range, list/map size) and members the model does not know -> one
//    ValidationException, 400, whose message is
//    "<N> validation error(s) detected: <violation>; <violation>...", at most
//    kMaxReportedViolations listed, N counting all of them.
// Paths are lowerCamel member names joined by '.', list elements as
// "<list>.<i>.member" (1-based), e.g. "inputDataConfig.1.member.channelName".
//
// Semantic rules (spec 2.1) are not checked here; callers add them as further
// Violations and format them with FormatValidationMessage.
//
// Thread contract: stateless functions; safe to call concurrently.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/service_model.h"

namespace ty::api {

inline constexpr size_t kMaxReportedViolations = 10;

// One constraint violation, rendered as
// "Value <value> at '<path>' failed to satisfy constraint: <constraint>".
struct Violation {
  std::string value;       // already quoted: "'abc'", or "null" for a missing member
  std::string path;        // "resourceConfig.instanceCount"
  std::string constraint;  // "Member must not be null"

  std::string ToString() const;
  bool operator==(const Violation&) const = default;
};

// "InstanceCount" -> "instanceCount", "S3OutputPath" -> "s3OutputPath".
std::string LowerCamel(const std::string& name);

// Renders a JSON value the way AWS messages show it: strings unquoted, numbers as written,
// lists "[a, b]", maps and structures "{K=v, K2=v2}".
std::string RenderValue(const nlohmann::json& value);

// Walks `value` against `shape`, appending every constraint violation to `violations`.
// `path` is the lowerCamel path of `value` ("" for the request itself). A null `value` means
// absent. Returns a SerializationException for the first JSON type mismatch (violations found
// before it are left in `violations` but AWS would not report them).
std::optional<ApiError> ValidateValue(const Shape& shape, const nlohmann::json& value,
                                      const std::string& path, std::vector<Violation>& violations);

// "1 validation error detected: ..." / "<N> validation errors detected: ...; ...".
// REQUIRES: !violations.empty()
std::string FormatValidationMessage(const std::vector<Violation>& violations);

// ValidationException carrying FormatValidationMessage(violations).
// REQUIRES: !violations.empty()
ApiError ValidationError(const std::vector<Violation>& violations);

// Validates the body of `operation`. A null or discarded `body` counts as {} (empty request
// body). Returns nullopt when the request is valid; otherwise a SerializationException (wrong
// JSON type), a ValidationException (constraints), or UnknownOperationException if the model
// has no such operation.
std::optional<ApiError> ValidateRequest(const ServiceModel& model, const std::string& operation,
                                        const nlohmann::json& body);

}  // namespace ty::api
