#include "launch/local_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/fs.h"
#include "common/text.h"

namespace ty::launch {

int64_t ProcessStartTicks(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  // The command name (field 2) may contain spaces: parse after the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  char state = 0;
  rest >> state;
  if (state == 'Z' || state == 'X') return 0;  // a zombie is gone for our purposes
  // Fields 4..21 precede starttime (field 22); we consumed field 3.
  for (int i = 4; i <= 21; ++i) rest >> field;
  int64_t ticks = 0;
  rest >> ticks;
  return ticks;
}

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

LocalLauncher::LocalLauncher(std::string agent_binary, NetworkPolicy network,
                             LocalNetworkOptions options)
    : agent_binary_(std::move(agent_binary)),
      policy_(network),
      options_(std::move(options)),
      networks_(options_.server_id) {
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

Result<AgentHandle> LocalLauncher::Launch(const model::InstanceConfig& config) {
  std::string host = "algo-" + std::to_string(config.host_index);
  std::string parent = config.instance_dir + "/..";
  auto parent_real = RealPath(parent);
  if (!parent_real.ok()) return parent_real.status();
  std::string instance_file = JoinPath(*parent_real, host + ".instance.json");
  std::string log_file = JoinPath(*parent_real, host + ".agent.log");
  TY_RETURN_IF_ERROR(WriteFileAtomic(instance_file, model::InstanceConfigToJson(config).dump(2),
                                     0600,
                                     /*durable=*/false));

  // Prepare everything the child needs before fork: only async-signal-safe
  // calls are allowed between fork and exec.
  std::vector<std::string> args = {agent_binary_, "agent", "--instance", instance_file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ErrnoStatus("cannot open " + log_file, errno);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    if (devnull >= 0) ::close(devnull);
    return ErrnoStatus("pipe", errno);
  }

  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log_fd);
    if (devnull >= 0) ::close(devnull);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    return ErrnoStatus("fork", err);
  }
  if (pid == 0) {
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // The server's accepted client sockets are not close-on-exec (httplib):
    // an agent holding them would keep dead connections half-open.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv(argv[0], argv.data());
    int err = errno;
    ssize_t ignored = ::write(err_pipe[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  ::close(log_fd);
  if (devnull >= 0) ::close(devnull);
  int child_errno = 0;
  ssize_t n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  ::close(err_pipe[0]);
  if (n == sizeof(child_errno)) {
    ::waitpid(pid, nullptr, 0);
    ::unlink(instance_file.c_str());  // it holds the job's agent token
    return ErrnoStatus("cannot execute agent " + agent_binary_, child_errno);
  }
  {
    MutexLock lock(&mu_);
    children_.insert(pid);
  }
  return AgentHandle{pid, ProcessStartTicks(pid)};
}

void LocalLauncher::Signal(const AgentHandle& agent, int sig) {
  if (agent.pid <= 0 || !Alive(agent)) return;
  ::kill(static_cast<pid_t>(agent.pid), sig);
  // Without bubblewrap's --die-with-parent, a SIGKILLed agent would orphan
  // its training process: the agent leads its own session, so kill it all.
  if (sig == SIGKILL) ::kill(-static_cast<pid_t>(agent.pid), SIGKILL);
}

bool LocalLauncher::Alive(const AgentHandle& agent) {
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
  int64_t ticks = ProcessStartTicks(agent.pid);
  return ticks != 0 && (agent.start_ticks == 0 || ticks == agent.start_ticks);
}

}  // namespace ty::launch
