// LogsService: CloudWatch Logs (service `logs`, AWS JSON 1.1, X-Amz-Target Logs_20140328.<Op>,
// validated against src/api/data/logs-model.json) over the Store's log groups, streams and
// events. Every account sees only its own groups; a job's log lines are the events of the
// streams "<job>/algo-<i>-<epoch>" in its account's group /aws/sagemaker/TrainingJobs.
//
// Operations: DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents,
// CreateLogGroup, CreateLogStream, PutLogEvents, DeleteLogGroup, DeleteLogStream.
//
// Tokens (what SDKs rely on, aws-services.md §3):
//   GetLogEvents   "f/<stream id>/<seq>" reads events after seq, "b/<stream id>/<seq>" events
//                  before it: absolute cursors, independent of startTime/endTime. Both are
//                  always returned; at the end of a stream the forward token comes back
//                  unchanged with events []. A token of another stream (so of another account)
//                  is InvalidParameterException.
//   DescribeLogStreams / DescribeLogGroups / FilterLogEvents: nextToken only when more remain;
//                  bound to the group (and ordering) they were issued for.
// Errors are the logs model's: InvalidParameterException, ResourceNotFoundException,
// ResourceAlreadyExistsException, ServiceUnavailableException (store busy), 400/503.
//
// Thread-safe: Call may run on any number of HTTP workers at once (the Store serialises).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "api/service.h"
#include "common/clock.h"
#include "store/store.h"

namespace ty::services {

struct LogsOptions {
  std::string region = "us-east-1";  // in ARNs
  // FilterLogEvents reads at most this many events per call before it returns what matched
  // with a nextToken (CloudWatch also returns partial pages).
  int64_t filter_scan_budget = 200000;
};

class LogsService final : public api::Service {
 public:
  // REQUIRES: store and clock outlive the service.
  LogsService(LogsOptions options, store::Store* store, const Clock* clock);

  const api::ServiceModel& model() const override { return *model_; }
  api::ServiceOutcome Call(const api::CallContext& ctx, const api::Operation& op,
                           const nlohmann::json& input) override;

 private:
  using Json = nlohmann::json;
  using Outcome = api::ServiceOutcome;
  Outcome DescribeLogGroups(const std::string& account, const Json& in);
  Outcome DescribeLogStreams(const std::string& account, const Json& in);
  Outcome GetLogEvents(const std::string& account, const Json& in);
  Outcome FilterLogEvents(const std::string& account, const Json& in);
  Outcome CreateLogGroup(const std::string& account, const Json& in);
  Outcome CreateLogStream(const std::string& account, const Json& in);
  Outcome PutLogEvents(const std::string& account, const Json& in);
  Outcome DeleteLogGroup(const std::string& account, const Json& in);
  Outcome DeleteLogStream(const std::string& account, const Json& in);

  std::string GroupArn(const std::string& account, const std::string& group) const;

  const LogsOptions options_;
  const std::shared_ptr<const api::ServiceModel> model_;
  store::Store* const store_;
  const Clock* const clock_;
};

}  // namespace ty::services
