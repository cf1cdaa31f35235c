// S3Settings: where the S3-compatible store is and how to talk to it (endpoint, region,
// addressing, credentials, transfer tuning), resolved the way the AWS CLI resolves them so the
// settings that point `aws s3` at a store point Trainyard at it too.
//
// Resolution order, first found wins (each field on its own):
//   explicit overrides (the server's config file `storage.s3`)
//   > environment: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION,
//     AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   > shared files for the profile (overrides.profile, AWS_PROFILE, AWS_DEFAULT_PROFILE,
//   "default"):
//     AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) for keys, AWS_CONFIG_FILE (default
//     ~/.aws/config, section "[profile NAME]" or "[default]") for region, endpoint_url, the
//     nested "s3 =" block's endpoint_url and addressing_style, and keys as a fallback
//   > defaults: region us-east-1, AWS's endpoint https://s3.<region>.amazonaws.com.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/sigv4.h"
#include "common/status.h"

namespace ty::storage {

enum class S3Addressing {
  kAuto,     // path-style for IP-address and localhost endpoints, virtual-hosted otherwise
  kPath,     // http://endpoint/bucket/key
  kVirtual,  // http://bucket.endpoint/key
};

struct S3Settings {
  // Scheme, host and optional port, no trailing slash: "http://127.0.0.1:4568". Empty means AWS
  // itself: https://s3.<region>.amazonaws.com.
  std::string endpoint;
  std::string region = "us-east-1";
  S3Addressing addressing = S3Addressing::kAuto;
  AwsCredentials credentials;  // empty access key: requests go unsigned (public buckets)
  // Where the credentials came from, for messages: "environment", "shared credentials file
  // /root/.aws/credentials (profile x)", "server config". Never the secret.
  std::string credentials_source;

  // Transfer tuning.
  int max_concurrency = 16;                    // parallel requests per transfer
  uint64_t multipart_threshold = 16ull << 20;  // files at least this big go multipart
  uint64_t part_size = 8ull << 20;             // multipart part / ranged-GET size
  int max_attempts = 5;                        // per request, first try included
  int connect_timeout_ms = 5000;
  int low_speed_timeout_s = 30;  // abort a request stalled this long
};

// The endpoint actually used: `endpoint` or AWS's regional one.
std::string EffectiveEndpoint(const S3Settings& s);

// True when requests for `bucket` use path-style addressing: kPath; or kAuto and the endpoint's
// host is an IP address or "localhost", or the bucket name is not a valid DNS label set
// (dots with https, upper case, underscores).
bool UsesPathStyle(const S3Settings& s, const std::string& bucket);

// Explicit settings (the server config's `storage.s3` block); unset members fall through to the
// environment and shared files.
struct S3SettingsOverrides {
  std::optional<std::string> endpoint;
  std::optional<std::string> region;
  std::optional<std::string> addressing;  // "auto" | "path" | "virtual"
  std::optional<std::string> profile;
  std::optional<std::string> access_key_id;
  std::optional<std::string> secret_access_key;
  std::optional<std::string> session_token;
  std::optional<int> max_concurrency;
  std::optional<uint64_t> part_size;
  std::optional<uint64_t> multipart_threshold;
  std::optional<int> max_attempts;
};

// Looks up an environment variable; nullopt when unset. Injected so tests need not touch the
// process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnv();

// Resolves the settings as described at the top. InvalidArgument for a malformed endpoint URL, an
// unknown addressing style, an access key without its secret, a named profile missing from both
// shared files, tuning out of range (part size under 5 MiB, concurrency or attempts under 1);
// IoError when a shared file exists but cannot be read.
Result<S3Settings> ResolveS3Settings(const S3SettingsOverrides& overrides, const EnvLookup& env);

// For handing the resolved settings to an agent (InstanceConfig.storage). The JSON carries the
// secret: write it only to files readable by the server's user.
nlohmann::json S3SettingsToJson(const S3Settings& s);
Result<S3Settings> S3SettingsFromJson(const nlohmann::json& j);

}  // namespace ty::storage
