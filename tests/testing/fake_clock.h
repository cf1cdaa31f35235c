// FakeClock: a Clock that only moves when the test says so.
#pragma once

#include <atomic>

#include "common/clock.h"

namespace ty::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = FromEpochMillis(1'700'000'000'000))
      : now_ms_(ToEpochMillis(start)) {}
  TimePoint Now() const override { return FromEpochMillis(now_ms_.load()); }
  void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace ty::testing
