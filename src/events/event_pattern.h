// EventPattern: an EventBridge event pattern, parsed once and matched against many events
// (../shared/spec/aws-services.md §5.2). Every operator EventBridge documents is supported:
// exact values (strings, numbers, null, booleans), prefix, suffix (each also with
// equals-ignore-case), anything-but (values, prefix, suffix, wildcard), numeric ranges, exists,
// cidr, wildcard, equals-ignore-case, $or, and array semantics (a pattern value list matches
// when any element of the event's value, scalar or array, equals any of them).
//
// Parse bounds its input (size, depth, number of values) and reports what is wrong the way
// EventBridge does (InvalidEventPatternException's message). Matching never fails: an event
// a pattern cannot apply to simply does not match. Immutable after Parse: thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::events {

class EventPattern {
 public:
  // kInvalidArgument with EventBridge's explanation when `json` is not a valid pattern.
  static Result<EventPattern> Parse(std::string_view json);

  bool Matches(const nlohmann::json& event) const;

  EventPattern(EventPattern&&) noexcept;
  EventPattern& operator=(EventPattern&&) noexcept;
  ~EventPattern();

 private:
  struct Node;
  explicit EventPattern(std::unique_ptr<Node> root);
  std::unique_ptr<Node> root_;
};

// InputPath: the part of `event` a JSONPath ("$", "$.detail", "$.detail.Tags.owner") selects.
// kInvalidArgument for a path outside the supported subset (dot members only).
Result<nlohmann::json> SelectInputPath(const nlohmann::json& event, std::string_view path);

// InputTransformer: `input_paths_map` names values of the event by JSONPath; `template_text`
// uses them as <name>. A template that is JSON gets values as JSON (strings quoted), one that
// is not gets them as text, as EventBridge does. kInvalidArgument for a bad map or path.
Result<std::string> TransformInput(const nlohmann::json& event,
                                   const nlohmann::json& input_paths_map,
                                   std::string_view template_text);

}  // namespace ty::events
