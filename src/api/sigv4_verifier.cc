#include "api/sigv4_verifier.h"

#include <array>
#include <cctype>
#include <string_view>
#include <vector>

#include "common/crypto.h"

namespace ty::api {
namespace {

constexpr size_t kMaxCachedKeys = 4096;

ApiError Error(std::string type, std::string message) {
  return ApiError{std::move(type), std::move(message), 400};
}

ApiError Incomplete(std::string message) {
  return Error("IncompleteSignatureException", std::move(message));
}

ApiError Invalid(std::string message) {
  return Error("InvalidSignatureException", std::move(message));
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Splits on `sep` into exactly N pieces; false on any other count.
template <size_t N>
bool SplitExact(std::string_view s, char sep, std::array<std::string_view, N>* out) {
  size_t i = 0;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    if (i == N) return false;
    (*out)[i++] = s.substr(start, end == std::string_view::npos ? end : end - start);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return i == N;
}

bool HasQueryAuth(std::string_view query) {
  size_t pos = 0;
  while (pos <= query.size()) {
    if (query.substr(pos).starts_with("X-Amz-Algorithm=") ||
        query.substr(pos).starts_with("X-Amz-Signature=")) {
      return true;
    }
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return false;
}

std::string SkewMinutes(std::chrono::seconds skew) {
  auto minutes = std::chrono::duration_cast<std::chrono::minutes>(skew).count();
  if (std::chrono::seconds(std::chrono::minutes(minutes)) == skew) {
    return std::to_string(minutes) + " min.";
  }
  return std::to_string(skew.count()) + " sec.";
}

struct ParsedAuthorization {
  std::string_view credential;
  std::string_view signed_headers;
  std::string_view signature;
  bool has_credential = false, has_signed_headers = false, has_signature = false;
};

}  // namespace

SigV4Verifier::SigV4Verifier(const CredentialStore* store, std::string region, std::string service,
                             std::chrono::seconds max_skew)
    : store_(store),
      region_(std::move(region)),
      service_(std::move(service)),
      max_skew_(max_skew) {}

std::string SigV4Verifier::CachedSigningKey(const AccessKey& key, std::string_view date8,
                                            std::string_view service) const {
  std::string cache_key;
  cache_key.reserve(key.access_key_id.size() + 2 + date8.size() + service.size());
  cache_key.append(key.access_key_id).push_back('/');
  cache_key.append(date8).push_back('/');
  cache_key.append(service);
  {
    MutexLock lock(&mu_);
    auto it = key_cache_.find(cache_key);
    if (it != key_cache_.end()) return it->second;
  }
  // Derive outside the lock: four HMACs are cheap but not free, and racing derivations agree.
  std::string signing_key = SigningKey(key.secret_access_key, date8, region_, std::string(service));
  MutexLock lock(&mu_);
  if (key_cache_.size() >= kMaxCachedKeys) key_cache_.clear();
  key_cache_.emplace(std::move(cache_key), signing_key);
  return signing_key;
}

std::string SigV4Verifier::ScopeService(const ty::HttpRequestParts& req) {
  const std::string* auth = FindHeader(req, "authorization");
  if (auth == nullptr) return "";
  // Credential=<akid>/<date>/<region>/<service>/aws4_request
  size_t at = auth->find("Credential=");
  if (at == std::string::npos) return "";
  std::string_view cred(*auth);
  cred.remove_prefix(at + 11);
  cred = cred.substr(0, cred.find_first_of(", "));
  std::array<std::string_view, 5> parts;
  if (!SplitExact(cred, '/', &parts)) return "";
  return std::string(parts[3]);
}

std::variant<Caller, ApiError> SigV4Verifier::Verify(const ty::HttpRequestParts& req, TimePoint now,
                                                     std::string_view service) const {
  const std::string* auth_header = FindHeader(req, "authorization");
  if (auth_header == nullptr) {
    if (HasQueryAuth(req.query)) {
      return Incomplete(
          "Query-string (presigned) authentication is not supported; send an Authorization "
          "header.");
    }
    return Error("MissingAuthenticationTokenException", "Request is missing Authentication Token");
  }
  const std::string_view header = Trim(*auth_header);
  const std::string suffix = "Authorization=" + *auth_header;

  // "<algorithm> Credential=..., SignedHeaders=..., Signature=..."
  size_t space = header.find(' ');
  std::string_view algorithm = header.substr(0, space);
  if (algorithm != kSigV4Algorithm) {
    return Incomplete("Authorization header requires 'AWS4-HMAC-SHA256' algorithm, got '" +
                      std::string(algorithm) + "'. " + suffix);
  }
  ParsedAuthorization parsed;
  std::string_view rest = space == std::string_view::npos ? "" : header.substr(space + 1);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view component = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    if (component.empty()) continue;
    size_t eq = component.find('=');
    if (eq == std::string_view::npos) {
      return Incomplete("'" + std::string(component) +
                        "' not a valid key=value pair (missing equal-sign) in Authorization "
                        "header: '" +
                        *auth_header + "'.");
    }
    std::string_view name = component.substr(0, eq);
    std::string_view value = component.substr(eq + 1);
    if (name == "Credential") {
      parsed.credential = value;
      parsed.has_credential = true;
    } else if (name == "SignedHeaders") {
      parsed.signed_headers = value;
      parsed.has_signed_headers = true;
    } else if (name == "Signature") {
      parsed.signature = value;
      parsed.has_signature = true;
    }
  }
  const std::string* amz_date = FindHeader(req, "x-amz-date");
  std::string missing;
  if (!parsed.has_credential) missing += "Authorization header requires 'Credential' parameter. ";
  if (!parsed.has_signature) missing += "Authorization header requires 'Signature' parameter. ";
  if (!parsed.has_signed_headers) {
    missing += "Authorization header requires 'SignedHeaders' parameter. ";
  }
  if (amz_date == nullptr) {
    missing +=
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
        "header. ";
  }
  if (!missing.empty()) return Incomplete(missing + suffix);

  std::array<std::string_view, 5> scope_parts;
  if (!SplitExact(parsed.credential, '/', &scope_parts)) {
    return Incomplete(
        "Authorization header: Credential must have exactly 5 slash-delimited elements, e.g. "
        "keyid/date/region/service/term, got '" +
        std::string(parsed.credential) + "'");
  }
  const auto& [akid, scope_date, scope_region, scope_service, terminator] = scope_parts;

  TimePoint request_time;
  if (!ParseAmzDate(*amz_date, &request_time)) {
    return Incomplete("Date must be in ISO-8601 'basic format'. Got '" + *amz_date +
                      "'. See http://en.wikipedia.org/wiki/ISO_8601");
  }
  std::string_view amz_date8 = std::string_view(*amz_date).substr(0, 8);
  if (scope_date != amz_date8) {
    return Invalid(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '" +
        std::string(scope_date) + "' != '" + std::string(amz_date8) + "', from '" + *amz_date +
        "'.");
  }
  if (terminator != "aws4_request") {
    return Invalid("Credential should be scoped with a valid terminator: 'aws4_request', not '" +
                   std::string(terminator) + "'. ");
  }
  if (scope_service != service) {
    return Invalid("Credential should be scoped to correct service: '" + std::string(service) +
                   "'. ");
  }
  if (scope_region != region_) return Invalid("Credential should be scoped to a valid region. ");

  if (request_time < now - max_skew_) {
    return Invalid("Signature expired: " + *amz_date + " is now earlier than " +
                   FormatAmzDate(now - max_skew_) + " (" + FormatAmzDate(now) + " - " +
                   SkewMinutes(max_skew_) + ")");
  }
  if (request_time > now + max_skew_) {
    return Invalid("Signature not yet current: " + *amz_date + " is still later than " +
                   FormatAmzDate(now + max_skew_) + " (" + FormatAmzDate(now) + " + " +
                   SkewMinutes(max_skew_) + ")");
  }

  std::vector<std::string> signed_names;
  bool signs_host = false;
  bool signs_token = false;
  for (std::string_view names = parsed.signed_headers; !names.empty();) {
    size_t semi = names.find(';');
    std::string_view name = names.substr(0, semi);
    names = semi == std::string_view::npos ? "" : names.substr(semi + 1);
    if (name.empty()) continue;
    signs_host |= name == "host";
    signs_token |= name == "x-amz-security-token";
    signed_names.emplace_back(name);
  }
  if (!signs_host) {
    return Incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization. " +
                      suffix);
  }
  if (!signs_token && FindHeader(req, "x-amz-security-token") != nullptr) {
    return Incomplete(
        "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS "
        "Authorization. " +
        suffix);
  }

  const AccessKey* key = store_->Find(std::string(akid));
  if (key == nullptr) {
    return Error("UnrecognizedClientException",
                 "The security token included in the request is invalid.");
  }
  // AWS refuses a session token sent with long-term keys, and a wrong or missing one with
  // temporary keys, with the same words as an unknown key. Accepting any token would let a
  // client believe a credential it holds is scoped or expiring when it is neither.
  const std::string* token = FindHeader(req, "x-amz-security-token");
  bool token_ok = key->session_token.empty()
                      ? token == nullptr
                      : token != nullptr && ConstantTimeEquals(*token, key->session_token);
  if (!token_ok) {
    return Error("UnrecognizedClientException",
                 "The security token included in the request is invalid.");
  }

  // Reuse the signature's date/region/service from the scope: they were checked above.
  std::string scope = CredentialScope(scope_date, scope_region, scope_service);
  std::string expected =
      Signature(CachedSigningKey(*key, scope_date, service),
                StringToSign(*amz_date, scope, CanonicalRequest(req, std::move(signed_names))));
  if (!ConstantTimeEquals(expected, parsed.signature)) {
    return Invalid(
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.");
  }
  return Caller{key->access_key_id, key->account_id};
}

}  // namespace ty::api
