// Launcher: decides where a job's agents run and how to signal them.
// Implementations: LocalLauncher (agents are processes on this machine).
// A SlurmLauncher comes later (ARCHITECTURE.md decision 1).
#pragma once

#include <cstdint>
#include <string>

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
};

}  // namespace ty::launch
