#include "launch/local_launcher.h"

#include <fcntl.h>
#include <linux/close_range.h>
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

LocalLauncher::LocalLauncher(std::string agent_binary, NetworkPolicy network)
    : agent_binary_(std::move(agent_binary)), policy_(network) {
  if (policy_ != NetworkPolicy::kLoopback) support_ = ProbeNetworkSupport();
}

std::string LocalLauncher::NetworkSummary() const {
  switch (policy_) {
    case NetworkPolicy::kLoopback:
      return "multi-node instances: loopback addresses (network: loopback)";
    case NetworkPolicy::kNamespaces:
      return support_.namespaces
                 ? "multi-node instances: a network namespace each"
                 : "multi-node instances: refused (network: namespaces, but " + support_.reason +
                       ")";
    case NetworkPolicy::kAuto:
      break;
  }
  return support_.namespaces ? "multi-node instances: a network namespace each"
                             : "multi-node instances: loopback addresses (no network namespaces: " +
                                   support_.reason + ")";
}

Result<std::vector<model::InstanceNetworkConfig>> LocalLauncher::PrepareNetwork(
    const std::string& job_arn, int count) {
  NetworkMode mode = NetworkMode::kLoopback;
  if (policy_ != NetworkPolicy::kLoopback) {
    if (support_.namespaces) {
      mode = NetworkMode::kNamespaces;
    } else if (policy_ == NetworkPolicy::kNamespaces) {
      return FailedPrecondition("network namespaces are not available here (" + support_.reason +
                                ") and the server's network setting is 'namespaces'");
    }
  }
  TY_ASSIGN_OR_RETURN(JobNetwork net, networks_.Create(JobNetworkKey(job_arn), count, mode));
  std::vector<model::InstanceNetworkConfig> out;
  for (const auto& inst : net.instances) {
    model::InstanceNetworkConfig c;
    c.netns = inst.netns;
    c.interface = net.interface;
    c.address = inst.ip;
    for (const auto& peer : net.instances) c.hosts.emplace_back(peer.host, peer.ip);
    out.push_back(std::move(c));
  }
  return out;
}

void LocalLauncher::ReleaseNetwork(const std::string& job_arn) {
  Status s = networks_.Destroy(JobNetworkKey(job_arn));
  if (!s.ok()) std::fprintf(stderr, "trainyard: %s\n", s.ToString().c_str());
}

void LocalLauncher::SweepNetworks(const std::vector<std::string>& keep) {
  if (!support_.namespaces) return;
  std::set<std::string> keys;
  for (const auto& arn : keep) keys.insert(JobNetworkKey(arn));
  auto removed = networks_.SweepLeftovers(keys);
  if (!removed.ok()) {
    std::fprintf(stderr, "trainyard: %s\n", removed.status().ToString().c_str());
  } else if (!removed->empty()) {
    std::string names;
    for (const auto& n : *removed) names += (names.empty() ? "" : " ") + n;
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
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(instance_file, model::InstanceConfigToJson(config).dump(2), 0600,
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
