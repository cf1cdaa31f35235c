#include "agent/sandbox.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <tuple>

#include "agent/container_env.h"

namespace ty::agent {
namespace {

constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                        CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET};

// Directories whose hiding would hide the system the training process runs on.
constexpr const char* kSystemDirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc",
                                       "/var", "/run", "/proc", "/sys", "/dev",   "/opt",   "/tmp"};

bool Under(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

std::string Canonical(const std::string& path) {
  auto real = RealPath(path);
  return real.ok() ? *real : path;
}

}  // namespace

std::vector<std::string> SandboxArgv(const SandboxArgs& a) {
  std::vector<std::string> argv = {a.bwrap_path, "--die-with-parent", "--unshare-pid",
                                   "--unshare-uts", "--unshare-ipc"};
  if (a.user_namespace) {
    // uid 0 inside is the unprivileged uid bwrap was started as; no nested namespace can map
    // anything else.
    argv.insert(argv.end(), {"--unshare-user", "--uid", "0", "--gid", "0", "--disable-userns"});
  }
  argv.insert(argv.end(),
              {"--cap-drop", "ALL", "--hostname", a.hostname, "--ro-bind", "/", "/", "--dev",
               "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/opt"});
  // A path under /tmp, /opt or another hidden directory is gone already: hiding it again
  // would only put its name back (as an empty mount point).
  auto covered = [&a](const std::string& p) {
    if (Under(p, "/tmp") || Under(p, "/opt")) return true;
    for (const auto& d : a.hidden_dirs) {
      if (d != p && Under(p, d)) return true;
    }
    return false;
  };
  for (const auto& d : a.hidden_dirs) {
    if (!covered(d)) argv.insert(argv.end(), {"--tmpfs", d});
  }
  for (const auto& f : a.hidden_files) {
    if (!covered(f)) argv.insert(argv.end(), {"--ro-bind", "/dev/null", f});
  }
  argv.insert(argv.end(), {"--bind-fd", std::to_string(a.instance_dir_fd), kOptMl});
  for (const auto& [fd, dest] : a.ro_bind_fds) {
    argv.insert(argv.end(), {"--ro-bind-fd", std::to_string(fd), dest});
  }
  if (a.seccomp_fd >= 0) argv.insert(argv.end(), {"--seccomp", std::to_string(a.seccomp_fd)});
  argv.insert(argv.end(), {"--chdir", a.cwd, "--"});
  argv.insert(argv.end(), a.command.begin(), a.command.end());
  return argv;
}

std::vector<std::string> LegacySandboxArgv(const std::string& bwrap_path,
                                           const std::string& hostname,
                                           const std::string& instance_dir, const std::string& cwd,
                                           const std::vector<std::string>& command) {
  std::vector<std::string> argv = {bwrap_path,
                                   "--die-with-parent",
                                   "--unshare-pid",
                                   "--unshare-uts",
                                   "--unshare-ipc",
                                   "--hostname",
                                   hostname,
                                   "--ro-bind",
                                   "/",
                                   "/",
                                   "--dev",
                                   "/dev",
                                   "--proc",
                                   "/proc",
                                   "--tmpfs",
                                   "/tmp",
                                   "--tmpfs",
                                   "/opt",
                                   "--bind",
                                   instance_dir,
                                   kOptMl,
                                   "--chdir",
                                   cwd,
                                   "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

const std::vector<SeccompRule>& SeccompRules() {
  // What capabilities no longer cover once they are dropped, plus what is dangerous even
  // without them (ptrace and process_vm_* of a sibling with the same uid, kernel keyrings
  // shared per uid, new namespaces that would hand capabilities back).
  static const std::vector<SeccompRule> kRules = [] {
    std::vector<SeccompRule> r;
    for (const char* name : {"mount",
                             "umount",
                             "umount2",
                             "pivot_root",
                             "chroot",
                             "move_mount",
                             "fsopen",
                             "fsconfig",
                             "fsmount",
                             "fspick",
                             "open_tree",
                             "mount_setattr",
                             "ptrace",
                             "process_vm_readv",
                             "process_vm_writev",
                             "kexec_load",
                             "kexec_file_load",
                             "init_module",
                             "finit_module",
                             "delete_module",
                             "bpf",
                             "perf_event_open",
                             "keyctl",
                             "add_key",
                             "request_key",
                             "swapon",
                             "swapoff",
                             "reboot",
                             "open_by_handle_at",
                             "name_to_handle_at",
                             "unshare",
                             "setns",
                             "userfaultfd",
                             "acct",
                             "quotactl",
                             "quotactl_fd",
                             "syslog",
                             "iopl",
                             "ioperm",
                             "settimeofday",
                             "clock_settime",
                             "lookup_dcookie",
                             "vhangup",
                             "nfsservctl",
                             "fanotify_init",
                             "sethostname",
                             "setdomainname"}) {
      r.push_back({name, EPERM});
    }
    for (uint64_t flag : kNamespaceFlags) r.push_back({"clone", EPERM, 0, flag});
    // clone3 passes its flags in memory, which seccomp cannot read: ENOSYS makes glibc fall
    // back to clone, whose flags the rules above check.
    r.push_back({"clone3", ENOSYS});
    return r;
  }();
  return kRules;
}

Result<UniqueFd> SeccompFilterFd() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return IoError("seccomp_init failed");
  struct Release {
    scmp_filter_ctx c;
    ~Release() { seccomp_release(c); }
  } release{ctx};
  for (const SeccompRule& rule : SeccompRules()) {
    int nr = seccomp_syscall_resolve_name(rule.syscall);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    int rc;
    if (rule.flags_mask != 0) {
      rc = seccomp_rule_add(
          ctx, SCMP_ACT_ERRNO(rule.errno_value), nr, 1,
          SCMP_CMP(rule.arg, SCMP_CMP_MASKED_EQ, rule.flags_mask, rule.flags_mask));
    } else {
      rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(rule.errno_value), nr, 0);
    }
    if (rc != 0) {
      return IoError(std::string("seccomp rule for ") + rule.syscall + ": " + std::strerror(-rc));
    }
  }
  UniqueFd fd(::memfd_create("trainyard-seccomp", MFD_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("memfd_create", errno);
  int rc = seccomp_export_bpf(ctx, fd.get());
  if (rc != 0) return IoError(std::string("seccomp_export_bpf: ") + std::strerror(-rc));
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) return ErrnoStatus("lseek", errno);
  return fd;
}

std::vector<std::string> SandboxHiddenPaths(const std::string& data_dir,
                                            const std::string& credentials_file,
                                            const std::vector<std::string>& file_roots) {
  std::vector<std::string> candidates = {data_dir, "/root", "/home", credentials_file};
  candidates.insert(candidates.end(), file_roots.begin(), file_roots.end());
  std::vector<std::string> hidden;
  for (const auto& c : candidates) {
    if (c.empty() || c[0] != '/') continue;
    std::string p = Canonical(c);
    bool system = p == "/";
    for (const char* dir : kSystemDirs) {
      // Hiding an ancestor of a system directory hides the system; under /tmp and /opt the
      // sandbox has its own empty tmpfs already.
      if (Under(dir, p) || Under(p, "/tmp") || Under(p, "/opt") || Under(p, "/proc") ||
          Under(p, "/sys") || Under(p, "/dev")) {
        system = true;
      }
    }
    if (system) continue;
    bool seen = false;
    for (const auto& h : hidden) seen = seen || h == p;
    if (!seen) hidden.push_back(p);
  }
  return hidden;
}

bool UserNamespaceSandboxWorks(const std::string& bwrap_path, uid_t uid, gid_t gid) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, uid_t, gid_t>, bool> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(bwrap_path, uid, gid);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  SpawnOptions o;
  o.argv = {
      bwrap_path, "--unshare-user", "--uid", "0", "--gid", "0", "--disable-userns", "--cap-drop",
      "ALL",      "--ro-bind",      "/",     "/", "true"};
  o.env = {{"PATH", kBasePath}};
  o.capture_output = false;
  o.stdout_file = "/dev/null";
  o.uid = uid;
  o.gid = gid;
  o.no_new_privs = true;
  bool works = false;
  auto p = Subprocess::Spawn(o);
  if (p.ok()) {
    auto code = (*p)->Wait();
    works = code.ok() && *code == 0;
  }
  cache[key] = works;
  return works;
}

Result<PreparedSandbox> PrepareSandbox(
    const model::SandboxConfig& config, const std::string& bwrap_path, const std::string& hostname,
    const std::string& instance_dir,
    const std::vector<std::pair<std::string, std::string>>& ro_binds, const std::string& cwd,
    const std::vector<std::string>& command) {
  PreparedSandbox out;
  SandboxArgs a;
  a.bwrap_path = bwrap_path;
  a.hostname = hostname;
  a.user_namespace = config.user_namespace;
  a.cwd = cwd;
  a.command = command;
  auto open_path = [&out](const std::string& path, int flags) -> Result<int> {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC | flags));
    if (!fd.valid()) return ErrnoStatus("cannot open " + path + " for the sandbox", errno);
    int n = fd.get();
    out.fds.push_back(std::move(fd));
    return n;
  };
  TY_ASSIGN_OR_RETURN(a.instance_dir_fd, open_path(instance_dir, O_DIRECTORY | O_NOFOLLOW));
  for (const auto& [src, dest] : ro_binds) {
    TY_ASSIGN_OR_RETURN(int fd, open_path(src, 0));
    a.ro_bind_fds.emplace_back(fd, dest);
  }
  TY_ASSIGN_OR_RETURN(UniqueFd filter, SeccompFilterFd());
  a.seccomp_fd = filter.get();
  out.fds.push_back(std::move(filter));
  for (const auto& h : config.hidden_paths) {
    struct stat st;
    if (::stat(h.c_str(), &st) != 0) continue;  // nothing there to hide
    (S_ISDIR(st.st_mode) ? a.hidden_dirs : a.hidden_files).push_back(h);
  }
  out.spawn.argv = SandboxArgv(a);
  for (const auto& fd : out.fds) out.spawn.inherit_fds.push_back(fd.get());
  if (config.user_namespace) {
    out.spawn.uid = config.uid;
    out.spawn.gid = config.gid;
  }
  out.spawn.no_new_privs = true;
  return out;
}

Status ChownTree(const std::string& path, uid_t uid, gid_t gid) {
  namespace fs = std::filesystem;
  if (::lchown(path.c_str(), uid, gid) != 0) return ErrnoStatus("cannot chown " + path, errno);
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(path, ec))) return Status::Ok();
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) {
      return ErrnoStatus("cannot chown " + it->path().string(), errno);
    }
  }
  if (ec) return IoError("cannot walk " + path + ": " + ec.message());
  return Status::Ok();
}

bool TreeReadableByOthers(const std::string& path) {
  namespace fs = std::filesystem;
  auto real = RealPath(path);
  if (!real.ok()) return false;
  for (std::string dir = *real; dir.size() > 1;) {
    dir = dir.substr(0, std::max<size_t>(dir.find_last_of('/'), 1));
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
  }
  auto readable = [](const std::string& p) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) return false;
    if (S_ISDIR(st.st_mode)) return (st.st_mode & (S_IROTH | S_IXOTH)) == (S_IROTH | S_IXOTH);
    if (S_ISREG(st.st_mode)) return (st.st_mode & S_IROTH) != 0;
    return true;  // symlinks resolve inside the sandbox's own view
  };
  if (!readable(path)) return false;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!readable(it->path().string())) return false;
  }
  return !ec;
}

Status MakeTreeReadable(const std::string& path) {
  namespace fs = std::filesystem;
  auto grant = [](const std::string& p) -> Status {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) return ErrnoStatus("cannot stat " + p, errno);
    mode_t add = S_ISDIR(st.st_mode)   ? (S_IRUSR | S_IXUSR | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH)
                 : S_ISREG(st.st_mode) ? (S_IRUSR | S_IRGRP | S_IROTH)
                                       : 0;
    if (add != 0 && (st.st_mode & add) != add && ::chmod(p.c_str(), (st.st_mode | add) & 07777)) {
      return ErrnoStatus("cannot chmod " + p, errno);
    }
    return Status::Ok();
  };
  TY_RETURN_IF_ERROR(grant(path));
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    TY_RETURN_IF_ERROR(grant(it->path().string()));
  }
  if (ec) return IoError("cannot walk " + path + ": " + ec.message());
  return Status::Ok();
}

namespace {

// The kernel's POSIX ACL xattr layout (linux/posix_acl_xattr.h).
constexpr char kAclXattr[] = "system.posix_acl_access";
constexpr uint32_t kAclVersion = 2;
enum AclTag : uint16_t {
  kUserObj = 0x01,
  kUser = 0x02,
  kGroupObj = 0x04,
  kGroup = 0x08,
  kMask = 0x10,
  kOther = 0x20,
};
struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};
constexpr uint32_t kUndefinedId = 0xffffffffu;

// The directory's ACL with `user:<uid>` given search; entries kept sorted as the kernel wants.
std::vector<AclEntry> WithSearchFor(std::vector<AclEntry> acl, mode_t mode, uid_t uid) {
  if (acl.empty()) {
    acl = {{kUserObj, static_cast<uint16_t>((mode >> 6) & 7), kUndefinedId},
           {kGroupObj, static_cast<uint16_t>((mode >> 3) & 7), kUndefinedId},
           {kMask, static_cast<uint16_t>((mode >> 3) & 7), kUndefinedId},
           {kOther, static_cast<uint16_t>(mode & 7), kUndefinedId}};
  }
  bool have_user = false, have_mask = false;
  for (auto& e : acl) {
    if (e.tag == kUser && e.id == uid) {
      e.perm |= 1;
      have_user = true;
    }
    if (e.tag == kMask) {
      e.perm |= 1;
      have_mask = true;
    }
  }
  if (!have_user) acl.push_back({kUser, 1, static_cast<uint32_t>(uid)});
  if (!have_mask)
    acl.push_back({kMask, static_cast<uint16_t>(((mode >> 3) & 7) | 1), kUndefinedId});
  std::sort(acl.begin(), acl.end(), [](const AclEntry& a, const AclEntry& b) {
    return a.tag != b.tag ? a.tag < b.tag : a.id < b.id;
  });
  return acl;
}

Status GrantSearch(const std::string& dir, uid_t uid) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus("cannot stat " + dir, errno);
  if (st.st_mode & S_IXOTH) return Status::Ok();
  std::vector<AclEntry> acl;
  char buf[4096];
  ssize_t n = ::getxattr(dir.c_str(), kAclXattr, buf, sizeof(buf));
  if (n >= static_cast<ssize_t>(sizeof(uint32_t))) {
    for (size_t off = sizeof(uint32_t); off + sizeof(AclEntry) <= static_cast<size_t>(n);
         off += sizeof(AclEntry)) {
      AclEntry e;
      std::memcpy(&e, buf + off, sizeof(e));
      acl.push_back(e);
    }
  } else if (n < 0 && errno != ENODATA) {
    if (errno != EOPNOTSUPP) return ErrnoStatus("cannot read the ACL of " + dir, errno);
  }
  for (const auto& e : acl) {
    if (e.tag == kUser && e.id == uid && (e.perm & 1)) {
      bool masked = false;
      for (const auto& m : acl) masked = masked || (m.tag == kMask && !(m.perm & 1));
      if (!masked) return Status::Ok();
    }
  }
  acl = WithSearchFor(std::move(acl), st.st_mode, uid);
  std::string value(sizeof(uint32_t) + acl.size() * sizeof(AclEntry), '\0');
  std::memcpy(value.data(), &kAclVersion, sizeof(uint32_t));
  std::memcpy(value.data() + sizeof(uint32_t), acl.data(), acl.size() * sizeof(AclEntry));
  if (::setxattr(dir.c_str(), kAclXattr, value.data(), value.size(), 0) == 0) return Status::Ok();
  if (errno != EOPNOTSUPP) return ErrnoStatus("cannot set the ACL of " + dir, errno);
  // No ACLs on this file system: search for everyone (listing stays refused).
  if (::chmod(dir.c_str(), (st.st_mode | S_IXOTH) & 07777) != 0) {
    return ErrnoStatus("cannot chmod " + dir, errno);
  }
  return Status::Ok();
}

}  // namespace

Status GrantSearchToAncestors(const std::string& path, uid_t uid) {
  TY_ASSIGN_OR_RETURN(std::string real, RealPath(path));
  for (std::string dir = real; dir.size() > 1;) {
    dir = dir.substr(0, std::max<size_t>(dir.find_last_of('/'), 1));
    TY_RETURN_IF_ERROR(GrantSearch(dir, uid));
  }
  return Status::Ok();
}

Status CheckRealDirectory(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : ErrnoStatus("cannot stat " + path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgument(path + " is not a directory (the training process replaced it)");
  }
  return Status::Ok();
}

Result<std::string> ReadJobFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFound(path + " does not exist");
    return InvalidArgument("cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return InvalidArgument(path + " is not a regular file");
  }
  std::string out(max_bytes, '\0');
  size_t got = 0;
  while (got < max_bytes) {
    ssize_t n = ::read(fd.get(), out.data() + got, max_bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("cannot read " + path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace ty::agent
