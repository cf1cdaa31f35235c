// Sandbox: how a training process is held inside bubblewrap (ARCHITECTURE.md decision 9).
//
// The training process keeps uid 0 inside its sandbox and has no privilege on the host:
//  - bubblewrap is started as an unprivileged host uid/gid (SandboxConfig) and makes a user
//    namespace in which that uid is 0 (`--unshare-user --uid 0 --gid 0`), drops every
//    capability (`--cap-drop ALL`), forbids further user namespaces (`--disable-userns`), and
//    loads a seccomp filter (SeccompRules()) refusing with EPERM what is left: mounts,
//    namespaces, ptrace, kernel keyrings, modules, bpf, ...; no_new_privs is set before exec.
//  - the root agent opens the instance tree and the channels; bubblewrap binds them by
//    descriptor (an unprivileged bwrap cannot walk the server's 0700 directories);
//  - the server's data dir, /root, /home and every file root are empty tmpfs mounts inside.
// Without user namespaces (SandboxConfig::user_namespace false) the same runs as root with
// every capability dropped, no_new_privs and the seccomp filter: weaker (files keep uid 0),
// and said so in the job's log.
// Everything here is used from one thread at a time.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "model/agent_protocol.h"

namespace ty::agent {

// The bubblewrap command line for one training process: pure, so it is table-tested.
struct SandboxArgs {
  std::string bwrap_path = "/usr/bin/bwrap";
  std::string hostname;        // "algo-N"
  bool user_namespace = true;  // --unshare-user --uid 0 --gid 0 --disable-userns
  int seccomp_fd = -1;         // --seccomp FD; -1: none
  int instance_dir_fd = -1;    // bound read-write at /opt/ml (REQUIRES: >= 0)
  std::vector<std::pair<int, std::string>> ro_bind_fds;  // (descriptor, destination)
  // Hidden behind an empty tmpfs (directories) or /dev/null (files); paths under /tmp or
  // /opt are already hidden and skipped.
  std::vector<std::string> hidden_dirs;
  std::vector<std::string> hidden_files;
  std::string cwd;                   // inside the sandbox
  std::vector<std::string> command;  // REQUIRES: non-empty
};
std::vector<std::string> SandboxArgv(const SandboxArgs& args);

// The argv the sandbox had before it held root code (bwrap as root, every capability kept,
// binds by path): kept only so bench/sandbox_start can compare start costs.
std::vector<std::string> LegacySandboxArgv(const std::string& bwrap_path,
                                           const std::string& hostname,
                                           const std::string& instance_dir, const std::string& cwd,
                                           const std::vector<std::string>& command);

// One seccomp rule: `syscall` fails with `errno_value`; when `flags_mask` is non-zero, only
// calls whose argument `arg` has any of those bits set do (clone with namespace flags).
struct SeccompRule {
  const char* syscall;
  int errno_value;
  unsigned arg = 0;
  uint64_t flags_mask = 0;
};
// The filter's table, in the order it is installed.
const std::vector<SeccompRule>& SeccompRules();
// The table compiled for this machine's architecture and written to a sealed-by-use memfd,
// positioned at 0 (bubblewrap reads it from the start). Syscalls this architecture lacks are
// skipped. IoError when libseccomp or memfd_create fails.
Result<UniqueFd> SeccompFilterFd();

// Paths a sandbox must never see, derived from the server's configuration: the data dir,
// /root, /home, the credentials file and every file root (file:// channels are bound
// explicitly). A path that would hide the system itself ("/", /usr, /etc, ...; or one that
// holds them) is left out; so are paths under /tmp and /opt, hidden anyway. Canonical paths.
std::vector<std::string> SandboxHiddenPaths(const std::string& data_dir,
                                            const std::string& credentials_file,
                                            const std::vector<std::string>& file_roots);

// True when bubblewrap at `bwrap_path`, started as uid/gid, can make a user namespace here
// (probed once per (path, uid, gid) and cached).
bool UserNamespaceSandboxWorks(const std::string& bwrap_path, uid_t uid, gid_t gid);

// Everything a sandboxed spawn needs: the argv and the descriptors it names, which stay open
// as long as this object lives (until the spawn returned).
struct PreparedSandbox {
  SpawnOptions spawn;  // argv, uid/gid, no_new_privs, inherit_fds; the caller adds env, netns
  std::vector<UniqueFd> fds;
};

// Opens the instance tree and the read-only binds (host source, sandbox destination) and the
// seccomp filter, and builds the spawn. `config.sandbox` says how (user namespace, uid, gid,
// hidden paths). IoError when a source cannot be opened or the filter cannot be built.
Result<PreparedSandbox> PrepareSandbox(
    const model::SandboxConfig& config, const std::string& bwrap_path, const std::string& hostname,
    const std::string& instance_dir,
    const std::vector<std::pair<std::string, std::string>>& ro_binds, const std::string& cwd,
    const std::vector<std::string>& command);

// Gives `path` and everything beneath it to uid/gid (lchown: symlinks are not followed), so a
// training process running as that uid can write where the job must write.
Status ChownTree(const std::string& path, uid_t uid, gid_t gid);
// True when every directory above `path` is searchable by others, every directory under it
// (itself included) readable and searchable by others, and every file readable by others:
// then an unprivileged bubblewrap can bind it and the sandbox read it. Stops at the first that
// is not.
bool TreeReadableByOthers(const std::string& path);
// Lets `uid` search (not list) every directory above `path` that others cannot search: a POSIX
// ACL entry `user:<uid>:--x` (chmod o+x where the file system has no ACLs). bubblewrap resolves
// bind sources by path as the unprivileged uid, so the path to the instance tree, inside the
// server's private data dir, must be walkable by it; inside the sandbox that path is hidden.
Status GrantSearchToAncestors(const std::string& path, uid_t uid);
// Adds read permission for everyone (and search on directories) to `path` and beneath it.
Status MakeTreeReadable(const std::string& path);
// OK when `path` is a directory and not a symlink, or does not exist (a tree the training
// process could write to is checked before the root agent reads it); InvalidArgument naming
// it otherwise.
Status CheckRealDirectory(const std::string& path);
// Reads at most `max_bytes` of the regular file `path` without following a symlink at the
// leaf (a file the training process wrote, read by the root agent). NotFound when missing,
// InvalidArgument when not a regular file.
Result<std::string> ReadJobFile(const std::string& path, size_t max_bytes);

}  // namespace ty::agent
