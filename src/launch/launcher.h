// Launcher: decides where a job's agents run and how to signal them.
// Implementations: LocalLauncher (agents are processes on this machine).
// A SlurmLauncher comes later (ARCHITECTURE.md decision 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/agent_protocol.h"

namespace ty::launch {

// Identifies a running agent well enough to signal it and to recognise it
// again after a server restart (pid plus the kernel's start time, so a
// reused pid is never mistaken for our agent).
struct AgentHandle {
  int64_t pid = 0;
  int64_t start_ticks = 0;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts one agent for `config` (its instance file is written by the
  // launcher). Errors: kIoError when the agent could not be started.
  virtual Result<AgentHandle> Launch(const model::InstanceConfig& config) = 0;
  // Sends `sig` to the agent; a gone agent is not an error.
  virtual void Signal(const AgentHandle& agent, int sig) = 0;
  // True while the agent process exists (reaps it if it is our child).
  virtual bool Alive(const AgentHandle& agent) = 0;

  // Multi-node jobs. PrepareNetwork gives each of `count` instances of job `job_arn` its
  // address and the names of all (algo-1 first); called again for a restart of the same job
  // it returns the same addresses. ReleaseNetwork removes it when the job ends;
  // SweepNetworks removes networks of jobs not in `keep` (left by a crashed server).
  // Errors: kFailedPrecondition when this launcher cannot run multi-node jobs (and why).
  virtual Result<std::vector<model::InstanceNetworkConfig>> PrepareNetwork(
      const std::string& job_arn, int count) = 0;
  virtual void ReleaseNetwork(const std::string& job_arn) = 0;
  virtual void SweepNetworks(const std::vector<std::string>& keep) = 0;
};

}  // namespace ty::launch
