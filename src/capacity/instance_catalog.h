// InstanceCatalog: the SageMaker training instance types Trainyard knows, with
// their vCPUs, memory, GPUs and public on-demand hourly price (us-east-1).
// The server config may override or add types (ServerConfig::instance_types).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace ty::capacity {

struct InstanceType {
  std::string name;            // "ml.m5.xlarge"
  int vcpus = 0;
  double memory_gib = 0;
  int gpus = 0;
  double on_demand_price = 0;  // USD per instance-hour
};

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
