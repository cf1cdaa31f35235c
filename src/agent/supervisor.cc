#include "agent/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/clock.h"

namespace ty::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t NowMs() { return ToEpochMillis(SystemClock::Default()->Now()); }

// Sends `sig` to every process of group `pgid` except `except`, by scanning
// /proc (there is no kill(2) form for "the group minus one").
void SignalGroupExcept(pid_t pgid, pid_t except, int sig) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    pid_t pid = static_cast<pid_t>(std::strtol(name.c_str(), nullptr, 10));
    if (pid == except) continue;
    std::ifstream in("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 1));
    std::string state;
    long ppid = 0, pgrp = 0;
    if (!(fields >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid) ::kill(pid, sig);
  }
}

}  // namespace

void LineSplitter::Feed(const char* data, size_t n, const std::function<void(std::string)>& emit) {
  for (size_t i = 0; i < n; ++i) {
    if (data[i] == '\n') {
      emit(std::move(partial_));
      partial_.clear();
    } else {
      partial_ += data[i];
      if (partial_.size() >= max_line_) {
        emit(std::move(partial_));
        partial_.clear();
      }
    }
  }
}

void LineSplitter::Finish(const std::function<void(std::string)>& emit) {
  if (!partial_.empty()) emit(std::move(partial_));
  partial_.clear();
}

Supervisor::Supervisor() {
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    stop_pipe_[0] = stop_pipe_[1] = -1;
  }
}

Supervisor::~Supervisor() {
  for (int fd : stop_pipe_) {
    if (fd >= 0) ::close(fd);
  }
}

void Supervisor::RequestStop(std::chrono::milliseconds grace) {
  grace_override_ms_.store(std::max<int64_t>(grace.count(), 0));
  RequestStop();
}

void Supervisor::RequestStop() {
  stop_requested_.store(true);
  if (stop_pipe_[1] >= 0) {
    char b = 's';
    ssize_t n = ::write(stop_pipe_[1], &b, 1);
    (void)n;
  }
}

Result<Supervisor::Outcome> Supervisor::Run(SpawnOptions options,
                                            std::chrono::milliseconds stop_grace,
                                            const LineSink& sink,
                                            const std::function<void()>& on_tick,
                                            bool spare_leader_on_term) {
  Outcome outcome;
  if (stop_requested()) {
    outcome.stopped = true;
    outcome.exit_code = 128 + SIGTERM;
    return outcome;
  }
  options.capture_output = true;
  TY_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> proc, Subprocess::Spawn(options));

  LineSplitter out_split, err_split;
  std::function<void(std::string)> emit_out = [&](std::string s) {
    sink(OutputLine{NowMs(), false, std::move(s)});
  };
  std::function<void(std::string)> emit_err = [&](std::string s) {
    sink(OutputLine{NowMs(), true, std::move(s)});
  };

  bool terminating = false;
  bool killed = false;
  SteadyClock::time_point kill_at;
  std::optional<int> exit_code;
  SteadyClock::time_point drain_deadline;
  char buf[65536];

  // Reads what is available on one pipe; closes it at EOF.
  auto drain = [&](bool is_err) {
    int fd = is_err ? proc->stderr_fd() : proc->stdout_fd();
    if (fd < 0) return;
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0) {
        (is_err ? err_split : out_split)
            .Feed(buf, static_cast<size_t>(n), is_err ? emit_err : emit_out);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      // EOF or a hard error: the stream is over.
      if (is_err) {
        err_split.Finish(emit_err);
        proc->CloseStderr();
      } else {
        out_split.Finish(emit_out);
        proc->CloseStdout();
      }
      return;
    }
  };

  for (;;) {
    pollfd fds[3];
    nfds_t nfds = 0;
    fds[nfds++] = {stop_pipe_[0], POLLIN, 0};
    if (proc->stdout_fd() >= 0) fds[nfds++] = {proc->stdout_fd(), POLLIN, 0};
    if (proc->stderr_fd() >= 0) fds[nfds++] = {proc->stderr_fd(), POLLIN, 0};
    // Once both output pipes hit EOF the process is exiting: check for it
    // often so the job's end is not delayed by the poll period.
    ::poll(fds, nfds, nfds == 1 ? 2 : 20);

    drain(false);
    drain(true);

    char sb[64];
    while (stop_pipe_[0] >= 0 && ::read(stop_pipe_[0], sb, sizeof(sb)) > 0) {
    }
    if (stop_requested() && !terminating && !exit_code) {
      terminating = true;
      outcome.stopped = true;
      if (spare_leader_on_term) {
        SignalGroupExcept(proc->pid(), proc->pid(), SIGTERM);
      } else {
        (void)proc->SignalGroup(SIGTERM);
      }
      int64_t override_ms = grace_override_ms_.load();
      kill_at = SteadyClock::now() +
                (override_ms >= 0 ? std::chrono::milliseconds(override_ms) : stop_grace);
    }
    if (terminating && !killed && !exit_code && SteadyClock::now() >= kill_at) {
      killed = true;
      (void)proc->SignalGroup(SIGKILL);
    }

    if (!exit_code) {
      exit_code = proc->TryWait();
      if (exit_code) {
        // The container ends with its main process: whatever it left behind in
        // its group goes too, which also lets the pipes reach EOF.
        (void)proc->SignalGroup(SIGKILL);
        drain_deadline = SteadyClock::now() + std::chrono::seconds(2);
      }
    }
    if (on_tick) on_tick();
    if (exit_code) {
      bool open = proc->stdout_fd() >= 0 || proc->stderr_fd() >= 0;
      if (!open || SteadyClock::now() >= drain_deadline) break;
    }
  }
  out_split.Finish(emit_out);
  err_split.Finish(emit_err);
  outcome.exit_code = *exit_code;
  return outcome;
}

}  // namespace ty::agent
