// Subprocess: a child process started by fork/exec, owned by one object.
// The owner holds the pid and the read ends of the output pipes; destroying
// a Subprocess whose child has not been reaped kills the child's process
// group (SIGKILL) and reaps it, so no child outlives its owner by accident.
// Thread contract: one thread uses a Subprocess at a time, except
// SignalGroup(), which may be called from any thread (it only sends a signal).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ty {

struct SpawnOptions {
  // argv[0] is looked up in env["PATH"] (or a default PATH) when it has no '/'. REQUIRES:
  // non-empty.
  std::vector<std::string> argv;
  // The complete environment of the child (nothing is inherited).
  std::map<std::string, std::string> env;
  // Working directory of the child; empty: the parent's.
  std::string cwd;
  // Default true: the child calls setsid(), so it leads its own process group
  // and SignalGroup() reaches every descendant that stays in the group.
  bool new_session = true;
  // Default true: the child gets SIGKILL when the thread that spawned it dies
  // (PR_SET_PDEATHSIG), so it cannot outlive a killed parent.
  bool kill_with_parent = true;
  // Default true: stdout and stderr go to two pipes (stdout_fd(), stderr_fd()).
  bool capture_output = true;
  // When non-empty (and capture_output is false): stdout and stderr are both
  // appended to this file. With neither, the child inherits the parent's.
  std::string stdout_file;
  // When non-empty: a network namespace file (e.g. /run/netns/<name>) the child enters with
  // setns(2) before exec, so it and its descendants see that namespace's network only.
  std::string netns_path;
  // Descriptors the child keeps open across exec, at the same numbers (for programs told an fd
  // number on their command line, such as bubblewrap's --seccomp and --bind-fd). The caller
  // keeps them open until Spawn returns.
  std::vector<int> inherit_fds;
  // When set: after entering netns_path, the child drops its supplementary groups and takes
  // this gid and uid (real, effective and saved) before exec, so the program starts without
  // the parent's privilege. Errors: IoError "cannot change to uid/gid ...".
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Default false: when true the child sets no_new_privs before exec (no setuid or file
  // capability can raise what the program or its descendants hold).
  bool no_new_privs = false;
};

class Subprocess {
 public:
  // Starts argv. Errors: IoError "cannot execute '<argv0>': <strerror>" when
  // the program cannot be found or exec'd (errno carried back from the child
  // through a close-on-exec pipe), IoError for fork/pipe/cwd failures.
  // The child's stdin is /dev/null; every descriptor other than 0-2 is closed
  // on exec; signal dispositions and the signal mask are reset.
  static Result<std::unique_ptr<Subprocess>> Spawn(const SpawnOptions& options);

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Read ends of the capture pipes (non-blocking); -1 when not captured or closed.
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }
  // Closes a capture pipe once the caller has read it to EOF.
  void CloseStdout();
  void CloseStderr();

  // Sends `sig` to the child's process group (to the child alone when
  // new_session was false). After the child was reaped it still reaches the
  // group's survivors (new_session only); ESRCH is not an error.
  Status SignalGroup(int sig);

  // Blocks until the child exits. Returns its exit code, or 128+signal when
  // a signal killed it. Calling again returns the same value.
  Result<int> Wait();
  // Like Wait() but does not block: nullopt while the child runs.
  std::optional<int> TryWait();

 private:
  Subprocess() = default;
  static int DecodeWaitStatus(int status);

  pid_t pid_ = -1;
  bool group_ = true;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::atomic<bool> reaped_{false};
  int exit_code_ = -1;
};

// Start time of a process in clock ticks since boot (field 22 of
// /proc/<pid>/stat); 0 when the process does not exist.
int64_t ProcessStartTicks(pid_t pid);
// True when `pid` exists, is not a zombie, and (when start_ticks != 0) has the
// same start time, so a recycled pid is not mistaken for the original process.
bool ProcessAlive(pid_t pid, int64_t start_ticks);

}  // namespace ty
