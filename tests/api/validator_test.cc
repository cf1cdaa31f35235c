#include "api/validator.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace ty::api {
namespace {

using nlohmann::json;

json ValidCreateTrainingJob() {
  return json::parse(R"json({
    "TrainingJobName": "mnist-1",
    "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
    "AlgorithmSpecification": {"TrainingImage": "local/mnist:latest", "TrainingInputMode": "File",
                               "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}]},
    "InputDataConfig": [{"ChannelName": "train",
                         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                         "S3Uri": "s3://bucket/train/"}}}],
    "OutputDataConfig": {"S3OutputPath": "s3://bucket/output", "CompressionType": "NONE"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "HyperParameters": {"epochs": "10", "lr": "0.01"},
    "Environment": {"MY_VAR": "x"},
    "Tags": [{"Key": "team", "Value": "ml"}]
  })json");
}

std::optional<ApiError> Validate(const std::string& op, const json& body) {
  auto model = ServiceModel::Embedded();
  EXPECT_NE(model, nullptr);
  return ValidateRequest(*model, op, body);
}

std::string One(const std::string& violation) {
  return "1 validation error detected: " + violation;
}

std::string Describe(const std::optional<ApiError>& err) {
  return err ? err->type + ": " + err->message : "ok";
}

TEST(ValidatorTest, ValidRequestsPass) {
  EXPECT_EQ(Describe(Validate("CreateTrainingJob", ValidCreateTrainingJob())), "ok");
  EXPECT_EQ(Validate("DescribeTrainingJob", json{{"TrainingJobName", "mnist-1"}}), std::nullopt);
  EXPECT_EQ(Validate("ListTrainingJobs", json::object()), std::nullopt);
  EXPECT_EQ(Validate("ListTrainingJobs", nullptr), std::nullopt);  // empty body
  EXPECT_EQ(Validate("ListTrainingJobs", json{{"MaxResults", 100},
                                              {"CreationTimeAfter", 1700000000.5},
                                              {"CreationTimeBefore", "2024-01-02T03:04:05Z"},
                                              {"SortOrder", "Descending"}}),
            std::nullopt);
  EXPECT_EQ(Validate("Search", json::parse(R"({"Resource": "TrainingJob", "SortOrder":
      "Ascending", "SearchExpression": {"Filters": [{"Name": "TrainingJobName",
      "Operator": "Contains", "Value": "mnist"}]}})")),
            std::nullopt);
  EXPECT_EQ(Validate("DeleteTags", json::parse(R"({"ResourceArn":
      "arn:aws:sagemaker:us-east-1:123456789012:training-job/x", "TagKeys": ["team"]})")),
            std::nullopt);
}

struct Case {
  const char* name;
  std::string op;
  std::function<void(json&)> mutate;  // applied to the base body
  json base;
  std::string type;
  std::string message;
};

std::string Repeat(char c, size_t n) { return std::string(n, c); }

TEST(ValidatorTest, ViolationsGiveAwsMessages) {
  const json create = ValidCreateTrainingJob();
  json tags51 = json::array();
  std::string rendered_tags = "[";
  for (int i = 0; i < 51; ++i) {
    tags51.push_back({{"Key", "k" + std::to_string(i)}, {"Value", "v"}});
    rendered_tags += (i ? ", " : "") + std::string("{Key=k") + std::to_string(i) + ", Value=v}";
  }
  rendered_tags += "]";
  json hp101 = json::object();
  for (int i = 0; i < 101; ++i) hp101["p" + std::to_string(1000 + i)] = "1";
  std::string rendered_hp101 = "{";
  for (int i = 0; i < 101; ++i)
    rendered_hp101 += (i ? ", p" : "p") + std::to_string(1000 + i) + "=1";
  rendered_hp101 += "}";
  const std::string long_value = Repeat('x', 2501);

  const Case kCases[] = {
      {"bad name pattern", "CreateTrainingJob", [](json& b) { b["TrainingJobName"] = "my_job"; },
       create, "ValidationException",
       One("Value 'my_job' at 'trainingJobName' failed to satisfy constraint: Member must "
           "satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")},
      {"name of 64 chars", "CreateTrainingJob",
       [](json& b) { b["TrainingJobName"] = Repeat('a', 64); }, create, "ValidationException",
       "2 validation errors detected: Value '" + Repeat('a', 64) +
           "' at 'trainingJobName' failed to satisfy constraint: Member must have length less "
           "than or equal to 63; Value '" +
           Repeat('a', 64) +
           "' at 'trainingJobName' failed to satisfy constraint: Member must satisfy regular "
           "expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"},
      {"missing role", "CreateTrainingJob", [](json& b) { b.erase("RoleArn"); }, create,
       "ValidationException",
       One("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")},
      {"null role counts as missing", "CreateTrainingJob", [](json& b) { b["RoleArn"] = nullptr; },
       create, "ValidationException",
       One("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")},
      {"missing s3 output path", "CreateTrainingJob",
       [](json& b) { b["OutputDataConfig"].erase("S3OutputPath"); }, create, "ValidationException",
       One("Value null at 'outputDataConfig.s3OutputPath' failed to satisfy constraint: Member "
           "must not be null")},
      {"instance count as string", "CreateTrainingJob",
       [](json& b) { b["ResourceConfig"]["InstanceCount"] = "1"; }, create,
       "SerializationException",
       "Cannot deserialize string at 'resourceConfig.instanceCount': expected integer (32-bit "
       "whole number)"},
      {"structure as string", "CreateTrainingJob", [](json& b) { b["StoppingCondition"] = "1h"; },
       create, "SerializationException",
       "Cannot deserialize string at 'stoppingCondition': expected structure"},
      {"number as string member", "CreateTrainingJob", [](json& b) { b["TrainingJobName"] = 7; },
       create, "SerializationException",
       "Cannot deserialize integer number at 'trainingJobName': expected string"},
      {"fractional integer", "CreateTrainingJob",
       [](json& b) { b["StoppingCondition"]["MaxRuntimeInSeconds"] = 1.5; }, create,
       "SerializationException",
       "Cannot deserialize decimal number at 'stoppingCondition.maxRuntimeInSeconds': expected "
       "integer (32-bit whole number)"},
      {"max runtime 0", "CreateTrainingJob",
       [](json& b) { b["StoppingCondition"]["MaxRuntimeInSeconds"] = 0; }, create,
       "ValidationException",
       One("Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
           "Member must have value greater than or equal to 1")},
      {"51 tags", "CreateTrainingJob", [&](json& b) { b["Tags"] = tags51; }, create,
       "ValidationException",
       One("Value '" + rendered_tags +
           "' at 'tags' failed to satisfy constraint: Member must have length less than or "
           "equal to 50")},
      {"101 hyperparameters", "CreateTrainingJob", [&](json& b) { b["HyperParameters"] = hp101; },
       create, "ValidationException",
       One("Value '" + rendered_hp101 +
           "' at 'hyperParameters' failed to satisfy constraint: Member must have length less "
           "than or equal to 100")},
      {"hyperparameter value 2501 chars", "CreateTrainingJob",
       [&](json& b) {
         b["HyperParameters"] = {{"lr", long_value}};
       },
       create, "ValidationException",
       One("Value '{lr=" + long_value +
           "}' at 'hyperParameters' failed to satisfy constraint: Map value must satisfy "
           "constraint: [Member must have length less than or equal to 2500, Member must have "
           "length greater than or equal to 0, Member must satisfy regular expression pattern: "
           ".*]")},
      {"hyperparameter value 2500 code points of 2 bytes is fine", "CreateTrainingJob",
       [](json& b) {
         std::string v;
         for (int i = 0; i < 2500; ++i) v += "é";
         b["HyperParameters"] = {{"lr", v}};
         b.erase("RoleArn");
       },
       create, "ValidationException",
       One("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")},
      {"tag key with forbidden char", "CreateTrainingJob",
       [](json& b) { b["Tags"] = json::parse(R"([{"Key": "a#b", "Value": "v"}])"); }, create,
       "ValidationException",
       One("Value 'a#b' at 'tags.1.member.key' failed to satisfy constraint: Member must "
           "satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)")},
      {"two errors at once", "CreateTrainingJob",
       [](json& b) {
         b.erase("RoleArn");
         b["ResourceConfig"]["InstanceCount"] = -1;
       },
       create, "ValidationException",
       // Members are checked in model (alphabetical) order.
       "2 validation errors detected: Value '-1' at 'resourceConfig.instanceCount' failed to "
       "satisfy constraint: Member must have value greater than or equal to 0; Value null at "
       "'roleArn' failed to satisfy constraint: Member must not be null"},
      {"unknown member", "CreateTrainingJob", [](json& b) { b["ResourceConfig"]["bogus"] = 3; },
       create, "ValidationException",
       One("Value '3' at 'resourceConfig.bogus' failed to satisfy constraint: Member is not "
           "recognized by the SageMaker API model")},
      {"entrypoint element too long", "CreateTrainingJob",
       [](json& b) {
         b["AlgorithmSpecification"]["ContainerEntrypoint"] = {"python", std::string(257, 'x')};
       },
       create, "ValidationException",
       One("Value '[python, " + std::string(257, 'x') +
           "]' at 'algorithmSpecification.containerEntrypoint' failed to satisfy constraint: "
           "Member must satisfy constraint: [Member must have length less than or equal to 256, "
           "Member must have length greater than or equal to 0, Member must satisfy regular "
           "expression pattern: .*]")},
      {"max results 101", "ListTrainingJobs", nullptr, json{{"MaxResults", 101}},
       "ValidationException",
       One("Value '101' at 'maxResults' failed to satisfy constraint: Member must have value "
           "less than or equal to 100")},
      {"timestamp garbage", "ListTrainingJobs", nullptr, json{{"CreationTimeAfter", "yesterday"}},
       "SerializationException",
       "Cannot deserialize string at 'creationTimeAfter': expected timestamp (epoch seconds or "
       "ISO-8601 string)"},
      {"search bad sort order", "Search", nullptr,
       json{{"Resource", "TrainingJob"}, {"SortOrder", "Sideways"}}, "ValidationException",
       One("Value 'Sideways' at 'sortOrder' failed to satisfy constraint: Member must satisfy "
           "enum value set: [Ascending, Descending]")},
      {"body not an object", "DescribeTrainingJob", nullptr, json::array(),
       "SerializationException", "Cannot deserialize list at the request body: expected structure"},
      {"unknown operation", "CreateEndpoint", nullptr, json::object(), "UnknownOperationException",
       "Unknown operation: CreateEndpoint"},
  };
  for (const Case& c : kCases) {
    json body = c.base;
    if (c.mutate) c.mutate(body);
    auto err = Validate(c.op, body);
    ASSERT_TRUE(err.has_value()) << c.name;
    EXPECT_EQ(err->type, c.type) << c.name;
    EXPECT_EQ(err->message, c.message) << c.name;
    EXPECT_EQ(err->http_status, 400) << c.name;
  }
}

TEST(ValidatorTest, UnknownInstanceTypeListsTheEnum) {
  json body = ValidCreateTrainingJob();
  body["ResourceConfig"]["InstanceType"] = "ml.bogus.xlarge";
  auto err = Validate("CreateTrainingJob", body);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->type, "ValidationException");
  const std::string prefix =
      One("Value 'ml.bogus.xlarge' at 'resourceConfig.instanceType' failed to satisfy constraint: "
          "Member must satisfy enum value set: [ml.m4.xlarge, ml.m4.2xlarge, ");
  EXPECT_EQ(err->message.substr(0, prefix.size()), prefix);
  EXPECT_EQ(err->message.back(), ']');
  EXPECT_NE(err->message.find(", ml.p5.48xlarge, "), std::string::npos);
  EXPECT_EQ(err->message.find(';'), std::string::npos);
}

TEST(ValidatorTest, CapsListedErrorsButCountsAll) {
  json body = json::object();
  body["Tags"] = json::array();
  for (int i = 0; i < 12; ++i) body["Tags"].push_back({{"Key", "k#" + std::to_string(i)}});
  auto err = Validate("CreateTrainingJob", body);
  ASSERT_TRUE(err.has_value());
  // 6 missing required members + 12 bad keys + 12 missing values.
  EXPECT_EQ(err->message.rfind("30 validation errors detected: ", 0), 0u) << err->message;
  size_t separators = 0;
  for (char ch : err->message) separators += ch == ';' ? 1 : 0;
  EXPECT_EQ(separators, kMaxReportedViolations - 1);
}

TEST(ValidatorTest, WalkerIsReusableForSubShapes) {
  auto model = ServiceModel::Embedded();
  const Shape* stopping = model->FindShape("StoppingCondition");
  ASSERT_NE(stopping, nullptr);
  std::vector<Violation> violations;
  auto err =
      ValidateValue(*stopping, json{{"MaxWaitTimeInSeconds", 0}}, "stoppingCondition", violations);
  EXPECT_EQ(err, std::nullopt);
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0], (Violation{"'0'", "stoppingCondition.maxWaitTimeInSeconds",
                                      "Member must have value greater than or equal to 1"}));
  violations.push_back({"'true'", "enableManagedSpotTraining", "semantic rule"});
  EXPECT_EQ(ValidationError(violations).message,
            "2 validation errors detected: Value '0' at 'stoppingCondition.maxWaitTimeInSeconds' "
            "failed to satisfy constraint: Member must have value greater than or equal to 1; "
            "Value 'true' at 'enableManagedSpotTraining' failed to satisfy constraint: semantic "
            "rule");
}

TEST(ValidatorTest, LowerCamel) {
  EXPECT_EQ(LowerCamel("TrainingJobName"), "trainingJobName");
  EXPECT_EQ(LowerCamel("S3OutputPath"), "s3OutputPath");
  EXPECT_EQ(LowerCamel("bogus"), "bogus");
  EXPECT_EQ(LowerCamel(""), "");
}

}  // namespace
}  // namespace ty::api
