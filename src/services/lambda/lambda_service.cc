#include "services/lambda/lambda_service.h"

#include <algorithm>
#include <ctime>
#include <regex>

#include "api/api_error.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/json.h"
#include "functions/lambda_deliverer.h"

namespace ty::services {

using api::ApiError;
using functions::FunctionConfig;
using nlohmann::json;

namespace {

constexpr size_t kMaxSyncPayload = 6 << 20;
constexpr size_t kMaxAsyncPayload = 1 << 20;
constexpr size_t kMaxEnvBytes = 4096;

ApiError NotFound(std::string m) { return {"ResourceNotFoundException", std::move(m), 404}; }
ApiError Conflict(std::string m) { return {"ResourceConflictException", std::move(m), 409}; }
ApiError Invalid(std::string m) { return {"InvalidParameterValueException", std::move(m), 400}; }

std::string Str(const json& in, const char* key) {
  auto it = in.find(key);
  return it != in.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "2026-01-02T03:04:05.678+0000", as Lambda writes LastModified.
std::string LambdaTime(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%03d+0000", buf, static_cast<int>(ms % 1000));
  return out;
}

bool ValidName(const std::string& name) {
  static const std::regex kName("[a-zA-Z0-9_-]{1,64}");
  return std::regex_match(name, kName);
}

// The function name a FunctionName parameter means for `account`: a name, "name:qualifier",
// "account:function:name[:qualifier]" or a full ARN. Another account's ARN is not found.
std::variant<std::string, ApiError> ResolveName(const std::string& raw, const std::string& account,
                                                const std::string& region,
                                                const std::string& qualifier) {
  std::vector<std::string> parts;
  size_t pos = 0;
  for (;;) {
    size_t c = raw.find(':', pos);
    parts.push_back(raw.substr(pos, c - pos));
    if (c == std::string::npos || parts.size() > 8) break;
    pos = c + 1;
  }
  std::string name, acct = account, qual = qualifier;
  if (parts[0] == "arn") {
    if (parts.size() < 7 || parts[2] != "lambda" || parts[5] != "function") {
      return Invalid("1 validation error detected: Value '" + raw +
                     "' at 'functionName' failed to satisfy constraint");
    }
    acct = parts[4];
    name = parts[6];
    if (parts.size() >= 8) qual = parts[7];
  } else if (parts.size() >= 3 && parts[1] == "function") {
    acct = parts[0];
    name = parts[2];
    if (parts.size() >= 4) qual = parts[3];
  } else {
    name = parts[0];
    if (parts.size() >= 2) qual = parts[1];
  }
  const std::string arn = "arn:aws:lambda:" + region + ":" + account + ":function:" + name;
  if (acct != account) return NotFound("Function not found: " + arn);
  if (!qual.empty() && qual != "$LATEST") {
    return NotFound("Function not found: " + arn + ":" + qual);
  }
  if (!ValidName(name)) return NotFound("Function not found: " + arn);
  return name;
}

// Environment.Variables: keys start with a letter, [A-Za-z0-9_], none of Lambda's reserved
// names, at most 4 KB in all.
std::variant<std::map<std::string, std::string>, ApiError> Environment(const json& in) {
  std::map<std::string, std::string> vars;
  auto env = in.find("Environment");
  if (env == in.end() || !env->is_object()) return vars;
  auto v = env->find("Variables");
  if (v == env->end() || !v->is_object()) return vars;
  static const std::regex kKey("[a-zA-Z][a-zA-Z0-9_]+");
  static const char* const kReserved[] = {"_HANDLER",
                                          "_X_AMZN_TRACE_ID",
                                          "AWS_DEFAULT_REGION",
                                          "AWS_REGION",
                                          "AWS_EXECUTION_ENV",
                                          "AWS_LAMBDA_FUNCTION_NAME",
                                          "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                          "AWS_LAMBDA_FUNCTION_VERSION",
                                          "AWS_LAMBDA_INITIALIZATION_TYPE",
                                          "AWS_LAMBDA_LOG_GROUP_NAME",
                                          "AWS_LAMBDA_LOG_STREAM_NAME",
                                          "AWS_ACCESS_KEY",
                                          "AWS_ACCESS_KEY_ID",
                                          "AWS_SECRET_ACCESS_KEY",
                                          "AWS_SESSION_TOKEN",
                                          "AWS_LAMBDA_RUNTIME_API",
                                          "LAMBDA_TASK_ROOT",
                                          "LAMBDA_RUNTIME_DIR"};
  size_t bytes = 0;
  for (const auto& [k, val] : v->items()) {
    if (!std::regex_match(k, kKey)) {
      return Invalid("Environment variable name " + k + " is not valid: names start with a " +
                     "letter and contain only letters, numbers and underscores.");
    }
    for (const char* r : kReserved) {
      if (k == r) {
        return Invalid(
            "Lambda was unable to configure your environment variables because the "
            "environment variables you have provided contains reserved keys that "
            "are currently not supported for modification. Reserved keys used in "
            "this request: " +
            k);
      }
    }
    if (!val.is_string()) return Invalid("Environment variable " + k + " is not a string.");
    bytes += k.size() + val.get_ref<const std::string&>().size();
    vars[k] = val.get<std::string>();
  }
  if (bytes > kMaxEnvBytes) {
    return Invalid(
        "Lambda was unable to configure your environment variables because the "
        "environment variables you have provided exceeded the 4KB limit.");
  }
  return vars;
}

std::optional<ApiError> CheckRuntimeAndHandler(const std::string& runtime,
                                               const std::string& handler) {
  static const std::regex kPython("python3\\.[0-9]+");
  if (!std::regex_match(runtime, kPython)) {
    return Invalid("The runtime parameter of " + runtime +
                   " is not supported by Trainyard: only python3.x runtimes run here (on this "
                   "machine's python3).");
  }
  if (handler.find('.') == std::string::npos || handler.front() == '.' || handler.back() == '.') {
    return Invalid("Handler '" + handler + "' is not of the form module.function.");
  }
  return std::nullopt;
}

// Code.ZipFile (or UpdateFunctionCode's ZipFile), decoded.
std::variant<std::string, ApiError> ZipFrom(const json& holder) {
  if (holder.contains("S3Bucket") || holder.contains("ImageUri")) {
    return Invalid("Trainyard takes function code as ZipFile only (not S3Bucket or ImageUri).");
  }
  std::string b64 = Str(holder, "ZipFile");
  std::string zip;
  if (b64.empty() || !Base64Decode(b64, &zip) || zip.empty()) {
    return Invalid("Code.ZipFile is required: the deployment package, a zip file.");
  }
  return zip;
}

ApiError FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return NotFound(s.message());
    case StatusCode::kAlreadyExists:
      return Conflict(s.message());
    case StatusCode::kInvalidArgument:
      return Invalid(s.message());
    default:
      return {"ServiceException", s.message(), 500};
  }
}

}  // namespace

LambdaService::LambdaService(LambdaOptions options, functions::FunctionStore* store,
                             functions::FunctionRuntime* runtime)
    : options_(std::move(options)),
      model_(api::ServiceModel::Embedded("lambda")),
      store_(store),
      runtime_(runtime) {
  for (int i = 0; i < std::max(1, options_.event_threads); ++i) {
    threads_.emplace_back([this] { EventLoop(); });
  }
}

LambdaService::~LambdaService() { Shutdown(); }

void LambdaService::Shutdown() {
  {
    MutexLock l(&mu_);
    if (stop_) return;
    stop_ = true;
    cv_.SignalAll();
  }
  for (auto& t : threads_) t.join();
}

std::string LambdaService::Arn(const FunctionConfig& fn) const {
  return "arn:aws:lambda:" + options_.region + ":" + fn.account + ":function:" + fn.name;
}

json LambdaService::Configuration(const FunctionConfig& fn) const {
  json c = {{"FunctionName", fn.name},
            {"FunctionArn", Arn(fn)},
            {"Runtime", fn.runtime},
            {"Role", fn.role},
            {"Handler", fn.handler},
            {"CodeSize", fn.code_size},
            {"Description", fn.description},
            {"Timeout", fn.timeout_seconds},
            {"MemorySize", fn.memory_mb},
            {"LastModified", LambdaTime(fn.last_modified_ms)},
            {"CodeSha256", fn.code_sha256},
            {"Version", "$LATEST"},
            {"TracingConfig", {{"Mode", "PassThrough"}}},
            {"RevisionId", fn.revision_id},
            {"State", "Active"},
            {"LastUpdateStatus", "Successful"},
            {"PackageType", "Zip"},
            {"Architectures", json::array({"x86_64"})},
            {"EphemeralStorage", {{"Size", 512}}},
            {"LoggingConfig", {{"LogFormat", "Text"}, {"LogGroup", "/aws/lambda/" + fn.name}}}};
  if (!fn.environment.empty()) c["Environment"] = {{"Variables", fn.environment}};
  return c;
}

api::ServiceOutcome LambdaService::Call(const api::CallContext& ctx, const api::Operation& op,
                                        const json& in) {
  const std::string& account = ctx.caller.account_id;
  const std::string& name = op.name;
  if (name == "CreateFunction") return CreateFunction(account, in);
  if (name == "GetFunction") return GetFunction(account, in, false);
  if (name == "GetFunctionConfiguration") return GetFunction(account, in, true);
  if (name == "ListFunctions") return ListFunctions(account, in);
  if (name == "UpdateFunctionCode") return UpdateFunctionCode(account, in);
  if (name == "UpdateFunctionConfiguration") return UpdateFunctionConfiguration(account, in);
  if (name == "DeleteFunction") return DeleteFunction(account, in);
  if (name == "AddPermission") return AddPermission(account, in);
  if (name == "RemovePermission") return RemovePermission(account, in);
  if (name == "GetPolicy") return GetPolicy(account, in);
  if (name == "Invoke") return Invoke(account, in);
  return ApiError{"UnknownOperationException", "Trainyard does not serve " + name, 400};
}

#define TY_RESOLVE(var, in)                                                                 \
  auto var##_r =                                                                            \
      ResolveName(Str(in, "FunctionName"), account, options_.region, Str(in, "Qualifier")); \
  if (auto* e = std::get_if<ApiError>(&var##_r)) return *e;                                 \
  const std::string var = std::get<std::string>(var##_r)

api::ServiceOutcome LambdaService::CreateFunction(const std::string& account, const json& in) {
  FunctionConfig fn;
  fn.account = account;
  fn.name = Str(in, "FunctionName");
  if (!ValidName(fn.name)) {
    return Invalid("FunctionName must be 1 to 64 letters, digits, '-' or '_' when creating.");
  }
  if (Str(in, "PackageType") == "Image") {
    return Invalid("Trainyard runs Zip packages only (PackageType Image is not supported).");
  }
  fn.runtime = Str(in, "Runtime");
  fn.handler = Str(in, "Handler");
  if (fn.runtime.empty() || fn.handler.empty()) {
    return Invalid(
        "Runtime and Handler are mandatory parameters for functions created with Zip "
        "archives.");
  }
  if (auto e = CheckRuntimeAndHandler(fn.runtime, fn.handler)) return *e;
  fn.role = Str(in, "Role");
  fn.description = Str(in, "Description");
  fn.timeout_seconds = in.value("Timeout", 3);
  fn.memory_mb = in.value("MemorySize", 128);
  if (fn.timeout_seconds < 1 || fn.timeout_seconds > 900) {
    return Invalid("Timeout must be between 1 and 900 seconds.");
  }
  if (fn.memory_mb < 128 || fn.memory_mb > 10240) {
    return Invalid("MemorySize must be between 128 and 10240 MB.");
  }
  auto env = Environment(in);
  if (auto* e = std::get_if<ApiError>(&env)) return *e;
  fn.environment = std::get<0>(env);
  if (auto t = in.find("Tags"); t != in.end() && t->is_object()) {
    for (const auto& [k, v] : t->items()) {
      if (v.is_string()) fn.tags[k] = v.get<std::string>();
    }
  }
  auto code = in.find("Code");
  if (code == in.end() || !code->is_object()) return Invalid("Code is required.");
  auto zip = ZipFrom(*code);
  if (auto* e = std::get_if<ApiError>(&zip)) return *e;
  auto created = store_->Create(std::move(fn), std::get<std::string>(zip));
  if (!created.ok()) {
    if (created.status().code() == StatusCode::kAlreadyExists) {
      return Conflict("Function already exist: " + Str(in, "FunctionName"));
    }
    return FromStatus(created.status());
  }
  return Configuration(*created);
}

api::ServiceOutcome LambdaService::GetFunction(const std::string& account, const json& in,
                                               bool config_only) {
  TY_RESOLVE(name, in);
  auto fn = store_->Get(account, name);
  if (!fn) {
    return NotFound("Function not found: arn:aws:lambda:" + options_.region + ":" + account +
                    ":function:" + name);
  }
  if (config_only) return Configuration(*fn);
  json out = {{"Configuration", Configuration(*fn)},
              {"Code", {{"RepositoryType", "S3"}, {"Location", ""}}}};
  if (!fn->tags.empty()) out["Tags"] = fn->tags;
  return out;
}

api::ServiceOutcome LambdaService::ListFunctions(const std::string& account, const json& in) {
  std::string marker = Str(in, "Marker");
  int64_t max_items = in.value("MaxItems", 50);
  if (max_items < 1 || max_items > 50) max_items = 50;
  json list = json::array();
  std::string next;
  for (const auto& fn : store_->List(account)) {
    if (!marker.empty() && fn.name <= marker) continue;
    if (static_cast<int64_t>(list.size()) == max_items) {
      next = list.back()["FunctionName"].get<std::string>();
      break;
    }
    list.push_back(Configuration(fn));
  }
  json out = {{"Functions", list}};
  if (!next.empty()) out["NextMarker"] = next;
  return out;
}

api::ServiceOutcome LambdaService::UpdateFunctionCode(const std::string& account, const json& in) {
  TY_RESOLVE(name, in);
  if (!store_->Get(account, name)) {
    return NotFound("Function not found: " + Arn({account, name}));
  }
  auto zip = ZipFrom(in);
  if (auto* e = std::get_if<ApiError>(&zip)) return *e;
  auto updated = store_->UpdateCode(account, name, std::get<std::string>(zip));
  if (!updated.ok()) return FromStatus(updated.status());
  runtime_->Retire(account, name);
  return Configuration(*updated);
}

api::ServiceOutcome LambdaService::UpdateFunctionConfiguration(const std::string& account,
                                                               const json& in) {
  TY_RESOLVE(name, in);
  std::optional<ApiError> error;
  std::optional<std::map<std::string, std::string>> env;
  if (in.contains("Environment")) {
    auto e = Environment(in);
    if (auto* err = std::get_if<ApiError>(&e)) return *err;
    env = std::get<0>(e);
  }
  const std::string revision = Str(in, "RevisionId");
  auto updated = store_->Update(account, name, [&](FunctionConfig& fn) -> Status {
    if (!revision.empty() && revision != fn.revision_id) {
      error = ApiError{"PreconditionFailedException",
                       "The Revision Id provided does not match the latest Revision Id. Call "
                       "the GetFunction/GetAlias API to retrieve the latest Revision Id",
                       412};
      return InvalidArgument("revision");
    }
    if (in.contains("Runtime")) fn.runtime = Str(in, "Runtime");
    if (in.contains("Handler")) fn.handler = Str(in, "Handler");
    if (auto e = CheckRuntimeAndHandler(fn.runtime, fn.handler)) {
      error = *e;
      return InvalidArgument("runtime");
    }
    if (in.contains("Role")) fn.role = Str(in, "Role");
    if (in.contains("Description")) fn.description = Str(in, "Description");
    if (in.contains("Timeout")) fn.timeout_seconds = in.value("Timeout", 3);
    if (in.contains("MemorySize")) fn.memory_mb = in.value("MemorySize", 128);
    if (fn.timeout_seconds < 1 || fn.timeout_seconds > 900) {
      error = Invalid("Timeout must be between 1 and 900 seconds.");
      return InvalidArgument("timeout");
    }
    if (fn.memory_mb < 128 || fn.memory_mb > 10240) {
      error = Invalid("MemorySize must be between 128 and 10240 MB.");
      return InvalidArgument("memory");
    }
    if (env) fn.environment = *env;  // replaced whole, as Lambda does
    return Status::Ok();
  });
  if (error) return *error;
  if (!updated.ok()) return FromStatus(updated.status());
  runtime_->Retire(account, name);
  return Configuration(*updated);
}

api::ServiceOutcome LambdaService::DeleteFunction(const std::string& account, const json& in) {
  TY_RESOLVE(name, in);
  Status s = store_->Delete(account, name);
  if (!s.ok()) return FromStatus(s);
  runtime_->Retire(account, name);
  return json{{"StatusCode", 204}};
}

api::ServiceOutcome LambdaService::AddPermission(const std::string& account, const json& in) {
  TY_RESOLVE(name, in);
  functions::PolicyStatement st;
  st.sid = Str(in, "StatementId");
  st.action = Str(in, "Action");
  st.principal = Str(in, "Principal");
  st.source_arn = Str(in, "SourceArn");
  st.source_account = Str(in, "SourceAccount");
  if (st.action.rfind("lambda:", 0) != 0) {
    return Invalid("The action " + st.action + " is not a Lambda action (lambda:*).");
  }
  std::optional<ApiError> error;
  auto updated = store_->Update(
      account, name,
      [&](FunctionConfig& fn) -> Status {
        for (const auto& s : fn.policy) {
          if (s.sid == st.sid) {
            error = Conflict("The statement id (" + st.sid +
                             ") provided already exists. Please provide a new statement id, or "
                             "remove the existing statement.");
            return AlreadyExists("sid");
          }
        }
        if (fn.policy.size() >= 100) {
          error = ApiError{"PolicyLengthExceededException",
                           "The final policy size is bigger than the limit.", 400};
          return InvalidArgument("policy");
        }
        fn.policy.push_back(st);
        fn.policy_revision_id = RandomUuid();
        return Status::Ok();
      },
      /*touch=*/false);
  if (error) return *error;
  if (!updated.ok()) return FromStatus(updated.status());
  json principal =
      st.principal.find('.') != std::string::npos
          ? json{{"Service", st.principal}}
          : json{{"AWS", st.principal == "*" ? "*" : "arn:aws:iam::" + st.principal + ":root"}};
  json statement = {{"Sid", st.sid},
                    {"Effect", "Allow"},
                    {"Principal", principal},
                    {"Action", st.action},
                    {"Resource", Arn(*updated)}};
  if (!st.source_arn.empty()) {
    statement["Condition"]["ArnLike"] = {{"AWS:SourceArn", st.source_arn}};
  }
  if (!st.source_account.empty()) {
    statement["Condition"]["StringEquals"] = {{"AWS:SourceAccount", st.source_account}};
  }
  return json{{"Statement", statement.dump()}};
}

api::ServiceOutcome LambdaService::RemovePermission(const std::string& account, const json& in) {
  TY_RESOLVE(name, in);
  const std::string sid = Str(in, "StatementId");
  std::optional<ApiError> error;
  auto updated = store_->Update(
      account, name,
      [&](FunctionConfig& fn) -> Status {
        auto it = std::find_if(fn.policy.begin(), fn.policy.end(),
                               [&](const auto& s) { return s.sid == sid; });
        if (it == fn.policy.end()) {
          error = NotFound("Statement " + sid + " is not found in resource policy.");
          return ty::NotFound("sid");
        }
        fn.policy.erase(it);
        fn.policy_revision_id = RandomUuid();
        return Status::Ok();
      },
      /*touch=*/false);
  if (error) return *error;
  if (!updated.ok()) return FromStatus(updated.status());
  return json::object();
}

api::ServiceOutcome LambdaService::GetPolicy(const std::string& account, const json& in) {
  TY_RESOLVE(name, in);
  auto fn = store_->Get(account, name);
  if (!fn) return NotFound("Function not found: " + Arn({account, name}));
  if (fn->policy.empty()) return NotFound("The resource you requested does not exist.");
  json statements = json::array();
  for (const auto& st : fn->policy) {
    json principal =
        st.principal.find('.') != std::string::npos
            ? json{{"Service", st.principal}}
            : json{{"AWS", st.principal == "*" ? "*" : "arn:aws:iam::" + st.principal + ":root"}};
    json s = {{"Sid", st.sid},
              {"Effect", "Allow"},
              {"Principal", principal},
              {"Action", st.action},
              {"Resource", Arn(*fn)}};
    if (!st.source_arn.empty()) s["Condition"]["ArnLike"] = {{"AWS:SourceArn", st.source_arn}};
    if (!st.source_account.empty()) {
      s["Condition"]["StringEquals"] = {{"AWS:SourceAccount", st.source_account}};
    }
    statements.push_back(s);
  }
  json policy = {{"Version", "2012-10-17"}, {"Id", "default"}, {"Statement", statements}};
  return json{{"Policy", policy.dump()}, {"RevisionId", fn->policy_revision_id}};
}

api::ServiceOutcome LambdaService::Invoke(const std::string& account, const json& in) {
  TY_RESOLVE(name, in);
  auto fn = store_->Get(account, name);
  if (!fn) return NotFound("Function not found: " + Arn({account, name}));
  std::string type = Str(in, "InvocationType");
  if (type.empty()) type = "RequestResponse";
  std::string payload;
  if (std::string b64 = Str(in, "Payload"); !b64.empty() && !Base64Decode(b64, &payload)) {
    return ApiError{"InvalidRequestContentException", "Could not decode the payload.", 400};
  }
  const size_t limit = type == "Event" ? kMaxAsyncPayload : kMaxSyncPayload;
  if (payload.size() > limit) {
    return ApiError{"RequestTooLargeException",
                    "Request must be smaller than " + std::to_string(limit) +
                        " bytes for the InvokeFunction operation",
                    413};
  }
  if (payload.empty()) payload = "{}";
  if (!ParseJson(payload).ok()) {
    return ApiError{"InvalidRequestContentException",
                    "Could not parse request body into json: the payload is not valid JSON.", 400};
  }
  if (type == "DryRun") return json{{"StatusCode", 204}};
  if (type == "Event") {
    MutexLock l(&mu_);
    if (events_.size() >= options_.max_event_queue) {
      return ApiError{"TooManyRequestsException", "Rate Exceeded.", 429};
    }
    events_.push_back({account, name, payload});
    cv_.Signal();
    return json{{"StatusCode", 202}};
  }
  functions::InvokeRequest req;
  req.payload = payload;
  req.tail_log = Str(in, "LogType") == "Tail";
  if (std::string cc = Str(in, "ClientContext"); !cc.empty()) {
    std::string decoded;
    if (Base64Decode(cc, &decoded) && ParseJson(decoded).ok()) req.client_context = decoded;
  }
  functions::InvokeResult r = runtime_->Invoke(*fn, store_->CodeDir(*fn), req);
  if (r.busy) {
    return ApiError{"TooManyRequestsException",
                    "Rate Exceeded. (every worker of " + name + " is busy)", 429};
  }
  json out = {
      {"StatusCode", 200}, {"ExecutedVersion", "$LATEST"}, {"Payload", Base64Encode(r.payload)}};
  if (!r.function_error.empty()) out["FunctionError"] = r.function_error;
  if (req.tail_log) out["LogResult"] = Base64Encode(r.log_tail);
  return out;
}

void LambdaService::EventLoop() {
  for (;;) {
    EventJob job;
    {
      MutexLock l(&mu_);
      while (events_.empty() && !stop_) cv_.Wait(&mu_);
      if (stop_) return;
      job = std::move(events_.front());
      events_.pop_front();
    }
    // Lambda retries an asynchronous invocation twice when the function fails.
    auto delay = options_.event_retry_delay;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto fn = store_->Get(job.account, job.name);
      if (!fn) break;
      functions::InvokeRequest req;
      req.payload = job.payload;
      functions::InvokeResult r = runtime_->Invoke(*fn, store_->CodeDir(*fn), req);
      if (!r.busy && r.function_error.empty()) break;
      MutexLock l(&mu_);
      if (stop_) return;
      cv_.WaitFor(&mu_, delay);
      if (stop_) return;
      delay *= 2;
    }
  }
}

}  // namespace ty::services
