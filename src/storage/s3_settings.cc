#include "storage/s3_settings.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "common/fs.h"

namespace ty::storage {
namespace {

using Section = std::map<std::string, std::string>;

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An AWS shared config/credentials file: INI sections of `key = value`. A key with an empty value
// followed by indented lines is a nested block ("s3 =\n  endpoint_url = ..."); its lines are
// stored as "<key>.<subkey>".
struct IniFile {
  std::map<std::string, Section> sections;
};

Result<std::optional<IniFile>> ReadIni(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (!PathExists(path)) return std::optional<IniFile>();
    return IoError("cannot read " + path);
  }
  IniFile ini;
  Section* current = nullptr;
  std::string nested;  // the key of the open nested block, if any
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      current = &ini.sections[Trim(t.substr(1, t.size() - 2))];
      nested.clear();
      continue;
    }
    if (current == nullptr) continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Lower(Trim(t.substr(0, eq)));
    std::string value = Trim(t.substr(eq + 1));
    bool indented = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (indented && !nested.empty()) {
      (*current)[nested + "." + key] = value;
      continue;
    }
    nested = value.empty() ? key : "";
    (*current)[key] = value;
  }
  return std::optional<IniFile>(std::move(ini));
}

std::string HomeFile(const EnvLookup& env, const std::string& rel) {
  std::optional<std::string> home = env("HOME");
  return (home && !home->empty() ? *home : std::string("/root")) + "/" + rel;
}

// Host part of "scheme://host[:port][/...]" (brackets kept off IPv6 literals).
std::string EndpointHost(const std::string& endpoint) {
  size_t start = endpoint.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  std::string rest = endpoint.substr(start);
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest[0] == '[') return rest.substr(1, rest.find(']') - 1);
  return rest.substr(0, rest.find(':'));
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Bucket names usable as a DNS label set in a virtual-hosted URL.
bool DnsCompatibleBucket(const std::string& bucket, bool https) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  if (https && bucket.find('.') != std::string::npos) return false;  // breaks the TLS wildcard
  for (char c : bucket) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

Result<std::string> NormalizeEndpoint(const std::string& raw, const std::string& from) {
  std::string e = Trim(raw);
  while (!e.empty() && e.back() == '/') e.pop_back();
  if (!(e.starts_with("http://") || e.starts_with("https://")) || EndpointHost(e).empty()) {
    return InvalidArgument("invalid S3 endpoint URL '" + raw + "' (from " + from +
                           "): expected http://host[:port] or https://host[:port]");
  }
  if (e.find('/', e.find("://") + 3) != std::string::npos) {
    return InvalidArgument("invalid S3 endpoint URL '" + raw + "' (from " + from +
                           "): it must not have a path");
  }
  return e;
}

Result<S3Addressing> ParseAddressing(const std::string& s, const std::string& from) {
  std::string v = Lower(Trim(s));
  if (v == "auto" || v.empty()) return S3Addressing::kAuto;
  if (v == "path") return S3Addressing::kPath;
  if (v == "virtual") return S3Addressing::kVirtual;
  return InvalidArgument("unknown S3 addressing style '" + s + "' (from " + from +
                         "): expected auto, path or virtual");
}

const std::string* Get(const Section* s, const std::string& key) {
  if (s == nullptr) return nullptr;
  auto it = s->find(key);
  return it == s->end() || it->second.empty() ? nullptr : &it->second;
}

}  // namespace

std::string EffectiveEndpoint(const S3Settings& s) {
  if (!s.endpoint.empty()) return s.endpoint;
  return "https://s3." + s.region + ".amazonaws.com";
}

bool UsesPathStyle(const S3Settings& s, const std::string& bucket) {
  switch (s.addressing) {
    case S3Addressing::kPath:
      return true;
    case S3Addressing::kVirtual:
      return false;
    case S3Addressing::kAuto:
      break;
  }
  std::string endpoint = EffectiveEndpoint(s);
  std::string host = EndpointHost(endpoint);
  if (IsIpAddress(host) || host == "localhost" || host.ends_with(".localhost")) return true;
  return !DnsCompatibleBucket(bucket, endpoint.starts_with("https://"));
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<S3Settings> ResolveS3Settings(const S3SettingsOverrides& o, const EnvLookup& env) {
  auto env_value = [&](const char* name) -> std::optional<std::string> {
    std::optional<std::string> v = env(name);
    if (v && Trim(*v).empty()) return std::nullopt;
    return v;
  };
  S3Settings s;

  // The profile and its sections in the shared files.
  std::string profile = "default";
  bool profile_named = false;
  if (o.profile) {
    profile = *o.profile, profile_named = true;
  } else if (auto p = env_value("AWS_PROFILE")) {
    profile = *p, profile_named = true;
  } else if (auto p2 = env_value("AWS_DEFAULT_PROFILE")) {
    profile = *p2, profile_named = true;
  }
  std::string cred_path =
      env_value("AWS_SHARED_CREDENTIALS_FILE").value_or(HomeFile(env, ".aws/credentials"));
  std::string config_path = env_value("AWS_CONFIG_FILE").value_or(HomeFile(env, ".aws/config"));
  TY_ASSIGN_OR_RETURN(std::optional<IniFile> cred_file, ReadIni(cred_path));
  TY_ASSIGN_OR_RETURN(std::optional<IniFile> config_file, ReadIni(config_path));
  const Section* cred_section = nullptr;
  const Section* config_section = nullptr;
  if (cred_file) {
    auto it = cred_file->sections.find(profile);
    if (it != cred_file->sections.end()) cred_section = &it->second;
  }
  if (config_file) {
    auto it = config_file->sections.find(profile == "default" ? "default" : "profile " + profile);
    if (it == config_file->sections.end() && profile == "default") {
      it = config_file->sections.find("profile default");
    }
    if (it != config_file->sections.end()) config_section = &it->second;
  }
  if (profile_named && cred_section == nullptr && config_section == nullptr) {
    return InvalidArgument("the AWS profile '" + profile + "' is in neither " + cred_path +
                           " nor " + config_path);
  }

  // Endpoint.
  if (o.endpoint) {
    TY_ASSIGN_OR_RETURN(s.endpoint, NormalizeEndpoint(*o.endpoint, "storage.s3.endpoint"));
  } else if (auto e = env_value("AWS_ENDPOINT_URL_S3")) {
    TY_ASSIGN_OR_RETURN(s.endpoint, NormalizeEndpoint(*e, "AWS_ENDPOINT_URL_S3"));
  } else if (auto e2 = env_value("AWS_ENDPOINT_URL")) {
    TY_ASSIGN_OR_RETURN(s.endpoint, NormalizeEndpoint(*e2, "AWS_ENDPOINT_URL"));
  } else if (const std::string* e3 = Get(config_section, "s3.endpoint_url")) {
    TY_ASSIGN_OR_RETURN(s.endpoint, NormalizeEndpoint(*e3, config_path));
  } else if (const std::string* e4 = Get(config_section, "endpoint_url")) {
    TY_ASSIGN_OR_RETURN(s.endpoint, NormalizeEndpoint(*e4, config_path));
  }

  // Region.
  if (o.region) {
    s.region = *o.region;
  } else if (auto r = env_value("AWS_REGION")) {
    s.region = *r;
  } else if (auto r2 = env_value("AWS_DEFAULT_REGION")) {
    s.region = *r2;
  } else if (const std::string* r3 = Get(config_section, "region")) {
    s.region = *r3;
  }
  s.region = Trim(s.region);
  if (s.region.empty()) s.region = "us-east-1";

  // Addressing.
  if (o.addressing) {
    TY_ASSIGN_OR_RETURN(s.addressing, ParseAddressing(*o.addressing, "storage.s3.addressing"));
  } else if (const std::string* a = Get(config_section, "s3.addressing_style")) {
    TY_ASSIGN_OR_RETURN(s.addressing, ParseAddressing(*a, config_path));
  }

  // Credentials: one source supplies the whole set.
  auto take = [&](const std::string* akid, const std::string* secret, const std::string* token,
                  const std::string& source) -> Status {
    if (akid == nullptr && secret == nullptr) return Status::Ok();
    if (akid == nullptr || secret == nullptr) {
      return InvalidArgument(std::string("incomplete S3 credentials in ") + source + ": " +
                             (akid == nullptr ? "a secret access key without an access key id"
                                              : "an access key id without its secret access key"));
    }
    s.credentials.access_key_id = *akid;
    s.credentials.secret_access_key = *secret;
    s.credentials.session_token = token ? *token : "";
    s.credentials_source = source;
    return Status::Ok();
  };
  if (o.access_key_id || o.secret_access_key) {
    TY_RETURN_IF_ERROR(take(o.access_key_id ? &*o.access_key_id : nullptr,
                            o.secret_access_key ? &*o.secret_access_key : nullptr,
                            o.session_token ? &*o.session_token : nullptr, "the server config"));
  } else {
    std::optional<std::string> akid = env_value("AWS_ACCESS_KEY_ID");
    std::optional<std::string> secret = env_value("AWS_SECRET_ACCESS_KEY");
    std::optional<std::string> token = env_value("AWS_SESSION_TOKEN");
    if (akid || secret) {
      TY_RETURN_IF_ERROR(take(akid ? &*akid : nullptr, secret ? &*secret : nullptr,
                              token ? &*token : nullptr, "the environment"));
    } else if (Get(cred_section, "aws_access_key_id") ||
               Get(cred_section, "aws_secret_access_key")) {
      TY_RETURN_IF_ERROR(
          take(Get(cred_section, "aws_access_key_id"), Get(cred_section, "aws_secret_access_key"),
               Get(cred_section, "aws_session_token"),
               "shared credentials file " + cred_path + " (profile " + profile + ")"));
    } else {
      TY_RETURN_IF_ERROR(take(Get(config_section, "aws_access_key_id"),
                              Get(config_section, "aws_secret_access_key"),
                              Get(config_section, "aws_session_token"),
                              "config file " + config_path + " (profile " + profile + ")"));
    }
  }
  if (s.credentials.access_key_id.empty()) s.credentials_source = "none (unsigned requests)";

  if (o.max_concurrency) s.max_concurrency = *o.max_concurrency;
  if (o.part_size) s.part_size = *o.part_size;
  if (o.multipart_threshold) s.multipart_threshold = *o.multipart_threshold;
  if (o.max_attempts) s.max_attempts = *o.max_attempts;
  if (s.max_concurrency < 1 || s.max_concurrency > 256) {
    return InvalidArgument("S3 max_concurrency must be between 1 and 256");
  }
  if (s.max_attempts < 1 || s.max_attempts > 20) {
    return InvalidArgument("S3 max_attempts must be between 1 and 20");
  }
  if (s.part_size < (5ull << 20) || s.part_size > (5ull << 30)) {
    return InvalidArgument("S3 part size must be between 5 MiB and 5 GiB (S3's limits)");
  }
  if (s.multipart_threshold < s.part_size) s.multipart_threshold = s.part_size;
  return s;
}

nlohmann::json S3SettingsToJson(const S3Settings& s) {
  const char* addressing = s.addressing == S3Addressing::kPath      ? "path"
                           : s.addressing == S3Addressing::kVirtual ? "virtual"
                                                                    : "auto";
  return {{"endpoint", s.endpoint},
          {"region", s.region},
          {"addressing", addressing},
          {"access_key_id", s.credentials.access_key_id},
          {"secret_access_key", s.credentials.secret_access_key},
          {"session_token", s.credentials.session_token},
          {"credentials_source", s.credentials_source},
          {"max_concurrency", s.max_concurrency},
          {"multipart_threshold", s.multipart_threshold},
          {"part_size", s.part_size},
          {"max_attempts", s.max_attempts},
          {"connect_timeout_ms", s.connect_timeout_ms},
          {"low_speed_timeout_s", s.low_speed_timeout_s}};
}

Result<S3Settings> S3SettingsFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("S3 settings must be a JSON object");
  S3Settings s;
  auto str = [&](const char* k, std::string* out) {
    if (j.contains(k) && j[k].is_string()) *out = j[k].get<std::string>();
  };
  str("endpoint", &s.endpoint);
  str("region", &s.region);
  std::string addressing = "auto";
  str("addressing", &addressing);
  TY_ASSIGN_OR_RETURN(s.addressing, ParseAddressing(addressing, "S3 settings JSON"));
  str("access_key_id", &s.credentials.access_key_id);
  str("secret_access_key", &s.credentials.secret_access_key);
  str("session_token", &s.credentials.session_token);
  str("credentials_source", &s.credentials_source);
  auto num = [&](const char* k, auto* out) {
    if (j.contains(k) && j[k].is_number_integer()) *out = j[k].get<std::decay_t<decltype(*out)>>();
  };
  num("max_concurrency", &s.max_concurrency);
  num("multipart_threshold", &s.multipart_threshold);
  num("part_size", &s.part_size);
  num("max_attempts", &s.max_attempts);
  num("connect_timeout_ms", &s.connect_timeout_ms);
  num("low_speed_timeout_s", &s.low_speed_timeout_s);
  if (s.max_concurrency < 1 || s.max_attempts < 1 || s.part_size < (5ull << 20)) {
    return InvalidArgument(
        "S3 settings out of range (max_concurrency and max_attempts at least 1, "
        "part_size at least 5 MiB)");
  }
  return s;
}

}  // namespace ty::storage
