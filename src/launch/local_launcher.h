// LocalLauncher: runs each agent as `<trainyard binary> agent --instance FILE`
// in its own session on this machine, its stdout/stderr appended to
// <instance_dir>/../algo-<n>.agent.log. Agents outlive a crashed server so
// a restarted server can re-adopt them; a graceful shutdown stops them.
// Thread-safe.
#pragma once

#include <set>
#include <string>

#include "common/mutex.h"
#include "launch/instance_network.h"
#include "launch/launcher.h"

namespace ty::launch {

// How multi-node jobs' instances are networked (server config `network`):
//  auto        a network namespace per instance where this machine allows it (root, iproute2),
//              else loopback aliases;
//  namespaces  namespaces or nothing: multi-node jobs fail to start with the reason;
//  loopback    127.X.Y.<n> per instance on the host's network (no isolation between instances;
//              they must not bind the same port).
enum class NetworkPolicy { kAuto, kNamespaces, kLoopback };
Result<NetworkPolicy> ParseNetworkPolicy(const std::string& name);

class LocalLauncher final : public Launcher {
 public:
  // agent_binary: the trainyard executable (usually /proc/self/exe resolved). Probes for
  // network namespaces once (kAuto, kNamespaces).
  explicit LocalLauncher(std::string agent_binary, NetworkPolicy network = NetworkPolicy::kAuto);

  Result<AgentHandle> Launch(const model::InstanceConfig& config) override;
  void Signal(const AgentHandle& agent, int sig) override;
  bool Alive(const AgentHandle& agent) override;
  Result<std::vector<model::InstanceNetworkConfig>> PrepareNetwork(const std::string& job_arn,
                                                                   int count) override;
  void ReleaseNetwork(const std::string& job_arn) override;
  void SweepNetworks(const std::vector<std::string>& keep) override;

  // One line for the server's start-up output: how multi-node instances are networked.
  std::string NetworkSummary() const;

 private:
  std::string agent_binary_;
  NetworkPolicy policy_;
  NetworkSupport support_;
  InstanceNetworks networks_;
  Mutex mu_;
  std::set<int64_t> children_ TY_GUARDED_BY(mu_);  // pids we forked (and so must reap)
};

// The kernel start time of a process (field 22 of /proc/<pid>/stat); 0 if gone.
int64_t ProcessStartTicks(int64_t pid);

}  // namespace ty::launch
