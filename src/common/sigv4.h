// AWS Signature Version 4 primitives (header auth, AWS4-HMAC-SHA256), shared by the
// server (api/sigv4_verifier verifies) and the client CLI (SignRequest signs).
// Everything here is a pure function of its inputs; thread-safe.
//
// Canonicalisation follows botocore's SigV4Auth for non-S3 services:
//   - canonical URI: the path as sent ("" becomes "/"); no re-encoding.
//   - canonical query: "&"-split pairs sorted by (name, value), joined unchanged.
//   - canonical headers: lowercase name ':' value with whitespace runs collapsed to one space and
//     the ends trimmed; repeated headers are joined with ','; sorted by name.
//   - payload: hex SHA-256 of the body bytes.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace ty {

inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";

// An HTTP request as far as signing cares. `path` and `query` are exactly as on the wire
// (percent-encoded, query without '?'). Header names are matched case-insensitively.
struct HttpRequestParts {
  std::string method;
  std::string path;
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
};

// Value of the first header named `name` (case-insensitive), or nullptr.
const std::string* FindHeader(const HttpRequestParts& req, std::string_view name);

// Collapses whitespace runs to one space and trims the ends (SigV4 "Trimall").
std::string TrimAll(std::string_view value);

// The canonical request. `signed_header_names` must be lowercase; they are sorted and
// de-duplicated here. A signed header missing from `req` contributes "name:" (an empty value),
// which makes the signature fail rather than silently dropping it. The path is URI-encoded
// again, as every service but S3 signs it (S3 requests use SignS3Request).
std::string CanonicalRequest(const HttpRequestParts& req,
                             std::vector<std::string> signed_header_names);

// "a;b;c": the sorted, de-duplicated, lowercase names joined with ';'.
std::string SignedHeadersString(std::vector<std::string> signed_header_names);

// "<date8>/<region>/<service>/aws4_request".
std::string CredentialScope(std::string_view date8, std::string_view region,
                            std::string_view service);

// Raw 32-byte signing key: HMAC chain over "AWS4"+secret, date8, region, service, "aws4_request".
std::string SigningKey(std::string_view secret, std::string_view date8, std::string_view region,
                       std::string_view service);

// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical_request)>".
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);

// Lowercase hex HMAC-SHA256 of string_to_sign under the raw signing key.
std::string Signature(std::string_view signing_key, std::string_view string_to_sign);

// Signs `req` in place the way botocore's SigV4Auth.add_auth does: replaces any X-Amz-Date,
// X-Amz-Security-Token and Authorization headers, adds X-Amz-Date (from `now`) and, when the
// credentials carry one, X-Amz-Security-Token, then adds
//   Authorization: AWS4-HMAC-SHA256 Credential=<akid>/<scope>, SignedHeaders=<...>, Signature=<...>
// Signed headers: host, content-type, and every x-amz-* and amz-sdk-* header present.
// REQUIRES: req->headers contains Host (as the HTTP client will send it, e.g. "localhost:8080").
void SignRequest(HttpRequestParts* req, const AwsCredentials& creds, const std::string& region,
                 const std::string& service, TimePoint now);

// Signs an S3 request in place the way botocore's S3SigV4Auth does. Differences from SignRequest:
// the payload hash is the value of the request's X-Amz-Content-Sha256 header (a hex SHA-256 or
// "UNSIGNED-PAYLOAD"; added as the hash of `body` when absent); the path is used exactly as given
// (S3 paths are encoded once, never normalised); and every header given is signed except the
// ones botocore leaves out (expect, user-agent, connection, x-amzn-trace-id and the like), so
// content-md5 and any x-amz-* header are signed when present.
// `req->query` must already be encoded; pairs are sorted here for the canonical form only.
// REQUIRES: req->headers contains Host.
void SignS3Request(HttpRequestParts* req, const AwsCredentials& creds, const std::string& region,
                   TimePoint now);

// RFC 3986 encoding as S3 wants it in paths and query values: unreserved characters
// (A-Z a-z 0-9 - . _ ~) stay, every other byte becomes %XX (upper-case hex); '/' stays when
// `keep_slash`.
std::string UriEncode(std::string_view s, bool keep_slash);

}  // namespace ty
