// Billing arithmetic of a job, over all its attempts (the spec's section 4):
// running time is what the instances ran, billable time weights each
// attempt's running time by its spot price fraction, and what on-demand
// would have cost is the job's useful running time (without the progress
// lost to interruptions, which on-demand would not have redone) at the
// on-demand price.
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "model/training_job.h"

namespace ty::control {

struct JobCost {
  double running_seconds = 0;   // all attempts, including the current one so far
  double billable_seconds = 0;  // weighted by the spot price fraction while on spot
  double lost_seconds = 0;      // progress lost to interruptions and instance losses
  double cost = 0;              // USD: billable seconds x on-demand price x instances
  double on_demand_cost = 0;    // USD: (running - lost) seconds x on-demand price x instances
  double savings_percent = 0;   // 100 x (1 - cost / on_demand_cost); 0 when nothing ran
};

// `on_demand_price` is USD per instance-hour; `now` counts the running attempt.
JobCost ComputeJobCost(const model::JobRecord& job, double on_demand_price, TimePoint now);

}  // namespace ty::control
