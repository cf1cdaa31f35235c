// Request bodies that clients compress. botocore >= 1.31 and the AWS SDK for JavaScript v3 gzip
// the body of an operation with the `requestcompression` trait (CloudWatch PutMetricData) from
// 10 KiB up and send `Content-Encoding: gzip`. SigV4 signs the compressed bytes, so the router
// verifies first and hands the codecs the inflated body.
//
// Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ty::api {

// Inflates one gzip member into *out. False, with *error saying why, for a corrupt or truncated
// stream, bytes after it, or an output past max_bytes (a small body must not become gigabytes).
bool InflateGzip(std::string_view in, size_t max_bytes, std::string* out, std::string* error);

}  // namespace ty::api
