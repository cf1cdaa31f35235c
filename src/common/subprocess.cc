#include "common/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ty {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// What the child reports through the error pipe when it cannot reach exec.
struct ChildError {
  int stage;  // 0 exec, 1 chdir, 2 output file, 3 stdio setup, 4 network namespace, 5 ids
  int err;
};

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Resolves argv0 against PATH the way execvp would, but using the child's
// PATH rather than ours. Returns empty when nothing matches.
std::string FindProgram(const std::string& argv0, const std::map<std::string, std::string>& env) {
  if (argv0.find('/') != std::string::npos) return argv0;
  auto it = env.find("PATH");
  std::string path = it != env.end() ? it->second : kDefaultPath;
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + argv0;
    if (IsExecutableFile(candidate)) return candidate;
  }
  return "";
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

[[noreturn]] void ChildFail(int err_fd, int stage) {
  ChildError e{stage, errno};
  ssize_t n = ::write(err_fd, &e, sizeof(e));
  (void)n;
  ::_exit(127);
}

void MarkAllCloseOnExec() {
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace

Result<std::unique_ptr<Subprocess>> Subprocess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return InvalidArgument("Spawn: empty argv");
  const std::string& argv0 = options.argv[0];
  std::string program = FindProgram(argv0, options.env);
  if (program.empty()) {
    return IoError("cannot execute '" + argv0 + "': " + std::strerror(ENOENT));
  }

  // Everything the child needs is built before fork: after fork only
  // async-signal-safe calls are allowed (we may have other threads).
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  int out_pipe[2] = {-1, -1};
  int errout_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {err_pipe, out_pipe, errout_pipe}) {
      CloseFd(p[0]);
      CloseFd(p[1]);
    }
  };
  if (options.capture_output) {
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(errout_pipe, O_CLOEXEC) != 0) {
      int err = errno;
      close_all();
      return ErrnoStatus("pipe", err);
    }
  }
  const char* out_file = (!options.capture_output && !options.stdout_file.empty())
                             ? options.stdout_file.c_str()
                             : nullptr;
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();

  int netns_fd = -1;
  if (!options.netns_path.empty()) {
    netns_fd = ::open(options.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      int err = errno;
      close_all();
      return ErrnoStatus("cannot open network namespace " + options.netns_path, err);
    }
  }

  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    close_all();
    CloseFd(netns_fd);
    return ErrnoStatus("fork", err);
  }
  if (pid == 0) {
    int ef = err_pipe[1];
    if (options.new_session) ::setsid();
    // A new session escapes group kills of the parent: tie the child's life to
    // the spawning thread instead, so a SIGKILLed agent takes its job along.
    if (options.kill_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);

    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull < 0 || ::dup2(devnull, 0) < 0) ChildFail(ef, 3);
    if (options.capture_output) {
      if (::dup2(out_pipe[1], 1) < 0 || ::dup2(errout_pipe[1], 2) < 0) ChildFail(ef, 3);
    } else if (out_file != nullptr) {
      int fd = ::open(out_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) ChildFail(ef, 2);
      if (::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ChildFail(ef, 3);
    }
    if (cwd != nullptr && ::chdir(cwd) != 0) ChildFail(ef, 1);
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) ChildFail(ef, 4);
    if (options.uid || options.gid) {
      // Groups first: once the uid is unprivileged, setgroups and setgid are refused.
      if (::setgroups(0, nullptr) != 0) ChildFail(ef, 5);
      if (options.gid && ::setresgid(*options.gid, *options.gid, *options.gid) != 0) {
        ChildFail(ef, 5);
      }
      if (options.uid && ::setresuid(*options.uid, *options.uid, *options.uid) != 0) {
        ChildFail(ef, 5);
      }
      // A change of credentials clears the parent-death signal: set it again.
      if (options.kill_with_parent) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
      }
    }
    if (options.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(ef, 5);
    MarkAllCloseOnExec();
    for (int fd : options.inherit_fds) {
      if (::fcntl(fd, F_SETFD, 0) != 0) ChildFail(ef, 3);
    }
    ::execve(program.c_str(), argv.data(), envp.data());
    ChildFail(ef, 0);
  }

  CloseFd(err_pipe[1]);
  CloseFd(out_pipe[1]);
  CloseFd(errout_pipe[1]);
  CloseFd(netns_fd);
  ChildError ce{};
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &ce, sizeof(ce));
  } while (n < 0 && errno == EINTR);
  CloseFd(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(ce))) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    CloseFd(out_pipe[0]);
    CloseFd(errout_pipe[0]);
    switch (ce.stage) {
      case 0:
        return IoError("cannot execute '" + argv0 + "': " + std::strerror(ce.err));
      case 1:
        return IoError("cannot change directory to '" + options.cwd +
                       "': " + std::strerror(ce.err));
      case 2:
        return IoError("cannot open '" + options.stdout_file + "': " + std::strerror(ce.err));
      case 4:
        return IoError("cannot enter network namespace " + options.netns_path + ": " +
                       std::strerror(ce.err));
      case 5:
        return IoError("cannot change to uid " + std::to_string(options.uid.value_or(-1)) +
                       " gid " + std::to_string(options.gid.value_or(-1)) + ": " +
                       std::strerror(ce.err));
      default:
        return IoError(std::string("cannot set up the child's standard streams: ") +
                       std::strerror(ce.err));
    }
  }

  std::unique_ptr<Subprocess> p(new Subprocess());
  p->pid_ = pid;
  p->group_ = options.new_session;
  p->stdout_fd_ = out_pipe[0];
  p->stderr_fd_ = errout_pipe[0];
  for (int fd : {p->stdout_fd_, p->stderr_fd_}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return p;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    if (group_) ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    (void)Wait();
  }
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
}

void Subprocess::CloseStdout() { CloseFd(stdout_fd_); }
void Subprocess::CloseStderr() { CloseFd(stderr_fd_); }

Status Subprocess::SignalGroup(int sig) {
  if (reaped_) {
    // Members of the group may outlive the leader; the group id stays
    // theirs while any of them lives.
    if (group_) ::kill(-pid_, sig);
    return Status::Ok();
  }
  // The group may outlive its leader's exec (e.g. setsid failed when the
  // child already led a group); signalling the leader directly is a fallback.
  if (group_ && ::kill(-pid_, sig) == 0) return Status::Ok();
  if (::kill(pid_, sig) != 0 && errno != ESRCH) return ErrnoStatus("kill", errno);
  return Status::Ok();
}

int Subprocess::DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

Result<int> Subprocess::Wait() {
  if (reaped_) return exit_code_;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, 0);
    if (r == pid_) break;
    if (r < 0 && errno == EINTR) continue;
    return ErrnoStatus("waitpid", errno);
  }
  exit_code_ = DecodeWaitStatus(status);
  reaped_ = true;
  return exit_code_;
}

std::optional<int> Subprocess::TryWait() {
  if (reaped_) return exit_code_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return std::nullopt;
  exit_code_ = DecodeWaitStatus(status);
  reaped_ = true;
  return exit_code_;
}

namespace {

// Reads /proc/<pid>/stat and returns the fields after the command name
// (which may itself contain spaces and parentheses); empty when gone.
std::vector<std::string> StatFieldsAfterComm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return {};
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::stringstream ss(line.substr(close + 1));
  std::vector<std::string> fields;
  std::string f;
  while (ss >> f) fields.push_back(f);
  return fields;  // fields[0] is field 3 (state)
}

}  // namespace

int64_t ProcessStartTicks(pid_t pid) {
  auto fields = StatFieldsAfterComm(pid);
  if (fields.size() < 20) return 0;
  return std::strtoll(fields[19].c_str(), nullptr, 10);  // field 22
}

bool ProcessAlive(pid_t pid, int64_t start_ticks) {
  if (pid <= 0) return false;
  auto fields = StatFieldsAfterComm(pid);
  if (fields.size() < 20) return false;
  if (fields[0] == "Z" || fields[0] == "X") return false;
  return start_ticks == 0 || std::strtoll(fields[19].c_str(), nullptr, 10) == start_ticks;
}

}  // namespace ty
