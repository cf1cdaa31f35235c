// CapacityPool: how many instances of each type this machine hosts at once,
// and how many are in use. Not thread-safe: the controller's loop owns it.
#pragma once

#include <map>
#include <string>

#include "capacity/instance_catalog.h"

namespace ty::capacity {

struct CapacityConfig {
  std::map<std::string, int> counts;  // per instance type
  int default_count = 0;              // types not listed ("*"); 0: derived from the host
};

// Instances of `type` a host with `host_cpus` cores and `host_memory_gib` can
// hold at once: min(cores / vCPUs, memory / instance memory), at least 1 (a
// machine can always run one instance of anything, slowly).
int DefaultInstanceCount(const InstanceType& type, int host_cpus, double host_memory_gib);

class CapacityPool {
 public:
  // host_cpus / host_memory_gib feed DefaultInstanceCount for types the
  // config does not list.
  CapacityPool(CapacityConfig config, const InstanceCatalog* catalog, int host_cpus,
               double host_memory_gib);

  int Total(const std::string& type) const;
  int InUse(const std::string& type) const;
  // Takes `count` instances of `type` if that many are free.
  bool TryAcquire(const std::string& type, int count);
  // Takes them even past the total (re-adopting agents that are already running).
  void ForceAcquire(const std::string& type, int count);
  void Release(const std::string& type, int count);

 private:
  CapacityConfig config_;
  const InstanceCatalog* catalog_;
  int host_cpus_;
  double host_memory_gib_;
  std::map<std::string, int> in_use_;
};

}  // namespace ty::capacity
