#include "agent/reporter.h"

#include <httplib.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <vector>

#include "common/fs.h"

namespace ty::agent {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

struct Reporter::Connection {
  std::string url;
  std::unique_ptr<httplib::Client> client;
};

Reporter::Reporter(Options options, std::function<void(const std::string&)> diag)
    : options_(std::move(options)), diag_(std::move(diag)), conn_(std::make_unique<Connection>()) {
  thread_ = std::thread([this] { Loop(); });
}

Reporter::~Reporter() {
  {
    MutexLock lock(&mu_);
    shutdown_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  std::deque<Pending> left;
  {
    MutexLock lock(&mu_);
    left.swap(queue_);
  }
  for (const auto& p : left) Drop(p.report, "agent exiting");
}

void Reporter::CountLostLocked(const model::AgentReport& report, const std::string& why) {
  if (report.type != model::AgentReport::Type::kLog || report.lines.empty()) return;
  lost_lines_ += static_cast<int64_t>(report.lines.size());
  lost_reason_ = why;
}

void Reporter::Send(model::AgentReport report) {
  std::vector<model::AgentReport> overflow;
  {
    MutexLock lock(&mu_);
    report.seq = next_seq_++;
    if (report.type == model::AgentReport::Type::kExit) {
      exit_sent_ = true;
      exit_acked_ = false;
    }
    if (report.type == model::AgentReport::Type::kLog) queued_lines_ += report.lines.size();
    queued_samples_ += report.samples.size();
    queue_.push_back({std::move(report), std::chrono::steady_clock::now()});
    // Over the samples' bound the oldest samples go; a report left with nothing goes too.
    for (auto it = queue_.begin();
         queued_samples_ > options_.max_buffered_samples && it != queue_.end();) {
      auto& samples = it->report.samples;
      size_t cut = std::min(samples.size(), queued_samples_ - options_.max_buffered_samples);
      samples.erase(samples.begin(), samples.begin() + static_cast<long>(cut));
      queued_samples_ -= cut;
      if (it->report.type == model::AgentReport::Type::kLog && it->report.lines.empty() &&
          samples.empty() && std::next(it) != queue_.end()) {
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    // Over the bound the oldest waiting lines go (not the newest: a job's last
    // lines usually say how it ended). Phase and exit reports always stay.
    const size_t limit = options_.max_buffered_lines;
    for (auto it = queue_.begin(); limit > 0 && queued_lines_ > limit && it != queue_.end();) {
      if (it->report.type != model::AgentReport::Type::kLog || std::next(it) == queue_.end()) {
        ++it;
        continue;
      }
      queued_lines_ -= it->report.lines.size();
      queued_samples_ -= it->report.samples.size();
      ++dropped_;
      CountLostLocked(it->report, "the agent's buffer of " + std::to_string(limit) +
                                      " lines overflowed while " + last_failure_);
      overflow.push_back(std::move(it->report));
      it = queue_.erase(it);
    }
    // Still over: the newest report alone is too long; its oldest lines go.
    auto& newest = queue_.back().report;
    if (limit > 0 && queued_lines_ > limit && newest.type == model::AgentReport::Type::kLog) {
      size_t cut = std::min(queued_lines_ - limit, newest.lines.size());
      model::AgentReport head = newest;
      head.lines.assign(newest.lines.begin(), newest.lines.begin() + static_cast<long>(cut));
      newest.lines.erase(newest.lines.begin(), newest.lines.begin() + static_cast<long>(cut));
      queued_lines_ -= cut;
      CountLostLocked(head, "the agent's buffer of " + std::to_string(limit) +
                                " lines overflowed while " + last_failure_);
      overflow.push_back(std::move(head));
    }
  }
  cv_.SignalAll();
  for (const auto& r : overflow) Drop(r, "buffer full");
}

bool Reporter::WaitIdle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&mu_);
  while (!(queue_.empty() && !busy_)) {
    if (!cv_.WaitUntil(&mu_, deadline)) break;
  }
  return queue_.empty() && !busy_ && (!exit_sent_ || exit_acked_);
}

int64_t Reporter::delivered() const {
  MutexLock lock(&mu_);
  return delivered_;
}

int64_t Reporter::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

int64_t Reporter::lost_lines() const {
  MutexLock lock(&mu_);
  return lost_lines_;
}

void Reporter::Drop(const model::AgentReport& report, const std::string& why) {
  diag_("dropping report seq " + std::to_string(report.seq) + ": " + why);
  if (report.type == model::AgentReport::Type::kLog && !options_.undelivered_log.empty()) {
    std::ofstream out(options_.undelivered_log, std::ios::app);
    for (const auto& l : report.lines) out << l.timestamp_ms << ' ' << l.message << '\n';
  }
}

Reporter::Attempt Reporter::Post(const model::AgentReport& report) {
  if (!conn_->client) {
    if (!options_.server_url.empty()) {
      conn_->url = options_.server_url;
    } else {
      auto url = ReadFile(options_.server_url_file);
      if (!url.ok() || Trim(*url).empty()) return Attempt::kRetry;
      conn_->url = Trim(*url);
    }
    conn_->client = std::make_unique<httplib::Client>(conn_->url);
    if (!conn_->client->is_valid()) {
      diag_("invalid control plane URL '" + conn_->url + "'");
      conn_->client.reset();
      return Attempt::kRetry;
    }
    conn_->client->set_keep_alive(true);
    conn_->client->set_tcp_nodelay(true);
    conn_->client->set_connection_timeout(std::chrono::seconds(2));
    conn_->client->set_read_timeout(std::chrono::seconds(30));
    conn_->client->set_write_timeout(std::chrono::seconds(30));
  }
  model::AgentReport stamped = report;
  {
    // Stamped at sending, not queueing: everything before this report in the
    // queue has been delivered or dropped (and counted) by now.
    MutexLock lock(&mu_);
    stamped.lost_lines = lost_lines_;
    stamped.lost_reason = lost_reason_;
  }
  std::string body = model::AgentReportToJson(stamped).dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  httplib::Headers headers = {{"Authorization", "Bearer " + options_.token}};
  auto res = conn_->client->Post(model::kAgentReportPath, headers, body, "application/json");
  if (!res) {
    // The server may be gone or moved: reconnect, re-reading its URL.
    conn_->client.reset();
    MutexLock lock(&mu_);
    last_failure_ = "the control plane was unreachable";
    return Attempt::kRetry;
  }
  int status = res->status;
  if (status >= 200 && status < 300) return Attempt::kDelivered;
  if (status >= 400 && status < 500 && status != 408 && status != 429) {
    diag_("control plane refused report seq " + std::to_string(report.seq) + ": HTTP " +
          std::to_string(status) + " " + res->body.substr(0, 512));
    return Attempt::kPermanent;
  }
  auto answer = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  std::string why = answer.is_object() && answer.contains("error") && answer["error"].is_string()
                        ? answer["error"].get<std::string>()
                        : "HTTP " + std::to_string(status);
  MutexLock lock(&mu_);
  last_failure_ = "the control plane could not take them (" + why.substr(0, 200) + ")";
  return Attempt::kRetry;
}

void Reporter::Loop() {
  auto backoff = options_.min_backoff;
  MutexLock lock(&mu_);
  for (;;) {
    while (!shutdown_ && queue_.empty()) cv_.Wait(&mu_);
    if (shutdown_) return;
    Pending item = queue_.front();
    queue_.pop_front();
    if (item.report.type == model::AgentReport::Type::kLog) {
      queued_lines_ -= item.report.lines.size();
    }
    queued_samples_ -= item.report.samples.size();
    busy_ = true;
    lock.Unlock();

    bool is_exit = item.report.type == model::AgentReport::Type::kExit;
    Attempt a = Post(item.report);

    lock.Lock();
    if (a == Attempt::kDelivered || a == Attempt::kPermanent) {
      if (a == Attempt::kDelivered) {
        ++delivered_;
        if (is_exit) exit_acked_ = true;
      } else {
        ++dropped_;
        CountLostLocked(item.report, "the control plane refused them");
        lock.Unlock();
        Drop(item.report, "refused by the control plane");
        lock.Lock();
      }
      backoff = options_.min_backoff;
      busy_ = false;
      cv_.SignalAll();
      continue;
    }
    auto budget = is_exit
                      ? std::chrono::duration_cast<std::chrono::seconds>(options_.exit_retry_budget)
                      : options_.retry_budget;
    if (std::chrono::steady_clock::now() - item.queued >= budget) {
      ++dropped_;
      CountLostLocked(item.report, "they could not be delivered for " +
                                       std::to_string(budget.count()) + " s: " + last_failure_);
      busy_ = false;
      lock.Unlock();
      Drop(item.report, "control plane unreachable");
      lock.Lock();
      cv_.SignalAll();
      continue;
    }
    // Keep order: the report goes back to the front and is retried after the backoff.
    if (item.report.type == model::AgentReport::Type::kLog) {
      queued_lines_ += item.report.lines.size();
    }
    queued_samples_ += item.report.samples.size();
    queue_.push_front(std::move(item));
    busy_ = false;
    const auto retry_at = std::chrono::steady_clock::now() + backoff;
    while (!shutdown_) {
      if (!cv_.WaitUntil(&mu_, retry_at)) break;
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace ty::agent
