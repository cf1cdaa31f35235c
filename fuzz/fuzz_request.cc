// The API request path on one input: HTTP request parts -> SigV4 verification -> JSON -> model
// validation -> request parsing (ParseCreateTrainingJob, the Search expression checks) -> the
// response documents built from an accepted request. The same functions SageMakerApi::Handle
// calls, in the same order, without the controller and store behind them.
//
// Input format (readable, so seeds can be written by hand or cut from tests):
//   byte 0        mode: (mode % 4) != 0 -> the request is signed with the known key below at
//                 kNow, so three inputs in four get past SigV4 into validation and parsing;
//                 mode % 4 == 0 -> the headers are used as given (fuzzes the verifier itself)
//   line 1        "<METHOD> <PATH>[?<QUERY>]"
//   header lines  "Name: value" up to an empty line
//   the rest      the body
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/credentials.h"
#include "api/service_model.h"
#include "api/sigv4_verifier.h"
#include "api/validator.h"
#include "common/json.h"
#include "common/sigv4.h"
#include "services/sagemaker/search.h"
#include "services/sagemaker/training_job_request.h"
#include "services/sagemaker/training_job_response.h"

namespace {

using nlohmann::json;
using ty::api::ApiError;
using ty::api::Caller;

constexpr const char* kAccessKey = "AKIAFUZZFUZZFUZZFUZZ";
constexpr const char* kSecret = "fuzz-secret-fuzz-secret-fuzz-secret-0000";
constexpr const char* kSessionAccessKey = "ASIAFUZZFUZZFUZZFUZZ";
constexpr const char* kSessionSecret = "fuzz-session-secret-fuzz-session-000000";
constexpr const char* kSessionToken = "fuzz-session-token";
constexpr const char* kRegion = "us-east-1";

struct Fixture {
  ty::api::CredentialStore store;
  std::unique_ptr<ty::api::SigV4Verifier> verifier;
  std::shared_ptr<const ty::api::ServiceModel> model = ty::api::ServiceModel::Embedded();
  ty::services::RequestPolicy policy{{"/fuzz/data"}};
  ty::TimePoint now = ty::FromEpochMillis(1767225600000);  // 2026-01-01T00:00:00Z

  Fixture() {
    store.Add(ty::api::AccessKey{kAccessKey, kSecret, "111122223333"});
    ty::api::AccessKey session{kSessionAccessKey, kSessionSecret, "444455556666"};
    session.session_token = kSessionToken;
    store.Add(session);
    verifier = std::make_unique<ty::api::SigV4Verifier>(&store, kRegion);
  }
};

const Fixture& Get() {
  static const Fixture* f = new Fixture();
  return *f;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

ty::HttpRequestParts Decode(std::string_view text) {
  ty::HttpRequestParts req;
  auto next_line = [&text]() {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  std::string_view request_line = next_line();
  size_t sp = request_line.find(' ');
  req.method = std::string(request_line.substr(0, sp));
  std::string_view target =
      sp == std::string_view::npos ? std::string_view("/") : request_line.substr(sp + 1);
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  while (!text.empty()) {
    std::string_view line = next_line();
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  req.body = std::string(text);
  return req;
}

void Sign(ty::HttpRequestParts* req, uint8_t mode, const Fixture& f) {
  bool has_host = false;
  for (const auto& [k, v] : req->headers) has_host = has_host || IEquals(k, "host");
  if (!has_host) req->headers.emplace_back("Host", "localhost:8080");
  // Mode bit 2: sign with the session key (and its token), otherwise with the long-term key.
  ty::AwsCredentials creds{kAccessKey, kSecret, ""};
  if (mode & 4) creds = {kSessionAccessKey, kSessionSecret, kSessionToken};
  // Mode bit 3: keep a fuzzed X-Amz-Security-Token (signed along), to fuzz the token check.
  std::string fuzzed_token;
  if (const std::string* t = ty::FindHeader(*req, "x-amz-security-token")) fuzzed_token = *t;
  ty::SignRequest(req, creds, kRegion, "sagemaker", f.now);
  if ((mode & 8) && !fuzzed_token.empty()) {
    std::erase_if(req->headers, [](const auto& h) {
      return IEquals(h.first, "x-amz-security-token") || IEquals(h.first, "authorization") ||
             IEquals(h.first, "x-amz-date");
    });
    req->headers.emplace_back("X-Amz-Security-Token", fuzzed_token);
    ty::SignRequest(req, ty::AwsCredentials{creds.access_key_id, creds.secret_access_key, ""},
                    kRegion, "sagemaker", f.now);
  }
}

// What a client would be sent, serialised as SageMakerApi's DumpJson does (error messages may
// quote header bytes that are not UTF-8; they are replaced, not thrown on).
void Render(const json& document) {
  (void)document.dump(-1, ' ', false, json::error_handler_t::replace);
}

void AfterValidation(const std::string& operation, const json& body, const Caller& caller,
                     const Fixture& f) {
  if (operation == "CreateTrainingJob") {
    auto spec = ty::services::ParseCreateTrainingJob(body, f.policy);
    if (!spec.ok()) return;
    ty::model::JobRecord job;
    job.account = caller.account_id;
    job.arn = "arn:aws:sagemaker:us-east-1:" + caller.account_id + ":training-job/" + spec->name;
    job.request_json = body.dump();  // as SageMakerApi::CreateTrainingJob stores it: strict
    job.spec = std::move(spec).value();
    job.creation_time = job.last_modified_time = f.now;
    Render(ty::services::DescribeJson(job));
    Render(ty::services::SummaryJson(job));
    json record = ty::services::SearchRecordJson(job, {});
    Render(record);
    (void)ty::services::MatchesSearchExpression(record, json::object());
  } else if (operation == "Search") {
    json expression = body.value("SearchExpression", json());
    if (!ty::services::CheckSearchExpression(expression).ok()) return;
    json record = {{"TrainingJobName", "fuzz"}, {"CreationTime", 1767225600}};
    (void)ty::services::MatchesSearchExpression(record, expression);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Fixture& f = Get();
  uint8_t mode = data[0];
  ty::HttpRequestParts req =
      Decode(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  if (mode % 4 != 0) Sign(&req, mode, f);

  auto verified = f.verifier->Verify(req, f.now);
  if (auto* err = std::get_if<ApiError>(&verified)) {
    Render(json{{"__type", err->type}, {"message", err->message}});
    return 0;
  }
  const Caller& caller = std::get<Caller>(verified);
  const std::string* target = ty::FindHeader(req, "x-amz-target");
  auto parsed = req.body.empty() ? ty::Result<json>(json::object()) : ty::ParseJson(req.body);
  if (!parsed.ok() || !parsed->is_object()) return 0;
  const json& body = *parsed;
  std::string operation = "ListTrainingJobs";
  if (target != nullptr && target->rfind("SageMaker.", 0) == 0) operation = target->substr(10);
  if (f.model->FindOperation(operation) == nullptr) return 0;
  if (auto err = ty::api::ValidateRequest(*f.model, operation, body)) {
    Render(json{{"__type", err->type}, {"message", err->message}});
    return 0;
  }
  AfterValidation(operation, body, caller, f);
  return 0;
}
