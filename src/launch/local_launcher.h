// LocalLauncher: runs each agent as `<trainyard binary> agent --instance FILE`
// in its own session on this machine, its stdout/stderr appended to
// <instance_dir>/../algo-<n>.agent.log. Agents outlive a crashed server so
// a restarted server can re-adopt them; a graceful shutdown stops them.
// Thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "launch/launcher.h"

namespace ty::launch {

class LocalLauncher final : public Launcher {
 public:
  // agent_binary: the trainyard executable (usually /proc/self/exe resolved).
  explicit LocalLauncher(std::string agent_binary);

  Result<AgentHandle> Launch(const model::InstanceConfig& config) override;
  void Signal(const AgentHandle& agent, int sig) override;
  bool Alive(const AgentHandle& agent) override;

 private:
  std::string agent_binary_;
  std::mutex mu_;
  std::set<int64_t> children_;  // pids we forked (and so must reap)
};

// The kernel start time of a process (field 22 of /proc/<pid>/stat); 0 if gone.
int64_t ProcessStartTicks(int64_t pid);

}  // namespace ty::launch
