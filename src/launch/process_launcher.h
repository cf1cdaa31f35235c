// ProcessLauncher (being replaced by launch/launcher.h): decides where a job's agents run and how
// to signal them. Implementations: LocalLauncher (agents are processes on this machine). A
// SlurmLauncher comes later (ARCHITECTURE.md decision 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "launch/launcher.h"  // NetworkRequest
#include "model/agent_protocol.h"

namespace ty::launch {

// Identifies a running agent well enough to signal it and to recognise it
// again after a server restart (pid plus the kernel's start time, so a
// reused pid is never mistaken for our agent).
struct AgentHandle {
  int64_t pid = 0;
  int64_t start_ticks = 0;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Starts one agent for `config` (its instance file is written by the
  // launcher). Errors: kIoError when the agent could not be started.
  virtual Result<AgentHandle> Launch(const model::InstanceConfig& config) = 0;
  // Sends `sig` to the agent; a gone agent is not an error.
  virtual void Signal(const AgentHandle& agent, int sig) = 0;
  // True while the agent process exists (reaps it if it is our child).
  virtual bool Alive(const AgentHandle& agent) = 0;

  // Every job. PrepareNetwork gives each of `request.count` instances of job `job_arn` its
  // network: its address and the names of all (algo-1 first), or for a single instance that
  // cannot have a network of its own an empty address and a notice saying so; called again
  // for a restart of the same job it returns the same addresses. ReleaseNetwork removes it
  // when the job ends (a no-op for a job that got none); SweepNetworks removes networks of
  // jobs not in `keep` (left by a crashed server).
  // Errors: kFailedPrecondition when this launcher cannot run the job's network (multi-node
  // without namespaces where they are required, network isolation without namespaces).
  virtual Result<std::vector<model::InstanceNetworkConfig>> PrepareNetwork(
      const std::string& job_arn, const NetworkRequest& request) = 0;
  // True when PrepareNetwork(request) does no slow work (nothing to make in the kernel), so
  // the controller may call it on its loop instead of on a thread of its own.
  virtual bool PreparesNetworkAtOnce(const NetworkRequest& request) const { return false; }
  virtual void ReleaseNetwork(const std::string& job_arn) = 0;
  virtual void SweepNetworks(const std::vector<std::string>& keep) = 0;
};

}  // namespace ty::launch
