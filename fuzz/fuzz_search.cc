// Search on one input: the input is a Search request body, run through what SageMakerApi does
// with it (bounded JSON parse, model validation, CheckSearchExpression) and then evaluated
// against a few job records shaped like SearchRecordJson's, and sorted by its SortBy.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/service_model.h"
#include "api/validator.h"
#include "common/json.h"
#include "services/sagemaker/search.h"

namespace {

using nlohmann::json;

std::vector<json> Records() {
  json alpha = {
      {"TrainingJobName", "alpha-job"},
      {"TrainingJobArn", "arn:aws:sagemaker:us-east-1:111122223333:training-job/alpha-job"},
      {"TrainingJobStatus", "Completed"},
      {"SecondaryStatus", "Completed"},
      {"CreationTime", 1704067200},
      {"LastModifiedTime", 1704070800.25},
      {"ResourceConfig", {{"InstanceType", "ml.m5.large"}, {"InstanceCount", 1}}},
      {"HyperParameters", {{"epochs", "10"}, {"lr.max", "0.1"}}},
      {"Tags", {{{"Key", "team"}, {"Value", "vision"}}}},
      {"FinalMetricDataList", {{{"MetricName", "val:acc"}, {"Value", 0.9}}}},
      {"InputDataConfig",
       {{{"ChannelName", "train"},
         {"DataSource", {{"S3DataSource", {{"S3Uri", "file:///data/a/train"}}}}}},
        {{"ChannelName", "test"},
         {"DataSource", {{"S3DataSource", {{"S3Uri", "file:///data/a/test"}}}}}}}}};
  json beta = {{"TrainingJobName", "beta-job"},
               {"TrainingJobStatus", "InProgress"},
               {"CreationTime", 1706745600.5},
               {"ResourceConfig", {{"InstanceType", "ml.p3.2xlarge"}, {"InstanceCount", 2}}},
               {"HyperParameters", {{"epochs", "5"}}},
               {"Tags", {{{"Key", "team"}, {"Value", "nlp"}}, {{"Key", "env"}, {"Value", "dev"}}}},
               {"FinalMetricDataList", {{{"MetricName", "val:acc"}, {"Value", 0.7}}}}};
  json gamma = {{"TrainingJobName", "gamma"},
                {"TrainingJobStatus", "Failed"},
                {"FailureReason", "AlgorithmError: exit 1"},
                {"CreationTime", 1709251200},
                {"Tags", json::array()}};
  return {alpha, beta, gamma};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* model =
      new std::shared_ptr<const ty::api::ServiceModel>(ty::api::ServiceModel::Embedded());
  static const auto* records = new std::vector<json>(Records());
  auto body = ty::ParseJson(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body.ok() || !body->is_object()) return 0;
  if (ty::api::ValidateRequest(**model, "Search", *body)) return 0;
  json expression = body->value("SearchExpression", json());
  if (!ty::services::CheckSearchExpression(expression).ok()) return 0;
  std::vector<json> matches;
  for (const json& r : *records) {
    if (ty::services::MatchesSearchExpression(r, expression)) matches.push_back(r);
  }
  ty::services::SortSearchRecords(&matches, body->value("SortBy", "LastModifiedTime"),
                                  body->value("SortOrder", "Descending") == "Ascending");
  return 0;
}
