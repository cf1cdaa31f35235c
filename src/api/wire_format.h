// Wire-format helpers the protocol codecs share: base64, the AWS timestamp formats, numbers that
// round-trip, percent-decoding, bounded form parsing and XML text escaping. Pure functions of
// their arguments (thread-safe); none throws on any input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ty::api {

std::string Base64Encode(std::string_view raw);
// Standard alphabet with '=' padding (missing padding is accepted); false on any other byte.
bool Base64Decode(std::string_view text, std::string* out);

// A timestamp in the document form: integral epoch seconds as an integer, else a double
// (seconds + micros / 1e6, the way botocore's own value would be computed).
nlohmann::json EpochNumber(int64_t seconds, int64_t micros);
// The epoch seconds a document timestamp holds (a number; an ISO-8601 string is parsed too,
// since AWS JSON clients may send one). False when it is neither.
bool DocumentEpoch(const nlohmann::json& v, double* seconds);

// ISO-8601 "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM|±HHMM)" -> epoch seconds and microseconds
// (digits past the sixth are dropped). False when malformed or the year is outside [1, 9999].
bool ParseIsoTimestamp(std::string_view s, int64_t* seconds, int64_t* micros);
// "2026-01-01T00:00:00.250Z": UTC, always with milliseconds (truncated, not rounded).
std::string FormatIsoMillis(double epoch_seconds);
// RFC 822 / HTTP-date "Thu, 01 Jan 2026 00:00:00 GMT" (seconds precision).
std::string FormatRfc822(double epoch_seconds);
bool ParseRfc822(std::string_view s, int64_t* seconds);

// The shortest decimal text that parses back to exactly `v` ("0.1", "1e+300", "NaN",
// "Infinity", "-Infinity").
std::string FormatDouble(double v);
// Parses a whole decimal string as a double ("NaN", "Infinity" and "-Infinity" included).
bool ParseDouble(std::string_view s, double* out);
bool ParseInt64(std::string_view s, int64_t* out);

// Percent-decoding; '+' is a space when plus_is_space (forms). False on a malformed escape.
bool PercentDecode(std::string_view s, bool plus_is_space, std::string* out);

struct FormLimits {
  size_t max_pairs = 20000;
  size_t max_key_bytes = 1024;
};
// Parses "a=1&b=2" (application/x-www-form-urlencoded) into decoded pairs, in order. Empty
// segments are skipped; a key without '=' has an empty value. Returns "" or what is wrong.
std::string ParseForm(std::string_view body, const FormLimits& limits,
                      std::vector<std::pair<std::string, std::string>>* out);

// `s` as XML character data or attribute text: the five markup characters escaped, '\r' as
// "&#13;", bytes that are not valid UTF-8 and characters XML 1.0 forbids replaced by U+FFFD.
std::string XmlEscape(std::string_view s);

// The media type of a Content-Type value, lowercased, without parameters or spaces.
std::string MediaTypeOf(std::string_view content_type);

}  // namespace ty::api
