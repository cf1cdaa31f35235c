// Small text helpers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ty {

// The longest prefix of `s` of at most `max_bytes` bytes that does not cut a
// UTF-8 sequence in two (AWS limits such as FailureReason's 1024 count
// characters; a cut sequence would make the JSON response invalid).
std::string TruncateUtf8(const std::string& s, size_t max_bytes);

// The parts of `s` between `sep`s, empty parts dropped ("a,,b," -> {"a", "b"}); with '\n' the
// non-empty lines of a command's output.
std::vector<std::string> SplitNonEmpty(std::string_view s, char sep);

// The whitespace-separated words of `s`.
std::vector<std::string> SplitWords(std::string_view s);

}  // namespace ty
