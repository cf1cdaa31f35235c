#include "launch/instance_network.h"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "common/crypto.h"
#include "common/subprocess.h"

namespace ty::launch {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr char kPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// `ip` answers in milliseconds; the bound only keeps a wedged kernel from wedging a caller.
constexpr auto kIpTimeout = std::chrono::seconds(10);
constexpr auto kKillWait = std::chrono::seconds(2);
constexpr char kCompleteAlias[] = "trainyard instances=";
constexpr char kIpMissingPrefix[] = "cannot execute 'ip'";

// 10.0.0.0/8 as 65536 /24s, then 172.16.0.0/12 as 4096 more.
constexpr uint32_t kTenSlots = 65536;
constexpr uint32_t kSlots = kTenSlots + 4096;
// 127.X.Y.0/24 with X in 1..254: 127.0.0.0/16 holds 127.0.0.1 and Debian's 127.0.1.1.
constexpr uint32_t kLoopbackSlots = 254 * 256;

// ---- running ip ----

struct CommandOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

std::string CommandText(const std::vector<std::string>& args) {
  std::string text = "ip";
  for (const auto& a : args) {
    text += ' ';
    text += a.find(' ') == std::string::npos ? a : "'" + a + "'";
  }
  return text;
}

// Stderr on one line, for error messages.
std::string OneLine(const std::string& text) {
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      if (!line.empty() && line.back() != ' ') line += "; ";
    } else {
      line += c;
    }
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  return line;
}

// Appends what fd has now; returns false at EOF or on a read error.
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

// Runs `ip args...` to the end. A non-zero exit is an outcome here, not an error; errors are
// failing to start it (IoError "cannot execute 'ip': ...") and the timeout.
Result<CommandOutput> RunIp(const std::vector<std::string>& args) {
  SpawnOptions options;
  options.argv = {"ip"};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = {{"PATH", kPath}, {"LC_ALL", "C"}};
  TY_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> child, Subprocess::Spawn(options));
  CommandOutput result;
  const auto deadline = SteadyClock::now() + kIpTimeout;
  while (child->stdout_fd() >= 0 || child->stderr_fd() >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                      SteadyClock::now());
    if (left.count() <= 0) {
      // The Subprocess destructor kills and reaps it.
      return IoError("`" + CommandText(args) + "` did not finish within 10 s");
    }
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

bool IsIpMissing(const Status& status) {
  return status.message().rfind(kIpMissingPrefix, 0) == 0;
}

std::string FailureText(const std::vector<std::string>& args, const CommandOutput& r) {
  std::string why = OneLine(r.err);
  if (why.empty()) why = "exit code " + std::to_string(r.exit_code);
  return "`" + CommandText(args) + "` failed: " + why;
}

// Runs ip; a non-zero exit becomes an IoError naming the command and its stderr.
Result<std::string> RunIpOk(const std::vector<std::string>& args) {
  TY_ASSIGN_OR_RETURN(CommandOutput r, RunIp(args));
  if (r.exit_code != 0) return IoError(FailureText(args, r));
  return std::move(r.out);
}

// ---- text ----

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

bool IsKeyChar(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); }

bool IsValidKey(const std::string& key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), IsKeyChar);
}

// "1".."999" without leading zeros.
std::optional<int> ParseInstanceNumber(const std::string& s) {
  if (s.empty() || s.size() > 3 || s[0] == '0') return std::nullopt;
  int n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// "<prefix><key>-<n>" -> (key, n).
std::optional<std::pair<std::string, int>> ParseInstanceName(const std::string& name,
                                                             const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  std::string rest = name.substr(prefix.size());
  size_t dash = rest.rfind('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string key = rest.substr(0, dash);
  auto n = ParseInstanceNumber(rest.substr(dash + 1));
  if (!IsValidKey(key) || !n) return std::nullopt;
  return std::make_pair(key, *n);
}

// ---- IPv4 ----

struct Prefix {
  uint32_t net = 0;  // host order
  int len = 32;
};

uint32_t Mask(int len) { return len <= 0 ? 0 : ~uint32_t{0} << (32 - len); }

bool Overlaps(const Prefix& a, const Prefix& b) {
  uint32_t m = Mask(std::min(a.len, b.len));
  return (a.net & m) == (b.net & m);
}

std::optional<uint32_t> ParseIpv4(const std::string& s) {
  in_addr a{};
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

// "a.b.c.d/len" or "a.b.c.d" (a /32).
std::optional<Prefix> ParsePrefix(const std::string& s) {
  size_t slash = s.find('/');
  auto addr = ParseIpv4(s.substr(0, slash));
  if (!addr) return std::nullopt;
  Prefix p{*addr, 32};
  if (slash != std::string::npos) {
    const std::string len = s.substr(slash + 1);
    if (len.empty() || len.size() > 2 ||
        !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    p.len = std::stoi(len);
    if (p.len > 32) return std::nullopt;
  }
  return p;
}

std::string Ipv4Text(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

uint32_t KeyHash16(const std::string& key) {
  return static_cast<uint32_t>(std::stoul(Sha256Hex(key).substr(0, 4), nullptr, 16));
}

uint32_t SlotNet(uint32_t slot) {
  if (slot < kTenSlots) return (10u << 24) | (slot << 8);
  return ((172u << 24) | (16u << 16)) + ((slot - kTenSlots) << 8);
}

uint32_t LoopbackSlotNet(uint32_t slot) {
  return (127u << 24) | ((1 + slot / 256) << 16) | ((slot % 256) << 8);
}

// Every IPv4 prefix this machine uses: interface addresses (with their prefix length), route
// destinations and gateways of all tables, and the name servers of /etc/resolv.conf (reached
// through the default route: a bridge on their /24 would cut the host off from DNS).
Result<std::vector<Prefix>> UsedPrefixes() {
  std::vector<Prefix> used;
  TY_ASSIGN_OR_RETURN(std::string addrs, RunIpOk({"-4", "-o", "addr", "show"}));
  for (const auto& line : Lines(addrs)) {
    auto w = Words(line);
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      if (w[i] != "inet") continue;
      if (auto p = ParsePrefix(w[i + 1])) used.push_back(*p);
    }
  }
  TY_ASSIGN_OR_RETURN(std::string routes, RunIpOk({"-4", "route", "show", "table", "all"}));
  static const std::set<std::string> kRouteTypes = {
      "unicast", "local", "broadcast", "multicast", "throw",
      "unreachable", "prohibit", "blackhole", "nat", "anycast"};
  for (const auto& line : Lines(routes)) {
    auto w = Words(line);
    size_t i = (!w.empty() && kRouteTypes.count(w[0]) != 0) ? 1 : 0;
    if (i < w.size() && w[i] != "default") {
      if (auto p = ParsePrefix(w[i])) used.push_back(*p);
    }
    for (size_t j = i; j + 1 < w.size(); ++j) {
      if (w[j] != "via") continue;
      if (auto p = ParsePrefix(w[j + 1])) used.push_back(*p);
    }
  }
  std::ifstream resolv("/etc/resolv.conf");
  std::string line;
  while (std::getline(resolv, line)) {
    auto w = Words(line);
    if (w.size() >= 2 && w[0] == "nameserver") {
      if (auto a = ParseIpv4(w[1])) used.push_back({*a, 32});
    }
  }
  return used;
}

// ---- what is on the machine ----

// The objects of one job network found on the machine.
struct JobObjects {
  std::map<int, std::string> netns;        // instance -> netns name
  std::map<int, std::string> veths;        // instance -> its `ip -o link` line
  std::optional<std::string> bridge_line;  // the bridge's `ip -o link` line

  bool empty() const { return netns.empty() && veths.empty() && !bridge_line; }

  // Veths, then namespaces, then the bridge: the order Destroy removes them in.
  std::vector<std::string> Names(const std::string& key) const {
    std::vector<std::string> names;
    for (const auto& [n, line] : veths) names.push_back(VethName(key, n));
    for (const auto& [n, name] : netns) names.push_back(name);
    if (bridge_line) names.push_back(BridgeName(key));
    return names;
  }
};

// Every job network's objects, by key. "ty-<key>-<n>" namespaces, "tyb-<key>" and
// "tyv-<key>-<n>" links; anything else (including the probe's "typrobe-*") is not ours.
Result<std::map<std::string, JobObjects>> ListJobObjects() {
  std::map<std::string, JobObjects> jobs;
  TY_ASSIGN_OR_RETURN(std::string netns, RunIpOk({"netns", "list"}));
  for (const auto& line : Lines(netns)) {
    auto w = Words(line);  // "ty-0a1b2c3d-1 (id: 0)"
    if (w.empty()) continue;
    if (auto parsed = ParseInstanceName(w[0], "ty-")) {
      jobs[parsed->first].netns[parsed->second] = w[0];
    }
  }
  TY_ASSIGN_OR_RETURN(std::string links, RunIpOk({"-o", "link", "show"}));
  for (const auto& line : Lines(links)) {
    auto w = Words(line);  // "7: tyv-0a1b2c3d-1@if2: <BROADCAST,...> ... master tyb-0a1b2c3d ..."
    if (w.size() < 2) continue;
    std::string name = w[1];
    if (!name.empty() && name.back() == ':') name.pop_back();
    name = name.substr(0, name.find('@'));
    if (auto parsed = ParseInstanceName(name, "tyv-")) {
      jobs[parsed->first].veths[parsed->second] = line;
    } else if (name.rfind("tyb-", 0) == 0 && IsValidKey(name.substr(4))) {
      jobs[name.substr(4)].bridge_line = line;
    }
  }
  return jobs;
}

bool LineHas(const std::string& line, const std::string& part) {
  return line.find(part) != std::string::npos;
}

// The instance count a completed Create wrote into the bridge's alias; nullopt when absent.
std::optional<int> CompletedCount(const std::string& bridge_line) {
  const std::string marker = std::string("alias ") + kCompleteAlias;
  size_t at = bridge_line.find(marker);
  if (at == std::string::npos) return std::nullopt;
  auto words = Words(bridge_line.substr(at + marker.size()));
  if (words.empty()) return std::nullopt;
  return ParseInstanceNumber(words[0]);
}

// The bridge's IPv4 prefix ("10.X.Y.1/24"); nullopt when it has none.
Result<std::optional<Prefix>> BridgeAddress(const std::string& key) {
  TY_ASSIGN_OR_RETURN(std::string out,
                      RunIpOk({"-4", "-o", "addr", "show", "dev", BridgeName(key)}));
  for (const auto& line : Lines(out)) {
    auto w = Words(line);
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      if (w[i] == "inet") return ParsePrefix(w[i + 1]);
    }
  }
  return std::optional<Prefix>();
}

JobNetwork DescribeNamespaces(const std::string& key, int count, uint32_t net) {
  JobNetwork n;
  n.mode = NetworkMode::kNamespaces;
  n.key = key;
  n.bridge = BridgeName(key);
  n.interface = "eth0";
  n.gateway = Ipv4Text(net + 1);
  n.subnet = Ipv4Text(net) + "/24";
  for (int i = 1; i <= count; ++i) {
    n.instances.push_back({"algo-" + std::to_string(i),
                           Ipv4Text(net + 1 + static_cast<uint32_t>(i)), NetnsName(key, i)});
  }
  return n;
}

// Whether every instance of `n` is in place as Create left it.
Result<bool> Intact(const JobNetwork& n, const JobObjects& found) {
  for (size_t i = 0; i < n.instances.size(); ++i) {
    const int number = static_cast<int>(i) + 1;
    auto veth = found.veths.find(number);
    if (found.netns.count(number) == 0 || veth == found.veths.end()) return false;
    // LOWER_UP on the host end means the eth0 end is up too.
    if (!LineHas(veth->second, " master " + n.bridge + " ") ||
        !LineHas(veth->second, "LOWER_UP")) {
      return false;
    }
    auto addr = RunIp({"-n", n.instances[i].netns, "-4", "-o", "addr", "show", "dev", "eth0"});
    if (!addr.ok()) return addr.status();
    if (addr->exit_code != 0 || !LineHas(addr->out, " inet " + n.instances[i].ip + "/24 ")) {
      return false;
    }
  }
  return true;
}

// Makes the kernel objects of `n`; on failure removes what it made and says which command
// failed and why.
Status Build(const JobNetwork& n) {
  std::vector<std::vector<std::string>> undo;  // ip commands removing what was made, in order
  auto rollback = [&](const std::string& failure) {
    std::string message = "creating the network of job " + n.key + ": " + failure;
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      auto r = RunIp(*it);
      if (!r.ok()) {
        message += "; undoing, `" + CommandText(*it) + "`: " + r.status().message();
      } else if (r->exit_code != 0) {
        message += "; undoing, " + FailureText(*it, *r);
      }
    }
    return IoError(message);
  };
  auto run = [&](const std::vector<std::string>& args) -> std::optional<std::string> {
    auto r = RunIp(args);
    if (!r.ok()) return r.status().message();
    if (r->exit_code != 0) return FailureText(args, *r);
    return std::nullopt;
  };
  auto step = [&](const std::vector<std::string>& args,
                  std::vector<std::string> undo_args) -> std::optional<std::string> {
    auto failure = run(args);
    if (!failure && !undo_args.empty()) undo.push_back(std::move(undo_args));
    return failure;
  };

  const std::string gateway_prefix = n.gateway + "/24";
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> steps = {
      {{"link", "add", n.bridge, "type", "bridge"}, {"link", "del", n.bridge}},
      {{"addr", "add", gateway_prefix, "dev", n.bridge}, {}},
      {{"link", "set", n.bridge, "up"}, {}},
  };
  for (size_t i = 0; i < n.instances.size(); ++i) {
    const std::string& ns = n.instances[i].netns;
    const std::string veth = VethName(n.key, static_cast<int>(i) + 1);
    // The peer is made inside the namespace under its final name: no rename step, and no
    // moment where an "eth0" could clash with the host's.
    steps.push_back({{"netns", "add", ns}, {"netns", "del", ns}});
    steps.push_back({{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
                     {"link", "del", veth}});
    steps.push_back({{"link", "set", veth, "master", n.bridge, "up"}, {}});
    steps.push_back({{"-n", ns, "addr", "add", n.instances[i].ip + "/24", "dev", "eth0"}, {}});
    steps.push_back({{"-n", ns, "link", "set", "eth0", "up"}, {}});
    steps.push_back({{"-n", ns, "link", "set", "lo", "up"}, {}});
    steps.push_back({{"-n", ns, "route", "add", "default", "via", n.gateway}, {}});
  }
  // Last: the mark that says the network is complete.
  steps.push_back({{"link", "set", "dev", n.bridge, "alias",
                    kCompleteAlias + std::to_string(n.instances.size())},
                   {}});
  for (auto& [args, undo_args] : steps) {
    if (auto failure = step(args, std::move(undo_args))) return rollback(*failure);
  }
  return Status::Ok();
}

Status CheckInterfaceName(const std::string& name) {
  if (name.size() <= kMaxInterfaceNameLength) return Status::Ok();
  return InvalidArgument("interface name '" + name + "' has " + std::to_string(name.size()) +
                         " characters; Linux allows at most " +
                         std::to_string(kMaxInterfaceNameLength));
}

}  // namespace

const char* NetworkModeName(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kNamespaces:
      return "Namespaces";
    case NetworkMode::kLoopback:
      return "Loopback";
  }
  return "Unknown";
}

std::string BridgeName(const std::string& key) { return "tyb-" + key; }
std::string VethName(const std::string& key, int instance) {
  return "tyv-" + key + "-" + std::to_string(instance);
}
std::string NetnsName(const std::string& key, int instance) {
  return "ty-" + key + "-" + std::to_string(instance);
}
std::string PreferredSubnet(const std::string& key) {
  return Ipv4Text(SlotNet(KeyHash16(key))) + "/24";
}

std::string JobNetworkKey(const std::string& job_arn) { return Sha256Hex(job_arn).substr(0, 8); }

std::string HostsFileText(const JobNetwork& network) {
  std::string text = "127.0.0.1 localhost\n::1 localhost\n";
  for (const auto& i : network.instances) text += i.ip + " " + i.host + "\n";
  return text;
}

std::string ResolvConfText() {
  return "# Trainyard: no name server here; instances find each other through /etc/hosts.\n"
         "options timeout:1 attempts:1\n";
}

NetworkSupport ProbeNetworkSupport() {
  if (::geteuid() != 0) {
    return {false, "not running as root (euid " + std::to_string(::geteuid()) +
                       "): network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN"};
  }
  std::string lower;
  for (char c : RandomAlnum(6)) lower += static_cast<char>(std::tolower(c));
  // Not "ty-...": SweepLeftovers must never mistake a probe for a job network.
  const std::string ns = "typrobe-" + std::to_string(::getpid()) + "-" + lower;
  auto run = [](const std::vector<std::string>& args) -> std::optional<std::string> {
    auto r = RunIp(args);
    if (!r.ok()) {
      if (IsIpMissing(r.status())) {
        return "iproute2's `ip` is not installed (" + r.status().message() + ")";
      }
      return r.status().message();
    }
    if (r->exit_code != 0) return FailureText(args, *r);
    return std::nullopt;
  };
  if (auto failure = run({"netns", "add", ns})) return {false, *failure};
  // A bridge and a veth pair inside the throwaway namespace: proves the modules Create needs
  // without showing anything on the host.
  std::optional<std::string> failure = run({"-n", ns, "link", "add", "br0", "type", "bridge"});
  if (!failure) {
    failure = run({"-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"});
  }
  if (!failure) failure = run({"-n", ns, "link", "set", "v0", "master", "br0", "up"});
  auto removed = run({"netns", "del", ns});
  if (failure) return {false, *failure};
  if (removed) return {false, *removed};
  return {true, ""};
}

// Holds `key` for one call: later calls for the same key wait until it is released.
class InstanceNetworks::KeyLock {
 public:
  KeyLock(InstanceNetworks* owner, std::string key) : owner_(owner), key_(std::move(key)) {
    std::unique_lock<std::mutex> lock(owner_->mu_);
    owner_->key_released_.wait(lock, [&] { return owner_->busy_keys_.count(key_) == 0; });
    owner_->busy_keys_.insert(key_);
  }
  ~KeyLock() {
    {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      owner_->busy_keys_.erase(key_);
    }
    owner_->key_released_.notify_all();
  }
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;

 private:
  InstanceNetworks* owner_;
  std::string key_;
};

Result<JobNetwork> InstanceNetworks::Create(const std::string& key, int count, NetworkMode mode) {
  if (!IsValidKey(key)) {
    return InvalidArgument("network key '" + key + "' must be non-empty and only [0-9a-z]");
  }
  if (count < 1 || count > kMaxInstancesPerNetwork) {
    return InvalidArgument("a job network has 1 to " + std::to_string(kMaxInstancesPerNetwork) +
                           " instances, not " + std::to_string(count));
  }
  if (mode == NetworkMode::kLoopback) return CreateLoopback(key, count);
  // The highest instance number makes the longest name.
  TY_RETURN_IF_ERROR(CheckInterfaceName(BridgeName(key)));
  TY_RETURN_IF_ERROR(CheckInterfaceName(VethName(key, count)));
  KeyLock hold(this, key);
  return CreateNamespaces(key, count);
}

JobNetwork InstanceNetworks::CreateLoopback(const std::string& key, int count) {
  uint32_t net = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = loopback_.find(key);
    if (it != loopback_.end()) {
      net = it->second;
    } else {
      std::set<uint32_t> taken;
      for (const auto& [k, v] : loopback_) taken.insert(v);
      const uint32_t start = KeyHash16(key) % kLoopbackSlots;
      for (uint32_t j = 0; j < kLoopbackSlots && net == 0; ++j) {
        uint32_t candidate = LoopbackSlotNet((start + j) % kLoopbackSlots);
        if (taken.count(candidate) == 0) net = candidate;
      }
      // 65024 slots: a server never has that many live jobs; share the last one if it did.
      if (net == 0) net = LoopbackSlotNet(start);
      loopback_[key] = net;
    }
  }
  JobNetwork n;
  n.mode = NetworkMode::kLoopback;
  n.key = key;
  n.interface = "lo";
  n.subnet = Ipv4Text(net) + "/24";
  for (int i = 1; i <= count; ++i) {
    n.instances.push_back(
        {"algo-" + std::to_string(i), Ipv4Text(net + static_cast<uint32_t>(i)), ""});
  }
  return n;
}

Result<JobNetwork> InstanceNetworks::CreateNamespaces(const std::string& key, int count) {
  TY_ASSIGN_OR_RETURN(auto all, ListJobObjects());
  const JobObjects found = all.count(key) != 0 ? all[key] : JobObjects();
  uint32_t preferred = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = subnets_.find(key);
    if (it != subnets_.end()) preferred = it->second;
  }
  if (found.bridge_line) {
    // Made before: by this server, or by one that crashed or restarted.
    TY_ASSIGN_OR_RETURN(std::optional<Prefix> address, BridgeAddress(key));
    if (address && address->len == 24 && (address->net & 255) == 1) {
      preferred = address->net & Mask(24);
    }
    std::optional<int> made = CompletedCount(*found.bridge_line);
    if (made && *made != count) {
      return FailedPrecondition("the network of job " + key + " exists with " +
                                std::to_string(*made) + " instances, not " +
                                std::to_string(count));
    }
    if (made && preferred != 0 && LineHas(*found.bridge_line, ",UP")) {
      JobNetwork existing = DescribeNamespaces(key, count, preferred);
      TY_ASSIGN_OR_RETURN(bool intact, Intact(existing, found));
      if (intact) {
        std::lock_guard<std::mutex> lock(mu_);
        subnets_[key] = preferred;
        return existing;
      }
    }
    // Incomplete (a Create cut short) or damaged: make it again, on the same /24 if it had one.
    Status removed = DestroyLocked(key, nullptr);
    if (!removed.ok()) {
      return removed.WithPrefix("removing the incomplete network of job " + key);
    }
  }
  // Namespaces or veths of `key` without a bridge are not ours to take over: Create makes the
  // bridge first and Destroy removes it last. Building fails on the clashing name and says so.
  TY_ASSIGN_OR_RETURN(uint32_t net, ReserveSubnet(key, preferred));
  JobNetwork n = DescribeNamespaces(key, count, net);
  Status built = Build(n);
  if (!built.ok()) {
    ReleaseSubnet(key);
    return built;
  }
  return n;
}

Result<uint32_t> InstanceNetworks::ReserveSubnet(const std::string& key, uint32_t preferred) {
  TY_ASSIGN_OR_RETURN(std::vector<Prefix> used, UsedPrefixes());
  std::lock_guard<std::mutex> lock(mu_);
  auto is_free = [&](uint32_t net) {
    const Prefix candidate{net, 24};
    for (const auto& u : used) {
      if (Overlaps(candidate, u)) return false;
    }
    for (const auto& [k, v] : subnets_) {
      if (k != key && v == net) return false;
    }
    return true;
  };
  uint32_t chosen = 0;
  if (preferred != 0 && is_free(preferred)) {
    chosen = preferred;
  } else {
    const uint32_t start = KeyHash16(key);
    for (uint32_t j = 0; j < kSlots && chosen == 0; ++j) {
      uint32_t candidate = SlotNet((start + j) % kSlots);
      if (is_free(candidate)) chosen = candidate;
    }
  }
  if (chosen == 0) {
    return ResourceExhausted("no free /24 left in 10.0.0.0/8 or 172.16.0.0/12 for job " + key);
  }
  subnets_[key] = chosen;
  return chosen;
}

void InstanceNetworks::ReleaseSubnet(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  subnets_.erase(key);
}

Status InstanceNetworks::Destroy(const std::string& key, DestroyReport* report) {
  if (!IsValidKey(key)) {
    return InvalidArgument("network key '" + key + "' must be non-empty and only [0-9a-z]");
  }
  KeyLock hold(this, key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (loopback_.erase(key) != 0) return Status::Ok();
  }
  Status s = DestroyLocked(key, report);
  if (s.ok()) ReleaseSubnet(key);
  return s;
}

Status InstanceNetworks::DestroyLocked(const std::string& key, DestroyReport* report) {
  auto before = ListJobObjects();
  // Without `ip` nothing can have been made.
  if (!before.ok()) return IsIpMissing(before.status()) ? Status::Ok() : before.status();
  auto it = before->find(key);
  if (it == before->end()) return Status::Ok();
  const JobObjects& found = it->second;

  std::map<std::string, std::string> why;  // name -> the failure removing it
  std::vector<pid_t> killed;
  for (const auto& [n, ns] : found.netns) {
    auto pids = RunIp({"netns", "pids", ns});
    if (!pids.ok() || pids->exit_code != 0) continue;  // the netns went away meanwhile
    for (const auto& line : Lines(pids->out)) {
      pid_t pid = static_cast<pid_t>(std::strtol(line.c_str(), nullptr, 10));
      if (pid > 1 && pid != ::getpid() && ::kill(pid, SIGKILL) == 0) killed.push_back(pid);
    }
  }
  auto remove = [&](const std::string& name, const std::vector<std::string>& args) {
    auto r = RunIp(args);
    if (!r.ok()) {
      why[name] = r.status().message();
    } else if (r->exit_code != 0) {
      why[name] = FailureText(args, *r);
    }
  };
  // Veths first: deleting one end deletes its peer at once, whereas a namespace (and the eth0
  // in it) lives on until its last process has exited.
  for (const auto& [n, line] : found.veths) {
    remove(VethName(key, n), {"link", "del", VethName(key, n)});
  }
  for (const auto& [n, ns] : found.netns) remove(ns, {"netns", "del", ns});
  if (found.bridge_line) remove(BridgeName(key), {"link", "del", BridgeName(key)});

  const auto deadline = SteadyClock::now() + kKillWait;
  std::vector<pid_t> survivors;
  for (pid_t pid : killed) {
    while (ProcessAlive(pid, 0) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (ProcessAlive(pid, 0)) survivors.push_back(pid);
  }

  TY_ASSIGN_OR_RETURN(auto after, ListJobObjects());
  std::vector<std::string> left = after.count(key) != 0 ? after[key].Names(key) : std::vector<std::string>();
  if (report != nullptr) {
    for (const auto& name : found.Names(key)) {
      if (std::find(left.begin(), left.end(), name) == left.end()) report->removed.push_back(name);
    }
    report->killed.insert(report->killed.end(), killed.begin(), killed.end());
  }
  if (left.empty() && survivors.empty()) return Status::Ok();
  std::string message = "the network of job " + key + " is not fully removed:";
  for (const auto& name : left) {
    message += " " + name + (why.count(name) != 0 ? " (" + why[name] + ")" : "") + ";";
  }
  for (pid_t pid : survivors) {
    message += " process " + std::to_string(pid) + " survived SIGKILL;";
  }
  message.pop_back();
  return IoError(message);
}

Result<std::vector<std::string>> InstanceNetworks::SweepLeftovers(
    const std::set<std::string>& keep) {
  TY_ASSIGN_OR_RETURN(auto all, ListJobObjects());
  std::vector<std::string> removed;
  std::string errors;
  for (const auto& [key, objects] : all) {
    if (keep.count(key) != 0) continue;
    KeyLock hold(this, key);
    DestroyReport report;
    Status s = DestroyLocked(key, &report);
    removed.insert(removed.end(), report.removed.begin(), report.removed.end());
    if (s.ok()) {
      ReleaseSubnet(key);
    } else {
      errors += (errors.empty() ? "" : "; ") + s.message();
    }
  }
  if (!errors.empty()) return IoError(errors);
  return removed;
}

}  // namespace ty::launch
