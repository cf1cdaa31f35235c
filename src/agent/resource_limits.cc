#include "agent/resource_limits.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include "common/fs.h"
#include "common/status.h"
#include "common/text.h"

namespace ty::agent {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// The kernel's default CFS period; quotas are expressed against it.
constexpr microseconds kCpuPeriod{100000};
// The kernel rejects quotas under 1 ms.
constexpr microseconds kMinCpuQuota{1000};
// How long ReleaseInstanceLimits waits for killed strays to leave the cgroup.
constexpr milliseconds kStrayExitWait{2000};
constexpr milliseconds kStrayPoll{10};
constexpr size_t kMaxNameBytes = 200;
constexpr int kParentAttempts = 3;
constexpr char kLogPrefix[] = "trainyard: instance limits";

// One cgroup hierarchy an instance cgroup lives in.
struct Hierarchy {
  std::string controller;  // v1: "cpu", "memory" or "pids"; v2: "" (one hierarchy for all)
  std::string own;         // the cgroup the calling process is in now
  std::string base;        // the cgroup the parent hangs off
};

struct Layout {
  int version = 0;  // 1 or 2
  std::vector<Hierarchy> hierarchies;
};

// Where Apply moved the calling process from, so Release can move it back.
struct Move {
  std::string from;      // the cgroup the process was in
  std::string fallback;  // where to go should `from` be gone (v2: `from` is not ours to keep)
  std::string to;        // the instance cgroup
};

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
// Keyed by RegistryKey(); guarded by RegistryMutex().
std::map<std::string, std::vector<Move>>& Registry() {
  static std::map<std::string, std::vector<Move>> moves;
  return moves;
}
std::string RegistryKey(const CgroupRoots& roots, const std::string& leaf) {
  return roots.fs + '\n' + roots.parent + '\n' + leaf;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// `dir` + `rel` where rel is a cgroup path as /proc/self/cgroup shows it ("/" or "/a/b").
std::string Under(const std::string& dir, const std::string& rel) {
  if (rel.empty() || rel == "/") return dir;
  return rel[0] == '/' ? dir + rel : dir + "/" + rel;
}

std::set<std::string> Words(const std::string& s) {
  std::set<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.insert(w);
  return out;
}

// /proc/self/cgroup as controller -> cgroup path; the v2 line ("0::/path") is under "".
std::map<std::string, std::string> ParseSelfCgroup(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      out[""] = path;
      continue;
    }
    // Co-mounted controllers share a line ("3:cpu,cpuacct:/x").
    for (const std::string& c : SplitNonEmpty(controllers, ',')) out[c] = path;
  }
  return out;
}

// A process already inside an instance cgroup (".../<parent>/<leaf>") gets siblings, not
// children: the parent stays one per owner, where Sweep finds them.
std::string StripInstance(const std::string& rel, const std::string& parent) {
  std::vector<std::string> parts = SplitNonEmpty(rel, '/');
  if (parts.size() >= 2 && parts[parts.size() - 2] == parent) parts.resize(parts.size() - 2);
  std::string out;
  for (const std::string& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

// Every controller an instance cgroup may use, in the order v1 hierarchies are visited.
const std::vector<std::string>& AllControllers() {
  static const std::vector<std::string> kAll = {"cpu", "memory", "pids"};
  return kAll;
}

// The hierarchies an instance cgroup needs (v1: one per controller in `wanted`). With
// `require`, a missing v1 hierarchy asked for is an error; without, it is left out.
Result<Layout> Locate(const CgroupRoots& roots, const std::vector<std::string>& wanted,
                      bool require) {
  // An unreadable membership file only costs the nesting: everything goes under the top.
  Result<std::string> self = ReadFile(roots.self_cgroup);
  std::map<std::string, std::string> membership =
      self.ok() ? ParseSelfCgroup(*self) : std::map<std::string, std::string>{};
  Layout layout;
  // A pure cgroup2 mount has cgroup.controllers at its top; a v1 (or hybrid) layout has a tmpfs
  // there with one directory per hierarchy.
  if (PathExists(roots.fs + "/cgroup.controllers")) {
    layout.version = 2;
    layout.hierarchies.push_back({"", Under(roots.fs, membership[""]), roots.fs});
    return layout;
  }
  layout.version = 1;
  for (const std::string& controller : wanted) {
    std::string mount = roots.fs + "/" + controller;
    if (!PathExists(mount + "/cgroup.procs")) {
      if (require) {
        return FailedPrecondition("no cgroup v2 (" + roots.fs +
                                  "/cgroup.controllers) and no cgroup v1 " + controller +
                                  " hierarchy at " + mount);
      }
      continue;
    }
    std::string rel = membership.count(controller) ? membership[controller] : "/";
    // A container often sees only its own subtree mounted at the top while /proc/self/cgroup
    // still shows the host's path: then the top is its own cgroup.
    std::string own = Under(mount, rel);
    if (!IsDir(own)) own = mount;
    std::string base = Under(mount, StripInstance(rel, roots.parent));
    if (!IsDir(base)) base = mount;
    layout.hierarchies.push_back({controller, own, base});
  }
  if (layout.hierarchies.empty()) {
    return FailedPrecondition("no cgroup v2 (" + roots.fs +
                              "/cgroup.controllers) and no cgroup v1 cpu, memory or pids "
                              "hierarchy under " +
                              roots.fs);
  }
  return layout;
}

std::string Hint(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
      return " (needs root, or a cgroup delegated to this user)";
    case EROFS:
      return " (the cgroup file system is mounted read-only, as in an unprivileged container)";
    default:
      return "";
  }
}

// One write(2): the kernel takes each write to a control file as one command. `err` gets errno.
Status WriteControl(const std::string& path, const std::string& value, int* err = nullptr) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  int e = 0;
  if (fd < 0) {
    e = errno;
  } else {
    ssize_t n = ::write(fd, value.data(), value.size());
    if (n != static_cast<ssize_t>(value.size())) e = n < 0 ? errno : EIO;
    if (::close(fd) != 0 && e == 0) e = errno;
  }
  if (err != nullptr) *err = e;
  if (e == 0) return Status::Ok();
  return IoError("cannot write '" + value + "' to " + path + ": " + std::strerror(e) + Hint(e));
}

// Creates cgroup `path`; an existing one is reused. Sets *created when this call made it.
Status MakeCgroup(const std::string& path, bool* created) {
  *created = false;
  if (::mkdir(path.c_str(), 0755) == 0) {
    *created = true;
    return Status::Ok();
  }
  int e = errno;
  if (e == EEXIST && IsDir(path)) return Status::Ok();
  return IoError("cannot create " + path + ": " + std::strerror(e) + Hint(e));
}

// cgroup v2 hands a controller to a cgroup's children only once it is listed in the cgroup's
// cgroup.subtree_control, and only the children get the control files (cpu.max, memory.max).
Status EnableForChildren(const std::string& dir, const std::vector<std::string>& controllers) {
  TY_ASSIGN_OR_RETURN(std::string available, ReadFile(dir + "/cgroup.controllers"));
  TY_ASSIGN_OR_RETURN(std::string enabled, ReadFile(dir + "/cgroup.subtree_control"));
  std::set<std::string> offered = Words(available);
  std::set<std::string> on = Words(enabled);
  std::string request;
  for (const std::string& c : controllers) {
    if (!offered.count(c)) {
      return FailedPrecondition("cgroup v2 controller '" + c + "' is not available in " + dir +
                                " (not in its cgroup.controllers: held by a cgroup v1 hierarchy, "
                                "or not delegated by the cgroup's owner)");
    }
    if (!on.count(c)) request += (request.empty() ? "+" : " +") + c;
  }
  if (request.empty()) return Status::Ok();
  int err = 0;
  Status s = WriteControl(dir + "/cgroup.subtree_control", request, &err);
  if (err == EBUSY) {
    return FailedPrecondition(s.message() +
                              " (cgroup v2 'no internal processes' rule: a cgroup other than the "
                              "root that holds processes cannot enable controllers for its "
                              "children, and " +
                              dir +
                              " holds some, as the top of a container's cgroup namespace does)");
  }
  return s;
}

std::string CpuQuota(double cpus) {
  auto quota = static_cast<long long>(std::llround(cpus * static_cast<double>(kCpuPeriod.count())));
  return std::to_string(std::max<long long>(quota, kMinCpuQuota.count()));
}

// Limits go in before any process does, so nothing ever runs in the cgroup unlimited.
Status WriteLimitsV2(const std::string& dir, const InstanceLimits& limits) {
  if (limits.cpus > 0) {
    TY_RETURN_IF_ERROR(WriteControl(
        dir + "/cpu.max", CpuQuota(limits.cpus) + " " + std::to_string(kCpuPeriod.count())));
  } else if (PathExists(dir + "/cpu.max")) {
    // A reused cgroup must not keep an earlier instance's limit.
    TY_RETURN_IF_ERROR(WriteControl(dir + "/cpu.max", "max"));
  }
  if (limits.memory_bytes > 0) {
    TY_RETURN_IF_ERROR(WriteControl(dir + "/memory.max", std::to_string(limits.memory_bytes)));
    // Without swap accounting there is no memory.swap.max; with it, an instance that may swap
    // would crawl past its memory instead of being stopped at it, which no EC2 instance does.
    if (PathExists(dir + "/memory.swap.max")) {
      TY_RETURN_IF_ERROR(WriteControl(dir + "/memory.swap.max", "0"));
    }
  } else if (PathExists(dir + "/memory.max")) {
    TY_RETURN_IF_ERROR(WriteControl(dir + "/memory.max", "max"));
  }
  if (limits.max_processes > 0) {
    TY_RETURN_IF_ERROR(WriteControl(dir + "/pids.max", std::to_string(limits.max_processes)));
  } else if (PathExists(dir + "/pids.max")) {
    TY_RETURN_IF_ERROR(WriteControl(dir + "/pids.max", "max"));
  }
  return Status::Ok();
}

Status WriteLimitsV1(const Hierarchy& h, const std::string& dir, const InstanceLimits& limits) {
  if (h.controller == "cpu") {
    TY_RETURN_IF_ERROR(
        WriteControl(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriod.count())));
    return WriteControl(dir + "/cpu.cfs_quota_us", CpuQuota(limits.cpus));
  }
  if (h.controller == "pids") {
    // pids.max counts tasks (threads too), as the kernel's own limit on an instance does.
    return WriteControl(dir + "/pids.max", std::to_string(limits.max_processes));
  }
  std::string bytes = std::to_string(limits.memory_bytes);
  // memsw (memory+swap) may never be below the memory limit: lift a reused cgroup's first, set
  // the memory limit, then cap memory+swap at the same figure, which means no swap.
  bool memsw = PathExists(dir + "/memory.memsw.limit_in_bytes");
  if (memsw) TY_RETURN_IF_ERROR(WriteControl(dir + "/memory.memsw.limit_in_bytes", "-1"));
  TY_RETURN_IF_ERROR(WriteControl(dir + "/memory.limit_in_bytes", bytes));
  if (memsw) TY_RETURN_IF_ERROR(WriteControl(dir + "/memory.memsw.limit_in_bytes", bytes));
  return Status::Ok();
}

// Makes the parent and the instance cgroup `dir` in it; sets *made when this call made `dir`.
Status MakeLeaf(int version, const std::string& base, const std::string& parent,
                const std::string& dir, const std::vector<std::string>& controllers, bool* made) {
  bool parent_made = false;
  if (version == 2) {
    // Both the top and the parent must pass the controllers down for the leaf to get its
    // control files. The parent never holds a process, so the v2 rule never blocks it.
    TY_RETURN_IF_ERROR(EnableForChildren(base, controllers));
    TY_RETURN_IF_ERROR(MakeCgroup(parent, &parent_made));
    TY_RETURN_IF_ERROR(EnableForChildren(parent, controllers));
  } else {
    TY_RETURN_IF_ERROR(MakeCgroup(parent, &parent_made));
  }
  return MakeCgroup(dir, made);
}

// Creates the instance cgroups, writes the limits and moves `pid_text` ("0": the caller) in.
// On success fills `layout`, `dirs` (the instance cgroups) and `moves`; on failure leaves no
// instance cgroup this call created and the process where it was.
Status Place(const std::string& pid_text, const std::string& leaf, const InstanceLimits& limits,
             const CgroupRoots& roots, Layout* layout, std::vector<std::string>* dirs,
             std::vector<Move>* moves) {
  if (!std::isfinite(limits.cpus) || limits.cpus < 0) {
    return InvalidArgument("invalid CPU count " + std::to_string(limits.cpus));
  }
  std::vector<std::string> controllers;
  if (limits.cpus > 0) controllers.push_back("cpu");
  if (limits.memory_bytes > 0) controllers.push_back("memory");
  if (limits.max_processes > 0) controllers.push_back("pids");
  if (controllers.empty()) {
    return FailedPrecondition("the instance type sets no CPU, memory or process figure");
  }
  TY_ASSIGN_OR_RETURN(*layout, Locate(roots, controllers, /*require=*/true));

  std::vector<std::string> created;
  std::vector<std::string> parents;
  auto fail = [&](Status s) {
    for (const std::string& dir : created) ::rmdir(dir.c_str());
    // Fails, as it should, while the parent holds other instances.
    for (const std::string& parent : parents) ::rmdir(parent.c_str());
    dirs->clear();
    return s;
  };
  for (const Hierarchy& h : layout->hierarchies) {
    std::string parent = h.base + "/" + roots.parent;
    std::string dir = parent + "/" + leaf;
    parents.push_back(parent);
    bool made = false;
    Status s;
    // A Release elsewhere removes the parent the moment it holds no instance, which can fall
    // between making the parent and making the leaf: then start over on a fresh parent.
    for (int attempt = 0; attempt < kParentAttempts; ++attempt) {
      s = MakeLeaf(layout->version, h.base, parent, dir, controllers, &made);
      if (s.ok() || IsDir(parent)) break;
    }
    if (!s.ok()) return fail(s);
    if (made) created.push_back(dir);
    s = layout->version == 2 ? WriteLimitsV2(dir, limits) : WriteLimitsV1(h, dir, limits);
    if (!s.ok()) return fail(s);
    dirs->push_back(dir);
  }

  // Writing to cgroup.procs moves a whole process (all its threads); "0" names the writer, which
  // also holds inside a PID namespace. Later threads and children inherit the cgroup.
  for (size_t i = 0; i < layout->hierarchies.size(); ++i) {
    const Hierarchy& h = layout->hierarchies[i];
    const std::string& dir = (*dirs)[i];
    Status s = WriteControl(dir + "/cgroup.procs", pid_text);
    if (!s.ok()) {
      // Undo the hierarchies already joined, or the instance cgroups could not be removed.
      for (const Move& m : *moves) (void)WriteControl(m.from + "/cgroup.procs", pid_text);
      moves->clear();
      return fail(s);
    }
    moves->push_back({h.own, h.base, dir});
  }
  return Status::Ok();
}

LimitsOutcome Apply(const std::string& pid_text, bool self, const std::string& name,
                    const InstanceLimits& limits, const CgroupRoots& roots) {
  std::string leaf = SanitizeCgroupName(name);
  Layout layout;
  std::vector<std::string> dirs;
  std::vector<Move> moves;
  Status s = Place(pid_text, leaf, limits, roots, &layout, &dirs, &moves);
  LimitsOutcome out;
  if (!s.ok()) {
    out.message = std::string(kLogPrefix) + " not enforced: " + s.message();
    return out;
  }
  if (self) {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    // A second Apply from inside the cgroup must not make it the place to go back to.
    Registry().emplace(RegistryKey(roots, leaf), std::move(moves));
  }
  out.enforced = true;
  out.message = std::string(kLogPrefix) + ": " + DescribeLimits(limits) + " (cgroup v" +
                std::to_string(layout.version);
  for (size_t i = 0; i < dirs.size(); ++i) out.message += (i == 0 ? " " : ", ") + dirs[i];
  out.message += ")";
  out.cgroup_dirs = std::move(dirs);
  return out;
}

std::vector<pid_t> Members(const std::string& dir) {
  std::vector<pid_t> pids;
  Result<std::string> procs = ReadFile(dir + "/cgroup.procs");
  if (!procs.ok()) return pids;
  std::istringstream in(*procs);
  long pid = 0;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

// Removes an instance cgroup, ending what is still in it: processes the training process left
// behind outside its process group would otherwise outlive the instance and hold the cgroup.
bool RemoveInstanceCgroup(const std::string& dir) {
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
  if (errno != EBUSY) return false;
  std::vector<pid_t> members = Members(dir);
  for (pid_t pid : members) {
    // The caller could not be moved out: killing everything would kill it too.
    if (pid == ::getpid()) return false;
  }
  // cgroup.kill (v2, Linux 5.14+) also gets processes forked while we kill; else one by one.
  if (!PathExists(dir + "/cgroup.kill") || !WriteControl(dir + "/cgroup.kill", "1").ok()) {
    for (pid_t pid : members) ::kill(pid, SIGKILL);
  }
  auto deadline = std::chrono::steady_clock::now() + kStrayExitWait;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kStrayPoll);
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    for (pid_t pid : Members(dir)) ::kill(pid, SIGKILL);
  }
  return false;
}

std::string Trimmed(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string FormatBytes(uint64_t bytes) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  if (bytes >= kGiB) return Trimmed(static_cast<double>(bytes) / kGiB) + " GiB";
  if (bytes >= kMiB) return Trimmed(static_cast<double>(bytes) / kMiB) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

std::string SanitizeCgroupName(const std::string& name) {
  std::string out;
  for (char c : name.substr(0, kMaxNameBytes)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    out += ok ? c : '_';
  }
  if (out.empty()) return "_";
  if (out[0] == '.') out[0] = '_';
  return out;
}

std::string DescribeLimits(const InstanceLimits& limits) {
  std::string out;
  if (limits.cpus > 0) {
    std::string n = Trimmed(limits.cpus);
    out = n + (n == "1" ? " CPU" : " CPUs");
  }
  if (limits.memory_bytes > 0) {
    if (!out.empty()) out += ", ";
    out += FormatBytes(limits.memory_bytes) + " memory";
  }
  if (limits.max_processes > 0) {
    if (!out.empty()) out += ", ";
    out += std::to_string(limits.max_processes) + " processes";
  }
  return out;
}

uint64_t CountOomKills(const std::vector<std::string>& cgroup_dirs) {
  uint64_t kills = 0;
  for (const std::string& dir : cgroup_dirs) {
    // v2 counts in memory.events (this cgroup and its descendants); v1 in memory.oom_control.
    for (const char* file : {"/memory.events", "/memory.oom_control"}) {
      Result<std::string> text = ReadFile(dir + file);
      if (!text.ok()) continue;
      std::istringstream in(*text);
      std::string key;
      uint64_t value = 0;
      while (in >> key >> value) {
        if (key == "oom_kill") kills += value;
      }
    }
  }
  return kills;
}

std::string OutOfMemoryReason(uint64_t memory_bytes, const std::string& instance_type,
                              int exit_code) {
  std::string out =
      "OutOfMemoryError: Please use an instance type with more memory, or reduce the size of job "
      "data processed on an instance. (memory limit " +
      FormatBytes(memory_bytes);
  if (!instance_type.empty()) out += " of " + instance_type;
  return out + "; the training process exited with code " + std::to_string(exit_code) + ")";
}

LimitsOutcome ApplyInstanceLimits(const std::string& name, const InstanceLimits& limits,
                                  const CgroupRoots& roots) {
  return Apply("0", /*self=*/true, name, limits, roots);
}

LimitsOutcome ApplyInstanceLimitsToProcess(pid_t pid, const std::string& name,
                                           const InstanceLimits& limits, const CgroupRoots& roots) {
  if (pid <= 0) {
    return {
        false, std::string(kLogPrefix) + " not enforced: invalid pid " + std::to_string(pid), {}};
  }
  return Apply(std::to_string(pid), /*self=*/false, name, limits, roots);
}

void ReleaseInstanceLimits(const std::string& name, const CgroupRoots& roots) {
  std::string leaf = SanitizeCgroupName(name);
  std::vector<Move> moves;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(RegistryKey(roots, leaf));
    if (it != Registry().end()) {
      moves = std::move(it->second);
      Registry().erase(it);
    }
  }
  std::vector<std::string> dirs;
  for (const Move& m : moves) {
    // A cgroup cannot be removed while it holds the caller.
    if (!WriteControl(m.from + "/cgroup.procs", "0").ok()) {
      (void)WriteControl(m.fallback + "/cgroup.procs", "0");
    }
    dirs.push_back(m.to);
  }
  if (moves.empty()) {
    Result<Layout> layout = Locate(roots, AllControllers(), /*require=*/false);
    if (!layout.ok()) return;
    for (const Hierarchy& h : layout->hierarchies) {
      dirs.push_back(h.base + "/" + roots.parent + "/" + leaf);
    }
  }
  for (const std::string& dir : dirs) {
    // The parent goes too once it holds no other instance: nested inside another owner's cgroup
    // (v1), it would keep that owner from removing its own.
    if (RemoveInstanceCgroup(dir)) ::rmdir(dir.substr(0, dir.rfind('/')).c_str());
  }
}

std::vector<std::string> SweepInstanceCgroups(const std::set<std::string>& keep,
                                              const CgroupRoots& roots) {
  Result<Layout> layout = Locate(roots, AllControllers(), /*require=*/false);
  if (!layout.ok()) return {};
  std::set<std::string> kept;
  for (const std::string& k : keep) kept.insert(SanitizeCgroupName(k));
  std::set<std::string> removed;
  for (const Hierarchy& h : layout->hierarchies) {
    std::string parent = h.base + "/" + roots.parent;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(parent.c_str()), ::closedir);
    if (d == nullptr) continue;
    std::vector<std::string> children;
    while (struct dirent* e = ::readdir(d.get())) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && IsDir(parent + "/" + n)) children.push_back(n);
    }
    d.reset();
    for (const std::string& n : children) {
      // rmdir refuses a cgroup that holds a process or a child cgroup: that is the "empty" test,
      // and it cannot race with a process joining meanwhile.
      if (!kept.count(n) && ::rmdir((parent + "/" + n).c_str()) == 0) removed.insert(n);
    }
    ::rmdir(parent.c_str());
  }
  return {removed.begin(), removed.end()};
}

}  // namespace ty::agent
