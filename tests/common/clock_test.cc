#include "common/clock.h"

#include <gtest/gtest.h>

#include <string>

namespace ty {
namespace {

struct DateCase {
  const char* label;
  std::string iso;
  bool ok;
};

class ParseIso8601Test : public ::testing::TestWithParam<DateCase> {};

TEST_P(ParseIso8601Test, AcceptsOrRefuses) {
  TimePoint t;
  EXPECT_EQ(ParseIso8601(GetParam().iso, &t), GetParam().ok) << GetParam().iso;
}

// Found by fuzz_s3_xml: a LastModified in year 1012 overflowed the nanosecond TimePoint (signed
// overflow, undefined behaviour). The same parser reads Search filter values from API callers.
INSTANTIATE_TEST_SUITE_P(
    Cases, ParseIso8601Test,
    ::testing::Values(DateCase{"Normal", "2024-01-02T03:04:05.678Z", true},
                      DateCase{"LowestYear", "1900-01-01T00:00:00Z", true},
                      DateCase{"HighestYear", "2200-12-31T23:59:59Z", true},
                      DateCase{"YearTenTwelveOverflowedTimePoint", "1012-01-02T03:04:05.678Z",
                               false},
                      DateCase{"YearNineThousand", "9999-12-31T23:59:59Z", false},
                      DateCase{"NegativeHour", "2024-01-02T-1:04:05Z", false},
                      DateCase{"NegativeSecond", "2024-01-02T03:04:-5Z", false},
                      DateCase{"Malformed", "yesterday", false}),
    [](const ::testing::TestParamInfo<DateCase>& p) { return p.param.label; });

TEST(ParseAmzDate, YearOutsideTimePointRangeIsRefused) {
  TimePoint t;
  EXPECT_TRUE(ParseAmzDate("20240312T141610Z", &t));
  EXPECT_EQ(FormatAmzDate(t), "20240312T141610Z");
  EXPECT_FALSE(ParseAmzDate("10120312T141610Z", &t));
  EXPECT_FALSE(ParseAmzDate("99990312T141610Z", &t));
}

}  // namespace
}  // namespace ty
