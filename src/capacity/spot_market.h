// SpotMarket: the model of spot capacity per instance type: the spot price as
// a fraction of on-demand, an availability process (periods when spot
// capacity of a type is unavailable), an interruption process (exponential
// with a mean time between interruptions, or a trace file) and the notice
// period. Randomness is seeded so a run can be replayed: every draw depends
// only on (seed, instance type, key), never on the order of calls.
// Time comes from the caller (`now`): the market never reads a clock.
// Not thread-safe: the controller's loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace ty::capacity {

struct SpotModel {
  double price_fraction = 0.3;       // spot price / on-demand price, in (0, 1]
  std::chrono::seconds notice{120};  // interruption notice period (EC2: 2 minutes)
  // Mean time between interruptions of one running spot instance; none: never.
  std::optional<std::chrono::seconds> mean_time_between_interruptions;
  // Availability process: alternating exponential periods of available and
  // unavailable spot capacity; none: always available.
  std::optional<std::chrono::seconds> mean_available;
  std::optional<std::chrono::seconds> mean_unavailable;
};

// One line of a trace file, times relative to the market's epoch (server
// start). Text form, one event per line, '#' comments:
//   <seconds> interrupt <instance type>
//   <seconds> unavailable <instance type> <duration seconds>
struct TraceEvent {
  enum class Kind { kInterrupt, kUnavailable };
  std::chrono::milliseconds at{0};
  Kind kind = Kind::kInterrupt;
  std::string instance_type;
  std::chrono::milliseconds duration{0};  // kUnavailable only
};
// InvalidArgument naming the line for a malformed trace.
Result<std::vector<TraceEvent>> ParseTrace(const std::string& text);

struct SpotMarketConfig {
  uint64_t seed = 1;
  SpotModel defaults;                      // for types not listed
  std::map<std::string, SpotModel> types;  // per instance type
  std::vector<TraceEvent> trace;           // in addition to the random processes
};

struct SpotTypeStatus {
  std::string instance_type;
  bool available = true;
  std::optional<TimePoint> unavailable_until;  // when unavailable and the end is known
  SpotModel model;
};

class SpotMarket {
 public:
  SpotMarket(SpotMarketConfig config, TimePoint epoch);

  const SpotModel& ModelFor(const std::string& type) const;
  // Is spot capacity of `type` available at `now`? (availability process,
  // trace unavailability and injected unavailability combined.)
  bool Available(const std::string& type, TimePoint now);
  // When the current unavailability of `type` ends; none when available.
  std::optional<TimePoint> UnavailableUntil(const std::string& type, TimePoint now);
  // Fault injection: spot capacity of `type` is gone from `now` for `duration`.
  void MakeUnavailable(const std::string& type, std::chrono::milliseconds duration, TimePoint now);
  // When a spot instance of `type` starting at `start` will be interrupted by
  // the random process; none when the type has no interruption process.
  // Deterministic in (seed, type, key): the same key gives the same draw.
  std::optional<TimePoint> DrawInterruption(const std::string& type, const std::string& key,
                                            TimePoint start);
  // Types the trace interrupts in (previous call's now, now]; each trace
  // event is returned once.
  std::vector<std::string> DueTraceInterruptions(TimePoint now);
  // The state of every type the config names, plus `extra_types`, sorted.
  std::vector<SpotTypeStatus> Status(TimePoint now, const std::vector<std::string>& extra_types);

 private:
  struct Availability {
    // Generated alternating timeline: unavailable windows [start, end).
    std::vector<std::pair<TimePoint, TimePoint>> windows;
    TimePoint generated_until;
    uint64_t draws = 0;
  };
  Availability& AvailabilityFor(const std::string& type, TimePoint until);

  SpotMarketConfig config_;
  TimePoint epoch_;
  std::map<std::string, Availability> availability_;
  // Injected and trace unavailability windows per type.
  std::map<std::string, std::vector<std::pair<TimePoint, TimePoint>>> outages_;
  size_t next_trace_ = 0;  // trace events before this index were consumed
};

}  // namespace ty::capacity
