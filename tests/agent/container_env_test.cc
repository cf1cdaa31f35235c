#include "agent/container_env.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ty::agent {
namespace {

using json = nlohmann::json;

model::InstanceConfig SampleConfig() {
  model::InstanceConfig c;
  c.job_name = "job-1";
  c.job_arn = "arn:aws:sagemaker:us-west-2:123456789012:training-job/job-1";
  c.region = "us-west-2";
  c.host_index = 2;
  c.hosts = {"algo-2", "algo-1"};
  c.num_cpus = 4;
  c.image.env = {{"IMAGE_VAR", "img"}, {"OVERRIDDEN", "image"}};
  c.spec.name = "job-1";
  c.spec.instance_type = "ml.m5.xlarge";
  c.spec.hyperparameters = {{"learning-rate", "0.0001"},
                            {"batch-size", "256"},
                            {"sagemaker_program", "\"train.py\""},
                            {"sagemaker_submit_directory", "\"file:///src\""},
                            {"sagemaker_mpi_enabled", "true"},
                            {"name", "\"resnet\""},
                            {"raw", "not json"}};
  c.spec.environment = {{"OVERRIDDEN", "user"}, {"SM_NUM_CPUS", "99"}};
  model::Channel train{"train", "file:///data/train", "text/csv", "File", "FullyReplicated", "None",
                       ""};
  model::Channel val{"validation",     "file:///data/val", "",    "File",
                     "ShardedByS3Key", "RecordIO",         "Gzip"};
  c.spec.channels = {val, train};
  return c;
}

TEST(ContainerEnvTest, ResourceConfigRoundTrips) {
  json j = json::parse(ResourceConfigJson(SampleConfig()));
  json want = {{"current_host", "algo-2"},
               {"current_instance_type", "ml.m5.xlarge"},
               {"current_group_name", "homogeneousCluster"},
               {"hosts", {"algo-1", "algo-2"}},
               {"instance_groups",
                {{{"instance_group_name", "homogeneousCluster"},
                  {"instance_type", "ml.m5.xlarge"},
                  {"hosts", {"algo-1", "algo-2"}}}}},
               {"network_interface_name", "eth0"}};
  EXPECT_EQ(j, want);
}

TEST(ContainerEnvTest, InputDataConfigHasOnlyGivenKeys) {
  json j = json::parse(InputDataConfigJson(SampleConfig().spec));
  json want = {{"train",
                {{"ContentType", "text/csv"},
                 {"TrainingInputMode", "File"},
                 {"S3DistributionType", "FullyReplicated"},
                 {"RecordWrapperType", "None"}}},
               {"validation",
                {{"TrainingInputMode", "File"},
                 {"S3DistributionType", "ShardedByS3Key"},
                 {"RecordWrapperType", "RecordIO"},
                 {"CompressionType", "Gzip"}}}};
  EXPECT_EQ(j, want);
}

TEST(ContainerEnvTest, HyperparametersAreTheMapAsGiven) {
  auto spec = SampleConfig().spec;
  json j = json::parse(HyperparametersJson(spec));
  auto got = j.get<std::map<std::string, std::string>>();
  EXPECT_EQ(got, spec.hyperparameters);
  spec.hyperparameters.clear();
  EXPECT_EQ(HyperparametersJson(spec), "{}");
}

TEST(ContainerEnvTest, CheckpointConfig) {
  auto spec = SampleConfig().spec;
  spec.checkpoint_uri = "file:///ck";
  EXPECT_EQ(json::parse(CheckpointConfigJson(spec, "/opt/ml/checkpoints")),
            (json{{"LocalPath", "/opt/ml/checkpoints"}, {"S3Uri", "file:///ck"}}));
}

TEST(ContainerEnvTest, PythonStrRendering) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"\"abc\"", "abc"},
      {"10", "10"},
      {"0.0001", "0.0001"},
      {"1e-05", "1e-05"},
      {"true", "True"},
      {"false", "False"},
      {"null", "None"},
      {"not json", "not json"},
      {"[1,\"a\"]", "[1, 'a']"},
      {"{\"k\":true}", "{'k': True}"},
      {"2.5", "2.5"},
  };
  for (const auto& c : cases) EXPECT_EQ(PythonStr(c.in), c.out) << c.in;
}

TEST(ContainerEnvTest, ToolkitUserArgs) {
  std::map<std::string, std::string> hps = {{"lr", "0.1"},
                                            {"epochs", "10"},
                                            {"b", "\"x\""},
                                            {"flag", "true"},
                                            {"d", "{\"b\":\"x\",\"a\":1}"},
                                            {"sagemaker_program", "\"t.py\""},
                                            {"list", "[1,\"a\"]"},
                                            {"s", "plain text"}};
  std::vector<std::string> want = {"-b",   "x",      "-d",   "a=1,b=x",   "--epochs",
                                   "10",   "--flag", "True", "--list",    "[1, 'a']",
                                   "--lr", "0.1",    "-s",   "plain text"};
  EXPECT_EQ(ToolkitUserArgs(hps), want);
}

TEST(ContainerEnvTest, ToolkitParams) {
  ToolkitParams p = ParseToolkitParams(SampleConfig().spec.hyperparameters);
  EXPECT_EQ(p.program, "train.py");
  EXPECT_EQ(p.submit_directory, "file:///src");
  EXPECT_EQ(p.log_level, 20);
  EXPECT_EQ(p.framework_json, R"({"sagemaker_mpi_enabled":true})");
  EXPECT_EQ(p.user_json,
            R"({"batch-size":256,"learning-rate":0.0001,"name":"resnet","raw":"not json"})");
}

TEST(ContainerEnvTest, SmEnvironment) {
  auto env = BuildContainerEnv(SampleConfig(), "/opt/ml", "/root");
  std::map<std::string, std::string> want = {
      {"PATH", kBasePath},
      {"HOME", "/root"},
      {"LANG", "C.UTF-8"},
      {"PYTHONUNBUFFERED", "1"},
      {"IMAGE_VAR", "img"},
      {"OVERRIDDEN", "user"},
      {"TRAINING_JOB_NAME", "job-1"},
      {"TRAINING_JOB_ARN", "arn:aws:sagemaker:us-west-2:123456789012:training-job/job-1"},
      {"AWS_REGION", "us-west-2"},
      {"SM_HOSTS", R"(["algo-1","algo-2"])"},
      {"SM_NETWORK_INTERFACE_NAME", "eth0"},
      {"SM_HPS", R"({"batch-size":256,"learning-rate":0.0001,"name":"resnet","raw":"not json"})"},
      {"SM_USER_ENTRY_POINT", "train.py"},
      {"SM_FRAMEWORK_PARAMS", R"({"sagemaker_mpi_enabled":true})"},
      {"SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"},
      {"SM_CHANNELS", R"(["train","validation"])"},
      {"SM_CURRENT_HOST", "algo-2"},
      {"SM_CURRENT_INSTANCE_TYPE", "ml.m5.xlarge"},
      {"SM_CURRENT_INSTANCE_GROUP", "homogeneousCluster"},
      {"SM_CURRENT_INSTANCE_GROUP_HOSTS", R"(["algo-1","algo-2"])"},
      {"SM_INSTANCE_GROUPS", R"(["homogeneousCluster"])"},
      {"SM_DISTRIBUTION_INSTANCE_GROUPS", R"(["homogeneousCluster"])"},
      {"SM_IS_HETERO", "false"},
      {"SM_MODULE_NAME", "train"},
      {"SM_LOG_LEVEL", "20"},
      {"SM_INPUT_DIR", "/opt/ml/input"},
      {"SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"},
      {"SM_OUTPUT_DIR", "/opt/ml/output"},
      {"SM_NUM_CPUS", "99"},  // spec.environment wins
      {"SM_NUM_GPUS", "0"},
      {"SM_NUM_NEURONS", "0"},
      {"SM_MODEL_DIR", "/opt/ml/model"},
      {"SM_MODULE_DIR", "file:///src"},
      {"SM_USER_ARGS",
       R"(["--batch-size","256","--learning-rate","0.0001","--name","resnet","--raw","not json"])"},
      {"SM_OUTPUT_INTERMEDIATE_DIR", "/opt/ml/output/intermediate"},
      {"SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"},
      {"SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"},
      {"SM_HP_LEARNING-RATE", "0.0001"},
      {"SM_HP_BATCH-SIZE", "256"},
      {"SM_HP_NAME", "resnet"},
      {"SM_HP_RAW", "not json"},
      {"SM_MASTER_ADDR", "algo-1"},
      {"SM_MASTER_PORT", "7777"},
      {"SM_HOST_COUNT", "2"},
      {"SM_CURRENT_HOST_RANK", "1"},
  };
  for (const auto& [k, v] : want) {
    ASSERT_TRUE(env.count(k)) << k;
    EXPECT_EQ(env[k], v) << k;
  }
  EXPECT_FALSE(env.count("SM_FRAMEWORK_MODULE"));
  EXPECT_FALSE(env.count("SM_HP_SAGEMAKER_PROGRAM"));
  EXPECT_EQ(json::parse(env["SM_RESOURCE_CONFIG"]),
            json::parse(ResourceConfigJson(SampleConfig())));
  EXPECT_EQ(json::parse(env["SM_INPUT_DATA_CONFIG"]),
            json::parse(InputDataConfigJson(SampleConfig().spec)));
  json training_env = json::parse(env["SM_TRAINING_ENV"]);
  EXPECT_EQ(training_env["channel_input_dirs"]["train"], "/opt/ml/input/data/train");
  EXPECT_EQ(training_env["is_master"], false);
  EXPECT_EQ(training_env["master_hostname"], "algo-1");
  EXPECT_EQ(training_env["hyperparameters"]["batch-size"], 256);
  EXPECT_EQ(json::parse(env["SM_INSTANCE_GROUPS_DICT"])["homogeneousCluster"]["hosts"],
            json::parse(R"(["algo-1","algo-2"])"));
}

TEST(ContainerEnvTest, PathsFollowTheMlRootAndFrameworkModule) {
  auto c = SampleConfig();
  c.image.env["SAGEMAKER_TRAINING_MODULE"] = "sagemaker_pytorch_container.training:main";
  auto env = BuildContainerEnv(c, "/srv/inst", "/home/u");
  EXPECT_EQ(env["SM_MODEL_DIR"], "/srv/inst/model");
  EXPECT_EQ(env["SM_CHANNEL_TRAIN"], "/srv/inst/input/data/train");
  EXPECT_EQ(env["HOME"], "/home/u");
  EXPECT_EQ(env["SM_FRAMEWORK_MODULE"], "sagemaker_pytorch_container.training:main");
}

TEST(ContainerEnvTest, CommandRuntimeArgv) {
  struct Case {
    std::vector<std::string> image, entrypoint, args, want;
  } cases[] = {
      {{"/bin/app"}, {}, {}, {"/bin/app", "train"}},
      {{"/bin/app"}, {}, {"a", "b"}, {"/bin/app", "a", "b"}},
      {{"/bin/app"}, {"/bin/sh"}, {}, {"/bin/sh"}},
      {{"/bin/app"}, {"/bin/sh", "-c"}, {"echo hi"}, {"/bin/sh", "-c", "echo hi"}},
      {{}, {}, {}, {"train"}},
  };
  for (const auto& tc : cases) {
    auto c = SampleConfig();
    c.image.command = tc.image;
    c.spec.container_entrypoint = tc.entrypoint;
    c.spec.container_arguments = tc.args;
    auto cmd = BuildTrainingCommand(c, "/opt/ml");
    ASSERT_TRUE(cmd.ok()) << cmd.status().ToString();
    EXPECT_EQ(cmd->argv, tc.want);
    EXPECT_EQ(cmd->cwd, "/");
    EXPECT_FALSE(cmd->toolkit);
  }
}

TEST(ContainerEnvTest, PythonFrameworkCommand) {
  auto c = SampleConfig();
  c.image.runtime = model::ImageEntry::Runtime::kPythonFramework;
  c.spec.hyperparameters = {{"sagemaker_program", "\"train.py\""}, {"epochs", "3"}, {"x", "1"}};
  auto cmd = BuildTrainingCommand(c, "/opt/ml");
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->argv,
            (std::vector<std::string>{"/usr/bin/python3", "train.py", "--epochs", "3", "-x", "1"}));
  EXPECT_EQ(cmd->cwd, "/opt/ml/code");
  EXPECT_TRUE(cmd->toolkit);

  c.spec.hyperparameters = {{"sagemaker_program", "mypkg"}};
  cmd = BuildTrainingCommand(c, "/opt/ml");
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->argv, (std::vector<std::string>{"/usr/bin/python3", "-m", "mypkg"}));

  c.spec.hyperparameters = {};
  EXPECT_EQ(BuildTrainingCommand(c, "/opt/ml").status().code(), StatusCode::kInvalidArgument);
  c.spec.hyperparameters = {{"sagemaker_program", "../evil.py"}};
  EXPECT_EQ(BuildTrainingCommand(c, "/opt/ml").status().code(), StatusCode::kInvalidArgument);

  c.spec.container_entrypoint = {"/bin/true"};  // an entrypoint bypasses the toolkit
  cmd = BuildTrainingCommand(c, "/opt/ml");
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->argv, (std::vector<std::string>{"/bin/true"}));
  EXPECT_FALSE(cmd->toolkit);
}

TEST(ContainerEnvTest, ExecuteUserScriptErrorText) {
  EXPECT_EQ(ExecuteUserScriptError(2, {"Traceback", "boom", "boom", "ValueError: x"},
                                   {"/usr/bin/python3", "train.py", "--epochs", "1"}),
            "ExecuteUserScriptError:\nExitCode 2\nErrorMessage \"Traceback\nboom\nValueError: x\"\n"
            "Command \"/usr/bin/python3 train.py --epochs 1\"");
  std::string big(2000, 'e');
  std::string text = ExecuteUserScriptError(1, {big}, {"x"});
  EXPECT_NE(text.find("ErrorMessage \"" + std::string(1024, 'e') + "\""), std::string::npos);
}

TEST(ContainerEnvTest, MultiNodeVariablesFollowTheInstanceNetwork) {
  model::InstanceConfig c = SampleConfig();
  c.hosts = {"algo-10", "algo-2", "algo-1"};
  c.network.interface = "eth0";
  c.network.address = "10.9.8.3";
  c.network.master_port = 7788;
  auto env = BuildContainerEnv(c, "/opt/ml", "/root");
  EXPECT_EQ(env["SM_HOSTS"], R"(["algo-1","algo-2","algo-10"])");  // by number, not by text
  EXPECT_EQ(env["SM_CURRENT_HOST"], "algo-2");
  EXPECT_EQ(env["SM_CURRENT_HOST_RANK"], "1");
  EXPECT_EQ(env["SM_HOST_COUNT"], "3");
  EXPECT_EQ(env["SM_MASTER_ADDR"], "algo-1");
  EXPECT_EQ(env["SM_MASTER_PORT"], "7788");
  EXPECT_EQ(env["SM_NETWORK_INTERFACE_NAME"], "eth0");
  c.network.interface = "lo";  // loopback aliases
  env = BuildContainerEnv(c, "/opt/ml", "/root");
  EXPECT_EQ(env["SM_NETWORK_INTERFACE_NAME"], "lo");
  EXPECT_EQ(json::parse(ResourceConfigJson(c))["network_interface_name"], "lo");
}

}  // namespace
}  // namespace ty::agent
