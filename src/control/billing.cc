#include "control/billing.h"

#include <algorithm>

namespace ty::control {

JobCost ComputeJobCost(const model::JobRecord& job, double on_demand_price, TimePoint now) {
  JobCost c;
  double run_ms = static_cast<double>(job.run_ms);
  double billable_ms = job.billable_ms;
  if (job.attempt_run_start && !model::IsTerminal(job.status)) {
    double current = static_cast<double>(
        std::max<int64_t>(ToEpochMillis(now) - ToEpochMillis(*job.attempt_run_start), 0));
    run_ms += current;
    billable_ms += current * job.attempt_price_fraction;
  }
  double lost_ms = 0;
  for (const auto& i : job.interruptions) lost_ms += static_cast<double>(i.lost_ms);
  c.running_seconds = run_ms / 1000.0;
  c.billable_seconds = billable_ms / 1000.0;
  c.lost_seconds = std::min(lost_ms, run_ms) / 1000.0;
  double per_second = on_demand_price / 3600.0 * std::max(job.spec.instance_count, 1);
  c.cost = c.billable_seconds * per_second;
  c.on_demand_cost = (c.running_seconds - c.lost_seconds) * per_second;
  if (c.on_demand_cost > 0) c.savings_percent = 100.0 * (1.0 - c.cost / c.on_demand_cost);
  return c;
}

}  // namespace ty::control
