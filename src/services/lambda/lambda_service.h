// LambdaService: AWS Lambda (service `lambda`, rest-json, validated against
// src/api/data/lambda-model.json) for Python functions run on this machine by
// functions::FunctionRuntime.
//
// Operations: CreateFunction (Code.ZipFile only; Runtime python3.x; Handler module.function),
// GetFunction, GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
// UpdateFunctionConfiguration, DeleteFunction, AddPermission, RemovePermission, GetPolicy, and
// Invoke (RequestResponse, Event, DryRun; X-Amz-Function-Error, LogType Tail). Only $LATEST
// exists: another qualifier is ResourceNotFoundException. FunctionName may be a name, a
// partial ARN or an ARN; an ARN of another account is ResourceNotFoundException (accounts
// never see each other's functions). Errors are Lambda's: ResourceNotFoundException (404),
// ResourceConflictException (409), InvalidParameterValueException (400),
// InvalidRequestContentException (400), RequestTooLargeException (413),
// TooManyRequestsException (429).
//
// Event invocations are queued (bounded) and run by the service's own threads, retried twice
// on a function error, as Lambda does.
//
// Thread-safe: Call may run on any number of HTTP workers at once.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/service.h"
#include "common/mutex.h"
#include "functions/function_store.h"
#include "functions/runtime.h"

namespace ty::services {

struct LambdaOptions {
  std::string region = "us-east-1";
  size_t max_event_queue = 1000;  // queued Event invocations; past it TooManyRequestsException
  int event_threads = 2;
  std::chrono::milliseconds event_retry_delay{std::chrono::seconds(1)};  // doubled per retry
};

class LambdaService final : public api::Service {
 public:
  // REQUIRES: store and runtime outlive the service.
  LambdaService(LambdaOptions options, functions::FunctionStore* store,
                functions::FunctionRuntime* runtime);
  ~LambdaService() override;

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

  // Stops the Event threads (queued invocations are dropped). Idempotent.
  void Shutdown();

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  Outcome CreateFunction(const std::string& account, const Json& in);
  Outcome GetFunction(const std::string& account, const Json& in, bool config_only);
  Outcome ListFunctions(const std::string& account, const Json& in);
  Outcome UpdateFunctionCode(const std::string& account, const Json& in);
  Outcome UpdateFunctionConfiguration(const std::string& account, const Json& in);
  Outcome DeleteFunction(const std::string& account, const Json& in);
  Outcome AddPermission(const std::string& account, const Json& in);
  Outcome RemovePermission(const std::string& account, const Json& in);
  Outcome GetPolicy(const std::string& account, const Json& in);
  Outcome Invoke(const std::string& account, const Json& in);
  Json Configuration(const functions::FunctionConfig& fn) const;
  std::string Arn(const functions::FunctionConfig& fn) const;
  void EventLoop();

  struct EventJob {
    std::string account, name, payload;
  };

  const LambdaOptions options_;
  std::shared_ptr<const api::ServiceModel> model_;
  functions::FunctionStore* const store_;
  functions::FunctionRuntime* const runtime_;
  Mutex mu_;
  CondVar cv_;
  std::deque<EventJob> events_ TY_GUARDED_BY(mu_);
  bool stop_ TY_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ty::services
