// Helpers for the agent tests: a tiny control-plane stand-in (httplib::Server on
// 127.0.0.1, port 0) that records every report.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "model/agent_protocol.h"

namespace ty::agent::testing {

class FakeControlPlane {
 public:
  // `respond` may override the status for a request (return 0 to accept).
  explicit FakeControlPlane(std::string token = "tok") : token_(std::move(token)) {
    server_.Post(model::kAgentReportPath,
                 [this](const httplib::Request& req, httplib::Response& res) {
                   std::lock_guard<std::mutex> lock(mu_);
                   ++requests_;
                   if (fail_next_ > 0) {
                     --fail_next_;
                     res.status = fail_status_;
                     return;
                   }
                   if (req.get_header_value("Authorization") != "Bearer " + token_) {
                     res.status = 401;
                     return;
                   }
                   auto j = nlohmann::json::parse(req.body, nullptr, false);
                   auto r = model::AgentReportFromJson(j);
                   if (!r.ok()) {
                     res.status = 400;
                     return;
                   }
                   reports_.push_back(*r);
                   res.status = 200;
                   res.set_content("{}", "application/json");
                   cv_.notify_all();
                 });
    server_.set_tcp_nodelay(true);  // else every keep-alive round trip waits ~40 ms (Nagle)
    server_.set_keep_alive_timeout(1);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the listen loop runs would be lost (httplib 0.11).
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeControlPlane() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  void FailNext(int n, int status) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = n;
    fail_status_ = status;
  }
  // Forgets the reports received so far (a test running several agents in turn).
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    reports_.clear();
  }
  std::vector<model::AgentReport> reports() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reports_;
  }
  int requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Waits until pred(reports) holds or 10 s pass.
  bool WaitFor(const std::function<bool(const std::vector<model::AgentReport>&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return pred(reports_); });
  }
  // All log lines received so far, in order.
  std::vector<std::string> LogLines() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& r : reports_) {
      if (r.type != model::AgentReport::Type::kLog) continue;
      for (const auto& l : r.lines) out.push_back(l.message);
    }
    return out;
  }

 private:
  std::string token_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<model::AgentReport> reports_;
  int requests_ = 0;
  int fail_next_ = 0;
  int fail_status_ = 503;
};

}  // namespace ty::agent::testing
