// FakeLauncher: a launch::Launcher that starts nothing. It records the plans (and so every
// instance's config) and the signals it got, and reports each attempt in the state the test sets
// (running with every instance alive, unless `initial` says otherwise). A kill ends an attempt;
// a stop ends one that has not started running (withdrawn from the engine's queue). Placement is
// a capacity pool per instance type (capacity::CapacityConfig: `default_count` of every type not
// listed).
//
// Thread-safe (ReleaseJob comes from another thread; tests read while the controller runs): every
// member is guarded by `mu`, which tests take to read or change the public fields.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "capacity/capacity_pool.h"
#include "launch/launcher.h"

namespace ty::testing {

class FakeLauncher final : public launch::Launcher {
 public:
  using Phase = launch::AttemptState::Phase;

  struct SignalRecord {
    std::string handle;
    launch::AttemptSignal signal;
    std::vector<int> instances;  // empty: all
  };
  struct Attempt {
    launch::AttemptPlan plan;
    launch::AttemptState state;
  };

  std::string Describe() const override { return "launcher: fake\n"; }
  bool OwnsSpotCapacity() const override {
    std::lock_guard<std::mutex> lock(mu);
    return owns_spot;
  }

  launch::Placement Place(const launch::PlacementRequest& request) override {
    std::lock_guard<std::mutex> lock(mu);
    launch::Placement p;
    const int total = TotalLocked(request.instance_type);
    if (in_use[request.instance_type] + request.instance_count > total) {
      p.waiting = "Waiting for capacity: all " + std::to_string(total) + " " +
                  request.instance_type + " instances of this machine are in use";
      return p;
    }
    in_use[request.instance_type] += request.instance_count;
    p.placed = true;
    p.notice = placement_notice;
    return p;
  }
  void Unplace(const launch::PlacementRequest& request) override {
    std::lock_guard<std::mutex> lock(mu);
    int& n = in_use[request.instance_type];
    n = std::max(0, n - request.instance_count);
  }
  void Adopt(const launch::PlacementRequest& request) override {
    std::lock_guard<std::mutex> lock(mu);
    in_use[request.instance_type] += request.instance_count;
  }
  launch::CapacityView Capacity(const std::string& instance_type) const override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = in_use.find(instance_type);
    return {TotalLocked(instance_type), it == in_use.end() ? 0 : it->second};
  }
  Status CheckRunnable(const launch::PlacementRequest& request) const override {
    std::lock_guard<std::mutex> lock(mu);
    const int total = TotalLocked(request.instance_type);
    if (request.instance_count > total) {
      return Status(StatusCode::kResourceExhausted,
                    "ResourceConfig.InstanceCount " + std::to_string(request.instance_count) +
                        " is more than the " + std::to_string(total) + " " + request.instance_type +
                        " instance(s) this server hosts; raise capacity");
    }
    return Status::Ok();
  }

  Result<launch::AttemptHandle> LaunchAttempt(const launch::AttemptPlan& plan) override {
    std::lock_guard<std::mutex> lock(mu);
    plans.push_back(plan);
    for (const auto& c : plan.instances) configs.push_back(c);
    if (fail) return IoError("no capacity in this test");
    launch::AttemptHandle h{"fake:" + std::to_string(plans.size())};
    Attempt a;
    a.plan = plan;
    a.state = initial;
    a.state.alive.assign(plan.instances.size(), true);
    attempts[h.id] = std::move(a);
    held_jobs.insert(plan.job_arn);
    return h;
  }

  void Signal(const launch::AttemptHandle& attempt, launch::AttemptSignal signal,
              std::span<const int> instances) override {
    std::lock_guard<std::mutex> lock(mu);
    signals.push_back({attempt.id, signal, {instances.begin(), instances.end()}});
    auto it = attempts.find(attempt.id);
    if (it == attempts.end()) return;
    launch::AttemptState& st = it->second.state;
    const bool started = st.phase == Phase::kRunning;
    if (signal == launch::AttemptSignal::kKill ||
        (signal == launch::AttemptSignal::kStop &&
         (st.phase == Phase::kStarting || st.phase == Phase::kPending))) {
      for (size_t i = 0; i < st.alive.size(); ++i) {
        if (instances.empty() ||
            std::find(instances.begin(), instances.end(), static_cast<int>(i)) != instances.end()) {
          st.alive[i] = false;
        }
      }
      if (!started || std::none_of(st.alive.begin(), st.alive.end(), [](bool a) { return a; })) {
        st.phase = Phase::kEnded;
      }
    }
  }

  std::vector<launch::AttemptState> Poll(std::span<const launch::AttemptHandle> handles) override {
    std::lock_guard<std::mutex> lock(mu);
    ++polls;
    std::vector<launch::AttemptState> out;
    for (const auto& h : handles) {
      if (!unreachable.empty()) {
        out.push_back({Phase::kUnknown, unreachable, {}, false});
        continue;
      }
      auto it = attempts.find(h.id);
      out.push_back(it == attempts.end()
                        ? launch::AttemptState{Phase::kEnded, "no such attempt", {}, false}
                        : it->second.state);
    }
    return out;
  }

  void ReleaseAttempt(const launch::AttemptHandle& attempt) override {
    std::lock_guard<std::mutex> lock(mu);
    released_attempts.push_back(attempt.id);
  }
  void ReleaseJob(const std::string& job_arn) override {
    std::lock_guard<std::mutex> lock(mu);
    released_jobs.push_back(job_arn);
    held_jobs.erase(job_arn);
  }
  void Sweep(std::span<const launch::AttemptHandle> keep_attempts,
             std::span<const std::string> keep_jobs) override {
    std::lock_guard<std::mutex> lock(mu);
    swept_keep_attempts.clear();
    for (const auto& h : keep_attempts) swept_keep_attempts.push_back(h.id);
    swept_keep_jobs.assign(keep_jobs.begin(), keep_jobs.end());
    for (auto& [id, a] : attempts) {
      if (std::find(swept_keep_attempts.begin(), swept_keep_attempts.end(), id) ==
          swept_keep_attempts.end()) {
        a.state.phase = Phase::kEnded;
        std::fill(a.state.alive.begin(), a.state.alive.end(), false);
      }
    }
  }

  // Test helpers (they take `mu`).
  void SetCapacity(capacity::CapacityConfig config) {
    std::lock_guard<std::mutex> lock(mu);
    capacity = std::move(config);
  }
  // The handle of the latest attempt of job `name` ("" when none).
  std::string HandleOf(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    for (size_t i = plans.size(); i > 0; --i) {
      if (!plans[i - 1].instances.empty() && plans[i - 1].instances[0].job_name == name) {
        return "fake:" + std::to_string(i);
      }
    }
    return "";
  }
  void SetState(const std::string& handle, Phase phase, std::string reason = "",
                bool preempted = false) {
    std::lock_guard<std::mutex> lock(mu);
    launch::AttemptState& st = attempts[handle].state;
    st.phase = phase;
    st.reason = std::move(reason);
    st.preempted = preempted;
    if (phase == Phase::kRunning) {
      st.alive.assign(std::max<size_t>(1, attempts[handle].plan.instances.size()), true);
    }
    if (phase == Phase::kEnded) std::fill(st.alive.begin(), st.alive.end(), false);
  }
  void SetAlive(const std::string& handle, size_t instance, bool alive) {
    std::lock_guard<std::mutex> lock(mu);
    auto& st = attempts[handle].state;
    if (instance < st.alive.size()) st.alive[instance] = alive;
  }
  // Every attempt's processes are gone.
  void EndAll() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [id, a] : attempts) {
      a.state.phase = Phase::kEnded;
      std::fill(a.state.alive.begin(), a.state.alive.end(), false);
    }
  }
  // The signals that reached instance `instance` (0-based) of attempt `handle`, in order.
  std::vector<launch::AttemptSignal> SignalsTo(const std::string& handle, int instance) {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<launch::AttemptSignal> out;
    for (const auto& s : signals) {
      if (s.handle != handle) continue;
      if (s.instances.empty() ||
          std::find(s.instances.begin(), s.instances.end(), instance) != s.instances.end()) {
        out.push_back(s.signal);
      }
    }
    return out;
  }
  size_t Launches() {
    std::lock_guard<std::mutex> lock(mu);
    return plans.size();
  }
  bool JobReleased(const std::string& arn) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(released_jobs.begin(), released_jobs.end(), arn) != released_jobs.end();
  }

  mutable std::mutex mu;
  capacity::CapacityConfig capacity{{}, 4};
  std::map<std::string, int> in_use;  // by instance type
  bool owns_spot = false;
  std::optional<std::chrono::milliseconds> placement_notice;     // Placement::notice
  bool fail = false;                                             // LaunchAttempt fails
  launch::AttemptState initial{Phase::kRunning, "", {}, false};  // of a new attempt
  std::string unreachable;  // not empty: every Poll answers kUnknown with this reason
  int polls = 0;
  std::vector<launch::AttemptPlan> plans;
  std::vector<model::InstanceConfig> configs;  // every instance of every plan, in order
  std::map<std::string, Attempt> attempts;     // by handle
  std::vector<SignalRecord> signals;
  std::vector<std::string> released_attempts;
  std::vector<std::string> released_jobs;
  std::set<std::string> held_jobs;  // launched and not released (ReleaseJob)
  std::vector<std::string> swept_keep_attempts;
  std::vector<std::string> swept_keep_jobs;

 private:
  int TotalLocked(const std::string& type) const {
    auto it = capacity.counts.find(type);
    return it != capacity.counts.end() ? it->second : capacity.default_count;
  }
};

}  // namespace ty::testing
