#include "common/json.h"

#include <gtest/gtest.h>

#include <string>

namespace ty {
namespace {

std::string NestedArrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string NestedObjects(size_t depth) {
  std::string text;
  for (size_t i = 0; i < depth; ++i) text += "{\"a\":";
  text += "1";
  text += std::string(depth, '}');
  return text;
}

struct ParseCase {
  const char* label;
  std::string text;
  size_t max_depth;
  bool ok;
  const char* error;  // substring of the message when !ok
};

class ParseJsonTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseJsonTest, AcceptsOrRefuses) {
  const ParseCase& c = GetParam();
  auto parsed = ParseJson(c.text, c.max_depth);
  ASSERT_EQ(parsed.ok(), c.ok) << parsed.status().message();
  if (!c.ok) {
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.error), std::string::npos)
        << parsed.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseJsonTest,
    ::testing::Values(
        ParseCase{"Scalar", "42", 0, true, ""},
        ParseCase{"EmptyObjectIsDepthOne", "{}", 1, true, ""},
        ParseCase{"EmptyObjectPastDepthZero", "{}", 0, false, "deeper than 0 levels"},
        ParseCase{"ArraysAtLimit", NestedArrays(64), 64, true, ""},
        ParseCase{"ArraysPastLimit", NestedArrays(65), 64, false, "deeper than 64 levels"},
        ParseCase{"ObjectsAtLimit", NestedObjects(64), 64, true, ""},
        ParseCase{"ObjectsPastLimit", NestedObjects(65), 64, false, "deeper than 64 levels"},
        ParseCase{"SiblingsDoNotAddUp", "[" + NestedArrays(60) + "," + NestedArrays(60) + "]", 64,
                  true, ""},
        // The crash of issue 10: 20,000 levels in about 100 KB. It must be refused without
        // ever being built, and unclosed input is refused the same way.
        ParseCase{"TwentyThousandDeep", NestedObjects(20000), kMaxJsonDepth, false,
                  "deeper than 64 levels"},
        ParseCase{"UnclosedMillionDeep", std::string(1000000, '['), kMaxJsonDepth, false,
                  "deeper than 64 levels"},
        ParseCase{"Truncated", "{\"a\": ", 64, false, "not valid JSON"},
        ParseCase{"TrailingGarbage", "{} x", 64, false, "not valid JSON"},
        ParseCase{"Empty", "", 64, false, "not valid JSON"},
        ParseCase{"Comment", "{} // c", 64, false, "not valid JSON"}),
    [](const ::testing::TestParamInfo<ParseCase>& p) { return p.param.label; });

TEST(ParseJson, BuildsTheSameDocumentAsNlohmann) {
  const std::string text = R"({"a": [1, -2, 3.5, "x\u00e9", null, true], "b": {"c": {}}, "d": []})";
  auto parsed = ParseJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, nlohmann::json::parse(text));
}

TEST(ParseJson, TooDeepIsTellableFromBadSyntax) {
  EXPECT_TRUE(IsJsonTooDeep(ParseJson(NestedArrays(100)).status()));
  EXPECT_FALSE(IsJsonTooDeep(ParseJson("[").status()));
  EXPECT_FALSE(IsJsonTooDeep(ParseJson("[]").status()));
}

}  // namespace
}  // namespace ty
