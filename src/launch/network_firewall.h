// NetworkFirewall: the nftables rules that keep instance networks (launch/instance_network.h)
// away from the host, away from each other, and on the outside world only where allowed. One
// table per server, `table inet trainyard_<server id>`, holds every rule; jobs come and go as
// set elements, never as rules, so adding or removing one is one `nft -f` and needs no rule
// handles:
//   set bridges  { ifname }            every bridge of this server
//   set peers    { ifname . ifname }   "<bridge> . <bridge>": instances of a job reach each other
//                                      (with br_netfilter, bridged packets pass the forward hook
//                                      with the bridge as both input and output)
//   set nat      { ifname }            jobs that reach the outside world (masquerade)
//   set store    { ifname }            jobs that reach the S3 store (a store on this host at
//                                      <gateway>:<store port>, by DNAT)
// The rules, in order of the hooks:
//   prerouting (dstnat)   from @store to an address of this host, tcp to the store's port: DNAT
//                         to the store (a store on this host, e.g. 127.0.0.1: that also needs
//                         route_localnet on the bridge, which AddJob sets)
//   input                 what @store's DNAT let through: accept; anything else arriving from
//                         a bridge of this server (the API port, the agent route, every host
//                         listener on 0.0.0.0 or the gateway, IPv6 link-local too): drop
//   forward               within one bridge: accept; replies into @nat bridges: accept; into
//                         any other of our bridges: drop (so never from one job to another);
//                         out of @nat bridges: accept; to a remote store from @store bridges:
//                         accept; out of any other bridge: drop
//   postrouting (srcnat)  out of @nat (or @store to a remote store) to a non-bridge: masquerade
// The host must forward IPv4 for NAT (net.ipv4.ip_forward=1): EnableForwarding() sets it; the
// forward rules above are what stop it from routing between two jobs' networks.
//
// Thread-safe: nft applies each call's script atomically; calls may overlap.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ty::launch {

// Where the S3 store that jobs may reach (storage.pass_credentials_to_jobs) listens.
struct StoreEndpoint {
  std::string scheme;  // "http" or "https"
  std::string ip;      // IPv4 literal ("localhost" resolves to 127.0.0.1)
  int port = 0;
  bool on_host = false;  // ip is this machine's (loopback or an own address): reached by DNAT
};

// The store endpoint of an S3 URL ("http://127.0.0.1:4568"), or nullopt when its host is not
// an IPv4 literal or "localhost" (a name is not pinned to an address: jobs with NAT reach it,
// isolated jobs do not). `local_addresses`: this machine's IPv4 addresses beside 127/8.
std::optional<StoreEndpoint> ParseStoreEndpoint(const std::string& url,
                                                const std::vector<std::string>& local_addresses);

// What one job's network may reach beside its own instances.
struct JobReach {
  std::string bridge;    // "tyb-<key>"
  bool outside = false;  // NAT to the outside world (not for EnableNetworkIsolation jobs)
  bool store = false;    // the S3 store (a job with pass_credentials_to_jobs)
};

// "trainyard_<server_id>".
std::string FirewallTableName(const std::string& server_id);

// The nft script that makes (or remakes) the table: its sets are kept (their elements are the
// live jobs, e.g. of re-adopted jobs after a restart), its chains are emptied and filled again.
// `store` null: no store rules.
std::string FirewallTableScript(const std::string& table,
                                const std::optional<StoreEndpoint>& store);
// The nft script that puts `job` into exactly the sets its reach asks for: `add element` for
// those, and `add` then `delete` for the others (so it is absent afterwards whether it was
// there or not, and the script cannot fail on a missing element).
std::string JobElementsScript(const std::string& table, const JobReach& job);
// The nft script that takes the job of `bridge` out of every set.
std::string RemoveJobScript(const std::string& table, const std::string& bridge);

// The store's URL as a job with JobReach::store sees it: the gateway in place of the store's
// host ("http://10.1.2.1:4568"); for a store not on the host, `url` unchanged.
std::string StoreUrlForJob(const std::string& url, const StoreEndpoint& store,
                           const std::string& gateway);

class NetworkFirewall {
 public:
  // store: the endpoint jobs with JobReach::store may reach; nullopt for none.
  NetworkFirewall(const std::string& server_id, std::optional<StoreEndpoint> store);
  NetworkFirewall(const NetworkFirewall&) = delete;
  NetworkFirewall& operator=(const NetworkFirewall&) = delete;

  // Makes the table (FirewallTableScript). Errors: kIoError naming nft and its stderr (nft
  // missing, not root, a kernel without nf_tables).
  Status Install();
  // Removes the table, if there. Errors: kIoError when it is still there afterwards.
  Status Uninstall();
  // Puts a job into its sets, and for a store on the host sets route_localnet on its bridge
  // (the kernel otherwise drops packets DNATed to 127.0.0.1 from a non-loopback interface).
  Status AddJob(const JobReach& job);
  // Takes a job out of every set.
  Status RemoveJob(const std::string& bridge);

  const std::string& table() const { return table_; }
  const std::optional<StoreEndpoint>& store() const { return store_; }

 private:
  std::string table_;
  std::optional<StoreEndpoint> store_;
};

// Whether nft is installed and this process can use nf_tables: makes and deletes a throwaway
// table. Empty when it can; else why not.
std::string ProbeFirewall();
// Whether the host has an IPv4 default route (`ip -4 route show default` prints one).
bool HostHasDefaultRoute();
// Sets net.ipv4.ip_forward to 1. Returns whether it was 0 before. Errors: kIoError.
Result<bool> EnableForwarding();

}  // namespace ty::launch
