// What the Slurm tools print, as SlurmLauncher and the agent under srun read it
// (launch/slurm_client.h, launch/slurm_allocation.h): the whole input through every parser of
// tool output (sbatch, squeue, scontrol show, scontrol show hostnames, durations, errors), and
// the parsed hostnames and node records through NodeAddresses and AllocationNetwork. Slurm is
// trusted more than a request, but its output names jobs after user input (job names), and
// what it says becomes host names and /etc/hosts lines in a training job.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "launch/slurm_allocation.h"
#include "launch/slurm_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ty::launch;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ParseSbatchJobId(text);
  for (const SqueueRow& row : ParseSqueue(text)) {
    if (row.name.size() > 4096 || row.reason.size() > 4096) __builtin_trap();
  }
  auto records = ParseScontrolRecords(text);
  for (const auto& rec : records) {
    if (rec.size() > 512) __builtin_trap();
  }
  (void)ParseSlurmSeconds(text);
  if (SlurmErrorLine(text, "x").size() > 4096) __builtin_trap();
  auto hosts = ParseHostnames(text);
  if (hosts.ok()) {
    for (const auto& h : *hosts) {
      if (h.empty() || h.size() > 255 || h.find_first_of(" \t\n/") != std::string::npos) {
        __builtin_trap();  // it would become a broken /etc/hosts line
      }
    }
    auto addresses = NodeAddresses(*hosts, records);
    if (addresses.ok() && !hosts->empty()) {
      SlurmAllocation a;
      a.job_id = static_cast<int64_t>(size);
      a.node_id = static_cast<int>(size % hosts->size());
      a.nodes = *hosts;
      a.addresses = *addresses;
      auto net = AllocationNetwork(a);
      if (net.ok() && net->hosts.size() != hosts->size()) __builtin_trap();
    }
  }
  return 0;
}
