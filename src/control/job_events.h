// JobEventSource: the seam through which the controller asks for the events that report a job's
// change of status or secondary status ("SageMaker Training Job State Change", built in events/),
// without depending on the module that builds them. The controller writes what it returns to
// the store's outbox in the transaction of the change itself (Store::InsertJob/UpdateJob), so a
// crash loses neither; the events dispatcher reads the outbox from there.
//
// Thread contract: called on the controller's loop thread only; must not block (it renders
// JSON; no I/O).
#pragma once

#include <vector>

#include "common/clock.h"
#include "model/training_job.h"
#include "store/store.h"

namespace ty::control {

class JobEventSource {
 public:
  virtual ~JobEventSource() = default;
  // The outbox events reporting that `job` is now in its status and secondary status (at its
  // creation too). `tags` are the job's tags; `now` is when the change happened.
  virtual std::vector<store::OutboxEvent> StateChangeEvents(const model::JobRecord& job,
                                                            const std::vector<store::Tag>& tags,
                                                            TimePoint now) = 0;
  // The events last returned were committed to the outbox: a dispatcher may read them now.
  virtual void Committed() {}
};

}  // namespace ty::control
