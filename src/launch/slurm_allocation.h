// What an agent started by srun learns from its Slurm allocation: which node of the job it is
// (SLURM_NODEID) and the addresses of every node (SLURM_JOB_NODELIST, expanded by `scontrol show
// hostnames`, each node's NodeAddr from `scontrol show node`). AllocationNetwork turns that into
// the instance's network: algo-<i> is the address of the i-th node of the allocation, on the
// node's own network (no namespace). Then SM_HOSTS, SM_CURRENT_HOST, resourceconfig.json and
// MASTER_ADDR work for DDP as they do locally.
// Thread contract: pure functions, except ReadAllocation (runs scontrol; any thread).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "launch/slurm_client.h"
#include "model/agent_protocol.h"

namespace ty::launch {

struct SlurmAllocation {
  int64_t job_id = 0;
  int node_id = 0;                     // SLURM_NODEID: 0-based index of this node in the job
  std::vector<std::string> nodes;      // the job's nodes, in SLURM_NODEID order
  std::vector<std::string> addresses;  // NodeAddr of each node, same order
};

// SLURM_JOB_ID, SLURM_NODEID and SLURM_JOB_NODELIST from `env`. kInvalidArgument naming the
// variable that is missing or malformed.
struct SlurmEnv {
  int64_t job_id = 0;
  int node_id = 0;
  std::string nodelist;
};
Result<SlurmEnv> ParseSlurmEnv(const std::map<std::string, std::string>& env);

// The addresses of `nodes` from `scontrol show node -o` records (NodeName -> NodeAddr; a node
// without NodeAddr is reached by its name). kInvalidArgument when a node has no record or an
// address is not a plain host name or IP address.
Result<std::vector<std::string>> NodeAddresses(
    const std::vector<std::string>& nodes,
    const std::vector<std::map<std::string, std::string>>& records);

// The network of instance algo-<node_id + 1> among nodes.size() instances. The master port is
// derived from the job id (20000 + id mod 10000), so that two multi-node jobs sharing nodes
// do not clash. kInvalidArgument when node_id is outside the allocation or an address is empty.
Result<model::InstanceNetworkConfig> AllocationNetwork(const SlurmAllocation& allocation);

// Reads the environment of this process and asks Slurm (two scontrol calls).
Result<SlurmAllocation> ReadAllocation(const SlurmClient& client);

}  // namespace ty::launch
