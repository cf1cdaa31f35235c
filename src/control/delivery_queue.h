// DeliveryQueue: runs deliveries (to a Lambda function, an SNS subscriber, a topic) on its own
// worker threads, retrying with exponential backoff, so that the caller — an HTTP worker
// answering Publish, the alarm evaluator — never waits for a target. Each delivery is a
// callable `attempt` returning a control::DeliveryResult; kRetry is tried again after
// initial_backoff, then ×2, up to max_attempts; kFailed is final. `done` is called once with
// the last result and the number of attempts (on a worker thread). Failures are also kept in a
// bounded list of recent failures and written to stderr, so they are visible.
//
// Bounds: at most max_pending deliveries wait; past that Enqueue refuses (returns false) and
// the caller reports it. Times are read from the injected clock; workers re-check it at least
// every poll interval, so a fake clock advanced by a test is noticed.
//
// Thread-safe: Enqueue and the accessors may be called from any thread. The destructor stops
// the workers after the attempts in progress end; deliveries still waiting are dropped.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "control/delivery.h"

namespace ty::control {

struct DeliveryQueueOptions {
  int threads = 2;                                  // workers
  size_t max_pending = 10000;                       // waiting deliveries
  int max_attempts = 3;                             // first try included
  std::chrono::milliseconds initial_backoff{1000};  // before the 2nd attempt, then ×2
  std::chrono::milliseconds poll{200};              // re-read the clock at least this often
  size_t recent_failures = 100;                     // kept for inspection
};

struct DeliveryFailure {
  TimePoint at;
  std::string what;   // the target (e.g. a subscription or function ARN)
  std::string error;  // the last attempt's
  int attempts = 0;
};

class DeliveryQueue {
 public:
  using Attempt = std::function<DeliveryResult()>;
  using Done = std::function<void(const DeliveryResult&, int attempts)>;

  DeliveryQueue(DeliveryQueueOptions options, const Clock* clock);
  ~DeliveryQueue();
  DeliveryQueue(const DeliveryQueue&) = delete;
  DeliveryQueue& operator=(const DeliveryQueue&) = delete;

  // Queues `attempt` for a worker; `what` names the target in failure reports. False (and
  // nothing queued) when max_pending deliveries already wait.
  bool Enqueue(std::string what, Attempt attempt, Done done = nullptr);

  std::vector<DeliveryFailure> RecentFailures() const;
  // Deliveries waiting or in progress (tests wait for 0).
  size_t Pending() const;

 private:
  struct Item {
    std::string what;
    Attempt attempt;
    Done done;
    int attempts = 0;
    TimePoint due;
  };
  void Work();

  const DeliveryQueueOptions options_;
  const Clock* const clock_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Item> items_ TY_GUARDED_BY(mu_);
  size_t running_ TY_GUARDED_BY(mu_) = 0;
  std::deque<DeliveryFailure> failures_ TY_GUARDED_BY(mu_);
  bool stop_ TY_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ty::control
