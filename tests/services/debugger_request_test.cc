#include "services/sagemaker/debugger_request.h"

#include <gtest/gtest.h>

#include <string>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::services {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr char kImage[] =
    "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest";

class DebuggerRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto real = RealPath(dir_.path());
    ASSERT_TRUE(real.ok());
    root_ = *real;
    policy_.file_roots = {root_};
    spec_.name = "job";
    spec_.output_path = Uri("out");
  }
  std::string Uri(const std::string& rel) const { return "file://" + root_ + "/" + rel; }
  static json Rule(const std::string& name, const std::string& rule,
                   const std::string& image = kImage) {
    return {{"RuleConfigurationName", name},
            {"RuleEvaluatorImage", image},
            {"RuleParameters", {{"rule_to_invoke", rule}}}};
  }
  Status Parse(const json& body) { return ParseDebuggerMembers(body, policy_, &spec_); }
  void ExpectRefused(const json& body, const std::string& part) {
    Status s = Parse(body);
    ASSERT_FALSE(s.ok()) << body.dump();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(part), std::string::npos) << s.message();
  }

  TempDir dir_{"ty_debugger_request_test_"};
  std::string root_;
  RequestPolicy policy_;
  model::JobSpec spec_;
};

TEST(BuiltInRulesImage, RegionalImagesOnly) {
  EXPECT_TRUE(IsBuiltInRulesImage(kImage));
  EXPECT_TRUE(IsBuiltInRulesImage(
      "895741380848.dkr.ecr.us-west-2.amazonaws.com/sagemaker-debugger-rules:latest"));
  EXPECT_TRUE(IsBuiltInRulesImage(
      "618459771430.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-debugger-rules:latest"));
  // Wrong account for the region, custom-rule image, other tag, other domain.
  EXPECT_FALSE(IsBuiltInRulesImage(
      "895741380848.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"));
  EXPECT_FALSE(IsBuiltInRulesImage(
      "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rule-evaluator:latest"));
  EXPECT_FALSE(IsBuiltInRulesImage(
      "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:v2"));
  EXPECT_FALSE(IsBuiltInRulesImage(
      "618459771430.dkr.ecr.cn-north-1.amazonaws.com/sagemaker-debugger-rules:latest"));
  EXPECT_FALSE(IsBuiltInRulesImage("sagemaker-debugger-rules:latest"));
  EXPECT_FALSE(IsBuiltInRulesImage(""));
}

TEST_F(DebuggerRequestTest, HookConfigIsParsedAndRulesCollectionsMerged) {
  json body = {
      {"DebugHookConfig",
       {{"S3OutputPath", Uri("dbg")},
        {"HookParameters", {{"save_interval", "10"}}},
        {"CollectionConfigurations",
         {{{"CollectionName", "gradients"}, {"CollectionParameters", {{"save_interval", "2"}}}},
          {{"CollectionName", "biases"}}}}}},
      {"DebugRuleConfigurations",
       {Rule("vg", "VanishingGradient"),
        Rule("dr", "DeadRelu"),
        {{"RuleConfigurationName", "az"},
         {"RuleEvaluatorImage", kImage},
         {"RuleParameters", {{"rule_to_invoke", "AllZero"}, {"collection_names", "weights, x"}}}},
        Rule("unknown", "NoSuchRule")}}};
  ASSERT_TRUE(Parse(body).ok()) << Parse(body).ToString();
  ASSERT_TRUE(spec_.debug_hook);
  EXPECT_EQ(spec_.debug_hook->s3_output_path, Uri("dbg"));
  EXPECT_EQ(spec_.debug_hook->local_path, "/opt/ml/output/tensors");
  EXPECT_EQ(spec_.debug_hook->hook_parameters.at("save_interval"), "10");
  std::map<std::string, std::map<std::string, std::string>> got;
  std::vector<std::string> order;
  for (const auto& c : spec_.debug_hook->collections) {
    got[c.name] = c.parameters;
    order.push_back(c.name);
  }
  EXPECT_EQ(order,
            (std::vector<std::string>{"gradients", "biases", "relu_output", "weights", "x"}));
  // The user's own gradients parameters win over the rule's default interval.
  EXPECT_EQ(got["gradients"].at("save_interval"), "2");
  EXPECT_EQ(got["relu_output"].at("include_regex"), ".*relu_output");
  EXPECT_EQ(got["relu_output"].at("save_interval"), "500");
  ASSERT_EQ(spec_.debug_rules.size(), 4u);
  EXPECT_EQ(spec_.debug_rules[0].rule, "VanishingGradient");
  EXPECT_EQ(spec_.debug_rules[3].rule, "NoSuchRule");  // refused at evaluation, not at create
  EXPECT_EQ(spec_.debug_rules[2].parameters.at("collection_names"), "weights, x");
}

TEST_F(DebuggerRequestTest, RulesWithoutHookConfigGetAHookUnderTheOutputPath) {
  json body = {{"DebugRuleConfigurations", {Rule("lnd", "LossNotDecreasing")}}};
  ASSERT_TRUE(Parse(body).ok());
  ASSERT_TRUE(spec_.debug_hook);
  EXPECT_EQ(spec_.debug_hook->s3_output_path, Uri("out"));
  ASSERT_EQ(spec_.debug_hook->collections.size(), 1u);
  EXPECT_EQ(spec_.debug_hook->collections[0].name, "losses");
  EXPECT_EQ(model::DebugOutputUri(spec_), Uri("out") + "/job/debug-output/");
}

TEST_F(DebuggerRequestTest, TensorBoardAndProfiler) {
  json body = {{"TensorBoardOutputConfig", {{"S3OutputPath", Uri("tb")}}},
               {"ProfilerConfig", {{"ProfilingIntervalInMilliseconds", 200}}},
               {"ProfilerRuleConfigurations", {Rule("ProfilerReport-1", "ProfilerReport")}}};
  ASSERT_TRUE(Parse(body).ok()) << Parse(body).ToString();
  ASSERT_TRUE(spec_.tensorboard);
  EXPECT_EQ(spec_.tensorboard->local_path, "/opt/ml/output/tensorboard");
  EXPECT_EQ(model::TensorBoardOutputUri(spec_), Uri("tb") + "/job/tensorboard-output/");
  ASSERT_TRUE(spec_.profiler);
  EXPECT_EQ(spec_.profiler->interval_ms, 200);
  EXPECT_EQ(spec_.profiler->s3_output_path, Uri("out"));  // the job's output path by default
  EXPECT_FALSE(spec_.profiler->disabled);
  EXPECT_EQ(model::ProfilerOutputUri(spec_), Uri("out") + "/job/profiler-output/");
  ASSERT_EQ(spec_.profiler_rules.size(), 1u);
  EXPECT_EQ(spec_.profiler_rules[0].rule, "ProfilerReport");
}

TEST_F(DebuggerRequestTest, DisabledProfilerHasNoOutput) {
  ASSERT_TRUE(Parse({{"ProfilerConfig", {{"DisableProfiler", true}}}}).ok());
  ASSERT_TRUE(spec_.profiler);
  EXPECT_TRUE(spec_.profiler->disabled);
  EXPECT_EQ(model::ProfilerOutputUri(spec_), "");
}

TEST_F(DebuggerRequestTest, BadInputIsRefusedByName) {
  ExpectRefused({{"DebugRuleConfigurations",
                  {Rule("c", "MyRule",
                        "503895931360.dkr.ecr.us-east-1.amazonaws.com/"
                        "sagemaker-debugger-rule-evaluator:latest")}}},
                "custom rule images are not supported");
  ExpectRefused({{"DebugRuleConfigurations", {Rule("c", "MyRule", "my/own:image")}}},
                "custom rule images are not supported");
  ExpectRefused({{"ProfilerRuleConfigurations",
                  {Rule("d", "DetailedProfilerProcessing",
                        "503895931360.dkr.ecr.us-east-1.amazonaws.com/"
                        "detailed-profiler-processing:latest")}}},
                "detailed profiling, which is not supported");
  ExpectRefused({{"ProfilerRuleConfigurations", {Rule("c", "CPUBottleneck", "x:latest")}}},
                "custom rule images are not supported");
  json many = json::array();
  for (int i = 0; i < 21; ++i) many.push_back(Rule("r" + std::to_string(i), "AllZero"));
  ExpectRefused({{"DebugRuleConfigurations", many}}, "at most 20");
  ExpectRefused({{"DebugRuleConfigurations", {Rule("a", "AllZero"), Rule("a", "Overfit")}}},
                "RuleConfigurationName 'a' is repeated");
  ExpectRefused({{"DebugRuleConfigurations", {Rule("a", "AllZero")}},
                 {"ProfilerRuleConfigurations", {Rule("a", "CPUBottleneck")}}},
                "RuleConfigurationName 'a' is repeated");
  json no_invoke = Rule("a", "AllZero");
  no_invoke["RuleParameters"] = {{"threshold", "50"}};
  ExpectRefused({{"DebugRuleConfigurations", {no_invoke}}}, "rule_to_invoke is required");
  ExpectRefused({{"ProfilerConfig", {{"ProfilingIntervalInMilliseconds", 300}}}},
                "ProfilingIntervalInMilliseconds 300");
  ExpectRefused(
      {{"ProfilerConfig",
        {{"ProfilingParameters", {{"DataloaderProfilingConfig", "{\"StartStep\": 5}"}}}}}},
      "ProfilingParameters (DataloaderProfilingConfig) is not supported");
  ExpectRefused({{"DebugHookConfig", {{"S3OutputPath", "file:///elsewhere"}}}},
                "DebugHookConfig.S3OutputPath");
  ExpectRefused({{"DebugHookConfig", {{"S3OutputPath", Uri("d")}, {"LocalPath", "/etc"}}}},
                "DebugHookConfig.LocalPath must lie under /opt/ml/");
  ExpectRefused({{"TensorBoardOutputConfig",
                  {{"S3OutputPath", Uri("d")}, {"LocalPath", "/opt/ml/input/config"}}}},
                "TensorBoardOutputConfig.LocalPath");
  ExpectRefused({{"ProfilerConfig", {{"DisableProfiler", true}}},
                 {"ProfilerRuleConfigurations", {Rule("p", "CPUBottleneck")}}},
                "DisableProfiler is true");
}

}  // namespace
}  // namespace ty::services
