// Instance limits: holds one training instance (the agent process and everything it starts) to
// its instance type's CPUs, memory and process count with a cgroup, the way an EC2 instance is
// held to its hardware, where the machine allows it (root, or a writable cgroup file system with
// the controllers asked for: cpu, memory, pids). Where it does not, the job runs unlimited and its
// log says why: limits never fail a job.
//
// Where the cgroups go:
//   cgroup v2 (cgroup.controllers at the mount's top): <fs>/<parent>/<name>, with the controllers
//     enabled in <fs>/cgroup.subtree_control and <fs>/<parent>/cgroup.subtree_control. v2 lets a
//     cgroup hand controllers to its children only while it holds no processes itself (the "no
//     internal processes" rule; only the real root is exempt). The agent's own cgroup always holds
//     the agent (and usually the server), so the parent hangs off the top of the mount, and only
//     the instance leaves ever hold processes.
//   cgroup v1 (<fs>/cpu, <fs>/memory, <fs>/pids hierarchies): <fs>/<controller>/<own>/<parent>/
//     <name> in each hierarchy needed, where <own> is the cgroup the calling process is in. v1 has
//     no such rule, so the instance nests inside whatever already holds the agent (a systemd unit,
//     a Slurm step, a container) and that owner's limits, accounting and kill-all still reach it.
//
// Thread contract: every function may be called from any thread. None is async-signal-safe (they
// allocate and take a lock), so a child between fork and exec must not call them: its parent
// places it with ApplyInstanceLimitsToProcess instead. Moving a process moves all its threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace ty::agent {

// What the instance type allows. 0: no limit of that kind.
struct InstanceLimits {
  double cpus = 0;            // CPU time per wall-clock time (0.5: half a core), cfs quota/period
  uint64_t memory_bytes = 0;  // memory the instance may use; swap is capped at none where possible
  // Processes and threads the instance may have at once (pids.max), the agent's own included, as
  // a kernel's limit on a machine counts its daemons too. Past it, fork and clone fail (EAGAIN).
  uint64_t max_processes = 0;
};

struct LimitsOutcome {
  bool enforced = false;
  // One line for the job's log, e.g.
  // "trainyard: instance limits: 4 CPUs, 16 GiB memory (cgroup v2 /sys/fs/cgroup/trainyard/NAME)"
  // or "trainyard: instance limits not enforced: <why>".
  std::string message;
  // The instance cgroup directories (one for v2, one per v1 hierarchy); empty unless enforced.
  std::vector<std::string> cgroup_dirs;
};

// Where the cgroup file system is. Tests point it at a fake tree in a temp dir.
struct CgroupRoots {
  std::string fs = "/sys/fs/cgroup";  // the cgroup mount (v2) or the v1 hierarchies' dir
  std::string self_cgroup = "/proc/self/cgroup";  // the calling process's membership
  std::string parent = "trainyard";               // the cgroup that holds the instance cgroups
};

// Creates cgroup `name` (sanitized with SanitizeCgroupName) under the parent, writes the limits
// (v2: cpu.max, memory.max, memory.swap.max=0 when present, pids.max; v1: cpu.cfs_period_us and
// cpu.cfs_quota_us, memory.limit_in_bytes, memory.memsw.limit_in_bytes when present, pids.max)
// and then moves the calling process into it, so everything it starts afterwards inherits it. An
// existing cgroup of that name is reused. Never fails: any problem (no cgroup file system,
// read-only, not root, a controller missing or not delegable) yields enforced=false, a message
// saying why, and no cgroup left behind by this call. enforced=true means every requested limit
// is in force.
LimitsOutcome ApplyInstanceLimits(const std::string& name, const InstanceLimits& limits,
                                  const CgroupRoots& roots = {});

// Like ApplyInstanceLimits, but moves process `pid` (one the caller started, still in the
// caller's cgroup) instead of the caller, which stays where it is. For a parent that limits a
// child it holds before exec, so the child itself runs no code of this module.
LimitsOutcome ApplyInstanceLimitsToProcess(pid_t pid, const std::string& name,
                                           const InstanceLimits& limits,
                                           const CgroupRoots& roots = {});

// Best effort, at agent exit once the training process is gone: moves the calling process back to
// the cgroup it was in before ApplyInstanceLimits(name) (when that call, in this process, moved
// it), SIGKILLs whatever is still in the instance cgroup (strays that left the training process's
// process group: the instance is over) and removes the instance cgroup, and the parent with it
// when no other instance is left in it.
void ReleaseInstanceLimits(const std::string& name, const CgroupRoots& roots = {});

// For a server starting after a crash: removes the empty cgroups under the parents (v2, or the v1
// cpu, memory and pids hierarchies) whose names are not in `keep` (names as passed to
// ApplyInstanceLimits). A cgroup that still holds a process (an agent that outlived the server) is
// left alone. A parent left empty is removed too. Returns the removed names, sorted, each once.
std::vector<std::string> SweepInstanceCgroups(const std::set<std::string>& keep,
                                              const CgroupRoots& roots = {});

// How many processes of the instance the kernel's out-of-memory killer has ended, read from the
// instance cgroups `cgroup_dirs` (LimitsOutcome::cgroup_dirs): the "oom_kill" counter of v2's
// memory.events or v1's memory.oom_control (Linux 4.13+). 0 when none of them has the counter.
uint64_t CountOomKills(const std::vector<std::string>& cgroup_dirs);

// The FailureReason of an instance whose training process ended after an out-of-memory kill,
// in SageMaker's words plus the limit that was hit, e.g. "OutOfMemoryError: Please use an
// instance type with more memory, or reduce the size of job data processed on an instance.
// (memory limit 2 GiB of ml.m5.large; the training process exited with code 137)".
std::string OutOfMemoryReason(uint64_t memory_bytes, const std::string& instance_type,
                              int exit_code);

// `name` as a cgroup directory name: [A-Za-z0-9_.-] kept, every other byte '_', a leading '.'
// made '_' (no ".", ".." or hidden names), at most 200 bytes; "" becomes "_".
std::string SanitizeCgroupName(const std::string& name);

// "4 CPUs, 16 GiB memory, 4096 processes", "0.5 CPUs", "100 MiB memory"; "" when none is set.
std::string DescribeLimits(const InstanceLimits& limits);

}  // namespace ty::agent
