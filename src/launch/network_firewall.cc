#include "launch/network_firewall.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <memory>
#include <utility>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "common/text.h"

namespace ty::launch {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr char kPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// nft answers in milliseconds; the bound only keeps a wedged kernel from wedging a caller.
constexpr auto kToolTimeout = std::chrono::seconds(10);

struct ToolOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

// Appends what fd has now; false at EOF or on a read error.
bool Drain(int fd, std::string* into) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      into->append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return false;
    } else if (errno == EINTR) {
      continue;
    } else {
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }
}

// Runs argv to the end, capturing its output. A non-zero exit is an outcome, not an error.
Result<ToolOutput> RunTool(const std::vector<std::string>& argv) {
  SpawnOptions options;
  options.argv = argv;
  options.env = {{"PATH", kPath}, {"LC_ALL", "C"}};
  TY_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> child, Subprocess::Spawn(options));
  ToolOutput result;
  const auto deadline = SteadyClock::now() + kToolTimeout;
  while (child->stdout_fd() >= 0 || child->stderr_fd() >= 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return IoError("`" + argv[0] + "` did not finish within 10 s");
    pollfd fds[2];
    int nfds = 0;
    if (child->stdout_fd() >= 0) fds[nfds++] = {child->stdout_fd(), POLLIN, 0};
    if (child->stderr_fd() >= 0) fds[nfds++] = {child->stderr_fd(), POLLIN, 0};
    int ready = ::poll(fds, nfds, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("poll", errno);
    }
    for (int i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == child->stdout_fd()) {
        if (!Drain(fds[i].fd, &result.out)) child->CloseStdout();
      } else if (!Drain(fds[i].fd, &result.err)) {
        child->CloseStderr();
      }
    }
  }
  TY_ASSIGN_OR_RETURN(result.exit_code, child->Wait());
  return result;
}

std::string OneLine(const std::string& text) {
  std::string line;
  for (const auto& part : SplitNonEmpty(text, '\n')) line += (line.empty() ? "" : "; ") + part;
  return line;
}

// Runs `nft -f` on `script` (through a memfd that nft opens by its /proc path, as the `ip`
// batches do: the child gets /dev/null as stdin). `what` names the step in errors.
Status RunNftScript(const std::string& script, const std::string& what) {
  UniqueFd file(::memfd_create("ty-nft", MFD_CLOEXEC));
  if (!file.valid()) return ErrnoStatus("memfd_create", errno);
  size_t done = 0;
  while (done < script.size()) {
    ssize_t n = ::write(file.get(), script.data() + done, script.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("writing an nft script", errno);
    }
    done += static_cast<size_t>(n);
  }
  const std::string path =
      "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(file.get());
  auto r = RunTool({"nft", "-f", path});
  if (!r.ok()) return r.status().WithPrefix(what);
  if (r->exit_code != 0) {
    std::string why = OneLine(r->err);
    if (why.empty()) why = "exit code " + std::to_string(r->exit_code);
    return IoError(what + ": `nft -f` failed: " + why);
  }
  return Status::Ok();
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::optional<uint32_t> ParseIpv4(const std::string& s) {
  in_addr a{};
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

// The element of `bridge` in every set but `peers`, and in `peers`.
std::string Element(const std::string& bridge) { return "{ " + Quoted(bridge) + " }"; }
std::string PeerElement(const std::string& bridge) {
  return "{ " + Quoted(bridge) + " . " + Quoted(bridge) + " }";
}

// Present when `want`, else absent (add then delete: no error when it was not there).
std::string SetMembership(const std::string& table, const std::string& set,
                          const std::string& element, bool want) {
  std::string line = "add element inet " + table + " " + set + " " + element + "\n";
  if (!want) line += "delete element inet " + table + " " + set + " " + element + "\n";
  return line;
}

}  // namespace

std::optional<StoreEndpoint> ParseStoreEndpoint(const std::string& url,
                                                const std::vector<std::string>& local_addresses) {
  StoreEndpoint e;
  size_t colon = url.find("://");
  if (colon == std::string::npos) return std::nullopt;
  e.scheme = url.substr(0, colon);
  if (e.scheme != "http" && e.scheme != "https") return std::nullopt;
  std::string rest = url.substr(colon + 3);
  std::string authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string::npos || authority.find('[') != std::string::npos) {
    return std::nullopt;
  }
  std::string host = authority;
  e.port = e.scheme == "https" ? 443 : 80;
  if (size_t c = authority.rfind(':'); c != std::string::npos) {
    host = authority.substr(0, c);
    const std::string port = authority.substr(c + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      return std::nullopt;
    }
    e.port = std::stoi(port);
    if (e.port < 1 || e.port > 65535) return std::nullopt;
  }
  if (host == "localhost") host = "127.0.0.1";
  auto addr = ParseIpv4(host);
  if (!addr) return std::nullopt;
  e.ip = host;
  e.on_host = (*addr >> 24) == 127 || std::find(local_addresses.begin(), local_addresses.end(),
                                                host) != local_addresses.end();
  return e;
}

std::string FirewallTableName(const std::string& server_id) { return "trainyard_" + server_id; }

std::string FirewallTableScript(const std::string& table,
                                const std::optional<StoreEndpoint>& store) {
  const std::string t = "inet " + table;
  std::string s = "add table " + t + "\n";
  s += "add set " + t + " bridges { type ifname; }\n";
  s += "add set " + t + " peers { type ifname . ifname; }\n";
  s += "add set " + t + " nat { type ifname; }\n";
  s += "add set " + t + " store { type ifname; }\n";
  // Priorities: the nat hooks at their standard places; the filters a little before the
  // standard `filter` so that our drops come before another table's accepts decide anything
  // else (a drop anywhere is final; an accept only ends its own chain).
  const std::pair<const char*, const char*> chains[] = {
      {"prerouting", "type nat hook prerouting priority dstnat; policy accept;"},
      {"input", "type filter hook input priority filter - 10; policy accept;"},
      {"forward", "type filter hook forward priority filter - 10; policy accept;"},
      {"postrouting", "type nat hook postrouting priority srcnat; policy accept;"}};
  for (const auto& [name, spec] : chains) {
    s += "add chain " + t + " " + name + " { " + spec + " }\n";
    s += "flush chain " + t + " " + name + "\n";
  }
  auto rule = [&](const std::string& chain, const std::string& text) {
    s += "add rule " + t + " " + chain + " " + text + "\n";
  };
  if (store && store->on_host) {
    const std::string port = std::to_string(store->port);
    // Any address of this host will do as the destination (jobs are given the gateway): it
    // leads to the store's port alone.
    rule("prerouting", "iifname @store fib daddr type local tcp dport " + port + " dnat ip to " +
                           store->ip + ":" + port);
    // Only what that DNAT made: a packet sent to the store's address itself is not.
    rule("input",
         "iifname @store ct status dnat ip daddr " + store->ip + " tcp dport " + port + " accept");
  }
  rule("input", "iifname @bridges drop");
  rule("forward", "iifname . oifname @peers accept");
  rule("forward", "oifname @nat ct state established,related accept");
  if (store && !store->on_host) {
    rule("forward", "oifname @store ip saddr " + store->ip + " tcp sport " +
                        std::to_string(store->port) + " ct state established accept");
  }
  rule("forward", "oifname @bridges drop");
  // Never the link-local block: a cloud's metadata service hands out the host's credentials.
  rule("forward", "iifname @bridges ip daddr 169.254.0.0/16 drop");
  rule("forward", "iifname @nat accept");
  if (store && !store->on_host) {
    rule("forward", "iifname @store ip daddr " + store->ip + " tcp dport " +
                        std::to_string(store->port) + " accept");
  }
  rule("forward", "iifname @bridges drop");
  rule("postrouting", "iifname @nat oifname != @bridges masquerade");
  if (store && !store->on_host) {
    rule("postrouting", "iifname @store oifname != @bridges ip daddr " + store->ip + " tcp dport " +
                            std::to_string(store->port) + " masquerade");
  }
  return s;
}

std::string JobElementsScript(const std::string& table, const JobReach& job) {
  return SetMembership(table, "bridges", Element(job.bridge), true) +
         SetMembership(table, "peers", PeerElement(job.bridge), true) +
         SetMembership(table, "nat", Element(job.bridge), job.outside) +
         SetMembership(table, "store", Element(job.bridge), job.store);
}

std::string RemoveJobScript(const std::string& table, const std::string& bridge) {
  return SetMembership(table, "bridges", Element(bridge), false) +
         SetMembership(table, "peers", PeerElement(bridge), false) +
         SetMembership(table, "nat", Element(bridge), false) +
         SetMembership(table, "store", Element(bridge), false);
}

std::string StoreUrlForJob(const std::string& url, const StoreEndpoint& store,
                           const std::string& gateway) {
  if (!store.on_host) return url;
  size_t start = url.find("://");
  if (start == std::string::npos) return url;
  start += 3;
  size_t end = url.find('/', start);
  std::string path = end == std::string::npos ? "" : url.substr(end);
  return url.substr(0, start) + gateway + ":" + std::to_string(store.port) + path;
}

NetworkFirewall::NetworkFirewall(const std::string& server_id, std::optional<StoreEndpoint> store)
    : table_(FirewallTableName(server_id)), store_(std::move(store)) {}

Status NetworkFirewall::Install() {
  return RunNftScript(FirewallTableScript(table_, store_), "making nftables table " + table_);
}

Status NetworkFirewall::Uninstall() {
  // `add` first: deleting a table that is not there is an error, and this is idempotent.
  return RunNftScript("add table inet " + table_ + "\ndelete table inet " + table_ + "\n",
                      "removing nftables table " + table_);
}

Status NetworkFirewall::AddJob(const JobReach& job) {
  if (job.store && store_ && store_->on_host) {
    const std::string knob = "/proc/sys/net/ipv4/conf/" + job.bridge + "/route_localnet";
    std::ofstream out(knob);
    out << "1\n";
    out.close();
    if (!out) return IoError("cannot set " + knob + " to 1");
  }
  return RunNftScript(JobElementsScript(table_, job), "opening the firewall for " + job.bridge);
}

Status NetworkFirewall::RemoveJob(const std::string& bridge) {
  return RunNftScript(RemoveJobScript(table_, bridge), "closing the firewall for " + bridge);
}

std::string ProbeFirewall() {
  std::string lower;
  for (char c : RandomAlnum(6)) lower += static_cast<char>(std::tolower(c));
  const std::string table = "typrobe_" + std::to_string(::getpid()) + "_" + lower;
  Status made = RunNftScript("add table inet " + table + "\ndelete table inet " + table + "\n",
                             "probing nftables");
  if (made.ok()) return "";
  if (made.message().find("cannot execute 'nft'") != std::string::npos) {
    return "nftables' `nft` is not installed";
  }
  return made.message();
}

bool HostHasDefaultRoute() {
  auto r = RunTool({"ip", "-4", "route", "show", "default"});
  return r.ok() && r->exit_code == 0 && r->out.find("default") != std::string::npos;
}

Result<bool> EnableForwarding() {
  constexpr char kKnob[] = "/proc/sys/net/ipv4/ip_forward";
  std::string before;
  {
    std::ifstream in(kKnob);
    std::getline(in, before);
  }
  if (before == "1") return false;
  std::ofstream out(kKnob);
  out << "1\n";
  out.close();
  if (!out) return IoError(std::string("cannot set ") + kKnob + " to 1");
  return true;
}

}  // namespace ty::launch
