#include "launch/local_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/subprocess.h"
#include "common/text.h"

namespace ty::launch {

Result<NetworkPolicy> ParseNetworkPolicy(const std::string& name) {
  if (name == "auto") return NetworkPolicy::kAuto;
  if (name == "namespaces") return NetworkPolicy::kNamespaces;
  if (name == "loopback") return NetworkPolicy::kLoopback;
  return InvalidArgument("network must be auto, namespaces or loopback, not '" + name + "'");
}

namespace {

// The IPv4 name servers of the host's resolv.conf that an instance can reach through NAT (not
// a loopback one, such as a local caching resolver: the instance's 127/8 is its own).
std::vector<std::string> HostNameServers() {
  std::vector<std::string> out;
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line)) {
    auto words = SplitWords(line);
    in_addr a{};
    if (words.size() >= 2 && words[0] == "nameserver" &&
        ::inet_pton(AF_INET, words[1].c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) != 127) {
      out.push_back(words[1]);
    }
  }
  return out;
}

// This machine's IPv4 addresses, for telling a store on the host from a remote one.
std::vector<std::string> LocalIpv4Addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != nullptr) out.push_back(text);
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

namespace {

using Phase = AttemptState::Phase;

constexpr std::string_view kLocalPrefix = "local:";

// A decimal of at most 18 digits (no sign, no spaces); nullopt otherwise.
std::optional<int64_t> ParseCount(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

int HostCpus(int configured) {
  if (configured > 0) return configured;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

double HostMemoryGib(double configured) {
  if (configured > 0) return configured;
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 1;
  return static_cast<double>(pages) * static_cast<double>(page) / (1024.0 * 1024 * 1024);
}

// The argv of a process (bounded); empty when it is gone or unreadable.
std::vector<std::string> ProcessArgv(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string raw(64 * 1024, '\0');
  in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  raw.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  std::vector<std::string> argv;
  std::string cur;
  for (char c : raw) {
    if (c == '\0') {
      argv.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) argv.push_back(std::move(cur));
  return argv;
}

// True for a process started as `<binary> agent --instance FILE`: the only kind of process a
// handle read back from the store may signal.
bool LooksLikeAgent(const std::vector<std::string>& argv) {
  return argv.size() >= 4 && argv[1] == "agent" && argv[2] == "--instance";
}

// Closes every descriptor from 3 up except `a` and `b` (async-signal-safe: for a forked child).
void CloseAllBut(int a, int b) {
  const int lo = std::min(a, b);
  const int hi = std::max(a, b);
  if (lo > 3) ::close_range(3, static_cast<unsigned>(lo - 1), 0);
  if (hi > lo + 1) ::close_range(static_cast<unsigned>(lo + 1), static_cast<unsigned>(hi - 1), 0);
  ::close_range(static_cast<unsigned>(hi + 1), ~0U, 0);
}

int SignalNumber(AttemptSignal signal) {
  switch (signal) {
    case AttemptSignal::kStop:
      return SIGTERM;
    case AttemptSignal::kNotice:
      return SIGUSR1;
    case AttemptSignal::kAbort:
      return SIGUSR2;
    case AttemptSignal::kKill:
      return SIGKILL;
  }
  return SIGKILL;
}

}  // namespace

std::string FormatLocalHandle(std::span<const LocalAgent> agents) {
  std::string out(kLocalPrefix);
  for (size_t i = 0; i < agents.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(agents[i].pid) + "/" + std::to_string(agents[i].start_ticks);
  }
  return out;
}

std::optional<std::vector<LocalAgent>> ParseLocalHandle(std::string_view text) {
  // 19 digits a field at most: a longer text is no handle of ours.
  if (text.size() > kLocalPrefix.size() + kMaxLocalHandleAgents * 40) return std::nullopt;
  if (text.substr(0, kLocalPrefix.size()) != kLocalPrefix) return std::nullopt;
  text.remove_prefix(kLocalPrefix.size());
  std::vector<LocalAgent> out;
  while (true) {
    if (out.size() >= kMaxLocalHandleAgents) return std::nullopt;
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    const size_t slash = item.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto pid = ParseCount(item.substr(0, slash));
    auto ticks = ParseCount(item.substr(slash + 1));
    if (!pid || !ticks || *pid > 0x7fffffff) return std::nullopt;
    // A live agent without its start time could be any process that reuses the pid.
    if ((*pid == 0) != (*ticks == 0)) return std::nullopt;
    out.push_back({*pid, *ticks});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

LocalLauncher::LocalLauncher(std::string agent_binary, NetworkPolicy network,
                             LocalNetworkOptions options, LocalLauncherOptions launcher)
    : agent_binary_(std::move(agent_binary)),
      policy_(network),
      options_(std::move(options)),
      launcher_options_(std::move(launcher)),
      builtin_catalog_(capacity::InstanceCatalog::Builtin()),
      networks_(options_.server_id) {
  launcher_options_.host_cpus = HostCpus(launcher_options_.host_cpus);
  launcher_options_.host_memory_gib = HostMemoryGib(launcher_options_.host_memory_gib);
  if (launcher_options_.catalog == nullptr) launcher_options_.catalog = &builtin_catalog_;
  pool_ = std::make_unique<capacity::CapacityPool>(
      launcher_options_.capacity, launcher_options_.catalog, launcher_options_.host_cpus,
      launcher_options_.host_memory_gib);
  if (policy_ == NetworkPolicy::kLoopback) return;
  support_ = ProbeNetworkSupport();
  if (!support_.namespaces) return;
  if (!options_.firewall) {
    firewall_reason_ = "the firewall is turned off";
    return;
  }
  firewall_reason_ = ProbeFirewall();
  if (!firewall_reason_.empty()) return;
  std::optional<StoreEndpoint> store;
  if (!options_.store_url.empty()) {
    store = ParseStoreEndpoint(options_.store_url, LocalIpv4Addresses());
  }
  auto firewall = std::make_unique<NetworkFirewall>(
      options_.server_id.empty() ? std::string("default") : options_.server_id, store);
  Status installed = firewall->Install();
  if (!installed.ok()) {
    firewall_reason_ = installed.message();
    return;
  }
  firewall_ = std::move(firewall);
  if (HostHasDefaultRoute()) {
    // NAT needs the host to forward; the firewall's forward rules keep that from routing
    // between two jobs' networks or into one from outside.
    auto enabled = EnableForwarding();
    if (enabled.ok()) {
      nat_ = true;
      forwarding_note_ = *enabled ? "set net.ipv4.ip_forward=1 (it was 0) for the instances' NAT"
                                  : "net.ipv4.ip_forward is 1";
    } else {
      forwarding_note_ = "no NAT: " + enabled.status().message();
    }
  } else {
    forwarding_note_ = "no NAT: this host has no IPv4 default route";
  }
}

LocalLauncher::~LocalLauncher() { Close(); }

void LocalLauncher::Close() {
  {
    // Attempts still starting end unstarted once their network is there.
    MutexLock lock(&amu_);
    for (auto& [handle, attempt] : attempts_) {
      if (attempt.state == Attempt::State::kStarting) {
        attempt.state = Attempt::State::kCancelled;
        attempt.reason = "the launcher closed before the attempt started";
      }
    }
    while (threads_running_ != 0) cv_.Wait(&amu_);
  }
  if (firewall_ == nullptr) return;
  Status s = firewall_->Uninstall();
  if (!s.ok()) std::fprintf(stderr, "trainyard: %s\n", s.ToString().c_str());
  firewall_.reset();
}

std::string LocalLauncher::NetworkSummary() const {
  switch (policy_) {
    case NetworkPolicy::kLoopback:
      return "instances: multi-node on loopback addresses, single-instance on the host's network "
             "(network: loopback)";
    case NetworkPolicy::kNamespaces:
      if (!support_.namespaces) {
        return "instances: refused (network: namespaces, but " + support_.reason + ")";
      }
      break;
    case NetworkPolicy::kAuto:
      if (!support_.namespaces) {
        return "instances: multi-node on loopback addresses, single-instance on the host's "
               "network (no network namespaces: " +
               support_.reason + ")";
      }
      break;
  }
  std::string line = "instances: a network namespace each";
  if (firewall_ != nullptr) {
    line += ", nftables table " + firewall_->table() + " keeps them off this host's services; " +
            forwarding_note_;
    if (firewall_->store()) {
      line += "; jobs given the S3 store's credentials reach it" +
              std::string(firewall_->store()->on_host ? " (by DNAT from their gateway)" : "");
    }
  } else {
    line += ", WITHOUT a firewall (" + firewall_reason_ +
            "): they reach this host's services on their gateway address, and nothing beyond";
  }
  return line;
}

std::string LocalLauncher::NamespaceNotice(const JobNetwork& net, const JobReach& reach) const {
  std::string line = "trainyard: network: own namespace on " + net.subnet;
  if (firewall_ == nullptr) {
    return line + "; WARNING: no firewall (" + firewall_reason_ +
           "): this instance can reach services of the host that listen on all addresses, "
           "through " +
           net.gateway + "; nothing beyond";
  }
  if (net.instances.size() > 1) line += "; reaches its peers";
  if (reach.outside) {
    line += "; the outside world through NAT";
  } else {
    line += std::string("; nothing outside (") +
            (nat_ ? "EnableNetworkIsolation" : "this host has no route out") + ")";
  }
  if (reach.store && firewall_->store()) {
    line += "; the S3 store" +
            std::string(firewall_->store()->on_host
                            ? " at " + net.gateway + ":" + std::to_string(firewall_->store()->port)
                            : "");
  }
  return line + "; not this host's services";
}

NetworkMode LocalLauncher::ModeFor(const NetworkRequest& request, std::string* why_not) const {
  if (policy_ == NetworkPolicy::kLoopback) {
    *why_not = "the server's network setting is 'loopback'";
  } else if (!support_.namespaces) {
    *why_not = "network namespaces are not available here: " + support_.reason;
  } else if (!request.sandboxed) {
    *why_not = "the training process runs without the sandbox (isolation: none)";
  } else {
    return NetworkMode::kNamespaces;
  }
  return NetworkMode::kLoopback;
}

bool LocalLauncher::PreparesNetworkAtOnce(const NetworkRequest& request) const {
  std::string why_not;
  // Loopback aliases and the host's network are bookkeeping in memory.
  return ModeFor(request, &why_not) == NetworkMode::kLoopback;
}

Result<std::vector<model::InstanceNetworkConfig>> LocalLauncher::PrepareNetwork(
    const std::string& job_arn, const NetworkRequest& request) {
  const int count = request.count;
  std::string why_not;  // why no namespaces
  const NetworkMode mode = ModeFor(request, &why_not);
  if (mode == NetworkMode::kLoopback) {
    if (policy_ == NetworkPolicy::kNamespaces) {
      return FailedPrecondition(
          "this job needs a network namespace per instance and the "
          "server's network setting is 'namespaces', but " +
          why_not);
    }
    if (request.isolated) {
      return FailedPrecondition(
          "EnableNetworkIsolation needs a network namespace per "
          "instance, but " +
          why_not);
    }
    if (count == 1) {
      model::InstanceNetworkConfig c;
      c.notice = "trainyard: network: WARNING: shares the host's network (" + why_not +
                 "): this instance can reach every service of this host, 127.0.0.1 included";
      return std::vector<model::InstanceNetworkConfig>{c};
    }
  }
  if (mode == NetworkMode::kNamespaces && firewall_ == nullptr && request.isolated) {
    // Without the firewall a namespace keeps nothing out (the gateway is the host).
    return FailedPrecondition("EnableNetworkIsolation needs the nftables firewall, but " +
                              firewall_reason_);
  }
  const std::string key = JobNetworkKey(job_arn, options_.server_id);
  TY_ASSIGN_OR_RETURN(JobNetwork net, networks_.Create(key, count, mode));
  JobReach reach;
  std::string notice;
  if (mode == NetworkMode::kNamespaces) {
    reach.bridge = net.bridge;
    reach.outside = nat_ && !request.isolated;
    reach.store = request.store_access && !request.isolated;
    if (firewall_ != nullptr) {
      Status opened = firewall_->AddJob(reach);
      if (!opened.ok()) {
        // Never run a job with less isolation than it was promised.
        Status removed = networks_.Destroy(key);
        (void)removed;
        return opened;
      }
    }
    notice = NamespaceNotice(net, reach);
  } else {
    notice = "trainyard: network: WARNING: loopback addresses on the host's network (" + why_not +
             "): instances can reach every service of this host";
  }
  std::vector<model::InstanceNetworkConfig> out;
  for (const auto& inst : net.instances) {
    model::InstanceNetworkConfig c;
    c.netns = inst.netns;
    c.interface = net.interface;
    c.address = inst.ip;
    for (const auto& peer : net.instances) c.hosts.emplace_back(peer.host, peer.ip);
    if (reach.store && firewall_ != nullptr && firewall_->store()) {
      c.store_url = StoreUrlForJob(options_.store_url, *firewall_->store(), net.gateway);
    }
    c.notice = notice;
    if (reach.outside) c.nameservers = HostNameServers();
    out.push_back(std::move(c));
  }
  return out;
}

void LocalLauncher::ReleaseNetwork(const std::string& job_arn) {
  const std::string key = JobNetworkKey(job_arn, options_.server_id);
  Status s = networks_.Destroy(key);
  if (!s.ok()) std::fprintf(stderr, "trainyard: %s\n", s.ToString().c_str());
  if (firewall_ != nullptr) {
    Status closed = firewall_->RemoveJob(BridgeName(key));
    if (!closed.ok()) std::fprintf(stderr, "trainyard: %s\n", closed.ToString().c_str());
  }
}

void LocalLauncher::SweepNetworks(const std::vector<std::string>& keep) {
  if (!support_.namespaces) return;
  std::set<std::string> keys;
  for (const auto& arn : keep) keys.insert(JobNetworkKey(arn, options_.server_id));
  auto removed = networks_.SweepLeftovers(keys);
  if (!removed.ok()) {
    std::fprintf(stderr, "trainyard: %s\n", removed.status().ToString().c_str());
  } else if (!removed->empty()) {
    std::string names;
    for (const auto& n : *removed) {
      names += (names.empty() ? "" : " ") + n;
      if (firewall_ != nullptr && n.rfind("tyb-", 0) == 0) (void)firewall_->RemoveJob(n);
    }
    std::fprintf(stderr, "trainyard: removed instance networks left by an earlier server: %s\n",
                 names.c_str());
  }
}

bool LocalLauncher::AgentAlive(const LocalAgent& agent) {
  if (agent.pid <= 0) return false;
  {
    MutexLock lock(&mu_);
    if (children_.count(agent.pid)) {
      int status = 0;
      pid_t r = ::waitpid(static_cast<pid_t>(agent.pid), &status, WNOHANG);
      if (r == agent.pid || (r < 0 && errno == ECHILD)) {
        children_.erase(agent.pid);
        return false;
      }
      return true;
    }
  }
  return ProcessAlive(static_cast<pid_t>(agent.pid), agent.start_ticks);
}

// --- launch::Launcher

std::string LocalLauncher::Describe() const {
  char memory[32];
  std::snprintf(memory, sizeof(memory), "%.1f", launcher_options_.host_memory_gib);
  std::string capacity;
  for (const auto& [type, count] : launcher_options_.capacity.counts) {
    capacity += (capacity.empty() ? "" : ", ") + type + " " + std::to_string(count);
  }
  capacity += capacity.empty() ? "" : ", ";
  capacity += launcher_options_.capacity.default_count > 0
                  ? "other types " + std::to_string(launcher_options_.capacity.default_count)
                  : "other types as many as its CPUs and memory hold";
  return "network: " + NetworkSummary() +
         "\nlauncher: local (this machine: " + std::to_string(launcher_options_.host_cpus) +
         " CPUs, " + memory + " GiB; capacity: " + capacity + ")";
}

Placement LocalLauncher::Place(const PlacementRequest& request) {
  MutexLock lock(&amu_);
  Placement p;
  p.placed = pool_->TryAcquire(request.instance_type, request.instance_count);
  if (!p.placed) {
    p.waiting = "Waiting for capacity: all " + std::to_string(pool_->Total(request.instance_type)) +
                " " + request.instance_type + " instances of this machine are in use";
  }
  return p;
}

void LocalLauncher::Unplace(const PlacementRequest& request) {
  MutexLock lock(&amu_);
  pool_->Release(request.instance_type, request.instance_count);
}

void LocalLauncher::Adopt(const PlacementRequest& request) {
  MutexLock lock(&amu_);
  pool_->ForceAcquire(request.instance_type, request.instance_count);
}

CapacityView LocalLauncher::Capacity(const std::string& instance_type) const {
  MutexLock lock(&amu_);
  return {pool_->Total(instance_type), pool_->InUse(instance_type)};
}

Status LocalLauncher::CheckRunnable(const PlacementRequest& request) const {
  const std::string& type = request.instance_type;
  if (launcher_options_.catalog->Find(type) == nullptr) {
    return InvalidArgument("ResourceConfig.InstanceType " + type +
                           " is not in this server's instance catalog; add it under "
                           "instance_types in the server configuration.");
  }
  // A job that needs more instances than this machine ever hosts would wait forever.
  const int total = Capacity(type).total;
  if (request.instance_count > total) {
    return Status(StatusCode::kResourceExhausted,
                  "ResourceConfig.InstanceCount " + std::to_string(request.instance_count) +
                      " is more than the " + std::to_string(total) + " " + type +
                      " instance(s) this server hosts; raise capacity." + type +
                      " (or capacity.\"*\") in the server configuration.");
  }
  return Status::Ok();
}

Result<LocalLauncher::Held> LocalLauncher::Fork(const model::InstanceConfig& config) {
  Held held;
  held.host = "algo-" + std::to_string(config.host_index);
  if (!PathExists(config.instance_dir)) {
    return IoError("the instance directory " + config.instance_dir + " does not exist");
  }
  auto parent = RealPath(config.instance_dir + "/..");
  if (!parent.ok()) return parent.status();
  held.instance_file = JoinPath(*parent, held.host + ".instance.json");
  const std::string log_file = JoinPath(*parent, held.host + ".agent.log");

  // Everything the child needs is made before fork: only async-signal-safe calls after it.
  std::vector<std::string> args = {agent_binary_, "agent", "--instance", held.instance_file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ErrnoStatus("cannot open " + log_file, errno);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int go[2] = {-1, -1};
  int err[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {log_fd, devnull, go[0], go[1], err[0], err[1]}) {
      if (fd >= 0) ::close(fd);
    }
  };
  if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    close_all();
    return ErrnoStatus("pipe", e);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    close_all();
    return ErrnoStatus("fork", e);
  }
  if (pid == 0) {
    // A copy of the server until exec: a signal must end it, never run the server's handlers.
    for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Nothing of the server's (client sockets, other attempts' pipes) stays open while held.
    CloseAllBut(go[0], err[1]);
    char byte = 0;
    ssize_t n;
    do {
      n = ::read(go[0], &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(126);  // the attempt did not start
    ::execv(argv[0], argv.data());
    int e = errno;
    ssize_t ignored = ::write(err[1], &e, sizeof(e));
    (void)ignored;
    ::_exit(127);
  }
  ::close(go[0]);
  ::close(err[1]);
  ::close(log_fd);
  if (devnull >= 0) ::close(devnull);
  {
    MutexLock lock(&mu_);
    children_.insert(pid);
  }
  held.agent = {pid, ProcessStartTicks(pid)};
  held.go_fd = go[1];
  held.err_fd = err[0];
  return held;
}

void LocalLauncher::Abandon(std::vector<Held>& held) {
  for (Held& h : held) {
    if (h.go_fd >= 0) ::close(h.go_fd);  // the child reads EOF and exits
    if (h.err_fd >= 0) ::close(h.err_fd);
    h.go_fd = h.err_fd = -1;
    ::waitpid(static_cast<pid_t>(h.agent.pid), nullptr, 0);
    MutexLock lock(&mu_);
    children_.erase(h.agent.pid);
  }
  held.clear();
}

std::string LocalLauncher::Start(std::vector<Held>& held,
                                 std::vector<model::InstanceConfig>& configs,
                                 const std::vector<model::InstanceNetworkConfig>& networks) {
  std::string reason;
  for (size_t i = 0; i < held.size() && reason.empty(); ++i) {
    configs[i].network = networks[i];
    Status s = WriteFileAtomic(held[i].instance_file,
                               model::InstanceConfigToJson(configs[i]).dump(2), 0600,
                               /*durable=*/false);
    if (!s.ok()) reason = "could not launch instance " + held[i].host + ": " + s.message();
  }
  if (!reason.empty()) {
    for (const Held& h : held) ::unlink(h.instance_file.c_str());  // they hold the agent token
    Abandon(held);
    return reason;
  }
  // A held child killed meanwhile closed its pipe: no SIGPIPE for this process.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  for (Held& h : held) {
    char go = 1;
    ssize_t ignored = ::write(h.go_fd, &go, 1);
    (void)ignored;
    ::close(h.go_fd);
    h.go_fd = -1;
  }
  timespec zero{};
  while (::sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  for (Held& h : held) {
    int child_errno = 0;
    ssize_t n;
    do {
      n = ::read(h.err_fd, &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    ::close(h.err_fd);
    h.err_fd = -1;
    if (n == sizeof(child_errno) && reason.empty()) {
      reason = "could not launch instance " + h.host + ": cannot execute agent " + agent_binary_ +
               ": " + std::strerror(child_errno);
    }
  }
  if (!reason.empty()) {
    // All or none: a partial attempt cannot train.
    for (const Held& h : held) {
      ::kill(static_cast<pid_t>(h.agent.pid), SIGKILL);
      ::kill(-static_cast<pid_t>(h.agent.pid), SIGKILL);
      ::unlink(h.instance_file.c_str());
    }
    Abandon(held);
  }
  held.clear();
  return reason;
}

Result<std::vector<model::InstanceNetworkConfig>> LocalLauncher::NetworkFor(
    const std::string& job_arn, const NetworkRequest& request) {
  MutexLock lock(&amu_);
  // A network being made (an earlier attempt) or released (an ended job of the same ARN,
  // whose network has the same names) is waited for.
  while (jobs_[job_arn].busy) cv_.Wait(&amu_);
  if (jobs_[job_arn].made) return jobs_[job_arn].networks;
  jobs_[job_arn].busy = true;
  lock.Unlock();
  auto made = PrepareNetwork(job_arn, request);
  lock.Lock();
  JobNet& net = jobs_[job_arn];
  net.busy = false;
  if (made.ok()) {
    net.made = true;
    net.networks = *made;
  }
  cv_.SignalAll();
  return made;
}

Result<AttemptHandle> LocalLauncher::LaunchAttempt(const AttemptPlan& plan) {
  const size_t count = plan.instances.size();
  if (count == 0) return InvalidArgument("an attempt needs at least one instance");
  if (count > kMaxLocalHandleAgents) {
    return InvalidArgument("an attempt of " + std::to_string(count) + " instances is more than " +
                           std::to_string(kMaxLocalHandleAgents) + " this launcher starts");
  }
  if (plan.network.count != static_cast<int>(count)) {
    return InvalidArgument("the attempt has " + std::to_string(count) +
                           " instances and its network " + std::to_string(plan.network.count));
  }
  bool at_once = false;
  {
    MutexLock lock(&amu_);
    auto it = jobs_.find(plan.job_arn);
    const bool busy = it != jobs_.end() && it->second.busy;
    const bool made = it != jobs_.end() && it->second.made;
    at_once = !busy && (made || PreparesNetworkAtOnce(plan.network));
  }
  std::optional<std::vector<model::InstanceNetworkConfig>> networks;
  if (at_once) {
    auto made = NetworkFor(plan.job_arn, plan.network);
    if (!made.ok()) {
      return Status(made.status().code(),
                    "could not set up the instances' network: " + made.status().message());
    }
    networks = std::move(made).value();
  }
  std::vector<Held> held;
  for (const auto& config : plan.instances) {
    auto forked = Fork(config);
    if (!forked.ok()) {
      Abandon(held);
      return Status(forked.status().code(), "could not launch instance algo-" +
                                                std::to_string(config.host_index) + ": " +
                                                forked.status().message());
    }
    held.push_back(std::move(forked).value());
  }
  std::vector<LocalAgent> agents;
  for (const Held& h : held) agents.push_back(h.agent);
  AttemptHandle handle{FormatLocalHandle(agents)};
  if (networks) {
    std::vector<model::InstanceConfig> configs = plan.instances;
    std::string reason = Start(held, configs, *networks);
    if (!reason.empty()) return IoError(reason);
    MutexLock lock(&amu_);
    attempts_[handle.id] = Attempt{plan.job_arn, Attempt::State::kRunning, "", {}, {}};
    return handle;
  }
  {
    MutexLock lock(&amu_);
    attempts_[handle.id] =
        Attempt{plan.job_arn, Attempt::State::kStarting, "", std::move(held), plan.instances};
    ++threads_running_;
  }
  // Making the network runs `ip` and `nft` a few times (~0.1-0.5 s): off the caller's loop.
  std::thread([this, id = handle.id, arn = plan.job_arn, request = plan.network] {
    StartLater(id, arn, request);
  }).detach();
  return handle;
}

void LocalLauncher::StartLater(const std::string& handle, const std::string& job_arn,
                               const NetworkRequest& request) {
  auto made = NetworkFor(job_arn, request);
  std::vector<Held> held;
  std::vector<model::InstanceConfig> configs;
  bool start = false;
  {
    MutexLock lock(&amu_);
    auto it = attempts_.find(handle);
    if (it != attempts_.end()) {
      Attempt& a = it->second;
      held = std::move(a.held);
      configs = std::move(a.plans);
      a.held.clear();
      if (a.state == Attempt::State::kStarting && !made.ok()) {
        a.state = Attempt::State::kFailed;
        a.reason = "could not set up the instances' network: " + made.status().message();
      } else if (a.state == Attempt::State::kStarting) {
        a.state = Attempt::State::kExecing;
        start = true;
      }
    }
  }
  std::string reason;
  if (start) {
    reason = Start(held, configs, *made);
  } else {
    Abandon(held);  // stopped, released or failed before it started
  }
  MutexLock lock(&amu_);
  if (start) {
    auto it = attempts_.find(handle);
    if (it != attempts_.end()) {
      it->second.state = reason.empty() ? Attempt::State::kRunning : Attempt::State::kFailed;
      it->second.reason = reason;
    }
  }
  --threads_running_;
  cv_.SignalAll();
}

void LocalLauncher::Signal(const AttemptHandle& attempt, AttemptSignal signal,
                           std::span<const int> instances) {
  std::vector<Held> cancelled;
  {
    MutexLock lock(&amu_);
    auto it = attempts_.find(attempt.id);
    if (it != attempts_.end()) {
      Attempt& a = it->second;
      if (a.state == Attempt::State::kStarting) {
        // Nothing runs yet: the attempt does not start (its network stays the job's).
        cancelled = std::move(a.held);
        a.held.clear();
        a.state = Attempt::State::kCancelled;
        a.reason = std::string("the attempt was told to ") + Name(signal) + " before it started";
      } else if (a.state == Attempt::State::kCancelled || a.state == Attempt::State::kFailed) {
        return;
      }
    }
  }
  if (!cancelled.empty()) {
    Abandon(cancelled);
    return;
  }
  auto agents = ParseLocalHandle(attempt.id);
  if (!agents) return;
  const int sig = SignalNumber(signal);
  auto one = [&](size_t i) {
    if (i >= agents->size()) return;
    const LocalAgent& agent = (*agents)[i];
    if (agent.pid <= 1 || !AgentAlive(agent)) return;
    bool child = false;
    {
      MutexLock lock(&mu_);
      child = children_.count(agent.pid) > 0;
    }
    // A handle read back from the store signals nothing but an agent.
    if (!child && !LooksLikeAgent(ProcessArgv(agent.pid))) return;
    ::kill(static_cast<pid_t>(agent.pid), sig);
    // The agent leads its session: a SIGKILL takes its training process too.
    if (sig == SIGKILL) ::kill(-static_cast<pid_t>(agent.pid), SIGKILL);
  };
  if (instances.empty()) {
    for (size_t i = 0; i < agents->size(); ++i) one(i);
  } else {
    for (int i : instances) {
      if (i >= 0) one(static_cast<size_t>(i));
    }
  }
}

std::vector<AttemptState> LocalLauncher::Poll(std::span<const AttemptHandle> attempts) {
  std::vector<AttemptState> out;
  out.reserve(attempts.size());
  for (const AttemptHandle& handle : attempts) {
    AttemptState state;
    bool check = true;
    {
      MutexLock lock(&amu_);
      auto it = attempts_.find(handle.id);
      if (it != attempts_.end()) {
        switch (it->second.state) {
          case Attempt::State::kStarting:
          case Attempt::State::kExecing:
            state.phase = AttemptState::Phase::kStarting;
            check = false;
            break;
          case Attempt::State::kFailed:
            state.phase = AttemptState::Phase::kFailed;
            state.reason = it->second.reason;
            check = false;
            break;
          case Attempt::State::kCancelled:
            state.phase = AttemptState::Phase::kEnded;
            state.reason = it->second.reason;
            check = false;
            break;
          case Attempt::State::kRunning:
            break;
        }
      }
    }
    if (check) {
      auto agents = ParseLocalHandle(handle.id);
      state.phase = AttemptState::Phase::kEnded;
      if (!agents) {
        state.reason = "not a local attempt handle";
      } else {
        bool any = false;
        for (const LocalAgent& agent : *agents) {
          state.alive.push_back(AgentAlive(agent));
          any = any || state.alive.back();
        }
        if (any) {
          state.phase = AttemptState::Phase::kRunning;
        } else {
          state.alive.clear();
        }
      }
    }
    out.push_back(std::move(state));
  }
  return out;
}

void LocalLauncher::ReleaseAttempt(const AttemptHandle& attempt) {
  std::vector<Held> held;
  {
    MutexLock lock(&amu_);
    auto it = attempts_.find(attempt.id);
    if (it == attempts_.end()) return;
    held = std::move(it->second.held);
    attempts_.erase(it);
  }
  Abandon(held);
}

void LocalLauncher::ReleaseJob(const std::string& job_arn) {
  std::vector<std::string> live;  // handles of the ARN's attempts that may still run
  {
    MutexLock lock(&amu_);
    // A network still being made is released once it is there.
    while (jobs_[job_arn].busy) cv_.Wait(&amu_);
    for (const auto& [id, attempt] : attempts_) {
      if (attempt.job_arn != job_arn) continue;
      if (attempt.state != Attempt::State::kFailed && attempt.state != Attempt::State::kCancelled) {
        live.push_back(id);
      }
    }
  }
  // A release that comes after a new job of the same ARN has launched is an ended job's, late:
  // the network (the same names) is the new job's now.
  for (const auto& id : live) {
    AttemptHandle h{id};
    const Phase phase = Poll(std::span<const AttemptHandle>(&h, 1))[0].phase;
    if (phase == Phase::kStarting || phase == Phase::kRunning) {
      std::fprintf(stderr,
                   "trainyard: not releasing the network of %s: an attempt of it runs (%s)\n",
                   job_arn.c_str(), id.c_str());
      return;
    }
  }
  {
    MutexLock lock(&amu_);
    while (jobs_[job_arn].busy) cv_.Wait(&amu_);
    jobs_[job_arn].busy = true;
  }
  // Also when this launcher made none: a restarted server's jobs have theirs from before.
  ReleaseNetwork(job_arn);
  MutexLock lock(&amu_);
  jobs_.erase(job_arn);
  cv_.SignalAll();
}

void LocalLauncher::Sweep(std::span<const AttemptHandle> keep_attempts,
                          std::span<const std::string> keep_jobs) {
  std::set<int64_t> keep_pids;
  std::vector<std::string> keep_arns(keep_jobs.begin(), keep_jobs.end());
  {
    MutexLock lock(&amu_);
    for (const auto& [id, attempt] : attempts_) {
      if (auto agents = ParseLocalHandle(id)) {
        for (const auto& a : *agents) keep_pids.insert(a.pid);
      }
    }
    for (const auto& [arn, net] : jobs_) keep_arns.push_back(arn);
  }
  for (const AttemptHandle& h : keep_attempts) {
    if (auto agents = ParseLocalHandle(h.id)) {
      for (const auto& a : *agents) keep_pids.insert(a.pid);
    }
  }
  if (!launcher_options_.jobs_dir.empty()) {
    auto real = RealPath(launcher_options_.jobs_dir);
    const std::string root = (real.ok() ? *real : launcher_options_.jobs_dir) + "/";
    std::string killed;
    if (DIR* proc = ::opendir("/proc")) {
      while (dirent* e = ::readdir(proc)) {
        auto pid = ParseCount(e->d_name);
        if (!pid || *pid <= 1 || *pid > 0x7fffffff || keep_pids.count(*pid)) continue;
        auto argv = ProcessArgv(*pid);
        if (!LooksLikeAgent(argv) || argv[3].rfind(root, 0) != 0) continue;
        ::kill(static_cast<pid_t>(*pid), SIGKILL);
        ::kill(-static_cast<pid_t>(*pid), SIGKILL);
        killed += (killed.empty() ? "" : ", ") + std::to_string(*pid) + " (" + argv[3] + ")";
      }
      ::closedir(proc);
    }
    if (!killed.empty()) {
      std::fprintf(stderr, "trainyard: killed agents of attempts no job keeps: %s\n",
                   killed.c_str());
    }
  }
  SweepNetworks(keep_arns);
}

}  // namespace ty::launch
