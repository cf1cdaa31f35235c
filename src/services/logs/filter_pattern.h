// FilterPattern: CloudWatch Logs filter patterns (FilterLogEvents' filterPattern), compiled once
// and matched against each event's message. Supported, per AWS's "Filter pattern syntax":
//   ""                         every event
//   ERROR Exception            terms, all must occur (case-sensitive substrings)
//   "Connection refused"       a quoted phrase is one term
//   ?ERROR ?WARN               any of the ? terms must occur
//   ERROR -Retrying            a - term must not occur
//   %Err[0-9]+%                a regular expression term (RE2, at most 2 per pattern)
//   { $.level = "ERROR" }      JSON messages: selectors $.a.b[0], = != < > <= >=, strings
//   { $.n > 5 && ($.a = x || $.b IS NULL) }   (with * wildcards), numbers, true/false/null,
//                              IS NULL, NOT EXISTS, && and || with parentheses
//   [ip, user, status = 4*, size > 100, ...]  space-delimited fields (quoted and [bracketed]
//                              fields are one field), conditions like JSON's; one "..." field
//                              matches any number of fields.
// Not supported (InvalidArgument from Compile): metric filter $-less selectors, arrays in JSON
// comparisons, more than one "..." in a space-delimited pattern.
//
// Thread contract: a compiled pattern is immutable; Matches may run on many threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ty::services {

class FilterPattern {
 public:
  static constexpr size_t kMaxPatternBytes = 1024;

  // kInvalidArgument with a message for the caller when the pattern is malformed or too long.
  static Result<std::shared_ptr<const FilterPattern>> Compile(std::string_view pattern);
  virtual ~FilterPattern() = default;
  virtual bool Matches(std::string_view message) const = 0;
};

}  // namespace ty::services
