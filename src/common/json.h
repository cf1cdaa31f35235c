// The one way Trainyard parses JSON that came from outside the process: API bodies, agent
// reports, instance configs, settings files, server responses read by the CLI.
//
// nlohmann's parser itself is iterative, but everything that walks a document afterwards
// (validation, Search filters, RenderValue, dump()) recurses once per nesting level; a 100 KB
// body nested 20,000 deep overflowed an HTTP worker's stack. The depth limit is therefore enforced
// while parsing, by a SAX handler that refuses to open a container past the limit, so no deeper
// document ever exists in memory and every later walk is bounded by the limit.
//
// A serialization edge: nlohmann/json is allowed here. Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ty {

// Deep enough for every SageMaker request shape (a Search expression nested as far as AWS allows
// is about 15 levels) and every document Trainyard writes itself; shallow enough that a
// recursive walk of it needs only a few KB of stack.
inline constexpr size_t kMaxJsonDepth = 64;

// Parses `text` as exactly one JSON document (trailing content is an error) whose objects and
// arrays nest at most `max_depth` levels (a scalar is depth 0, `{}` and `[]` depth 1).
// Errors: InvalidArgument, with a message that says either that the text is not valid JSON
// (and where) or that it nests deeper than `max_depth`. Never throws.
Result<nlohmann::json> ParseJson(std::string_view text, size_t max_depth = kMaxJsonDepth);

// True when `status` came from ParseJson refusing a document for its depth (callers that answer
// with their own "not valid JSON" text keep the depth message, which says what to change).
bool IsJsonTooDeep(const Status& status);

}  // namespace ty
