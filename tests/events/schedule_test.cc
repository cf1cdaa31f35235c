#include "events/schedule.h"

#include <gtest/gtest.h>

namespace ty::events {
namespace {

TimePoint At(const char* iso) {
  TimePoint t;
  EXPECT_TRUE(ParseIso8601(iso, &t)) << iso;
  return t;
}

TEST(ScheduleTest, RejectsWhatEventBridgeRejects) {
  for (const char* bad :
       {"", "rate()", "rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "rate(5 seconds)",
        "rate(-1 hours)", "cron(* * * * *)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)",
        "cron(60 12 * * ? *)", "cron(0 24 * * ? *)", "cron(0 12 L * ? *)", "cron(0 12 ? * 6#3 *)",
        "cron(0 12 15W * ? *)", "cron(0 12 32 * ? *)", "every 5 minutes", "cron(5-1 * * * ? *)"}) {
    auto s = Schedule::Parse(bad);
    EXPECT_FALSE(s.ok()) << bad;
    if (!s.ok()) EXPECT_EQ(s.status().message(), "Parameter ScheduleExpression is not valid.");
  }
  EXPECT_FALSE(Schedule::Parse(std::string(300, 'x')).ok());
}

TEST(ScheduleTest, RateFiresEveryPeriodFromItsOrigin) {
  auto s = Schedule::Parse("rate(5 minutes)");
  ASSERT_TRUE(s.ok());
  TimePoint origin = At("2026-01-01T00:00:00Z");
  EXPECT_EQ(*s->NextAfter(origin, origin), At("2026-01-01T00:05:00Z"));
  EXPECT_EQ(*s->NextAfter(At("2026-01-01T00:07:00Z"), origin), At("2026-01-01T00:10:00Z"));
  EXPECT_EQ(*s->NextAfter(At("2026-01-01T00:10:00Z"), origin), At("2026-01-01T00:15:00Z"));
  ASSERT_TRUE(Schedule::Parse("rate(1 hour)").ok());
  ASSERT_TRUE(Schedule::Parse("rate(2 days)").ok());
}

TEST(ScheduleTest, CronMatchesFieldsInUtc) {
  TimePoint origin = At("2026-01-01T00:00:00Z");
  struct Case {
    const char* expr;
    const char* after;
    const char* next;
  } cases[] = {
      {"cron(0 12 * * ? *)", "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z"},
      {"cron(0 12 * * ? *)", "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"},
      {"cron(0/15 * * * ? *)", "2026-01-01T00:07:00Z", "2026-01-01T00:15:00Z"},
      {"cron(15 10 ? * MON-FRI *)", "2026-01-03T00:00:00Z", "2026-01-05T10:15:00Z"},  // Sat->Mon
      {"cron(0 8 1 * ? *)", "2026-01-01T09:00:00Z", "2026-02-01T08:00:00Z"},
      {"cron(0 0 1 JAN,JUL ? 2026-2027)", "2026-01-02T00:00:00Z", "2026-07-01T00:00:00Z"},
      {"cron(5,10 3 * * ? *)", "2026-01-01T03:05:00Z", "2026-01-01T03:10:00Z"},
  };
  for (const auto& c : cases) {
    auto s = Schedule::Parse(c.expr);
    ASSERT_TRUE(s.ok()) << c.expr << ": " << s.status().ToString();
    auto next = s->NextAfter(At(c.after), origin);
    ASSERT_TRUE(next.has_value()) << c.expr;
    EXPECT_EQ(FormatIso8601(*next), c.next) << c.expr << " after " << c.after;
  }
  auto past = Schedule::Parse("cron(0 0 1 1 ? 2020)");
  ASSERT_TRUE(past.ok());
  EXPECT_FALSE(past->NextAfter(At("2026-01-01T00:00:00Z"), origin).has_value());
}

}  // namespace
}  // namespace ty::events
