// FakeLauncher: a Launcher that starts nothing; it hands out pids, records
// the configs and signals it got, and says an agent is alive until the test
// (or a SIGKILL) says otherwise.
#pragma once

#include <signal.h>

#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "launch/launcher.h"

namespace ty::testing {

class FakeLauncher final : public launch::Launcher {
 public:
  Result<launch::AgentHandle> Launch(const model::InstanceConfig& config) override {
    std::lock_guard<std::mutex> lock(mu);
    configs.push_back(config);
    if (fail) return IoError("no capacity in this test");
    int64_t pid = next_pid++;
    alive.insert(pid);
    return launch::AgentHandle{pid, 7};
  }
  void Signal(const launch::AgentHandle& agent, int sig) override {
    std::lock_guard<std::mutex> lock(mu);
    signals.emplace_back(agent.pid, sig);
    if (sig == SIGKILL) alive.erase(agent.pid);
  }
  bool Alive(const launch::AgentHandle& agent) override {
    std::lock_guard<std::mutex> lock(mu);
    return alive.count(agent.pid) > 0;
  }
  std::mutex mu;
  std::vector<model::InstanceConfig> configs;
  std::vector<std::pair<int64_t, int>> signals;
  std::set<int64_t> alive;
  int64_t next_pid = 1000;
  bool fail = false;
};

}  // namespace ty::testing
