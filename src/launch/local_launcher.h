// LocalLauncher: runs each agent as `<trainyard binary> agent --instance FILE`
// in its own session on this machine, its stdout/stderr appended to
// <instance_dir>/../algo-<n>.agent.log. Agents outlive a crashed server so
// a restarted server can re-adopt them; a graceful shutdown stops them.
// Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/mutex.h"
#include "launch/instance_network.h"
#include "launch/network_firewall.h"
#include "launch/process_launcher.h"

namespace ty::launch {

// How instances are networked (server config `network`):
//  auto        a network namespace per instance, every job, where this machine allows it (root,
//              iproute2) and the sandbox runs; else multi-node jobs get loopback aliases and
//              single-instance jobs share the host's network (their job log says so);
//  namespaces  namespaces or nothing: jobs that cannot have them fail to start with the reason;
//  loopback    no namespaces: 127.X.Y.<n> per instance of a multi-node job on the host's
//              network (no isolation between instances; they must not bind the same port).
enum class NetworkPolicy { kAuto, kNamespaces, kLoopback };
Result<NetworkPolicy> ParseNetworkPolicy(const std::string& name);

// Who owns the kernel objects of a LocalLauncher, and what its jobs may reach.
struct LocalNetworkOptions {
  // Scopes networks and the firewall table to one server (ServerNetworkId of its data dir), so
  // that several servers share a machine; "" owns every job network on it.
  std::string server_id;
  // The S3 store's URL ("http://127.0.0.1:4568") for jobs with store access; "" for none.
  std::string store_url;
  // Make the nftables table (launch/network_firewall.h) and turn on IPv4 forwarding for NAT
  // (servers do; default off, so that a launcher in a unit test changes nothing host-wide).
  // Without it, instances in namespaces reach every listener of the host on the gateway
  // address, and nothing beyond.
  bool firewall = false;
};

class LocalLauncher final : public ProcessLauncher {
 public:
  // agent_binary: the trainyard executable (usually /proc/self/exe resolved). Probes for
  // network namespaces once (kAuto, kNamespaces), then for nftables, makes the firewall table
  // and, where the host has a default route, turns on IPv4 forwarding for NAT.
  explicit LocalLauncher(std::string agent_binary, NetworkPolicy network = NetworkPolicy::kAuto,
                         LocalNetworkOptions options = {});
  // Close()s.
  ~LocalLauncher() override;
  // Removes the firewall table (the server is shutting down, its jobs' networks released).
  // Idempotent.
  void Close();

  Result<AgentHandle> Launch(const model::InstanceConfig& config) override;
  void Signal(const AgentHandle& agent, int sig) override;
  bool Alive(const AgentHandle& agent) override;
  Result<std::vector<model::InstanceNetworkConfig>> PrepareNetwork(
      const std::string& job_arn, const NetworkRequest& request) override;
  bool PreparesNetworkAtOnce(const NetworkRequest& request) const override;
  void ReleaseNetwork(const std::string& job_arn) override;
  void SweepNetworks(const std::vector<std::string>& keep) override;

  // Lines for the server's start-up output: how instances are networked, what they reach.
  std::string NetworkSummary() const;

 private:
  // The network mode of a request, and when not namespaces, why not.
  NetworkMode ModeFor(const NetworkRequest& request, std::string* why_not) const;
  // The notice of an instance in a namespace.
  std::string NamespaceNotice(const JobNetwork& net, const JobReach& reach) const;

  std::string agent_binary_;
  NetworkPolicy policy_;
  LocalNetworkOptions options_;
  NetworkSupport support_;
  InstanceNetworks networks_;
  std::unique_ptr<NetworkFirewall> firewall_;  // null: no firewall (firewall_reason_ says why)
  std::string firewall_reason_;
  bool nat_ = false;             // the host has a default route and forwards for our NAT
  std::string forwarding_note_;  // what the constructor did to net.ipv4.ip_forward
  Mutex mu_;
  std::set<int64_t> children_ TY_GUARDED_BY(mu_);  // pids we forked (and so must reap)
};

// The kernel start time of a process (field 22 of /proc/<pid>/stat); 0 if gone.
int64_t ProcessStartTicks(int64_t pid);

}  // namespace ty::launch
