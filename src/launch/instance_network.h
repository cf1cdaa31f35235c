// InstanceNetworks: gives each instance ("algo-1".."algo-N") of a multi-node training job its
// own network on this one machine, and removes it afterwards. It shells out to `ip` (iproute2);
// the kernel's state is the only record (nothing is kept on disk), so a restarted server finds
// the networks of its running jobs again by name.
//
// Two modes:
// - kNamespaces: one network namespace per instance, all joined by a bridge on the host. Job
//   `key` gets, in the order Create makes them:
//     bridge "tyb-<key>" with the gateway address 10.X.Y.1/24 (the host side: a service that
//       instances must reach binds this address or 0.0.0.0);
//     per instance n (1-based): netns "ty-<key>-<n>", a veth pair whose host end "tyv-<key>-<n>"
//       is a port of the bridge and whose other end is "eth0" inside the netns with address
//       10.X.Y.(n+1)/24, lo and eth0 up, default route via the gateway;
//     the bridge's alias "trainyard server=<owner>" (set with the bridge), which says whose it
//       is, and last "trainyard server=<owner> instances=<count>", which marks it complete.
//   The /24 is derived from the key and moves on past any /24 that overlaps an address or route
//   of this machine, a name server of /etc/resolv.conf, or a network this object is making, so
//   two jobs never share one. This object sets up no forwarding, NAT or filtering: on its own,
//   instances reach each other and the host (and, with net.ipv4.ip_forward=1, whatever the host
//   routes to). What they may reach is launch/network_firewall.h's. Nothing is written to
//   /etc/netns: whoever starts processes in an instance binds HostsFileText() and
//   ResolvConfText() over /etc/hosts and /etc/resolv.conf.
// - kLoopback: no kernel objects. Instance n gets 127.X.Y.n (all of 127/8 is local on Linux),
//   X.Y derived from the key; instances share the host's network and interface "lo". For
//   machines where namespaces cannot be made (see ProbeNetworkSupport()).
//
// Names: keys are [0-9a-z]+ (JobNetworkKey() makes 8 hex characters); Linux interface names have
// at most 15 characters, which bounds an 8-character key to 99 instances.
//
// Several servers may share a machine: each gives its InstanceNetworks its own owner id (and
// keys of its own, see JobNetworkKey), and SweepLeftovers() takes only networks whose bridge
// names that owner. Firewall rules are launch/network_firewall.h's.
//
// Thread-safe: all methods may be called from any thread. Calls for the same key are serialised
// (a second one waits for the first); calls for different keys run in parallel.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace ty::launch {

enum class NetworkMode { kNamespaces, kLoopback };
// "Namespaces" / "Loopback".
const char* NetworkModeName(NetworkMode mode);

// Linux's limit on interface names (IFNAMSIZ - 1).
inline constexpr size_t kMaxInterfaceNameLength = 15;
// Most instances one job network may have (two decimal digits in interface names).
inline constexpr int kMaxInstancesPerNetwork = 99;

struct InstanceAddress {
  std::string host;   // "algo-<n>"
  std::string ip;     // dotted IPv4, no prefix length
  std::string netns;  // "ty-<key>-<n>"; "" in loopback mode
};

struct JobNetwork {
  NetworkMode mode = NetworkMode::kNamespaces;
  std::string key;
  std::string bridge;     // "tyb-<key>"; "" in loopback mode
  std::string interface;  // the instances' interface: "eth0", or "lo" in loopback mode
  std::string gateway;    // the bridge's address; "" in loopback mode
  std::string subnet;     // "10.X.Y.0/24" (or "172.16-31.Y.0/24"); "127.X.Y.0/24" in loopback
  std::vector<InstanceAddress> instances;  // host order: algo-1 first
};

// Whether namespaces can be made here, and if not why.
struct NetworkSupport {
  bool namespaces = false;
  std::string reason;  // empty when namespaces is true
};

// Creates and deletes a throwaway netns "typrobe-<pid>-<random>" with a bridge and a veth pair
// inside it (so nothing shows on the host). Reasons for false: not root, `ip` missing, or the
// failing `ip` command and its stderr. Takes ~40 ms: call it once at server start.
NetworkSupport ProbeNetworkSupport();

// The network key of a job: the first 8 hex characters of SHA-256(job_arn), or of
// SHA-256(server_id + " " + job_arn) when server_id is not empty (two servers on one machine
// may run jobs of the same ARN). Stable.
std::string JobNetworkKey(const std::string& job_arn, const std::string& server_id = "");
// A server's owner id: the first 8 hex characters of SHA-256(its real data dir path).
std::string ServerNetworkId(const std::string& data_dir);

// The /etc/hosts of every instance: localhost (v4 and v6), then "<ip> algo-<n>" per instance.
std::string HostsFileText(const JobNetwork& network);
// The /etc/resolv.conf of every instance: short timeouts and no "nameserver" line, so glibc
// asks 127.0.0.1, which inside a namespace refuses at once. The host's name server is not
// reachable from a namespace (no forwarding), and naming it would make every lookup that
// misses /etc/hosts (reverse lookups of peers, which gloo and NCCL do) hang for seconds.
std::string ResolvConfText();

// Object names of job `key` (no validation).
std::string BridgeName(const std::string& key);               // "tyb-<key>"
std::string VethName(const std::string& key, int instance);   // "tyv-<key>-<n>"
std::string NetnsName(const std::string& key, int instance);  // "ty-<key>-<n>"
// The /24 Create tries first for `key` ("10.X.Y.0/24", X.Y from SHA-256(key)); Create moves on
// to the next free /24 when this one is in use.
std::string PreferredSubnet(const std::string& key);

// What Destroy did.
struct DestroyReport {
  std::vector<std::string> removed;  // netns and link names that were there and are gone
  std::vector<pid_t> killed;         // processes that were still inside a namespace
};

class InstanceNetworks {
 public:
  // owner: the id written into every bridge this object makes, and the only one
  // SweepLeftovers takes; "" takes every job network on the machine (one server per machine).
  explicit InstanceNetworks(std::string owner = "") : owner_(std::move(owner)) {}
  InstanceNetworks(const InstanceNetworks&) = delete;
  InstanceNetworks& operator=(const InstanceNetworks&) = delete;

  // Makes the network of job `key` with `count` instances, or returns it unchanged when it
  // already exists complete (from an earlier attempt of the same job, also after a server
  // restart), so host names and addresses stay the same across spot restarts. An incomplete
  // one (a crash part-way) is removed and made again on the same /24.
  // All-or-nothing: on failure, what this call made is removed again.
  // Errors: kInvalidArgument for a bad key, a count outside 1..kMaxInstancesPerNetwork, or an
  // interface name longer than 15 characters; kFailedPrecondition when the network exists with
  // another instance count; kResourceExhausted when no free /24 is left; kIoError naming the
  // failing `ip` command and its stderr (e.g. when not root, or a name is taken by something
  // that is not ours).
  // kLoopback makes nothing in the kernel; its X.Y is stable for a key unless another live key
  // of this object already holds it.
  // REQUIRES: the same mode and count for every Create of a key until it is destroyed.
  Result<JobNetwork> Create(const std::string& key, int count, NetworkMode mode);

  // Removes everything of job `key`: first SIGKILLs the processes still inside its namespaces
  // (deleting a netns kills nothing, and a survivor would keep the namespace alive; the job is
  // over when this is called), then the veths, the namespaces and the bridge. Idempotent; a
  // loopback key only releases its X.Y. Errors (kIoError) only when something is still there
  // afterwards, naming it and why. `report` (optional) receives what was removed and killed.
  Status Destroy(const std::string& key, DestroyReport* report = nullptr);

  // Destroys every job network of this owner on this machine ("ty-*" netns, "tyb-*"/"tyv-*"
  // links; with an owner, only keys whose bridge names it) whose key is not in `keep`, e.g.
  // after a server crash. Returns the netns and link names removed.
  // Errors: kIoError when listing fails or something could not be removed (the others are
  // removed anyway).
  Result<std::vector<std::string>> SweepLeftovers(const std::set<std::string>& keep);

 private:
  class KeyLock;

  Result<JobNetwork> CreateNamespaces(const std::string& key, int count);
  JobNetwork CreateLoopback(const std::string& key, int count);
  // Destroy without taking the key lock (the caller holds it).
  Status DestroyLocked(const std::string& key, DestroyReport* report);
  // Chooses and reserves a free /24 for `key`, trying `preferred` (a network address) first.
  Result<uint32_t> ReserveSubnet(const std::string& key, uint32_t preferred);
  void ReleaseSubnet(const std::string& key);

  const std::string owner_;
  Mutex mu_;
  CondVar key_released_;
  std::set<std::string> busy_keys_ TY_GUARDED_BY(mu_);           // a call is working on these
  std::map<std::string, uint32_t> subnets_ TY_GUARDED_BY(mu_);   // key -> its /24 (host order)
  std::map<std::string, uint32_t> loopback_ TY_GUARDED_BY(mu_);  // key -> its 127.X.Y.0
};

}  // namespace ty::launch
