#include "services/sagemaker/training_job_request.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::services {
namespace {

using nlohmann::json;
using testing::TempDir;

class ParseCreateTrainingJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto real = RealPath(dir_.path());
    ASSERT_TRUE(real.ok());
    root_ = *real;
    ASSERT_TRUE(MakeDirs(root_ + "/data/train").ok());
    ASSERT_TRUE(MakeDirs(root_ + "/code").ok());
    policy_.file_roots = {root_};
  }

  std::string Uri(const std::string& rel) const { return "file://" + root_ + "/" + rel; }

  // A request using every member Trainyard supports.
  json ValidBody() const {
    return {{"TrainingJobName", "my-job"},
            {"AlgorithmSpecification",
             {{"TrainingImage", "pytorch-training:2.1"},
              {"TrainingInputMode", "File"},
              {"ContainerEntrypoint", {"python3", "train.py"}},
              {"ContainerArguments", {"--epochs", "2"}},
              {"MetricDefinitions",
               {{{"Name", "loss"}, {"Regex", "loss=([0-9.]+)"}},
                {{"Name", "acc"}, {"Regex", "acc=([0-9.]+)"}}}}}},
            {"RoleArn", "arn:aws:iam::123456789012:role/Trainer"},
            {"HyperParameters", {{"epochs", "2"}, {"sagemaker_submit_directory", Uri("code")}}},
            {"Environment", {{"MODE", "test"}}},
            {"InputDataConfig",
             {{{"ChannelName", "train"},
               {"ContentType", "text/csv"},
               {"DataSource",
                {{"S3DataSource",
                  {{"S3DataType", "S3Prefix"},
                   {"S3Uri", Uri("data/train")},
                   {"S3DataDistributionType", "ShardedByS3Key"}}}}}},
              {{"ChannelName", "test"},
               {"InputMode", "FastFile"},
               {"CompressionType", "None"},
               {"DataSource",
                {{"S3DataSource", {{"S3DataType", "S3Prefix"}, {"S3Uri", Uri("data/test")}}}}}}}},
            {"OutputDataConfig", {{"S3OutputPath", Uri("output")}, {"CompressionType", "NONE"}}},
            {"ResourceConfig",
             {{"InstanceType", "ml.m5.large"}, {"InstanceCount", 1}, {"VolumeSizeInGB", 30}}},
            {"StoppingCondition", {{"MaxRuntimeInSeconds", 3600}}},
            {"CheckpointConfig", {{"S3Uri", Uri("checkpoints")}, {"LocalPath", "/opt/ml/ckpt"}}},
            {"EnableNetworkIsolation", false},
            {"Tags", {{{"Key", "team"}, {"Value", "vision"}}}}};
  }

  TempDir dir_{"ty_api_request_test_"};
  std::string root_;
  RequestPolicy policy_;
};

TEST_F(ParseCreateTrainingJobTest, FullRequestFillsJobSpec) {
  auto spec = ParseCreateTrainingJob(ValidBody(), policy_);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "my-job");
  EXPECT_EQ(spec->training_image, "pytorch-training:2.1");
  EXPECT_EQ(spec->training_input_mode, "File");
  EXPECT_EQ(spec->container_entrypoint, (std::vector<std::string>{"python3", "train.py"}));
  EXPECT_EQ(spec->container_arguments, (std::vector<std::string>{"--epochs", "2"}));
  ASSERT_EQ(spec->metric_definitions.size(), 2u);
  EXPECT_EQ(spec->metric_definitions[0].name, "loss");
  EXPECT_EQ(spec->metric_definitions[0].regex, "loss=([0-9.]+)");
  EXPECT_EQ(spec->metric_definitions[1].name, "acc");
  EXPECT_EQ(spec->hyperparameters.at("epochs"), "2");
  EXPECT_EQ(spec->environment.at("MODE"), "test");
  ASSERT_EQ(spec->channels.size(), 2u);
  const model::Channel& train = spec->channels[0];
  EXPECT_EQ(train.name, "train");
  EXPECT_EQ(train.uri, Uri("data/train"));
  EXPECT_EQ(train.content_type, "text/csv");
  EXPECT_EQ(train.input_mode, "File");  // inherited from TrainingInputMode
  EXPECT_EQ(train.distribution_type, "ShardedByS3Key");
  EXPECT_EQ(train.record_wrapper_type, "None");
  EXPECT_EQ(train.compression_type, "");
  const model::Channel& test = spec->channels[1];
  EXPECT_EQ(test.name, "test");
  EXPECT_EQ(test.input_mode, "FastFile");
  EXPECT_EQ(test.distribution_type, "FullyReplicated");
  EXPECT_EQ(test.compression_type, "None");
  EXPECT_EQ(spec->output_path, Uri("output"));
  EXPECT_FALSE(spec->compress_output);
  EXPECT_EQ(spec->instance_type, "ml.m5.large");
  EXPECT_EQ(spec->instance_count, 1);
  EXPECT_EQ(spec->volume_size_gb, 30);
  EXPECT_EQ(spec->max_runtime, std::chrono::seconds(3600));
  EXPECT_FALSE(spec->max_wait.has_value());
  EXPECT_FALSE(spec->managed_spot);
  ASSERT_TRUE(spec->checkpoint_uri.has_value());
  EXPECT_EQ(*spec->checkpoint_uri, Uri("checkpoints"));
  EXPECT_EQ(spec->checkpoint_local_path, "/opt/ml/ckpt");
}

TEST_F(ParseCreateTrainingJobTest, MinimalRequestGetsDefaults) {
  json body = ValidBody();
  body.erase("CheckpointConfig");
  body.erase("StoppingCondition");
  body.erase("HyperParameters");
  body["OutputDataConfig"].erase("CompressionType");
  body["AlgorithmSpecification"].erase("TrainingInputMode");
  auto spec = ParseCreateTrainingJob(body, policy_);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->max_runtime, std::chrono::seconds(86400));
  EXPECT_TRUE(spec->compress_output);
  EXPECT_EQ(spec->training_input_mode, "File");
  EXPECT_FALSE(spec->checkpoint_uri.has_value());
  EXPECT_EQ(spec->checkpoint_local_path, "/opt/ml/checkpoints");
  EXPECT_TRUE(spec->hyperparameters.empty());
}

struct SubmitDirCase {
  std::string label;
  std::function<std::string(const std::string& root)> value;
  std::string error;  // empty: accepted
};

TEST_F(ParseCreateTrainingJobTest, SubmitDirectoryForms) {
  const std::vector<SubmitDirCase> cases = {
      {"PlainFileUri", [](const std::string& r) { return "file://" + r + "/code"; }, ""},
      {"JsonEncodedFileUri", [](const std::string& r) { return "\"file://" + r + "/code\""; }, ""},
      {"ImageDefault", [](const std::string&) { return std::string("/opt/ml/code"); }, ""},
      {"JsonEncodedOutsideRoots",
       [](const std::string&) { return std::string("\"file:///etc/code\""); },
       "outside the allowed file roots"},
      {"S3", [](const std::string&) { return std::string("s3://bucket/code.tar.gz"); }, ""},
      {"JsonEncodedS3",
       [](const std::string&) { return std::string("\"s3://bucket/code.tar.gz\""); }, ""},
      {"S3WithoutBucket", [](const std::string&) { return std::string("s3:///code.tar.gz"); },
       "bucket"},
      {"BarePath", [](const std::string&) { return std::string("/home/me/code"); },
       "give an s3:// or file:// URI"},
  };
  for (const auto& c : cases) {
    json body = ValidBody();
    body["HyperParameters"]["sagemaker_submit_directory"] = c.value(root_);
    auto spec = ParseCreateTrainingJob(body, policy_);
    if (c.error.empty()) {
      ASSERT_TRUE(spec.ok()) << c.label << ": " << spec.status().ToString();
      // The hyperparameter is passed on as sent.
      EXPECT_EQ(spec->hyperparameters.at("sagemaker_submit_directory"), c.value(root_));
    } else {
      ASSERT_FALSE(spec.ok()) << c.label;
      EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << c.label;
      EXPECT_NE(spec.status().message().find("sagemaker_submit_directory"), std::string::npos)
          << c.label << ": " << spec.status().message();
      EXPECT_NE(spec.status().message().find(c.error), std::string::npos)
          << c.label << ": " << spec.status().message();
    }
  }
}

struct RuleCase {
  std::string label;
  std::function<void(json& body, const std::string& root)> mutate;
  std::vector<std::string> message_parts;  // each must appear in the error
};

json& Channel0(json& body) { return body["InputDataConfig"][0]; }
json& S3Source0(json& body) { return body["InputDataConfig"][0]["DataSource"]["S3DataSource"]; }

const std::vector<RuleCase>& RuleCases() {
  static const std::vector<RuleCase> cases = {
      {"SpotWithoutMaxWait",
       [](json& b, const std::string&) { b["EnableManagedSpotTraining"] = true; },
       {"MaxWaitTimeInSeconds is required"}},
      {"MaxWaitWithoutSpot",
       [](json& b, const std::string&) { b["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200; },
       {"MaxWaitTimeInSeconds", "EnableManagedSpotTraining"}},
      {"MaxWaitBelowMaxRuntime",
       [](json& b, const std::string&) {
         b["EnableManagedSpotTraining"] = true;
         b["StoppingCondition"]["MaxWaitTimeInSeconds"] = 60;
       },
       {"MaxWaitTimeInSeconds", "equal to or greater than MaxRuntimeInSeconds"}},
      {"MaxRuntimeOverTwentyEightDays",
       [](json& b, const std::string&) {
         b["StoppingCondition"]["MaxRuntimeInSeconds"] = int64_t{10000000000};
       },
       {"MaxRuntimeInSeconds", "2419200"}},
      {"MaxRuntimeBeyondInt64",
       [](json& b, const std::string&) {
         b["StoppingCondition"]["MaxRuntimeInSeconds"] = uint64_t{18446744073709551615ull};
       },
       {"MaxRuntimeInSeconds", "2419200"}},
      {"MaxPendingTime",
       [](json& b, const std::string&) { b["StoppingCondition"]["MaxPendingTimeInSeconds"] = 60; },
       {"MaxPendingTimeInSeconds"}},
      {"TrafficEncryption",
       [](json& b, const std::string&) { b["EnableInterContainerTrafficEncryption"] = true; },
       {"EnableInterContainerTrafficEncryption"}},
      {"ImageAndAlgorithmName",
       [](json& b, const std::string&) { b["AlgorithmSpecification"]["AlgorithmName"] = "xgb"; },
       {"Exactly one of AlgorithmSpecification.TrainingImage"}},
      {"NeitherImageNorAlgorithm",
       [](json& b, const std::string&) { b["AlgorithmSpecification"].erase("TrainingImage"); },
       {"Exactly one of"}},
      {"AlgorithmName",
       [](json& b, const std::string&) {
         b["AlgorithmSpecification"].erase("TrainingImage");
         b["AlgorithmSpecification"]["AlgorithmName"] = "xgboost";
       },
       {"AlgorithmSpecification.AlgorithmName", "not supported"}},
      {"TrainingImageConfig",
       [](json& b, const std::string&) {
         b["AlgorithmSpecification"]["TrainingImageConfig"] = {
             {"TrainingRepositoryAccessMode", "Vpc"}};
       },
       {"AlgorithmSpecification.TrainingImageConfig"}},
      {"PipeMode",
       [](json& b, const std::string&) {
         b["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe";
       },
       {"TrainingInputMode Pipe"}},
      {"DuplicateMetric",
       [](json& b, const std::string&) {
         b["AlgorithmSpecification"]["MetricDefinitions"][1]["Name"] = "loss";
       },
       {"Duplicate metric definition name: loss"}},
      {"DuplicateChannel",
       [](json& b, const std::string&) { b["InputDataConfig"][1]["ChannelName"] = "train"; },
       {"'train' is repeated"}},
      {"DotDotChannel",
       [](json& b, const std::string&) { Channel0(b)["ChannelName"] = ".."; },
       {"Invalid channel name '..'"}},
      {"FileSystemDataSource",
       [](json& b, const std::string&) {
         Channel0(b)["DataSource"] = {{"FileSystemDataSource", {{"FileSystemId", "fs-1"}}}};
       },
       {"DataSource.FileSystemDataSource"}},
      {"DatasetSource",
       [](json& b, const std::string&) {
         Channel0(b)["DataSource"]["DatasetSource"] = json::object();
       },
       {"DataSource.DatasetSource"}},
      {"NoS3DataSource",
       [](json& b, const std::string&) { Channel0(b)["DataSource"] = json::object(); },
       {"Channel 'train' needs a DataSource.S3DataSource"}},
      {"AttributeNames",
       [](json& b, const std::string&) { S3Source0(b)["AttributeNames"] = {"a"}; },
       {"S3DataSource.AttributeNames"}},
      {"InstanceGroupNames",
       [](json& b, const std::string&) { S3Source0(b)["InstanceGroupNames"] = {"g"}; },
       {"S3DataSource.InstanceGroupNames"}},
      {"ChannelHttpsUri",
       [](json& b, const std::string&) {
         S3Source0(b)["S3Uri"] = "https://bucket.s3.amazonaws.com/train";
       },
       {"S3Uri of channel 'train'", "https:// URIs are not supported"}},
      {"AugmentedManifest",
       [](json& b, const std::string&) { S3Source0(b)["S3DataType"] = "AugmentedManifestFile"; },
       {"S3DataType AugmentedManifestFile"}},
      {"ChannelOutsideRoots",
       [](json& b, const std::string&) { S3Source0(b)["S3Uri"] = "file:///etc/passwd"; },
       {"S3Uri of channel 'train'", "outside the allowed file roots"}},
      {"ChannelEscapesRootWithDotDot",
       [](json& b, const std::string& r) { S3Source0(b)["S3Uri"] = "file://" + r + "/../x"; },
       {"outside the allowed file roots"}},
      {"ChannelRelativeFileUri",
       [](json& b, const std::string&) { S3Source0(b)["S3Uri"] = "file:data/train"; },
       {"S3Uri of channel 'train'"}},
      {"ChannelHttpUri",
       [](json& b, const std::string&) { S3Source0(b)["S3Uri"] = "http://example.com/x"; },
       {"S3Uri of channel 'train'"}},
      {"ChannelGzip",
       [](json& b, const std::string&) { Channel0(b)["CompressionType"] = "Gzip"; },
       {"Channel CompressionType Gzip"}},
      {"RecordIO",
       [](json& b, const std::string&) { Channel0(b)["RecordWrapperType"] = "RecordIO"; },
       {"RecordWrapperType RecordIO"}},
      {"ShuffleConfig",
       [](json& b, const std::string&) {
         Channel0(b)["ShuffleConfig"] = {{"Seed", 1}};
       },
       {"Channel ShuffleConfig"}},
      {"ChannelPipe",
       [](json& b, const std::string&) { Channel0(b)["InputMode"] = "Pipe"; },
       {"Channel InputMode Pipe"}},
      {"OutputS3WithoutBucket",
       [](json& b, const std::string&) { b["OutputDataConfig"]["S3OutputPath"] = "s3:///out"; },
       {"S3OutputPath", "bucket"}},
      {"OutputOutsideRoots",
       [](json& b, const std::string&) { b["OutputDataConfig"]["S3OutputPath"] = "file:///out"; },
       {"S3OutputPath", "outside the allowed file roots"}},
      {"OutputKms",
       [](json& b, const std::string&) { b["OutputDataConfig"]["KmsKeyId"] = "key"; },
       {"OutputDataConfig.KmsKeyId"}},
      {"InstanceGroups",
       [](json& b, const std::string&) {
         b["ResourceConfig"]["InstanceGroups"] = json::array({{{"InstanceGroupName", "g"}}});
       },
       {"ResourceConfig.InstanceGroups"}},
      {"TrainingPlanArn",
       [](json& b, const std::string&) { b["ResourceConfig"]["TrainingPlanArn"] = "arn:x"; },
       {"ResourceConfig.TrainingPlanArn"}},
      {"InstancePlacementConfig",
       [](json& b, const std::string&) {
         b["ResourceConfig"]["InstancePlacementConfig"] = json::object();
       },
       {"ResourceConfig.InstancePlacementConfig"}},
      {"VolumeKms",
       [](json& b, const std::string&) { b["ResourceConfig"]["VolumeKmsKeyId"] = "key"; },
       {"ResourceConfig.VolumeKmsKeyId"}},
      {"WarmPool",
       [](json& b, const std::string&) { b["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 60; },
       {"ResourceConfig.KeepAlivePeriodInSeconds"}},
      {"NoInstanceType",
       [](json& b, const std::string&) { b["ResourceConfig"].erase("InstanceType"); },
       {"ResourceConfig.InstanceType is required"}},
      {"ZeroInstances",
       [](json& b, const std::string&) { b["ResourceConfig"]["InstanceCount"] = 0; },
       {"ResourceConfig.InstanceCount must be at least 1"}},
      {"CheckpointHttps",
       [](json& b, const std::string&) {
         b["CheckpointConfig"]["S3Uri"] = "https://bucket.s3.amazonaws.com/ckpt";
       },
       {"CheckpointConfig.S3Uri", "https:// URIs are not supported"}},
      {"CheckpointOutsideRoots",
       [](json& b, const std::string&) { b["CheckpointConfig"]["S3Uri"] = "file:///ckpt"; },
       {"CheckpointConfig.S3Uri", "outside the allowed file roots"}},
      {"CheckpointLocalPathOutsideOptMl",
       [](json& b, const std::string&) { b["CheckpointConfig"]["LocalPath"] = "/tmp/ckpt"; },
       {"CheckpointConfig.LocalPath must lie under /opt/ml/", "/tmp/ckpt"}},
      {"CheckpointLocalPathDotDot",
       [](json& b, const std::string&) { b["CheckpointConfig"]["LocalPath"] = "/opt/ml/../etc"; },
       {"CheckpointConfig.LocalPath"}},
      {"ReservedTag",
       [](json& b, const std::string&) { b["Tags"][0]["Key"] = "aws:owner"; },
       {"reserved for AWS use: aws:owner"}},
      // Issue 10 (F9): a NUL in Environment used to cut the value short in the training process.
      {"NulInEnvironmentValue",
       [](json& b, const std::string&) { b["Environment"]["MODE"] = std::string("te\0st", 5); },
       {"Environment value of 'MODE' has a NUL character"}},
      {"NulInHyperParameterValue",
       [](json& b, const std::string&) {
         b["HyperParameters"]["epochs"] = std::string("1\0; rm", 6);
       },
       {"HyperParameters value of 'epochs' has a NUL character"}},
      {"NulInHyperParameterKey",
       [](json& b, const std::string&) { b["HyperParameters"][std::string("a\0b", 3)] = "1"; },
       {"HyperParameters has a key with a NUL character"}},
      {"DuplicateTag",
       [](json& b, const std::string&) {
         b["Tags"].push_back({{"Key", "team"}, {"Value", "x"}});
       },
       {"Duplicate tag key: team"}},
  };
  return cases;
}

class RequestRuleTest : public ParseCreateTrainingJobTest,
                        public ::testing::WithParamInterface<RuleCase> {};

TEST_P(RequestRuleTest, RefusedWithMemberNamed) {
  json body = ValidBody();
  GetParam().mutate(body, root_);
  auto spec = ParseCreateTrainingJob(body, policy_);
  ASSERT_FALSE(spec.ok()) << body.dump();
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  for (const auto& part : GetParam().message_parts) {
    EXPECT_NE(spec.status().message().find(part), std::string::npos)
        << "want '" << part << "' in: " << spec.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, RequestRuleTest, ::testing::ValuesIn(RuleCases()),
                         [](const ::testing::TestParamInfo<RuleCase>& p) { return p.param.label; });

class UnsupportedTopLevelTest : public ParseCreateTrainingJobTest,
                                public ::testing::WithParamInterface<std::string> {};

TEST_P(UnsupportedTopLevelTest, RefusedByName) {
  json body = ValidBody();
  body[GetParam()] = json::object();
  auto spec = ParseCreateTrainingJob(body, policy_);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(spec.status().message(), GetParam() + " is not supported by Trainyard yet.");
}

INSTANTIATE_TEST_SUITE_P(Members, UnsupportedTopLevelTest,
                         ::testing::Values("VpcConfig", "RemoteDebugConfig", "InfraCheckConfig",
                                           "SessionChainingConfig", "ServerlessJobConfig",
                                           "MlflowConfig", "ModelPackageConfig"));

TEST_F(ParseCreateTrainingJobTest, S3UrisAndManifestChannelsAreAccepted) {
  json body = ValidBody();
  S3Source0(body)["S3Uri"] = "s3://bucket/train.manifest";
  S3Source0(body)["S3DataType"] = "ManifestFile";
  body["OutputDataConfig"]["S3OutputPath"] = "s3://bucket/out";
  body["CheckpointConfig"]["S3Uri"] = "s3://bucket/ckpt/job";
  auto spec = ParseCreateTrainingJob(body, policy_);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->channels[0].uri, "s3://bucket/train.manifest");
  EXPECT_EQ(spec->channels[0].data_type, "ManifestFile");
  EXPECT_EQ(spec->channels[1].data_type, "S3Prefix");
  EXPECT_EQ(spec->output_path, "s3://bucket/out");
  EXPECT_EQ(*spec->checkpoint_uri, "s3://bucket/ckpt/job");
}

TEST_F(ParseCreateTrainingJobTest, ManagedSpotAndRetryStrategyAreParsed) {
  json body = ValidBody();
  body["EnableManagedSpotTraining"] = true;
  body["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200;
  body["CheckpointConfig"] = {{"S3Uri", "file://" + root_ + "/ckpt/"}};
  body["RetryStrategy"] = {{"MaximumRetryAttempts", 3}};
  auto spec = ParseCreateTrainingJob(body, policy_);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_TRUE(spec->managed_spot);
  EXPECT_EQ(spec->max_wait, std::chrono::seconds(7200));
  EXPECT_EQ(spec->max_retry_attempts, 3);
  EXPECT_EQ(spec->checkpoint_uri, "file://" + root_ + "/ckpt/");
}

TEST_F(ParseCreateTrainingJobTest, EnableNetworkIsolationIsAccepted) {
  for (bool isolated : {false, true}) {
    json body = ValidBody();
    body["EnableNetworkIsolation"] = isolated;
    auto spec = ParseCreateTrainingJob(body, policy_);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->network_isolation, isolated);
  }
  auto absent = ParseCreateTrainingJob(ValidBody(), policy_);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->network_isolation);
}

TEST_F(ParseCreateTrainingJobTest, NullUnsupportedMemberIsIgnored) {
  json body = ValidBody();
  body["VpcConfig"] = nullptr;
  EXPECT_TRUE(ParseCreateTrainingJob(body, policy_).ok());
}

struct UriCase {
  std::string uri;
  std::string error;  // empty: accepted
};

TEST_F(ParseCreateTrainingJobTest, CheckUriTable) {
  const std::vector<UriCase> cases = {
      {Uri("data/train"), ""},
      {Uri("not/there/yet"), ""},
      {"file://localhost" + root_ + "/data", ""},
      {"file:///", "outside the allowed file roots"},
      {"file://" + root_ + "/../", "outside the allowed file roots"},
      {"s3://bucket/key", ""},
      {"s3://bucket", ""},
      {"s3:///key", "Invalid thing"},
      {"https://bucket.s3.amazonaws.com/key", "https:// URIs are not supported"},
      {"file://otherhost/x", "host"},
      {"ftp://x/y", "Invalid thing"},
      {"nonsense", "Invalid thing"},
  };
  for (const auto& c : cases) {
    Status s = CheckUri("thing", c.uri, policy_);
    if (c.error.empty()) {
      EXPECT_TRUE(s.ok()) << c.uri << ": " << s.ToString();
    } else {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.uri;
      EXPECT_NE(s.message().find(c.error), std::string::npos) << c.uri << ": " << s.message();
    }
  }
}

}  // namespace
}  // namespace ty::services
