#include "server/bounded_yaml.h"

#include <gtest/gtest.h>

#include <string>

namespace ty::server {
namespace {

std::string FlowSequences(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string BlockMappings(size_t depth) {
  std::string text;
  for (size_t i = 0; i < depth; ++i) text += std::string(i * 2, ' ') + "k:\n";
  return text + std::string(depth * 2, ' ') + "leaf\n";
}

struct YamlCase {
  const char* label;
  std::string text;
  bool ok;
  const char* error;
};

class LoadYamlTest : public ::testing::TestWithParam<YamlCase> {};

TEST_P(LoadYamlTest, AcceptsOrRefuses) {
  const YamlCase& c = GetParam();
  auto node = LoadYaml(c.text);
  ASSERT_EQ(node.ok(), c.ok) << node.status().message();
  if (!c.ok) {
    EXPECT_EQ(node.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(node.status().message().find(c.error), std::string::npos) << node.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LoadYamlTest,
    ::testing::Values(
        YamlCase{"Empty", "", true, ""}, YamlCase{"Mapping", "a: 1\nb: [x, {c: d}]\n", true, ""},
        YamlCase{"FlowAtLimit", FlowSequences(kMaxYamlDepth), true, ""},
        YamlCase{"FlowPastLimit", FlowSequences(kMaxYamlDepth + 1), false, "deeper than 64"},
        YamlCase{"BlockAtLimit", BlockMappings(kMaxYamlDepth), true, ""},
        YamlCase{"BlockPastLimit", BlockMappings(kMaxYamlDepth + 1), false, "deeper than 64"},
        // Past yaml-cpp's own guard (2,000) and unclosed: refused by the depth limit first.
        YamlCase{"UnclosedHundredThousand", std::string(100000, '['), false, "deeper than 64"},
        YamlCase{"TooLarge", "a: " + std::string(kMaxYamlBytes, 'x') + "\n", false,
                 "the limit is 4194304 bytes"},
        YamlCase{"Syntax", "a: [x\n", false, "yaml-cpp"}),
    [](const ::testing::TestParamInfo<YamlCase>& p) { return p.param.label; });

TEST(LoadYaml, BuildsTheFirstDocument) {
  auto node = LoadYaml("a: [1, 2]\n---\nb: 3\n");
  ASSERT_TRUE(node.ok()) << node.status().message();
  EXPECT_EQ((*node)["a"][1].as<int>(), 2);
  EXPECT_FALSE((*node)["b"]);
}

TEST(LoadYaml, DepthErrorSaysWhere) {
  auto node = LoadYaml("a:\n  b: " + FlowSequences(100) + "\n");
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("line 2"), std::string::npos) << node.status().message();
}

TEST(LoadYamlFile, ErrorsNameTheFile) {
  auto node = LoadYamlFile("/nonexistent/trainyard.yaml");
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("/nonexistent/trainyard.yaml"), std::string::npos);
}

}  // namespace
}  // namespace ty::server
