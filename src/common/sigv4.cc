#include "common/sigv4.h"

#include <algorithm>
#include <cctype>

#include "common/crypto.h"

namespace ty {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void SortUnique(std::vector<std::string>* names) {
  std::sort(names->begin(), names->end());
  names->erase(std::unique(names->begin(), names->end()), names->end());
}

void AppendSignedHeaders(const std::vector<std::string>& sorted_names, std::string* out) {
  for (size_t i = 0; i < sorted_names.size(); ++i) {
    if (i > 0) out->push_back(';');
    out->append(sorted_names[i]);
  }
}

// botocore splits on '&' and sorts (name, value) pairs without re-encoding.
void AppendCanonicalQuery(std::string_view query, std::string* out) {
  if (query.empty()) return;
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      pairs.emplace_back(pair, std::string_view());
    } else {
      pairs.emplace_back(pair.substr(0, eq), pair.substr(eq + 1));
    }
    start = end + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i > 0) out->push_back('&');
    out->append(pairs[i].first);
    out->push_back('=');
    out->append(pairs[i].second);
  }
}

std::string CanonicalRequestWithPayloadHash(const HttpRequestParts& req,
                                            std::vector<std::string> signed_header_names,
                                            std::string_view payload_hash) {
  SortUnique(&signed_header_names);
  std::string out;
  out.reserve(256 + req.path.size() + req.query.size());
  out.append(req.method);
  out.push_back('\n');
  out.append(req.path.empty() ? std::string_view("/") : std::string_view(req.path));
  out.push_back('\n');
  AppendCanonicalQuery(req.query, &out);
  out.push_back('\n');
  for (const std::string& name : signed_header_names) {
    out.append(name);
    out.push_back(':');
    bool first = true;
    for (const auto& [k, v] : req.headers) {
      if (!EqualsIgnoreCase(k, name)) continue;
      if (!first) out.push_back(',');
      first = false;
      out.append(TrimAll(v));
    }
    out.push_back('\n');
  }
  out.push_back('\n');
  AppendSignedHeaders(signed_header_names, &out);
  out.push_back('\n');
  out.append(payload_hash);
  return out;
}

}  // namespace

const std::string* FindHeader(const HttpRequestParts& req, std::string_view name) {
  for (const auto& [k, v] : req.headers) {
    if (EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

std::string TrimAll(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string SignedHeadersString(std::vector<std::string> signed_header_names) {
  SortUnique(&signed_header_names);
  std::string out;
  AppendSignedHeaders(signed_header_names, &out);
  return out;
}

std::string CanonicalRequest(const HttpRequestParts& req,
                             std::vector<std::string> signed_header_names) {
  // Every service but S3 signs the path URI-encoded once more than it travels (botocore's
  // SigV4Auth quotes the already-encoded path): "/functions/arn%3Aaws..." is signed as
  // "/functions/arn%253Aaws...". Paths of unreserved characters are unchanged by it.
  if (req.path.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/") !=
      std::string::npos) {
    HttpRequestParts encoded = req;
    encoded.path = UriEncode(req.path, /*keep_slash=*/true);
    return CanonicalRequestWithPayloadHash(encoded, std::move(signed_header_names),
                                           Sha256Hex(req.body));
  }
  return CanonicalRequestWithPayloadHash(req, std::move(signed_header_names), Sha256Hex(req.body));
}

std::string CredentialScope(std::string_view date8, std::string_view region,
                            std::string_view service) {
  std::string out;
  out.reserve(date8.size() + region.size() + service.size() + 16);
  out.append(date8).append("/").append(region).append("/").append(service).append("/aws4_request");
  return out;
}

std::string SigningKey(std::string_view secret, std::string_view date8, std::string_view region,
                       std::string_view service) {
  std::string k_secret = "AWS4";
  k_secret.append(secret);
  std::string k_date = HmacSha256(k_secret, date8);
  std::string k_region = HmacSha256(k_date, region);
  std::string k_service = HmacSha256(k_region, service);
  return HmacSha256(k_service, "aws4_request");
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  std::string out;
  out.reserve(kSigV4Algorithm.size() + amz_date.size() + scope.size() + 67);
  out.append(kSigV4Algorithm).push_back('\n');
  out.append(amz_date).push_back('\n');
  out.append(scope).push_back('\n');
  out.append(Sha256Hex(canonical_request));
  return out;
}

std::string Signature(std::string_view signing_key, std::string_view string_to_sign) {
  return HexEncode(HmacSha256(signing_key, string_to_sign));
}

void SignRequest(HttpRequestParts* req, const AwsCredentials& creds, const std::string& region,
                 const std::string& service, TimePoint now) {
  auto& headers = req->headers;
  std::erase_if(headers, [](const auto& h) {
    return EqualsIgnoreCase(h.first, "x-amz-date") ||
           EqualsIgnoreCase(h.first, "x-amz-security-token") ||
           EqualsIgnoreCase(h.first, "authorization");
  });
  const std::string amz_date = FormatAmzDate(now);
  headers.emplace_back("X-Amz-Date", amz_date);
  if (!creds.session_token.empty()) {
    headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  }

  std::vector<std::string> names;
  for (const auto& [k, v] : headers) {
    std::string lower = ToLower(k);
    if (lower == "host" || lower == "content-type" || lower.starts_with("x-amz-") ||
        lower.starts_with("amz-sdk-")) {
      names.push_back(std::move(lower));
    }
  }
  SortUnique(&names);

  const std::string date8 = amz_date.substr(0, 8);
  const std::string scope = CredentialScope(date8, region, service);
  const std::string canonical = CanonicalRequest(*req, names);
  const std::string signature =
      Signature(SigningKey(creds.secret_access_key, date8, region, service),
                StringToSign(amz_date, scope, canonical));

  std::string auth(kSigV4Algorithm);
  auth.append(" Credential=").append(creds.access_key_id).append("/").append(scope);
  auth.append(", SignedHeaders=");
  AppendSignedHeaders(names, &auth);
  auth.append(", Signature=").append(signature);
  headers.emplace_back("Authorization", std::move(auth));
}

void SignS3Request(HttpRequestParts* req, const AwsCredentials& creds, const std::string& region,
                   TimePoint now) {
  auto& headers = req->headers;
  std::erase_if(headers, [](const auto& h) {
    return EqualsIgnoreCase(h.first, "x-amz-date") ||
           EqualsIgnoreCase(h.first, "x-amz-security-token") ||
           EqualsIgnoreCase(h.first, "authorization");
  });
  const std::string amz_date = FormatAmzDate(now);
  headers.emplace_back("X-Amz-Date", amz_date);
  if (!creds.session_token.empty()) {
    headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  }
  const std::string* content_sha = FindHeader(*req, "x-amz-content-sha256");
  std::string payload_hash;
  if (content_sha != nullptr) {
    payload_hash = *content_sha;
  } else {
    payload_hash = Sha256Hex(req->body);
    headers.emplace_back("X-Amz-Content-SHA256", payload_hash);
  }

  // botocore signs every header it was given except a fixed list of hop-by-hop ones (its
  // SIGNED_HEADERS_BLACKLIST); callers decide what is signed by what they put in `headers`.
  static constexpr std::string_view kUnsigned[] = {"connection",
                                                   "expect",
                                                   "keep-alive",
                                                   "proxy-authenticate",
                                                   "proxy-authorization",
                                                   "te",
                                                   "trailer",
                                                   "transfer-encoding",
                                                   "upgrade",
                                                   "user-agent",
                                                   "x-amzn-trace-id"};
  std::vector<std::string> names;
  for (const auto& [k, v] : headers) {
    std::string lower = ToLower(k);
    if (std::find(std::begin(kUnsigned), std::end(kUnsigned), lower) != std::end(kUnsigned)) {
      continue;
    }
    names.push_back(std::move(lower));
  }
  SortUnique(&names);

  const std::string date8 = amz_date.substr(0, 8);
  const std::string scope = CredentialScope(date8, region, "s3");
  const std::string canonical = CanonicalRequestWithPayloadHash(*req, names, payload_hash);
  const std::string signature = Signature(SigningKey(creds.secret_access_key, date8, region, "s3"),
                                          StringToSign(amz_date, scope, canonical));

  std::string auth(kSigV4Algorithm);
  auth.append(" Credential=").append(creds.access_key_id).append("/").append(scope);
  auth.append(", SignedHeaders=");
  AppendSignedHeaders(names, &auth);
  auth.append(", Signature=").append(signature);
  headers.emplace_back("Authorization", std::move(auth));
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

}  // namespace ty
