#include "launch/slurm_allocation.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdlib>
#include <fstream>

#include "common/text.h"

extern char** environ;

namespace ty::launch {
namespace {

bool ParseInt(const std::string& s, int64_t max, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

bool IsPlainAddress(const std::string& a) {
  if (a.empty() || a.size() > 255) return false;
  for (char c : a) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// The interface that holds `address` on this node ("lo" for loopback); "eth0" when none does
// (a name, or an address of another node's view).
std::string InterfaceOf(const std::string& address) {
  in_addr want{};
  if (::inet_pton(AF_INET, address.c_str(), &want) != 1) return "eth0";
  if ((ntohl(want.s_addr) >> 24) == 127) return "lo";
  std::string name = "eth0";
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return name;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if (in->sin_addr.s_addr == want.s_addr) {
      name = a->ifa_name;
      break;
    }
  }
  ::freeifaddrs(list);
  return name;
}

// The node's name servers (its resolv.conf, loopback ones included: the instance shares the
// node's network).
std::vector<std::string> NodeNameServers() {
  std::vector<std::string> out;
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line) && out.size() < 8) {
    auto words = SplitWords(line);
    in_addr a{};
    if (words.size() >= 2 && words[0] == "nameserver" &&
        ::inet_pton(AF_INET, words[1].c_str(), &a) == 1) {
      out.push_back(words[1]);
    }
  }
  return out;
}

}  // namespace

Result<SlurmEnv> ParseSlurmEnv(const std::map<std::string, std::string>& env) {
  SlurmEnv e;
  auto get = [&](const char* name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? "" : it->second;
  };
  if (!ParseInt(get("SLURM_JOB_ID"), int64_t{1} << 40, &e.job_id) || e.job_id == 0) {
    return InvalidArgument("SLURM_JOB_ID is not a job id: '" +
                           TruncateUtf8(get("SLURM_JOB_ID"), 40) + "' (not started by srun?)");
  }
  int64_t node = 0;
  if (!ParseInt(get("SLURM_NODEID"), 100000, &node)) {
    return InvalidArgument("SLURM_NODEID is not a node index: '" +
                           TruncateUtf8(get("SLURM_NODEID"), 40) + "'");
  }
  e.node_id = static_cast<int>(node);
  e.nodelist = get("SLURM_JOB_NODELIST");
  if (e.nodelist.empty() || e.nodelist.size() > 65536) {
    return InvalidArgument("SLURM_JOB_NODELIST is empty or too long");
  }
  for (char c : e.nodelist) {
    // A hostlist expression: names, brackets, ranges, commas.
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ',' || c == '[' || c == ']';
    if (!ok) return InvalidArgument("SLURM_JOB_NODELIST is not a node list");
  }
  return e;
}

Result<std::vector<std::string>> NodeAddresses(
    const std::vector<std::string>& nodes,
    const std::vector<std::map<std::string, std::string>>& records) {
  std::map<std::string, std::string> addr_of;
  for (const auto& r : records) {
    auto name = r.find("NodeName");
    if (name == r.end()) continue;
    auto addr = r.find("NodeAddr");
    addr_of[name->second] = addr == r.end() || addr->second.empty() ? name->second : addr->second;
  }
  std::vector<std::string> out;
  for (const auto& n : nodes) {
    auto it = addr_of.find(n);
    if (it == addr_of.end()) return InvalidArgument("Slurm has no record of node " + n);
    if (!IsPlainAddress(it->second)) {
      return InvalidArgument("node " + n + " has an unusable NodeAddr '" +
                             TruncateUtf8(it->second, 100) + "'");
    }
    out.push_back(it->second);
  }
  return out;
}

Result<model::InstanceNetworkConfig> AllocationNetwork(const SlurmAllocation& a) {
  const int n = static_cast<int>(a.addresses.size());
  if (n == 0 || a.nodes.size() != a.addresses.size()) {
    return InvalidArgument("the allocation lists no node addresses");
  }
  if (a.node_id < 0 || a.node_id >= n) {
    return InvalidArgument("SLURM_NODEID " + std::to_string(a.node_id) + " is outside the " +
                           std::to_string(n) + " nodes of the allocation");
  }
  model::InstanceNetworkConfig net;
  for (int i = 0; i < n; ++i) {
    if (a.addresses[i].empty()) return InvalidArgument("node " + a.nodes[i] + " has no address");
    net.hosts.emplace_back("algo-" + std::to_string(i + 1), a.addresses[i]);
  }
  net.address = a.addresses[a.node_id];
  net.interface = InterfaceOf(net.address);
  net.master_port = 20000 + static_cast<int>(a.job_id % 10000);
  net.nameservers = NodeNameServers();
  net.notice = "trainyard: Slurm job " + std::to_string(a.job_id) + ": algo-" +
               std::to_string(a.node_id + 1) + " is node " + a.nodes[a.node_id] + " (" +
               net.address + "); the instances share their nodes' networks";
  return net;
}

Result<SlurmAllocation> ReadAllocation(const SlurmClient& client) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    if (kv.rfind("SLURM_", 0) != 0) continue;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  TY_ASSIGN_OR_RETURN(SlurmEnv se, ParseSlurmEnv(env));
  SlurmAllocation a;
  a.job_id = se.job_id;
  a.node_id = se.node_id;
  TY_ASSIGN_OR_RETURN(a.nodes, client.Hostnames(se.nodelist));
  TY_ASSIGN_OR_RETURN(auto records, client.Show("node", se.nodelist));
  TY_ASSIGN_OR_RETURN(a.addresses, NodeAddresses(a.nodes, records));
  return a;
}

}  // namespace ty::launch
