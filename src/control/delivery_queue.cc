#include "control/delivery_queue.h"

#include <algorithm>
#include <cstdio>

namespace ty::control {

DeliveryQueue::DeliveryQueue(DeliveryQueueOptions options, const Clock* clock)
    : options_(options), clock_(clock) {
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { Work(); });
  }
}

DeliveryQueue::~DeliveryQueue() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : threads_) t.join();
}

bool DeliveryQueue::Enqueue(std::string what, Attempt attempt, Done done) {
  {
    MutexLock lock(&mu_);
    if (items_.size() >= options_.max_pending) return false;
    items_.push_back({std::move(what), std::move(attempt), std::move(done), 0, clock_->Now()});
  }
  cv_.Signal();
  return true;
}

std::vector<DeliveryFailure> DeliveryQueue::RecentFailures() const {
  MutexLock lock(&mu_);
  return {failures_.begin(), failures_.end()};
}

size_t DeliveryQueue::Pending() const {
  MutexLock lock(&mu_);
  return items_.size() + running_;
}

void DeliveryQueue::Work() {
  MutexLock lock(&mu_);
  while (!stop_) {
    const TimePoint now = clock_->Now();
    auto due =
        std::find_if(items_.begin(), items_.end(), [&](const Item& it) { return it.due <= now; });
    if (items_.empty()) {
      cv_.Wait(&mu_);  // Enqueue and the destructor signal
      continue;
    }
    if (due == items_.end()) {
      // Nothing due: sleep until the earliest is (on the injected clock), re-reading it
      // at least every poll so that a test's fake clock is seen to move.
      auto wait = options_.poll;
      for (const Item& it : items_) {
        wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(it.due - now));
      }
      cv_.WaitFor(&mu_, std::max(wait, std::chrono::milliseconds(1)));
      continue;
    }
    Item item = std::move(*due);
    items_.erase(due);
    ++running_;
    lock.Unlock();
    ++item.attempts;
    DeliveryResult r = item.attempt();
    const bool again =
        r.kind == DeliveryResult::Kind::kRetry && item.attempts < options_.max_attempts;
    if (!again && !r.ok()) {
      std::fprintf(stderr, "trainyard: delivery to %s failed after %d attempt(s): %s\n",
                   item.what.c_str(), item.attempts, r.error.c_str());
    }
    if (!again && item.done) item.done(r, item.attempts);
    lock.Lock();
    --running_;
    if (again) {
      item.due = clock_->Now() + options_.initial_backoff * (1LL << (item.attempts - 1));
      items_.push_back(std::move(item));
    } else if (!r.ok()) {
      failures_.push_back({clock_->Now(), item.what, r.error, item.attempts});
      while (failures_.size() > options_.recent_failures) failures_.pop_front();
    }
  }
}

}  // namespace ty::control
