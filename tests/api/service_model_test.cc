#include "api/service_model.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace ty::api {
namespace {

TEST(ServiceModelTest, EmbeddedModelHasAllServedOperations) {
  auto model = ServiceModel::Embedded();
  ASSERT_NE(model, nullptr);
  const std::vector<std::string> kOps = {"CreateTrainingJob",
                                         "DescribeTrainingJob",
                                         "ListTrainingJobs",
                                         "StopTrainingJob",
                                         "DeleteTrainingJob",
                                         "AddTags",
                                         "ListTags",
                                         "DeleteTags",
                                         "Search",
                                         "DescribeProcessingJob"};
  EXPECT_EQ(model->operations().size(), kOps.size());
  for (const auto& name : kOps) {
    const Operation* op = model->FindOperation(name);
    ASSERT_NE(op, nullptr) << name;
    ASSERT_NE(op->input, nullptr) << name;
    EXPECT_EQ(op->input->type, ShapeType::kStructure) << name;
  }
  EXPECT_EQ(model->FindOperation("CreateEndpoint"), nullptr);
  EXPECT_EQ(model->FindOperation("StopTrainingJob")->output, nullptr);
  EXPECT_EQ(model->FindOperation("CreateTrainingJob")->output->name, "CreateTrainingJobResponse");
}

TEST(ServiceModelTest, CreateTrainingJobRequiresUnionOfModelsAAndB) {
  auto model = ServiceModel::Embedded();
  const Shape* request = model->FindShape("CreateTrainingJobRequest");
  ASSERT_NE(request, nullptr);
  std::set<std::string> required;
  for (const Member& m : request->members) {
    if (m.required) required.insert(m.name);
  }
  EXPECT_EQ(required,
            (std::set<std::string>{"AlgorithmSpecification", "OutputDataConfig", "ResourceConfig",
                                   "RoleArn", "StoppingCondition", "TrainingJobName"}));
  // Model A only members are present.
  const Shape* output = model->FindShape("OutputDataConfig");
  ASSERT_NE(output, nullptr);
  ASSERT_NE(output->FindMember("CompressionType"), nullptr);
  EXPECT_EQ(output->FindMember("CompressionType")->shape->enum_values,
            (std::vector<std::string>{"GZIP", "NONE"}));
}

TEST(ServiceModelTest, ShapesCarryConstraints) {
  auto model = ServiceModel::Embedded();
  const Shape* name = model->FindShape("TrainingJobName");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->type, ShapeType::kString);
  EXPECT_EQ(name->min, 1);
  EXPECT_EQ(name->max, 63);
  EXPECT_EQ(name->pattern, "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}");
  // Patterns are full matches even without anchors.
  EXPECT_TRUE(name->MatchesPattern("my-job-1"));
  EXPECT_FALSE(name->MatchesPattern("my_job"));
  EXPECT_FALSE(name->MatchesPattern("-job"));

  const Shape* tag_key = model->FindShape("TagKey");
  ASSERT_NE(tag_key, nullptr);
  ASSERT_NE(tag_key->regex, nullptr) << "\\p{L} patterns must compile in RE2";
  EXPECT_TRUE(tag_key->MatchesPattern("Équipe 42:_./=+-@"));
  EXPECT_FALSE(tag_key->MatchesPattern("bad#key"));

  const Shape* tags = model->FindShape("TagList");
  ASSERT_NE(tags, nullptr);
  EXPECT_EQ(tags->type, ShapeType::kList);
  EXPECT_EQ(tags->list_member->name, "Tag");
  const Shape* hp = model->FindShape("HyperParameters");
  ASSERT_NE(hp, nullptr);
  EXPECT_EQ(hp->map_value->max, 2500);
}

TEST(ServiceModelTest, KeepsOnlyReachableShapesAndCountsUncompilablePatterns) {
  auto model = ServiceModel::Embedded();
  EXPECT_EQ(model->FindShape("CreateEndpointInput"), nullptr);
  EXPECT_EQ(model->shapes().size(), 694u);
  size_t with_pattern = 0;
  for (const auto& [n, s] : model->shapes()) with_pattern += s.pattern.empty() ? 0 : 1;
  EXPECT_GT(with_pattern, 100u);
  // Java lookbehinds have no RE2 equivalent: these two patterns are not checked (the shapes'
  // length limits still are). A regenerated model that adds more must be reviewed here.
  EXPECT_EQ(model->uncompilable_patterns(),
            (std::vector<std::string>{"ArnOrName", "VersionedArnOrName"}));
}

TEST(ServiceModelTest, JavaOnlyPatternSyntaxIsTranslated) {
  auto model = ServiceModel::Embedded();
  struct Case {
    const char* shape;
    std::string value;
    bool matches;
  };
  const Case kCases[] = {
      // \p{Alnum}
      {"TrainingRepositoryCredentialsProviderArn",
       "arn:aws:lambda:us-east-1:123456789012:function:auth", true},
      {"TrainingRepositoryCredentialsProviderArn",
       "arn:aws:lambda:us_east:123456789012:function:auth", false},
      // [\S]{1,2048}: bound above RE2's 1000
      {"ModelPackageGroupArn",
       "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/" + std::string(1500, 'g'),
       true},
      {"ModelPackageGroupArn", "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/",
       false},
      // \uXXXX ranges including the surrogate-pair range (supplementary code points)
      {"TableName", "table \xF0\x9F\x98\x80", true},
      {"TableName", "bad\x01", false},
      // leading (?=.{1,32}$) lookahead
      {"CfnTemplateName", "my-template", true},
      {"CfnTemplateName", "-bad", false},
  };
  for (const Case& c : kCases) {
    const Shape* shape = model->FindShape(c.shape);
    ASSERT_NE(shape, nullptr) << c.shape;
    ASSERT_NE(shape->regex, nullptr) << c.shape;
    EXPECT_EQ(shape->MatchesPattern(c.value), c.matches) << c.shape << " " << c.value;
  }
}

TEST(ServiceModelTest, UncompilablePatternIsSkippedNotFatal) {
  auto model = ServiceModel::Load(R"({
    "operations": {"Op": {"name": "Op", "input": {"shape": "In"}}},
    "shapes": {
      "In": {"type": "structure", "members": {"A": {"shape": "Lookahead"}}, "required": ["A"]},
      "Lookahead": {"type": "string", "pattern": "(?!x).*"}
    }})");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->uncompilable_patterns(), std::vector<std::string>{"Lookahead"});
  EXPECT_TRUE((*model)->FindShape("Lookahead")->MatchesPattern("xyz"));
  EXPECT_TRUE((*model)->FindShape("In")->members[0].required);
}

TEST(ServiceModelTest, LoadRejectsBrokenModels) {
  struct Case {
    const char* name;
    const char* json;
  };
  const Case kCases[] = {
      {"not json", "{"},
      {"no shapes", R"({"operations": {}})"},
      {"unknown type", R"({"operations": {}, "shapes": {"X": {"type": "union"}}})"},
      {"dangling member",
       R"({"operations": {}, "shapes": {"X": {"type": "structure",
           "members": {"A": {"shape": "Missing"}}}}})"},
      {"dangling op", R"({"operations": {"Op": {"input": {"shape": "Missing"}}}, "shapes": {}})"},
      {"required unknown member",
       R"({"operations": {}, "shapes": {"X": {"type": "structure", "members": {},
           "required": ["A"]}}})"},
  };
  for (const Case& c : kCases) {
    auto model = ServiceModel::Load(c.json);
    EXPECT_FALSE(model.ok()) << c.name;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument) << c.name;
  }
}

TEST(ServiceModelTest, ConcurrentReadsAgree) {
  auto model = ServiceModel::Embedded();
  const Shape* name = model->FindShape("TrainingJobName");
  std::vector<std::thread> threads;
  std::vector<int> matches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        matches[t] += name->MatchesPattern("job-" + std::to_string(i)) ? 1 : 0;
        matches[t] += ServiceModel::Embedded()->FindOperation("Search") != nullptr ? 0 : 1000;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(matches, std::vector<int>(4, 1000));
}

}  // namespace
}  // namespace ty::api
