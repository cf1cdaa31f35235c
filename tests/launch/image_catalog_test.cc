#include "launch/image_catalog.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ty::launch {
namespace {

using Runtime = model::ImageEntry::Runtime;

struct BuiltinCase {
  std::string image;
  bool found;
};

class ImageCatalogBuiltinTest : public ::testing::TestWithParam<BuiltinCase> {};

TEST_P(ImageCatalogBuiltinTest, ResolvesPyTorchTrainingImages) {
  ImageCatalog catalog({});
  auto entry = catalog.Resolve(GetParam().image);
  if (GetParam().found) {
    ASSERT_TRUE(entry.ok()) << entry.status().ToString();
    EXPECT_EQ(entry->runtime, Runtime::kPythonFramework);
    EXPECT_TRUE(entry->command.empty());
  } else {
    ASSERT_FALSE(entry.ok()) << GetParam().image;
    EXPECT_EQ(entry.status().code(), StatusCode::kNotFound);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Names, ImageCatalogBuiltinTest,
    ::testing::Values(
        BuiltinCase{"763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-gpu-py310",
                    true},
        BuiltinCase{"763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:1.13-cpu-py39",
                    true},
        BuiltinCase{"763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training@sha256:"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                    true},
        BuiltinCase{"pytorch-training:2.1.0-cpu-py310", true},
        BuiltinCase{"763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13", false},
        BuiltinCase{"763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0", false},
        BuiltinCase{"pytorch-training", false}, BuiltinCase{"", false}));

TEST(ImageCatalogTest, BuiltinRulesComeAfterConfiguredOnes) {
  ImageRule mine;
  mine.match = "my-image:*";
  mine.entry.command = {"/bin/true"};
  ImageCatalog catalog({mine});
  auto builtins = ImageCatalog::BuiltinRules();
  ASSERT_EQ(catalog.rules().size(), 1 + builtins.size());
  EXPECT_EQ(catalog.rules().front().match, "my-image:*");
  for (size_t i = 0; i < builtins.size(); ++i) {
    EXPECT_EQ(catalog.rules()[i + 1].match, builtins[i].match);
  }
}

TEST(ImageCatalogTest, ConfiguredRuleWinsOverBuiltin) {
  ImageRule override_rule;
  override_rule.match = "*/pytorch-training:*";
  override_rule.entry.runtime = Runtime::kCommand;
  override_rule.entry.command = {"/usr/bin/python3", "train.py"};
  override_rule.entry.workdir = "/srv/code";
  override_rule.entry.env = {{"A", "1"}};
  ImageCatalog catalog({override_rule});
  auto entry = catalog.Resolve("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1");
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  EXPECT_EQ(entry->runtime, Runtime::kCommand);
  EXPECT_EQ(entry->command, (std::vector<std::string>{"/usr/bin/python3", "train.py"}));
  EXPECT_EQ(entry->workdir, "/srv/code");
  EXPECT_EQ(entry->env.at("A"), "1");
}

TEST(ImageCatalogTest, FirstMatchingConfiguredRuleWins) {
  ImageRule specific;
  specific.match = "registry.local/team/*:v2";
  specific.entry.command = {"/opt/v2/run"};
  ImageRule general;
  general.match = "registry.local/team/*";
  general.entry.command = {"/opt/any/run"};
  ImageCatalog catalog({specific, general});

  struct Case {
    std::string image;
    std::string command0;
  };
  for (const Case& c : {Case{"registry.local/team/trainer:v2", "/opt/v2/run"},
                        Case{"registry.local/team/trainer:v1", "/opt/any/run"},
                        Case{"registry.local/team/other", "/opt/any/run"}}) {
    auto entry = catalog.Resolve(c.image);
    ASSERT_TRUE(entry.ok()) << c.image;
    ASSERT_EQ(entry->command.size(), 1u);
    EXPECT_EQ(entry->command[0], c.command0) << c.image;
  }
}

TEST(ImageCatalogTest, UnknownImageIsNotFoundAndNamed) {
  ImageRule rule;
  rule.match = "known:*";
  rule.entry.command = {"/bin/true"};
  ImageCatalog catalog({rule});
  auto entry = catalog.Resolve("example.com/unknown-image:1.0");
  ASSERT_FALSE(entry.ok());
  EXPECT_EQ(entry.status().code(), StatusCode::kNotFound);
  EXPECT_NE(entry.status().message().find("example.com/unknown-image:1.0"), std::string::npos)
      << entry.status().message();
}

}  // namespace
}  // namespace ty::launch
