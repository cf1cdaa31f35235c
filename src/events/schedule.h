// ScheduleExpression of a scheduled EventBridge rule: "rate(<n> minute|minutes|hour|hours|day|
// days)" (singular exactly when n is 1, as EventBridge requires) or "cron(<minutes> <hours>
// <day-of-month> <month> <day-of-week> <year>)" in UTC, with `*`, `?`, lists, ranges, steps and
// month/day names (one of day-of-month and day-of-week must be `?`). The L, W and # forms are
// refused. Parse bounds its input (256 bytes); immutable after: thread-safe.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace ty::events {

class Schedule {
 public:
  // kInvalidArgument "Parameter ScheduleExpression is not valid." (EventBridge's message).
  static Result<Schedule> Parse(std::string_view text);

  // The first time the rule fires strictly after `after`. A rate rule fires every period from
  // `origin` (its creation); a cron rule at the start of every matching minute. nullopt when it
  // never fires again (a cron whose years are past).
  std::optional<TimePoint> NextAfter(TimePoint after, TimePoint origin) const;

 private:
  std::chrono::milliseconds rate_{0};  // > 0 for a rate rule
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<8> weekdays_;  // 1..7, 1 = Sunday
  bool any_day_ = false;     // day-of-month is ?, so day-of-week decides
  bool any_weekday_ = false;
  int year_min_ = 1970, year_max_ = 2199;
  std::bitset<230> years_;  // 1970..2199
};

}  // namespace ty::events
