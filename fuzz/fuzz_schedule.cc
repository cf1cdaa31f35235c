// ScheduleExpression on one input: parsed as PutRule does, and when valid, its next firings
// computed from a fixed origin (the dispatcher's FireSchedulesOnce does the same every pass).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "events/schedule.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto schedule = ty::events::Schedule::Parse(text);
  if (!schedule.ok()) return 0;
  const ty::TimePoint origin = ty::FromEpochMillis(1'700'000'000'000);
  ty::TimePoint at = origin;
  for (int i = 0; i < 3; ++i) {
    auto next = schedule->NextAfter(at, origin);
    if (!next) break;
    if (*next <= at) __builtin_trap();  // firings must move forward
    at = *next;
  }
  return 0;
}
