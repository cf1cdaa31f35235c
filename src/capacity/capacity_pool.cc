#include "capacity/capacity_pool.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ty::capacity {

int DefaultInstanceCount(const InstanceType& type, int host_cpus, double host_memory_gib) {
  int by_cpu = type.vcpus > 0 ? host_cpus / type.vcpus : host_cpus;
  int by_memory = type.memory_gib > 0
                      ? static_cast<int>(std::floor(host_memory_gib / type.memory_gib))
                      : by_cpu;
  return std::max(1, std::min(by_cpu, by_memory));
}

CapacityPool::CapacityPool(CapacityConfig config, const InstanceCatalog* catalog, int host_cpus,
                           double host_memory_gib)
    : config_(std::move(config)),
      catalog_(catalog),
      host_cpus_(host_cpus),
      host_memory_gib_(host_memory_gib) {}

int CapacityPool::Total(const std::string& type) const {
  if (auto it = config_.counts.find(type); it != config_.counts.end()) return it->second;
  if (config_.default_count > 0) return config_.default_count;
  const InstanceType* known = catalog_->Find(type);
  // Without a size there is nothing to divide the host by; one instance of
  // anything always fits.
  if (known == nullptr) return 1;
  return DefaultInstanceCount(*known, host_cpus_, host_memory_gib_);
}

int CapacityPool::InUse(const std::string& type) const {
  auto it = in_use_.find(type);
  return it == in_use_.end() ? 0 : it->second;
}

bool CapacityPool::TryAcquire(const std::string& type, int count) {
  if (InUse(type) + count > Total(type)) return false;
  in_use_[type] += count;
  return true;
}

void CapacityPool::ForceAcquire(const std::string& type, int count) { in_use_[type] += count; }

void CapacityPool::Release(const std::string& type, int count) {
  auto it = in_use_.find(type);
  if (it == in_use_.end()) return;
  it->second -= count;
  if (it->second <= 0) in_use_.erase(it);
}

}  // namespace ty::capacity
