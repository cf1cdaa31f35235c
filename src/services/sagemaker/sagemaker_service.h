// SageMakerService: the SageMaker training-job operations (CreateTrainingJob,
// DescribeTrainingJob, ListTrainingJobs, StopTrainingJob, DeleteTrainingJob, AddTags, ListTags,
// DeleteTags, Search, and DescribeProcessingJob for the processing jobs of rule evaluations) over
// validated JSON documents. The router (api/router.h) authenticates, decodes and validates; this
// class calls the controller or the store and returns the output document or the AWS error.
//
// Thread-safe: Call may run on any number of HTTP workers at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/service.h"
#include "api/service_model.h"
#include "capacity/instance_catalog.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "control/admission.h"
#include "control/job_controller.h"
#include "services/sagemaker/training_job_request.h"
#include "store/store.h"

namespace ty::services {

using api::ApiError;
using api::Caller;

struct SageMakerOptions {
  std::string region = "us-east-1";
  RequestPolicy policy;
  const capacity::InstanceCatalog* catalog = nullptr;  // prices for the cost report
  // Policies that may refuse a job at CreateTrainingJob (built-in governance); none when null.
  const control::AdmissionCheck* admission = nullptr;
};

class SageMakerService final : public api::Service {
 public:
  SageMakerService(SageMakerOptions options, control::JobController* controller,
                   store::Store* store, const Clock* clock);

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  // Rendered DescribeTrainingJob bodies by "<account>/<name>", valid for one
  // (row id, version) of the job: Describe is the call clients poll.
  struct CachedDescribe {
    int64_t id = 0;
    int64_t version = 0;
    std::string body;
  };
  static constexpr size_t kDescribeCacheEntries = 1024;

  Outcome CreateTrainingJob(const Caller& caller, const Json& body);
  Outcome DescribeTrainingJob(const Caller& caller, const Json& body);
  Outcome ListTrainingJobs(const Caller& caller, const Json& body);
  Outcome StopTrainingJob(const Caller& caller, const Json& body);
  Outcome DeleteTrainingJob(const Caller& caller, const Json& body);
  Outcome AddTags(const Caller& caller, const Json& body);
  Outcome ListTags(const Caller& caller, const Json& body);
  Outcome DeleteTags(const Caller& caller, const Json& body);
  Outcome Search(const Caller& caller, const Json& body);
  Outcome DescribeProcessingJob(const Caller& caller, const Json& body);

  // The job an ARN names, if it belongs to the caller's account.
  Result<model::JobRecord> JobForArn(const Caller& caller, const std::string& arn);

  const SageMakerOptions options_;
  const std::shared_ptr<const api::ServiceModel> model_;
  control::JobController* const controller_;
  store::Store* const store_;
  const Clock* const clock_;
  Mutex cache_mu_;
  std::unordered_map<std::string, CachedDescribe> describe_cache_ TY_GUARDED_BY(cache_mu_);
};

}  // namespace ty::services
