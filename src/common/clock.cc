#include "common/clock.h"

#include <cstdio>
#include <ctime>

namespace ty {

SystemClock* SystemClock::Default() {
  static SystemClock clock;
  return &clock;
}

int64_t ToEpochMillis(TimePoint t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

TimePoint FromEpochMillis(int64_t ms) { return TimePoint(Millis(ms)); }

double ToEpochSecondsDouble(TimePoint t) { return static_cast<double>(ToEpochMillis(t)) / 1000.0; }

int64_t ToEpochSeconds(TimePoint t) {
  return std::chrono::duration_cast<Seconds>(t.time_since_epoch()).count();
}

namespace {

std::string Format(TimePoint t, const char* fmt) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), fmt, &tm);
  return std::string(buf, n);
}

// TimePoint counts nanoseconds in 64 bits (years 1677 to 2262): a year outside [1900, 2200]
// would overflow the conversion (found by fuzz_s3_xml: <LastModified>1012-01-02T...).
constexpr int kMinYear = 1900;
constexpr int kMaxYear = 2200;

bool FromFields(int y, int mo, int d, int h, int mi, int s, TimePoint* out) {
  if (y < kMinYear || y > kMaxYear) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 ||
      s > 60) {
    return false;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  *out = std::chrono::system_clock::from_time_t(timegm(&tm));
  return true;
}

}  // namespace

std::string FormatHuman(TimePoint t) { return Format(t, "%Y-%m-%d %H:%M:%S"); }
std::string FormatAmzDate(TimePoint t) { return Format(t, "%Y%m%dT%H%M%SZ"); }
std::string FormatIso8601(TimePoint t) { return Format(t, "%Y-%m-%dT%H:%M:%SZ"); }

bool ParseAmzDate(const std::string& s, TimePoint* out) {
  int y, mo, d, h, mi, sec;
  char z = 0;
  if (s.size() != 16) return false;
  if (std::sscanf(s.c_str(), "%4d%2d%2dT%2d%2d%2d%c", &y, &mo, &d, &h, &mi, &sec, &z) != 7 ||
      z != 'Z') {
    return false;
  }
  return FromFields(y, mo, d, h, mi, sec, out);
}

bool ParseIso8601(const std::string& s, TimePoint* out) {
  int y, mo, d, h, mi, sec, consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) !=
      6) {
    return false;
  }
  if (!FromFields(y, mo, d, h, mi, sec, out)) return false;
  std::string rest = s.substr(consumed);
  int64_t frac_ms = 0;
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    int digits = 0;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
      if (digits < 3) frac_ms = frac_ms * 10 + (rest[i] - '0');
      ++digits;
      ++i;
    }
    for (; digits < 3; ++digits) frac_ms *= 10;
    rest = rest.substr(i);
  }
  if (!(rest.empty() || rest == "Z" || rest == "+00:00" || rest == "+0000")) return false;
  *out += Millis(frac_ms);
  return true;
}

}  // namespace ty
