// Small text helpers.
#pragma once

#include <string>

namespace ty {

// The longest prefix of `s` of at most `max_bytes` bytes that does not cut a
// UTF-8 sequence in two (AWS limits such as FailureReason's 1024 count
// characters; a cut sequence would make the JSON response invalid).
std::string TruncateUtf8(const std::string& s, size_t max_bytes);

}  // namespace ty
