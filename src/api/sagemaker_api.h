// SageMakerApi: the protocol edge of the SageMaker training-job API (AWS
// JSON 1.1). Takes one HTTP request, authenticates it (SigV4), decodes and
// validates the body against the service model, calls the controller or the
// store, and renders the response or the AWS-shaped error.
//
// Operations: SageMaker.{CreateTrainingJob, DescribeTrainingJob,
// ListTrainingJobs, StopTrainingJob, DeleteTrainingJob, AddTags, ListTags,
// DeleteTags, Search} and Trainyard.GetTrainingJobLogs (our own: the log
// lines of a job, for `trainyard logs`, until the Logs API arrives).
//
// Thread-safe: Handle may be called from any number of HTTP workers.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/credentials.h"
#include "api/service_model.h"
#include "api/sigv4_verifier.h"
#include "api/training_job_request.h"
#include "capacity/instance_catalog.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/sigv4.h"
#include "control/job_controller.h"
#include "store/store.h"

namespace ty::api {

struct ApiResponse {
  int status = 200;
  std::string body;
  std::string error_type;  // set on errors (sent as X-Amzn-ErrorType too)
  std::string request_id;
};

struct ApiOptions {
  std::string region = "us-east-1";
  RequestPolicy policy;
  size_t max_body_bytes = 1 << 20;  // larger bodies are refused (documented in README)
  const capacity::InstanceCatalog* catalog = nullptr;  // prices for the cost report
};

class SageMakerApi {
 public:
  SageMakerApi(ApiOptions options, std::shared_ptr<const ServiceModel> model,
               const SigV4Verifier* verifier, control::JobController* controller,
               store::Store* store, const Clock* clock);

  ApiResponse Handle(const HttpRequestParts& request);

  // Renders an error in the AWS JSON shape (also used by the HTTP layer for
  // requests it refuses before they reach Handle, e.g. oversized bodies).
  static ApiResponse ErrorResponse(const ApiError& error);

 private:
  using Json = nlohmann::json;
  // A response body already rendered (from the Describe cache).
  struct RawJson {
    std::string text;
  };
  using Outcome = std::variant<Json, ApiError, RawJson>;

  // Rendered DescribeTrainingJob bodies by "<account>/<name>", valid for one
  // (row id, version) of the job: Describe is the call clients poll.
  struct CachedDescribe {
    int64_t id = 0;
    int64_t version = 0;
    std::string body;
  };
  static constexpr size_t kDescribeCacheEntries = 1024;

  Outcome Dispatch(const Caller& caller, const std::string& target, const Json& body);
  Outcome CreateTrainingJob(const Caller& caller, const Json& body);
  Outcome DescribeTrainingJob(const Caller& caller, const Json& body);
  Outcome ListTrainingJobs(const Caller& caller, const Json& body);
  Outcome StopTrainingJob(const Caller& caller, const Json& body);
  Outcome DeleteTrainingJob(const Caller& caller, const Json& body);
  Outcome AddTags(const Caller& caller, const Json& body);
  Outcome ListTags(const Caller& caller, const Json& body);
  Outcome DeleteTags(const Caller& caller, const Json& body);
  Outcome Search(const Caller& caller, const Json& body);
  Outcome GetTrainingJobLogs(const Caller& caller, const Json& body);
  // spot_api.cc
  Outcome InterruptTrainingJob(const Caller& caller, const Json& body);
  Outcome SetSpotCapacityUnavailable(const Caller& caller, const Json& body);
  Outcome DescribeSpotMarket(const Caller& caller, const Json& body);
  Outcome DescribeTrainingJobCost(const Caller& caller, const Json& body);

  // The job an ARN names, if it belongs to the caller's account.
  Result<model::JobRecord> JobForArn(const Caller& caller, const std::string& arn);

  const ApiOptions options_;
  const std::shared_ptr<const ServiceModel> model_;
  const SigV4Verifier* const verifier_;
  control::JobController* const controller_;
  store::Store* const store_;
  const Clock* const clock_;

  Mutex cache_mu_;
  std::unordered_map<std::string, CachedDescribe> describe_cache_ TY_GUARDED_BY(cache_mu_);
};

}  // namespace ty::api
