// SigV4Verifier: authenticates AWS SigV4 (AWS4-HMAC-SHA256, Authorization header) requests
// against a CredentialStore, answering with the caller or the AWS error a real service sends.
// Thread-safe: Verify() may be called concurrently from every HTTP worker. Derived signing keys
// are cached per (access key id, date) behind a mutex; the store is borrowed, not owned.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <variant>

#include "api/api_error.h"
#include "api/credentials.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/sigv4.h"

namespace ty::api {

// Who signed a request.
struct Caller {
  std::string access_key_id;
  std::string account_id;
};

inline constexpr std::chrono::seconds kDefaultMaxClockSkew = std::chrono::minutes(5);

class SigV4Verifier {
 public:
  // REQUIRES: `store` outlives the verifier and is no longer modified.
  SigV4Verifier(const CredentialStore* store, std::string region, std::string service = "sagemaker",
                std::chrono::seconds max_skew = kDefaultMaxClockSkew);

  SigV4Verifier(const SigV4Verifier&) = delete;
  SigV4Verifier& operator=(const SigV4Verifier&) = delete;

  // Checks the request's Authorization header at time `now`. Header names are matched
  // case-insensitively. Every error is HTTP 400:
  //   MissingAuthenticationTokenException  no Authorization header
  //   IncompleteSignatureException         malformed header: not AWS4-HMAC-SHA256, a missing
  //       Credential/SignedHeaders/Signature parameter or X-Amz-Date header, a credential that is
  //       not akid/date/region/service/aws4_request, SignedHeaders without host, an unsigned
  //       X-Amz-Security-Token, a malformed X-Amz-Date, or query-string (presigned) auth, which
  //       is not supported
  //   UnrecognizedClientException          unknown access key id; an X-Amz-Security-Token on a
  //       long-term key (one without AccessKey::session_token), or a missing or different one on
  //       a key with a session token
  //   InvalidSignatureException            wrong service/region/terminator in the scope, scope
  //       date != X-Amz-Date date, X-Amz-Date more than max_skew away from `now`, or a
  //       signature mismatch (compared in constant time)
  // There is no STS: session tokens are the static ones of the credentials file.
  std::variant<Caller, ApiError> Verify(const ty::HttpRequestParts& req, TimePoint now) const {
    return Verify(req, now, service_);
  }
  // As above, for a request to `service` (the SigV4 scope name: "sagemaker", "logs",
  // "monitoring", ...): one verifier serves every service on the endpoint.
  std::variant<Caller, ApiError> Verify(const ty::HttpRequestParts& req, TimePoint now,
                                        std::string_view service) const;
  // The service named by the request's credential scope, unverified (empty when the
  // Authorization header has none): the router picks a query or rest-json service by it, then
  // verifies the request for that service.
  static std::string ScopeService(const ty::HttpRequestParts& req);

  const std::string& region() const { return region_; }
  const std::string& service() const { return service_; }

 private:
  // The raw signing key for (secret, date8), computed once per access key and day.
  std::string CachedSigningKey(const AccessKey& key, std::string_view date8,
                               std::string_view service) const;

  const CredentialStore* store_;
  const std::string region_;
  const std::string service_;
  const std::chrono::seconds max_skew_;

  mutable Mutex mu_;
  // Keyed by "<akid>/<date8>/<service>"; cleared wholesale when it grows past a bound (dates roll
  // over).
  mutable std::unordered_map<std::string, std::string> key_cache_ TY_GUARDED_BY(mu_);
};

}  // namespace ty::api
