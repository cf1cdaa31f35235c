// EventDispatcher: routes the events of the store's outbox to the targets of the rules that
// match them, and delivers them, at least once.
//
//  - Routing (one thread): reads the outbox in seq order; matches each event against its
//    account's ENABLED pattern rules; stores one delivery per (matching rule, target), with the
//    target's Input / InputPath / InputTransformer applied, and deletes the outbox row, in one
//    transaction (Store::RouteOutboxEvent). Scheduled rules fire "Scheduled Event" events
//    (source aws.events) on the injected clock the same way.
//  - Delivery (`workers` threads): sends each delivery through the Deliverer (the server's
//    DeliveryRouter). kRetry outcomes are tried again after an exponential backoff (initial,
//    doubling, capped) until the target's RetryPolicy (or the options' defaults) runs out of
//    attempts or age; exhausted and kFailed deliveries become dead letters
//    (Store::DeadLetters). Deliveries of one job (ordering_key) to one target go one at a time,
//    in order: a later one waits while an earlier one is retried.
//  - Crash: a delivery is deleted only after its target took it, so pending deliveries are
//    loaded again at Start and sent (possibly a second time).
//
// Thread-safe: Wake may be called from any thread. The *Once methods are for tests driving a
// dispatcher that was never started, on a fake clock, from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/delivery.h"
#include "events/dispatcher_options.h"
#include "events/event_pattern.h"
#include "store/store.h"

namespace ty::events {

class EventDispatcher {
 public:
  // REQUIRES: store, deliverer and clock outlive the dispatcher.
  EventDispatcher(DispatcherOptions options, store::Store* store, control::Deliverer* deliverer,
                  const Clock* clock);
  ~EventDispatcher();
  EventDispatcher(const EventDispatcher&) = delete;
  EventDispatcher& operator=(const EventDispatcher&) = delete;

  // Loads the pending deliveries of a previous run and starts the threads.
  Status Start();
  // Stops the threads; deliveries in flight finish first. Pending ones stay in the store.
  void Shutdown();
  // New events are in the outbox (or a rule changed): route now rather than at the next poll.
  void Wake();

  // ---- Test drivers (dispatcher not started) ----
  // Loads pending deliveries from the store (what Start does first).
  Status LoadPending();
  // Routes every event of the outbox; returns how many were routed.
  Result<int> RouteOnce();
  // Fires the scheduled rules due at the clock's now; returns how many fired.
  Result<int> FireSchedulesOnce();
  // Attempts every delivery due now (heads of their lanes), one pass; returns the attempts made.
  int DeliverDueOnce();
  // Deliveries held in memory, waiting or being sent.
  size_t pending() const;

 private:
  struct Lane {
    std::deque<store::DeliveryRow> queue;  // head first
    bool busy = false;                     // a worker is sending its head
  };

  void RouterLoop();
  void WorkerLoop();
  // Queues rows (not dead letters) into their lanes. REQUIRES: mu_ not held.
  void Enqueue(std::vector<store::DeliveryRow> rows);
  // The lane of a due head, marked busy; "" when none.
  std::string TakeDueLocked(int64_t now_ms, int64_t* next_due_ms) TY_REQUIRES(mu_);
  // Sends the head of `lane` and records the outcome.
  void DeliverHead(const std::string& lane_key, const store::DeliveryRow& row);
  // The deliveries for one event matched to one rule's targets.
  void AddDeliveries(const nlohmann::json& event, const std::string& account,
                     const std::string& ordering_key, const store::RuleRow& rule,
                     const std::vector<store::TargetRow>& targets, int64_t now_ms,
                     std::vector<store::DeliveryRow>* out);
  const EventPattern* PatternOf(const store::RuleRow& rule);
  std::string RuleArn(const store::RuleRow& rule) const;

  const DispatcherOptions options_;
  store::Store* const store_;
  control::Deliverer* const deliverer_;
  const Clock* const clock_;

  mutable Mutex mu_;
  CondVar work_cv_;    // workers: a delivery became due or was queued
  CondVar router_cv_;  // the router: Wake
  bool stopping_ TY_GUARDED_BY(mu_) = false;
  bool woken_ TY_GUARDED_BY(mu_) = false;
  std::map<std::string, Lane> lanes_ TY_GUARDED_BY(mu_);  // "" lanes are keyed "#<id>"
  size_t pending_ TY_GUARDED_BY(mu_) = 0;

  // Router thread only (or the test thread): parsed patterns by rule id and text.
  std::map<int64_t, std::pair<std::string, std::unique_ptr<EventPattern>>> patterns_;

  std::thread router_;
  std::vector<std::thread> workers_;
};

// The "Scheduled Event" a scheduled rule sends at `time` (source aws.events, detail {}).
nlohmann::json ScheduledEvent(const std::string& id, const std::string& account,
                              const std::string& region, const std::string& rule_arn,
                              TimePoint time);

// What a target receives for `event`: the event itself, or the target's Input (constant JSON
// text), InputPath (a part of the event) or InputTransformer (`context` fills its reserved
// variables). kInvalidArgument when the target's path or template does not apply.
Result<std::string> TargetInput(const nlohmann::json& event, const nlohmann::json& target,
                                const InputContext& context = {});

}  // namespace ty::events
