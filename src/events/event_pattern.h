// EventPattern: an EventBridge event pattern, parsed once and matched against many events
// (../shared/spec/aws-services.md §5.2). Every operator EventBridge documents is supported:
// exact values (strings, numbers, null, booleans), prefix, suffix (each also with
// equals-ignore-case), anything-but (a value, a list of strings or of numbers, prefix, suffix,
// equals-ignore-case, wildcard), numeric ranges, exists, cidr (IPv4 and IPv6), wildcard,
// equals-ignore-case, $or, and array semantics (a pattern value list matches when any element
// of the event's value, scalar or array, satisfies any of them; a nested pattern object matches
// an array of objects when one element matches all of it).
//
// Semantics follow aws/event-ruler, which EventBridge runs:
// - a number in a pattern matches an event number that is equal to six decimal places
//   (300 matches 300.0 and 3.0e2) within ±5e9, or exactly equal beyond that range;
// - strings never match numbers ("300" does not match 300);
// - a string pattern value that is an IP address matches the same address however written;
// - exists:false matches a missing key and a key whose value is an object or an empty array
//   (exists applies to leaves only); every other operator needs a leaf value;
// - equals-ignore-case folds ASCII letters only.
//
// Parse bounds its input (kMaxPatternBytes, kMaxPatternDepth, kMaxPatternValues, wildcards)
// and reports what is wrong with EventBridge's InvalidEventPatternException message ("Event
// pattern is not valid. Reason: ..."). Matching never fails and costs time linear in the
// pattern and event sizes (wildcards included: no backtracking). Immutable after Parse:
// thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty::events {

// Bounds on a pattern Parse accepts. The events model caps EventPattern at 4096 characters for
// PutRule and TestEventPattern alike (botocore 1.43), and the front door enforces
// that; these are the library's own, for every other caller.
inline constexpr size_t kMaxPatternBytes = 64 * 1024;
inline constexpr size_t kMaxPatternDepth = 32;       // JSON nesting, operators included
inline constexpr size_t kMaxPatternValues = 2000;    // fields + match values, $or branches included
inline constexpr size_t kMaxPatternWildcards = 256;  // '*' over every wildcard operand

class EventPattern {
 public:
  // kInvalidArgument with EventBridge's explanation when `json` is not a valid pattern.
  static Result<EventPattern> Parse(std::string_view json);

  // REQUIRES: `event` nests at most ty::kMaxJsonDepth (as ty::ParseJson guarantees); deeper
  // parts are treated as absent.
  bool Matches(const nlohmann::json& event) const;

  EventPattern(EventPattern&&) noexcept;
  EventPattern& operator=(EventPattern&&) noexcept;
  ~EventPattern();

  struct Node;  // the pattern's tree (event_pattern.cc)

 private:
  explicit EventPattern(std::unique_ptr<Node> root);
  std::unique_ptr<Node> root_;
};

// InputPath grammar: "$", then any of ".name" (name: any characters but '.', '[' and ']'),
// "[N]" (array index), "['name']" / "[\"name\"]". At most 256 characters (the Target model's
// limit). kInvalidArgument for anything else.
Status ValidateInputPath(std::string_view path);

// InputPath: the part of `event` a JSONPath ("$", "$.detail", "$.detail.Tags.owner",
// "$.resources[0]") selects; null when the path does not exist in the event.
// kInvalidArgument for a path outside the supported subset (ValidateInputPath).
Result<nlohmann::json> SelectInputPath(const nlohmann::json& event, std::string_view path);

// The largest input a transformer produces: what Lambda's asynchronous Invoke and an SNS
// message accept, the ways EventBridge delivers.
inline constexpr size_t kMaxTransformedBytes = 256 * 1024;

// What the reserved template variables expand to (empty: left as written).
struct InputContext {
  std::string rule_name;       // <aws.events.rule-name>
  std::string rule_arn;        // <aws.events.rule-arn>
  std::string ingestion_time;  // <aws.events.event.ingestion-time> (ISO-8601)
};

// Checks an InputTransformer as PutTargets would: `input_paths_map` an object of at most 100
// entries, names of [A-Za-z0-9_-] (1-256; reserved aws.events.* names refused), each value a
// valid InputPath; `template_text` 1-8192 characters. kInvalidArgument says which part.
Status ValidateInputTransformer(const nlohmann::json& input_paths_map,
                                std::string_view template_text);

// InputTransformer: `input_paths_map` names values of the event by JSONPath; `template_text`
// uses them as <name>. A template that is JSON (its first non-blank character is '{', '[' or
// '"') gets values as JSON where a value may stand (strings quoted, objects as JSON) and as
// their text inside a JSON string (escaped so the result stays valid JSON); a template that
// is not JSON gets every value as text (strings unquoted). A name whose path is not in the
// event expands to null where a JSON value stands and to nothing elsewhere; a <...> that names
// no variable is kept as written. A JSON result is minified, as EventBridge passes it.
// Reserved: <aws.events.event> (the event as JSON), <aws.events.event.json> (the same; inside a
// string, its escaped text), and the InputContext ones.
// kInvalidArgument for a bad map or path (ValidateInputTransformer); kResourceExhausted when
// the result would be larger than kMaxTransformedBytes.
Result<std::string> TransformInput(const nlohmann::json& event,
                                   const nlohmann::json& input_paths_map,
                                   std::string_view template_text,
                                   const InputContext& context = {});

}  // namespace ty::events
