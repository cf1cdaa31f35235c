// InstanceCatalog: the SageMaker training instance types Trainyard knows, with
// their vCPUs, memory, GPUs, public on-demand hourly price (us-east-1) and process limit.
// The server config may override or add types (ServerConfig::instance_types).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace ty::capacity {

struct InstanceType {
  std::string name;  // "ml.m5.xlarge"
  int vcpus = 0;
  double memory_gib = 0;
  int gpus = 0;
  double on_demand_price = 0;  // USD per instance-hour
  // Processes and threads one instance may run at once (its pids cgroup); 0: DefaultMaxProcesses.
  int max_processes = 0;
};

// The process limit of a type that sets none: 256 per vCPU, at least 4096. Generous for real
// training (a data loader worker per core, each with a thread pool per core), yet a fork bomb
// stops there instead of at the host's pid_max.
int DefaultMaxProcesses(int vcpus);

// type.max_processes, or DefaultMaxProcesses(type.vcpus) when it is 0.
int MaxProcesses(const InstanceType& type);

class InstanceCatalog {
 public:
  // The built-in table: ml.m5, ml.c5, ml.g4dn, ml.g5, ml.p3 families at least.
  static InstanceCatalog Builtin();

  // nullptr when unknown.
  const InstanceType* Find(const std::string& name) const;
  // Adds `type` or replaces the entry of the same name.
  void Upsert(InstanceType type);
  // Every type, sorted by name.
  std::vector<InstanceType> All() const;

 private:
  std::map<std::string, InstanceType> types_;
};

}  // namespace ty::capacity
