// FakeLauncher: a Launcher that starts nothing; it hands out pids, records
// the configs and signals it got, and says an agent is alive until the test
// (or a SIGKILL) says otherwise.
#pragma once

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "launch/process_launcher.h"

namespace ty::testing {

class FakeLauncher final : public launch::ProcessLauncher {
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
  // Networks: instance i of any job is 10.0.0.<i> on eth0 (no kernel objects).
  Result<std::vector<model::InstanceNetworkConfig>> PrepareNetwork(
      const std::string& job_arn, const launch::NetworkRequest& request) override {
    const int count = request.count;
    std::chrono::milliseconds delay;
    {
      std::lock_guard<std::mutex> lock(mu);
      delay = network_delay;
    }
    std::this_thread::sleep_for(delay);  // as `ip` takes its time, off the controller's loop
    std::unique_lock<std::mutex> lock(mu);
    network_released.wait(lock, [this] { return !hold_networks; });
    ++network_calls;
    network_requests.push_back(request);
    if (fail_network) return FailedPrecondition("no networks in this test");
    networks.insert(job_arn);
    std::vector<model::InstanceNetworkConfig> out(static_cast<size_t>(count));
    for (int i = 1; i <= count; ++i) {
      for (auto& n : out)
        n.hosts.emplace_back("algo-" + std::to_string(i), "10.0.0." + std::to_string(i));
    }
    for (int i = 1; i <= count; ++i) {
      auto& n = out[static_cast<size_t>(i - 1)];
      n.address = "10.0.0." + std::to_string(i);
      n.interface = "eth0";
      n.netns = "fake-" + std::to_string(i);
    }
    return out;
  }
  // Single-instance networks are made at once (on the controller's loop), multi-node ones on
  // a thread, as when LocalLauncher has nothing and something to make in the kernel.
  bool PreparesNetworkAtOnce(const launch::NetworkRequest& request) const override {
    return networks_at_once && request.count == 1;
  }
  // While held, networks made on a thread are not done: the test sees the controller with a
  // placed job whose network is still being made, for as long as it likes.
  void HoldNetworks(bool hold) {
    {
      std::lock_guard<std::mutex> lock(mu);
      hold_networks = hold;
    }
    network_released.notify_all();
  }
  void ReleaseNetwork(const std::string& job_arn) override {
    std::lock_guard<std::mutex> lock(mu);
    networks.erase(job_arn);
  }
  void SweepNetworks(const std::vector<std::string>& keep) override {
    std::lock_guard<std::mutex> lock(mu);
    swept_keep = keep;
  }

  std::mutex mu;
  std::set<std::string> networks;
  std::vector<std::string> swept_keep;
  bool fail_network = false;
  bool hold_networks = false;  // see HoldNetworks
  std::condition_variable network_released;
  std::chrono::milliseconds network_delay{0};
  int network_calls = 0;
  bool networks_at_once = true;
  std::vector<launch::NetworkRequest> network_requests;
  std::vector<model::InstanceConfig> configs;
  std::vector<std::pair<int64_t, int>> signals;
  std::set<int64_t> alive;
  int64_t next_pid = 1000;
  bool fail = false;
};

}  // namespace ty::testing
