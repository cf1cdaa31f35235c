// InstanceSampler: measures one training instance for CloudWatch's instance metrics
// (model::InstanceSample), the way SageMaker reports them for the algorithm container:
//  - CPU: CPU time per wall-clock time, summed over cores (100 per busy vCPU), from the
//    instance cgroup's usage (v2 cpu.stat usage_usec, v1 cpuacct.usage) when the instance has
//    one, else from the /proc times of the process tree under root_pid (reaped children
//    included). The first sample only sets the baseline and has no CPU value.
//  - memory: the cgroup's memory.current (v1 memory.usage_in_bytes) less its inactive page
//    cache, else the tree's resident set, as a percent of memory_limit_bytes (the host's
//    MemTotal when 0);
//  - disk: used space of the file system holding volume_path (the instance's volume or the
//    tree's /opt/ml), as df computes it;
//  - GPU and GPU memory: through NVML, loaded with dlopen at construction only when the
//    library is there, summed over the first `gpus` devices (100 per GPU). Without it there
//    are no GPU values and notice() says so once.
// Missing files or failed reads leave that metric out; sampling never fails a job.
//
// Thread contract: one thread uses a sampler.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/agent_protocol.h"

namespace ty::agent {

struct SamplerOptions {
  std::vector<std::string>
      cgroup_dirs;     // the instance's (LimitsOutcome::cgroup_dirs); may be empty
  pid_t root_pid = 0;  // the process tree measured without a cgroup; 0: none
  std::string proc_root = "/proc";
  uint64_t memory_limit_bytes = 0;  // 0: the host's MemTotal
  std::string volume_path;          // "": no disk metric
  int gpus = 0;                     // GPUs of the instance type
  std::string nvml_library = "libnvidia-ml.so.1";
};

class InstanceSampler {
 public:
  explicit InstanceSampler(SamplerOptions options);
  ~InstanceSampler();
  InstanceSampler(const InstanceSampler&) = delete;
  InstanceSampler& operator=(const InstanceSampler&) = delete;

  // A sample stamped `timestamp_ms`; `now` (a monotonic clock) measures the CPU interval.
  model::InstanceSample Sample(int64_t timestamp_ms, std::chrono::steady_clock::time_point now);

  // A line for the job's log about what cannot be measured here, or "".
  const std::string& notice() const { return notice_; }
  bool has_gpu_metrics() const;

 private:
  std::optional<double> CpuSeconds();
  std::optional<double> MemoryPercent();
  std::optional<double> DiskPercent();

  SamplerOptions options_;
  std::string notice_;
  std::optional<double> last_cpu_s_;
  std::chrono::steady_clock::time_point last_at_;
  struct Nvml;
  std::unique_ptr<Nvml> nvml_;
};

}  // namespace ty::agent
