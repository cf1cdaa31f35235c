#include "cli/client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "common/fs.h"
#include "common/json.h"

namespace ty::cli {

using nlohmann::json;

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string RegionFromEnv() {
  std::string r = Env("AWS_REGION");
  if (r.empty()) r = Env("AWS_DEFAULT_REGION");
  return r.empty() ? "us-east-1" : r;
}

}  // namespace

std::string DefaultDataDir() {
  std::string home = Env("TRAINYARD_HOME");
  if (!home.empty()) return home;
  std::string user_home = Env("HOME");
  return JoinPath(user_home.empty() ? "/root" : user_home, ".trainyard");
}

Result<AwsCredentials> ReadProfile(const std::string& file, const std::string& profile) {
  std::ifstream in(file);
  if (!in) return NotFound("cannot read credentials file " + file);
  std::string line, section;
  AwsCredentials c;
  bool found = false;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      if (section.rfind("profile ", 0) == 0) section = Trim(section.substr(8));
      continue;
    }
    if (section != profile) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(line.substr(0, eq)), value = Trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") c.access_key_id = value, found = true;
    if (key == "aws_secret_access_key") c.secret_access_key = value;
    if (key == "aws_session_token") c.session_token = value;
  }
  if (!found || c.secret_access_key.empty()) {
    return NotFound("profile '" + profile + "' with keys not found in " + file);
  }
  return c;
}

Result<Endpoint> EndpointFromDataDir(const std::string& data_dir) {
  auto text = ReadFile(JoinPath(data_dir, "server.json"));
  if (!text.ok()) return NotFound("no Trainyard server recorded in " + data_dir);
  auto parsed = ParseJson(*text);
  json info = parsed.ok() ? std::move(parsed).value() : json();
  if (!info.is_object() || !info.contains("url") || !info["url"].is_string()) {
    return NotFound("malformed " + JoinPath(data_dir, "server.json"));
  }
  Endpoint e;
  e.url = info.at("url").get<std::string>();
  e.region = info.value("region", "us-east-1");
  std::string creds_file = info.value("credentials_file", JoinPath(data_dir, "credentials"));
  auto creds = ReadProfile(creds_file, "trainyard");
  if (!creds.ok()) return creds.status();
  e.credentials = *creds;
  e.from_default_data_dir = true;
  return e;
}

Result<Endpoint> ResolveEndpoint(const std::string& endpoint_flag) {
  std::string url = endpoint_flag;
  if (url.empty()) url = Env("AWS_ENDPOINT_URL_SAGEMAKER");
  if (url.empty()) url = Env("AWS_ENDPOINT_URL");
  if (url.empty()) return EndpointFromDataDir(DefaultDataDir());
  Endpoint e;
  while (!url.empty() && url.back() == '/') url.pop_back();
  e.url = url;
  e.region = RegionFromEnv();
  if (!Env("AWS_ACCESS_KEY_ID").empty()) {
    e.credentials.access_key_id = Env("AWS_ACCESS_KEY_ID");
    e.credentials.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
    e.credentials.session_token = Env("AWS_SESSION_TOKEN");
    return e;
  }
  std::string file = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty()) file = JoinPath(Env("HOME"), ".aws/credentials");
  std::string profile = Env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  auto creds = ReadProfile(file, profile);
  if (!creds.ok()) {
    return Unauthenticated(
        "no AWS credentials for " + url +
        ": set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE (" +
        creds.status().message() + ")");
  }
  e.credentials = *creds;
  return e;
}

ApiClient::ApiClient(Endpoint endpoint) : endpoint_(std::move(endpoint)) {
  http_ = std::make_unique<httplib::Client>(endpoint_.url);
  http_->set_keep_alive(true);
  http_->set_connection_timeout(2, 0);
  http_->set_read_timeout(60, 0);
  std::string rest = endpoint_.url.substr(endpoint_.url.find("://") + 3);
  host_header_ = rest.substr(0, rest.find('/'));
}

ApiClient::~ApiClient() = default;

bool ApiClient::Reachable() {
  auto res = http_->Get("/");
  return static_cast<bool>(res);
}

Result<json> ApiClient::Call(const std::string& target, const json& body) {
  size_t dot = target.find('.');
  std::string prefix = target.substr(0, dot);
  for (const char* service : {"sagemaker", "trainyard", "logs", "cloudwatch", "events"}) {
    auto model = api::ServiceModel::Embedded(service);
    if (model != nullptr && model->metadata().target_prefix == prefix && dot != std::string::npos) {
      return Call(*model, target.substr(dot + 1), body);
    }
  }
  return InvalidArgument("no embedded service model has the target prefix '" + prefix + "'");
}

Result<json> ApiClient::Call(const api::ServiceModel& model, const std::string& operation,
                             const json& body) {
  const api::ServiceMetadata& meta = model.metadata();
  if (!meta.Speaks("json") || meta.target_prefix.empty()) {
    return InvalidArgument(meta.service_id + " does not speak AWS JSON");
  }
  const std::string content_type =
      "application/x-amz-json-" + (meta.json_version.empty() ? "1.1" : meta.json_version);
  HttpRequestParts req;
  req.method = "POST";
  req.path = "/";
  req.body = body.dump();
  req.headers = {{"Host", host_header_},
                 {"Content-Type", content_type},
                 {"X-Amz-Target", meta.target_prefix + "." + operation}};
  SignRequest(&req, endpoint_.credentials, endpoint_.region, meta.SigningName(),
              std::chrono::system_clock::now());
  httplib::Headers headers;
  for (const auto& [k, v] : req.headers) {
    if (k == "Host" || k == "Content-Type") continue;  // httplib sets these itself
    headers.emplace(k, v);
  }
  auto res = http_->Post("/", headers, req.body, content_type);
  if (!res) {
    return Unavailable("cannot reach the Trainyard server at " + endpoint_.url + ": " +
                       httplib::to_string(res.error()));
  }
  auto parsed = res->body.empty() ? Result<json>(json::object()) : ParseJson(res->body);
  const bool parsed_ok = parsed.ok();
  const std::string parse_error = parsed_ok ? "" : parsed.status().message();
  json out = parsed_ok ? std::move(parsed).value() : json();
  if (res->status != 200) {
    std::string type = out.is_object() ? out.value("__type", "") : "";
    // botocore's rule: the code is what follows '#' (and precedes ':').
    if (size_t hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
    if (size_t colon = type.find(':'); colon != std::string::npos) type.resize(colon);
    std::string message = res->body;
    if (out.is_object()) message = out.value("message", out.value("Message", res->body));
    StatusCode code = res->status >= 500                    ? StatusCode::kUnavailable
                      : type == "ResourceNotFoundException" ? StatusCode::kNotFound
                                                            : StatusCode::kInvalidArgument;
    return Status(code,
                  (type.empty() ? "HTTP " + std::to_string(res->status) : type) + ": " + message);
  }
  if (!parsed_ok) return Internal("the server sent malformed JSON: " + parse_error);
  return out;
}

std::string ApiClient::RestReply::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return "";
}

Result<ApiClient::RestReply> ApiClient::CallRest(
    const std::string& signing_name, const std::string& method, const std::string& path,
    const std::string& query, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  HttpRequestParts req;
  req.method = method;
  req.path = path;
  req.query = query;
  req.body = body;
  req.headers = {{"Host", host_header_}, {"Content-Type", "application/json"}};
  for (const auto& h : extra) req.headers.push_back(h);
  SignRequest(&req, endpoint_.credentials, endpoint_.region, signing_name,
              std::chrono::system_clock::now());
  httplib::Request hreq;
  hreq.method = method;
  hreq.path = query.empty() ? path : path + "?" + query;
  for (const auto& [k, v] : req.headers) {
    if (k == "Host") continue;
    hreq.headers.emplace(k, v);
  }
  hreq.body = body;
  auto res = http_->send(hreq);
  if (!res) {
    return Unavailable("cannot reach the Trainyard server at " + endpoint_.url + ": " +
                       httplib::to_string(res.error()));
  }
  RestReply reply;
  reply.status = res->status;
  for (const auto& [k, v] : res->headers) reply.headers.emplace_back(k, v);
  reply.body = res->body;
  return reply;
}

}  // namespace ty::cli
