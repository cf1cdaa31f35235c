// DispatcherOptions: how the events dispatcher (events/dispatcher.h) routes and delivers; the
// server config's `events:` section. Plain data.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ty::events {

struct DispatcherOptions {
  std::string region = "us-east-1";  // rule ARNs, scheduled events
  int workers = 4;                   // delivery threads
  // When a target has no RetryPolicy: EventBridge retries 185 times over 24 h; the defaults here
  // are shorter so a failing target is seen in minutes.
  int max_retries = 8;                                      // attempts after the first
  std::chrono::milliseconds max_event_age{15 * 60 * 1000};  // from routing
  std::chrono::milliseconds backoff_initial{1000};          // before the first retry; doubles
  std::chrono::milliseconds backoff_max{60 * 1000};
  // How often the outbox and schedules are checked without a Wake (events written by another
  // process, missed wakes).
  std::chrono::milliseconds poll{500};
  int64_t outbox_batch = 200;        // events routed per transaction pass
  int64_t keep_dead_letters = 1000;  // per account, newest kept
  // Start does nothing: events stay in the outbox and pending deliveries wait, until a server
  // starts without it (maintenance; tests that kill a server between a change and delivery).
  bool paused = false;
};

}  // namespace ty::events
