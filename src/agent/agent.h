// The per-instance agent (`trainyard agent --instance FILE`): everything that
// happens "on the training instance" (ARCHITECTURE.md decision 1). It stages
// /opt/ml, runs the training process (inside bubblewrap when available),
// ships its output as log reports, uploads the artifacts and reports the
// outcome to the control plane (decision 2).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>

#include "model/agent_protocol.h"

namespace ty::agent {

class Reporter;
class Supervisor;

// Entry point of `trainyard agent --instance FILE`: reads the InstanceConfig
// JSON at `instance_config_path`, installs SIGTERM/SIGINT handlers (= stop the
// training process: SIGTERM, SIGKILL after stop_grace_seconds) and a SIGUSR1
// handler (= spot interruption notice, see RequestInterrupt), runs the
// instance and restores the handlers. Diagnostics go to `err`.
// Returns 0 when the exit report was acknowledged by the control plane, 1
// when it could not be delivered, 2 when the config could not be read.
int RunAgent(const std::string& instance_config_path, std::ostream& err);

struct AgentOptions {
  // Path of the bubblewrap binary; probed once per process.
  std::string bwrap_path = "/usr/bin/bwrap";
  // How long the exit report is retried before the agent gives up.
  std::chrono::seconds exit_retry_budget{1800};
  // How long phase and log reports are retried before they are dropped.
  std::chrono::seconds retry_budget{600};
  // The NVML library the instance sampler loads for GPU metrics ("": libnvidia-ml.so.1).
  std::string nvml_library;
};

// One instance run. Thread contract: Run() once, from one thread;
// RequestStop() from any thread or a signal handler.
class Agent {
 public:
  Agent(model::InstanceConfig config, std::ostream& err, AgentOptions options = {});
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Async-signal-safe: the job is being stopped (SIGTERM): the training
  // process gets SIGTERM, then the artifacts are uploaded.
  void RequestStop();
  // Async-signal-safe: spot interruption notice (SIGUSR1): the training
  // process gets SIGTERM and part of the notice period to save a
  // checkpoint; the checkpoints are synced and the instance reports
  // Interrupted (no artifacts).
  void RequestInterrupt();
  // Async-signal-safe (SIGUSR2): another instance failed the job; stop the training process
  // as a stop would, sync checkpoints, upload no artifacts.
  void RequestAbort();

  // Runs the instance to the end and reports its outcome; same return value
  // as RunAgent.
  int Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when bubblewrap at `bwrap_path` can create a sandbox here (runs
// `bwrap --ro-bind / / true` once per path and caches the answer).
bool BubblewrapWorks(const std::string& bwrap_path);

}  // namespace ty::agent
