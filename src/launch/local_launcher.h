// LocalLauncher: runs each agent as `<trainyard binary> agent --instance FILE`
// in its own session on this machine, its stdout/stderr appended to
// <instance_dir>/../algo-<n>.agent.log. Agents outlive a crashed server so
// a restarted server can re-adopt them; a graceful shutdown stops them.
//
// It implements the launcher contract (launch/launcher.h): placement on this machine's capacity
// pool, an attempt's network made per job (kept across attempts until ReleaseJob), all agents of
// an attempt started at once, handles "local:<pid>/<start_ticks>,..." (algo-1 first).
// Thread-safe (beyond what launcher.h requires).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "capacity/capacity_pool.h"
#include "capacity/instance_catalog.h"
#include "common/mutex.h"
#include "launch/instance_network.h"
#include "launch/launcher.h"
#include "launch/network_firewall.h"

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

// One agent of a local attempt: pid plus the kernel's start time, so a reused pid is never
// mistaken for our agent. {0, 0}: an instance that had exited.
struct LocalAgent {
  int64_t pid = 0;
  int64_t start_ticks = 0;
  friend bool operator==(const LocalAgent&, const LocalAgent&) = default;
};

// The most instances a local handle names (a bound for parsing stored text).
inline constexpr size_t kMaxLocalHandleAgents = 4096;

// "local:<pid>/<start_ticks>,<pid>/<start_ticks>,..." algo-1 first.
std::string FormatLocalHandle(std::span<const LocalAgent> agents);
// The agents of a handle FormatLocalHandle made; nullopt when `text` is not one (another
// engine's, truncated, a running pid without a start time, too many instances, ...).
std::optional<std::vector<LocalAgent>> ParseLocalHandle(std::string_view text);

// What the launcher contract adds to the constructor: placement and the agents it owns.
struct LocalLauncherOptions {
  capacity::CapacityConfig capacity;                   // instances of each type this machine hosts
  const capacity::InstanceCatalog* catalog = nullptr;  // null: the built-in catalog
  int host_cpus = 0;                                   // 0: this machine's
  double host_memory_gib = 0;                          // 0: this machine's
  // This server's job trees (<data_dir>/jobs): Sweep kills agents whose instance file is under
  // it and whose attempt is not kept. "": Sweep kills no agent.
  std::string jobs_dir;
};

class LocalLauncher final : public Launcher {
 public:
  // agent_binary: the trainyard executable (usually /proc/self/exe resolved). Probes for
  // network namespaces once (kAuto, kNamespaces), then for nftables, makes the firewall table
  // and, where the host has a default route, turns on IPv4 forwarding for NAT.
  explicit LocalLauncher(std::string agent_binary, NetworkPolicy network = NetworkPolicy::kAuto,
                         LocalNetworkOptions options = {}, LocalLauncherOptions launcher = {});
  // Close()s.
  ~LocalLauncher() override;
  // Waits for networks being made (their attempts end unstarted), then removes the firewall
  // table (the server is shutting down, its jobs' networks released). Idempotent.
  void Close();

  // --- launch::Launcher
  std::string Describe() const override;
  bool OwnsSpotCapacity() const override { return false; }
  // "Waiting for capacity: all N <type> instances of this machine are in use" when the pool has
  // too few; the controller keeps queued jobs in order (and says how many wait ahead).
  Placement Place(const PlacementRequest& request) override;
  void Unplace(const PlacementRequest& request) override;
  void Adopt(const PlacementRequest& request) override;
  CapacityView Capacity(const std::string& instance_type) const override;
  // kInvalidArgument for a type not in the catalog; kResourceExhausted (the API's
  // ResourceLimitExceeded) for more instances than this machine's capacity of the type.
  Status CheckRunnable(const PlacementRequest& request) const override;
  // Forks every agent at once, each held before exec until the job's network is there; makes
  // the network on a thread of its own where that runs `ip`/`nft` (Poll: kStarting meanwhile),
  // at once where it is bookkeeping. Errors: kInvalidArgument for a plan without instances or
  // with a count that does not match its network; kIoError when an instance's directory or
  // log cannot be opened or a process cannot be forked; a network that cannot be made at
  // once is an error here (its code), one made later is kFailed.
  Result<AttemptHandle> LaunchAttempt(const AttemptPlan& plan) override;
  // kStop SIGTERM, kNotice SIGUSR1, kAbort SIGUSR2, kKill SIGKILL (the agent's whole session).
  // An attempt still starting does not start: its held processes end (kEnded).
  void Signal(const AttemptHandle& attempt, AttemptSignal signal,
              std::span<const int> instances = {}) override;
  std::vector<AttemptState> Poll(std::span<const AttemptHandle> attempts) override;
  void ReleaseAttempt(const AttemptHandle& attempt) override;
  // Removes the job's network (waits for it being made, if it is).
  void ReleaseJob(const std::string& job_arn) override;
  // Kills agents under jobs_dir of attempts not kept, and removes networks of jobs not kept.
  void Sweep(std::span<const AttemptHandle> keep_attempts,
             std::span<const std::string> keep_jobs) override;

  // --- The job networks LaunchAttempt, ReleaseJob and Sweep use (public for tests).
  // PrepareNetwork gives each of `request.count` instances of job `job_arn` its network: its
  // address and the names of all (algo-1 first), or for a single instance that cannot have a
  // network of its own an empty address and a notice saying so; called again for the same job
  // it returns the same addresses. Errors: kFailedPrecondition when this launcher cannot give
  // the job's network (namespaces required and missing, isolation without namespaces or the
  // firewall). PreparesNetworkAtOnce: true when that is bookkeeping (nothing in the kernel).
  // ReleaseNetwork removes it (a no-op for a job that has none); SweepNetworks removes networks
  // of jobs not in `keep` (left by a crashed server).
  Result<std::vector<model::InstanceNetworkConfig>> PrepareNetwork(const std::string& job_arn,
                                                                   const NetworkRequest& request);
  bool PreparesNetworkAtOnce(const NetworkRequest& request) const;
  void ReleaseNetwork(const std::string& job_arn);
  void SweepNetworks(const std::vector<std::string>& keep);

  // Lines for the server's start-up output: how instances are networked, what they reach.
  std::string NetworkSummary() const;

 private:
  // An agent forked and held before exec until its attempt's network is there.
  struct Held {
    LocalAgent agent;
    int go_fd = -1;   // write a byte: exec; close: _exit
    int err_fd = -1;  // the exec's errno, or EOF once it execs
    std::string instance_file;
    std::string host;
  };
  struct Attempt {
    std::string job_arn;
    enum class State { kStarting, kExecing, kRunning, kFailed, kCancelled } state;
    std::string reason;                        // kFailed
    std::vector<Held> held;                    // kStarting: the processes to start
    std::vector<model::InstanceConfig> plans;  // kStarting: what they start with
  };
  // A job's network, the same for every attempt until ReleaseJob.
  struct JobNet {
    bool made = false;
    std::vector<model::InstanceNetworkConfig> networks;
    bool busy = false;  // being made or released (a thread waits for it: cv_)
  };

  // Forks an agent held before exec. Errors: kIoError.
  Result<Held> Fork(const model::InstanceConfig& config);
  // Writes the instance files (with their networks) and lets the held agents exec; on a
  // failure ends them all. Returns the failure's reason, "" when all run.
  std::string Start(std::vector<Held>& held, std::vector<model::InstanceConfig>& configs,
                    const std::vector<model::InstanceNetworkConfig>& networks);
  // Closes the held agents' pipes (they _exit) and reaps them.
  void Abandon(std::vector<Held>& held);
  // The job's network, made if it is not yet; waits while another thread makes or releases it.
  Result<std::vector<model::InstanceNetworkConfig>> NetworkFor(const std::string& job_arn,
                                                               const NetworkRequest& request);
  // Runs on the attempt's thread: makes the network, then starts the held agents.
  void StartLater(const std::string& handle, const std::string& job_arn,
                  const NetworkRequest& request);
  // True while our child `pid` (or a foreign process with that start time) exists; reaps.
  bool AgentAlive(const LocalAgent& agent);
  // The network mode of a request, and when not namespaces, why not.
  NetworkMode ModeFor(const NetworkRequest& request, std::string* why_not) const;
  // The notice of an instance in a namespace.
  std::string NamespaceNotice(const JobNetwork& net, const JobReach& reach) const;

  std::string agent_binary_;
  NetworkPolicy policy_;
  LocalNetworkOptions options_;
  LocalLauncherOptions launcher_options_;
  capacity::InstanceCatalog builtin_catalog_;  // when options name none
  NetworkSupport support_;
  InstanceNetworks networks_;
  std::unique_ptr<NetworkFirewall> firewall_;  // null: no firewall (firewall_reason_ says why)
  std::string firewall_reason_;
  bool nat_ = false;             // the host has a default route and forwards for our NAT
  std::string forwarding_note_;  // what the constructor did to net.ipv4.ip_forward
  Mutex mu_;
  std::set<int64_t> children_ TY_GUARDED_BY(mu_);  // pids we forked (and so must reap)
  // Attempts and job networks (children_ has mu_ of its own: AgentAlive takes it alone).
  mutable Mutex amu_;
  CondVar cv_;  // a JobNet stopped being busy; a StartLater thread ended
  std::unique_ptr<capacity::CapacityPool> pool_ TY_GUARDED_BY(amu_);
  std::map<std::string, Attempt> attempts_ TY_GUARDED_BY(amu_);  // by handle, until released
  std::map<std::string, JobNet> jobs_ TY_GUARDED_BY(amu_);       // by ARN
  int threads_running_ TY_GUARDED_BY(amu_) = 0;  // StartLater threads (detached; Close waits)
};

}  // namespace ty::launch
