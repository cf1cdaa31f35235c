// LogsDeliverer: the "logs" Deliverer (control/delivery.h). A target
// arn:aws:logs:<region>:<account>:log-group:<name>[:*] gets each payload appended as one event of
// the group, as PutLogEvents would: to a stream named after the event's id (the payload's "id"
// when it is an event envelope, else "events"), created on first use; the event's timestamp is
// the delivery time. A group that does not exist is kFailed (a dead letter), as is a payload
// over CloudWatch's 256 KiB event limit.
//
// Thread-safe (the Store serialises).
#pragma once

#include "common/clock.h"
#include "control/delivery.h"
#include "store/store.h"

namespace ty::events {

class LogsDeliverer final : public control::Deliverer {
 public:
  // REQUIRES: store and clock outlive it.
  LogsDeliverer(store::Store* store, const Clock* clock) : store_(store), clock_(clock) {}
  control::DeliveryResult Deliver(const control::Delivery& d) override;

 private:
  store::Store* const store_;
  const Clock* const clock_;
};

}  // namespace ty::events
