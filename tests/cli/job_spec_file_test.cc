#include "cli/job_spec_file.h"

#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::cli {
namespace {

using nlohmann::json;
using testing::TempDir;

class LoadJobSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto real = RealPath(dir_.path());
    ASSERT_TRUE(real.ok());
    base_ = *real + "/project";
    ASSERT_TRUE(MakeDirs(base_).ok());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = base_ + "/" + name;
    EXPECT_TRUE(WriteFileAtomic(path, text).ok());
    return path;
  }
  TempDir dir_{"ty_cli_spec_test_"};
  std::string base_;  // the spec's folder, symlinks resolved
};

TEST_F(LoadJobSpecTest, YamlSpecResolvesRelativeUrisAndTypesScalars) {
  std::string path = Write("job.yaml", R"(
TrainingJobName: my-job
AlgorithmSpecification:
  TrainingImage: pytorch-training:2.1
  TrainingInputMode: File
HyperParameters:
  epochs: 10
  lr: 0.001
  verbose: true
  sagemaker_submit_directory: '"file://./code"'
  sagemaker_program: train.py
Environment:
  THREADS: 4
InputDataConfig:
  - ChannelName: train
    DataSource:
      S3DataSource:
        S3DataType: S3Prefix
        S3Uri: file://data/train/
  - ChannelName: shared
    DataSource:
      S3DataSource:
        S3DataType: S3Prefix
        S3Uri: file:///srv/shared
OutputDataConfig:
  S3OutputPath: file://./out
ResourceConfig:
  InstanceType: ml.m5.large
  InstanceCount: 1
  VolumeSizeInGB: '30'
StoppingCondition:
  MaxRuntimeInSeconds: 3600
EnableNetworkIsolation: false
Tags:
  - Key: team
    Value: 42
)");
  auto spec = LoadJobSpec(path);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const json& j = *spec;
  EXPECT_EQ(j["TrainingJobName"], "my-job");
  EXPECT_EQ(j["AlgorithmSpecification"]["TrainingImage"], "pytorch-training:2.1");

  // Typed scalars: plain numbers and booleans keep their type, quoted ones are strings.
  EXPECT_TRUE(j["ResourceConfig"]["InstanceCount"].is_number_integer());
  EXPECT_EQ(j["ResourceConfig"]["InstanceCount"], 1);
  EXPECT_EQ(j["ResourceConfig"]["VolumeSizeInGB"], "30");
  EXPECT_EQ(j["StoppingCondition"]["MaxRuntimeInSeconds"], 3600);
  EXPECT_EQ(j["EnableNetworkIsolation"], false);

  // String maps take YAML numbers and booleans as strings.
  EXPECT_EQ(j["HyperParameters"]["epochs"], "10");
  EXPECT_EQ(j["HyperParameters"]["lr"], "0.001");
  EXPECT_EQ(j["HyperParameters"]["verbose"], "true");
  EXPECT_EQ(j["HyperParameters"]["sagemaker_program"], "train.py");
  EXPECT_EQ(j["Environment"]["THREADS"], "4");
  EXPECT_EQ(j["Tags"][0]["Key"], "team");
  EXPECT_EQ(j["Tags"][0]["Value"], "42");

  // Relative file:// URIs resolve against the spec's folder; absolute ones stay.
  EXPECT_EQ(j["HyperParameters"]["sagemaker_submit_directory"], "\"file://" + base_ + "/code\"");
  EXPECT_EQ(j["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
            "file://" + base_ + "/data/train/");
  EXPECT_EQ(j["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"], "file:///srv/shared");
  EXPECT_EQ(j["OutputDataConfig"]["S3OutputPath"], "file://" + base_ + "/out");
}

TEST_F(LoadJobSpecTest, JsonSpec) {
  std::string path = Write("job.json", R"({
    "TrainingJobName": "j",
    "HyperParameters": {"sagemaker_submit_directory": "\"file://src\"", "epochs": "3"},
    "InputDataConfig": [{"ChannelName": "train",
      "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file://../data"}}}],
    "OutputDataConfig": {"S3OutputPath": "file:///abs/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}
  })");
  auto spec = LoadJobSpec(path);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const json& j = *spec;
  EXPECT_EQ(j["ResourceConfig"]["InstanceCount"], 1);
  EXPECT_EQ(j["HyperParameters"]["epochs"], "3");
  EXPECT_EQ(j["HyperParameters"]["sagemaker_submit_directory"], "\"file://" + base_ + "/src\"");
  EXPECT_EQ(j["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
            "file://" + RealPath(dir_.path()).value() + "/data");
  EXPECT_EQ(j["OutputDataConfig"]["S3OutputPath"], "file:///abs/out");
}

struct BadSpecCase {
  std::string label;
  std::string file;
  std::string text;
  std::string error;  // substring of the message
};

class BadSpecTest : public LoadJobSpecTest, public ::testing::WithParamInterface<BadSpecCase> {};

TEST_P(BadSpecTest, Refused) {
  std::string path = Write(GetParam().file, GetParam().text);
  auto spec = LoadJobSpec(path);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(path), std::string::npos) << spec.status().message();
  EXPECT_NE(spec.status().message().find(GetParam().error), std::string::npos)
      << spec.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadSpecTest,
    ::testing::Values(
        BadSpecCase{"MalformedYaml", "a.yaml", "TrainingJobName: [x\n", ""},
        BadSpecCase{"MalformedJson", "a.json", "{\"TrainingJobName\": ", "is not valid JSON"},
        BadSpecCase{"YamlScalar", "a.yaml", "just text\n", "must hold a mapping"},
        BadSpecCase{"YamlList", "a.yml", "- a\n- b\n", "must hold a mapping"},
        BadSpecCase{"JsonArray", "a.json", "[1, 2]", "must hold a mapping"},
        // Found by fuzz_job_spec: the spec was accepted, then serialising it for
        // the request threw and `trainyard run` died in std::terminate.
        BadSpecCase{"YamlInvalidUtf8ThrewWhenSent", "a.yaml", "TrainingJobName: \"a\xff\"\n",
                    "is not valid UTF-8"},
        BadSpecCase{
            "JsonTooDeep", "a.json",
            "{\"HyperParameters\": " + std::string(20000, '[') + std::string(20000, ']') + "}",
            "deeper than 64 levels"},
        BadSpecCase{"YamlTooDeep", "a.yaml", "HyperParameters: " + std::string(20000, '[') + "\n",
                    "deeper than 64 levels"},
        // Ten aliases per level, nine levels: a billion values from 500 bytes.
        BadSpecCase{"YamlAliasBomb", "a.yaml",
                    [] {
                      std::string y = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
                      for (int i = 1; i < 10; ++i) {
                        std::string p = "*l" + std::to_string(i - 1);
                        y += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + p;
                        for (int j = 1; j < 10; ++j) y += ", " + p;
                        y += "]\n";
                      }
                      return y;
                    }(),
                    "expands to more than 100000 values"},
        // Found by fuzz_job_spec: an anchor whose map holds an alias to itself is a cycle, and
        // the conversion recursed until the stack overflowed.
        BadSpecCase{"YamlRecursiveAliasOverflowedTheStack", "a.yaml",
                    "ResourceConfig: &base {InstanceType: ml.m5.large, Nested: *base}\n",
                    "nests deeper than 64 levels"}),
    [](const ::testing::TestParamInfo<BadSpecCase>& p) { return p.param.label; });

TEST_F(LoadJobSpecTest, MissingFileIsAnError) {
  auto spec = LoadJobSpec(base_ + "/absent.yaml");
  EXPECT_FALSE(spec.ok());
}

struct ResolveCase {
  std::string in;
  std::string out;
};

TEST(ResolveFileUriTest, Table) {
  const std::string base = "/home/me/proj";
  const std::vector<ResolveCase> cases = {
      {"file://./code", "file:///home/me/proj/code"},
      {"file://code", "file:///home/me/proj/code"},
      {"file://data/train/", "file:///home/me/proj/data/train/"},
      {"file://../shared", "file:///home/me/shared"},
      {"file://", "file:///home/me/proj/"},  // "." normalises with a trailing slash
      {"file:///abs/x", "file:///abs/x"},
      {"\"file://./code\"", "\"file:///home/me/proj/code\""},
      {"\"file:///abs/code\"", "\"file:///abs/code\""},
      {"\"plain\"", "\"plain\""},
      {"s3://bucket/key", "s3://bucket/key"},
      {"./code", "./code"},
      {"train.py", "train.py"},
      {"", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(ResolveFileUri(c.in, base), c.out) << c.in;
}

const std::regex kJobNamePattern("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$");

TEST(UniqueJobNameTest, ValidSageMakerNames) {
  for (const std::string& base :
       {std::string("my-job"), std::string("pytorch-training"), std::string(100, 'a'),
        std::string("a-very-long-base-name-that-goes-on-and-on-and-on-for-ever")}) {
    std::string name = UniqueJobName(base);
    EXPECT_LE(name.size(), 63u) << name;
    EXPECT_TRUE(std::regex_match(name, kJobNamePattern)) << name;
    EXPECT_EQ(name.rfind(base.substr(0, 20), 0), 0u) << name;
  }
}

TEST(UniqueJobNameTest, BasesOutsideThePatternAreCleaned) {
  for (const std::string& base : {std::string(""), std::string("_x"), std::string("my_job.v2"),
                                  std::string("-lead"), std::string("___")}) {
    std::string name = UniqueJobName(base);
    EXPECT_TRUE(std::regex_match(name, kJobNamePattern)) << "base '" << base << "' -> " << name;
  }
  EXPECT_EQ(UniqueJobName("my_job.v2").rfind("my-job-v2-", 0), 0u);
  EXPECT_EQ(UniqueJobName("").rfind("job-", 0), 0u);
}

TEST(UniqueJobNameTest, ShortBaseKeptWhole) {
  std::string name = UniqueJobName("my-job");
  // "<base>-YYYY-MM-DD-HH-MM-SS-mmm"
  EXPECT_TRUE(std::regex_match(
      name, std::regex("^my-job-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{3}$")))
      << name;
}

TEST(UniqueJobNameTest, DistinctAcrossCallsTwoMillisecondsApart) {
  std::string first = UniqueJobName("job");
  int64_t start = ToEpochMillis(std::chrono::system_clock::now());
  // Wait on the clock itself (no sleep): the name has millisecond resolution.
  while (ToEpochMillis(std::chrono::system_clock::now()) < start + 2) {
  }
  std::string second = UniqueJobName("job");
  EXPECT_NE(first, second);
}

}  // namespace
}  // namespace ty::cli
