#include "events/schedule.h"

#include <time.h>

#include <charconv>
#include <vector>

namespace ty::events {

namespace {

Status Invalid() { return InvalidArgument("Parameter ScheduleExpression is not valid."); }

std::optional<int> Number(std::string_view s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int> Value(std::string_view s, const char* const* names, int first) {
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i) {
      std::string_view n(names[i]);
      if (s.size() == n.size()) {
        bool eq = true;
        for (size_t k = 0; k < s.size(); ++k) eq = eq && std::toupper(s[k]) == n[k];
        if (eq) return first + i;
      }
    }
  }
  return Number(s);
}

// Sets the bits a cron field names within [lo, hi]. `*`, lists, ranges, steps; `?` only where
// `question` is allowed (then *is_any is set).
template <size_t N>
Status Field(std::string_view f, int lo, int hi, const char* const* names, bool question,
             std::bitset<N>* out, bool* is_any) {
  if (f == "?") {
    if (!question) return Invalid();
    *is_any = true;
    for (int v = lo; v <= hi; ++v) out->set(static_cast<size_t>(v - (N == 230 ? 1970 : 0)));
    return Status::Ok();
  }
  const size_t base = N == 230 ? 1970 : 0;
  size_t start = 0;
  int parts = 0;
  while (start <= f.size()) {
    if (++parts > 60) return Invalid();
    size_t comma = f.find(',', start);
    std::string_view item =
        f.substr(start, comma == std::string_view::npos ? comma : comma - start);
    int step = 1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      auto s = Number(item.substr(slash + 1));
      if (!s || *s <= 0) return Invalid();
      step = *s;
      item = item.substr(0, slash);
    }
    int a = lo, b = hi;
    if (item != "*") {
      size_t dash = item.find('-');
      auto x = Value(item.substr(0, dash), names, lo);
      if (!x) return Invalid();
      a = *x;
      b = a;
      if (dash != std::string_view::npos) {
        auto y = Value(item.substr(dash + 1), names, lo);
        if (!y) return Invalid();
        b = *y;
      } else if (step != 1) {
        b = hi;  // "5/15": from 5 every 15
      }
    }
    if (a < lo || b > hi || a > b) return Invalid();
    for (int v = a; v <= b; v += step) out->set(static_cast<size_t>(v) - base);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return Status::Ok();
}

constexpr const char* kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",  "JUL",
                                   "AUG", "SEP", "OCT", "NOV", "DEC", nullptr};
constexpr const char* kWeekdays[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", nullptr};

}  // namespace

Result<Schedule> Schedule::Parse(std::string_view text) {
  if (text.size() > 256) return Invalid();
  Schedule s;
  if (text.substr(0, 5) == "rate(" && text.back() == ')') {
    std::string_view body = text.substr(5, text.size() - 6);
    size_t space = body.find(' ');
    if (space == std::string_view::npos) return Invalid();
    auto n = Number(body.substr(0, space));
    std::string_view unit = body.substr(space + 1);
    if (!n || *n <= 0) return Invalid();
    std::chrono::milliseconds per{0};
    if (unit == "minute" || unit == "minutes") per = std::chrono::minutes(1);
    if (unit == "hour" || unit == "hours") per = std::chrono::hours(1);
    if (unit == "day" || unit == "days") per = std::chrono::hours(24);
    const bool plural = unit.back() == 's';
    if (per.count() == 0 || plural != (*n != 1)) return Invalid();
    s.rate_ = per * *n;
    return s;
  }
  if (text.substr(0, 5) != "cron(" || text.back() != ')') return Invalid();
  std::vector<std::string_view> fields;
  std::string_view body = text.substr(5, text.size() - 6);
  size_t start = 0;
  while (start < body.size()) {
    size_t space = body.find(' ', start);
    if (space == start) {
      ++start;
      continue;
    }
    fields.push_back(body.substr(start, space == std::string_view::npos ? space : space - start));
    if (space == std::string_view::npos || fields.size() > 6) break;
    start = space + 1;
  }
  if (fields.size() != 6) return Invalid();
  // L, W and # are not numbers or names: Field refuses them.
  bool unused = false;
  TY_RETURN_IF_ERROR(Field(fields[0], 0, 59, nullptr, false, &s.minutes_, &unused));
  TY_RETURN_IF_ERROR(Field(fields[1], 0, 23, nullptr, false, &s.hours_, &unused));
  TY_RETURN_IF_ERROR(Field(fields[2], 1, 31, nullptr, true, &s.days_, &s.any_day_));
  TY_RETURN_IF_ERROR(Field(fields[3], 1, 12, kMonths, false, &s.months_, &unused));
  TY_RETURN_IF_ERROR(Field(fields[4], 1, 7, kWeekdays, true, &s.weekdays_, &s.any_weekday_));
  TY_RETURN_IF_ERROR(Field(fields[5], 1970, 2199, nullptr, false, &s.years_, &unused));
  // EventBridge: exactly one of day-of-month and day-of-week is "?".
  if (s.any_day_ == s.any_weekday_) return Invalid();
  return s;
}

std::optional<TimePoint> Schedule::NextAfter(TimePoint after, TimePoint origin) const {
  if (rate_.count() > 0) {
    if (after < origin) return origin + rate_;
    auto periods = (after - origin) / rate_ + 1;
    return origin + rate_ * periods;
  }
  // The next whole minute after `after`, then day by day, hour by hour, minute by minute.
  int64_t t = ToEpochSeconds(after) / 60 * 60 + 60;
  for (int days = 0; days < 366 * 231; ++days) {
    time_t secs = static_cast<time_t>(t);
    struct tm tm;
    gmtime_r(&secs, &tm);
    const int year = tm.tm_year + 1900;
    if (year > 2199) return std::nullopt;
    const bool day_ok = year >= 1970 && years_.test(static_cast<size_t>(year - 1970)) &&
                        months_.test(static_cast<size_t>(tm.tm_mon) + 1) &&
                        (any_day_ ? weekdays_.test(static_cast<size_t>(tm.tm_wday) + 1)
                                  : days_.test(static_cast<size_t>(tm.tm_mday)));
    if (day_ok) {
      for (int h = tm.tm_hour; h < 24; ++h) {
        if (!hours_.test(static_cast<size_t>(h))) continue;
        for (int m = h == tm.tm_hour ? tm.tm_min : 0; m < 60; ++m) {
          if (!minutes_.test(static_cast<size_t>(m))) continue;
          int64_t at = t - tm.tm_hour * 3600 - tm.tm_min * 60 + h * 3600 + m * 60;
          return FromEpochMillis(at * 1000);
        }
      }
    }
    // Midnight of the next day.
    t = t - tm.tm_hour * 3600 - tm.tm_min * 60 - tm.tm_sec + 86400;
  }
  return std::nullopt;
}

}  // namespace ty::events
