#include "common/text.h"

#include <gtest/gtest.h>

namespace ty {
namespace {

TEST(TruncateUtf8Test, NeverCutsASequence) {
  const std::string block = "\xe2\x96\x88";  // U+2588, three bytes
  struct Case {
    std::string in;
    size_t max;
    std::string want;
  } cases[] = {
      {"abc", 10, "abc"},
      {"abcdef", 3, "abc"},
      {"ab" + block, 3, "ab"},          // would cut after the first byte of the block
      {"ab" + block, 4, "ab"},          // ...or after the second
      {"ab" + block, 5, "ab" + block},  // fits exactly
      {block + block, 4, block},
      {"\xc3\xa9\xc3\xa9", 3, "\xc3\xa9"},  // two-byte é
      {"", 0, ""},
      {"x", 0, ""},
  };
  for (const auto& c : cases) EXPECT_EQ(TruncateUtf8(c.in, c.max), c.want) << c.in << " " << c.max;
}

TEST(SplitTest, NonEmptyPartsAndWords) {
  EXPECT_EQ(SplitNonEmpty("a,,b,", ','), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(SplitNonEmpty("line 1\n\nline 2", '\n'),
            (std::vector<std::string>{"line 1", "line 2"}));
  EXPECT_TRUE(SplitNonEmpty("", '/').empty());
  EXPECT_EQ(SplitWords("  3: tyb-0a1b  state UP\t"),
            (std::vector<std::string>{"3:", "tyb-0a1b", "state", "UP"}));
  EXPECT_TRUE(SplitWords(" \t ").empty());
}

}  // namespace
}  // namespace ty
