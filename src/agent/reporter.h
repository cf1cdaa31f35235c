// Reporter: delivers AgentReports to the control plane in order, from a
// background thread, so the training output is never blocked by a slow or
// restarting server.
// Each report is POSTed as JSON to <url> + model::kAgentReportPath with
// "Authorization: Bearer <token>"; <url> is `server_url`, or else read from `server_url_file` and
// re-read after every connection failure (the server may come back on a new
// port). Failures are retried with backoff (100 ms doubling to 2 s): phase and
// log reports for up to `retry_budget`, after which they are dropped (log
// lines go to `undelivered_log`); the exit report for up to `exit_retry_budget`.
// A 4xx other than 408/429 is permanent: the report is dropped at once.
// At most `max_buffered_samples` instance samples wait too (the oldest go first).
// At most `max_buffered_lines` log lines wait in the queue: beyond that the
// oldest queued log reports are dropped. Every dropped log line is counted,
// and the count with the reason of the last drop rides on every later report
// (AgentReport::lost_lines), so the control plane can say so in the job's log
// and status even when it could not store the lines themselves.
// Thread contract: Send() and WaitIdle() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "common/mutex.h"
#include "model/agent_protocol.h"

namespace ty::agent {

class Reporter {
 public:
  struct Options {
    std::string server_url_file;
    std::string server_url;  // when set, used instead of server_url_file
    std::string token;
    std::string undelivered_log;  // empty: dropped log lines are only counted
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{2000};
    std::chrono::seconds retry_budget{600};
    std::chrono::seconds exit_retry_budget{1800};
    // Log lines queued at most (a full disk on the server can last); 0: unbounded.
    size_t max_buffered_lines = 20000;
    // Instance samples (AgentReport::samples) queued at most; beyond, the oldest are dropped
    // (metrics of an outage are worth less than the log lines, and are not counted as lost).
    size_t max_buffered_samples = 3600;
  };
  // `diag` receives one line per diagnostic (it must be thread-safe).
  Reporter(Options options, std::function<void(const std::string&)> diag);
  // Stops the thread; reports still queued are abandoned (log lines go to
  // undelivered_log).
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // Queues `report` after assigning it the next seq (1, 2, ...).
  void Send(model::AgentReport report);
  // Blocks until everything queued so far was acknowledged or dropped, or
  // `timeout` passes. Returns true when the queue is empty and the last report
  // of type kExit (if any) was acknowledged.
  bool WaitIdle(std::chrono::milliseconds timeout);

  int64_t delivered() const;
  int64_t dropped() const;
  // Log lines dropped so far (see the class comment).
  int64_t lost_lines() const;

 private:
  struct Pending {
    model::AgentReport report;
    std::chrono::steady_clock::time_point queued;
  };
  enum class Attempt { kDelivered, kRetry, kPermanent };

  void Loop();
  Attempt Post(const model::AgentReport& report);
  // Writes a dropped report's lines to undelivered_log. Called without mu_.
  void Drop(const model::AgentReport& report, const std::string& why);
  // Counts a dropped log report's lines. REQUIRES: mu_ held.
  void CountLostLocked(const model::AgentReport& report, const std::string& why) TY_REQUIRES(mu_);

  Options options_;
  std::function<void(const std::string&)> diag_;

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Pending> queue_ TY_GUARDED_BY(mu_);
  bool busy_ TY_GUARDED_BY(mu_) = false;  // the loop holds a report
  bool shutdown_ TY_GUARDED_BY(mu_) = false;
  int64_t next_seq_ TY_GUARDED_BY(mu_) = 1;
  int64_t delivered_ TY_GUARDED_BY(mu_) = 0;
  int64_t dropped_ TY_GUARDED_BY(mu_) = 0;
  bool exit_acked_ TY_GUARDED_BY(mu_) = false;
  bool exit_sent_ TY_GUARDED_BY(mu_) = false;
  size_t queued_lines_ TY_GUARDED_BY(mu_) = 0;    // log lines in queue_
  size_t queued_samples_ TY_GUARDED_BY(mu_) = 0;  // instance samples in queue_
  int64_t lost_lines_ TY_GUARDED_BY(mu_) = 0;
  std::string lost_reason_ TY_GUARDED_BY(mu_);
  // Why the last delivery failed ("control plane unreachable", or what it answered).
  std::string last_failure_ TY_GUARDED_BY(mu_) =
      "the control plane had not taken the lines before them";

  // Owned by the loop thread only.
  struct Connection;
  std::unique_ptr<Connection> conn_;

  std::thread thread_;
};

}  // namespace ty::agent
