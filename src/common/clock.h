// Clock: the one source of time. Every timer in Trainyard reads a Clock so
// tests can drive time by hand (FakeClock in tests/testing/).
// Thread-safe: implementations may be read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ty {

using TimePoint = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;
using Seconds = std::chrono::seconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// The wall clock.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
  static SystemClock* Default();
};

int64_t ToEpochMillis(TimePoint t);
TimePoint FromEpochMillis(int64_t ms);
double ToEpochSecondsDouble(TimePoint t);  // millisecond precision
int64_t ToEpochSeconds(TimePoint t);
// "YYYY-MM-DD HH:MM:SS" in UTC (the SageMaker SDK's log format).
std::string FormatHuman(TimePoint t);
// "YYYYMMDDTHHMMSSZ" (SigV4's X-Amz-Date).
std::string FormatAmzDate(TimePoint t);
// ISO-8601 "YYYY-MM-DDTHH:MM:SSZ".
std::string FormatIso8601(TimePoint t);
// Parses "YYYYMMDDTHHMMSSZ"; false if malformed or the year is outside [1900, 2200].
bool ParseAmzDate(const std::string& s, TimePoint* out);
// Parses ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]"; false if malformed or the year is
// outside [1900, 2200] (TimePoint cannot hold much more).
bool ParseIso8601(const std::string& s, TimePoint* out);

}  // namespace ty
