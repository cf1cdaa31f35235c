#include "launch/slurm_launcher.h"

#include <signal.h>

#include <set>
#include <sstream>

#include "common/fs.h"
#include "common/text.h"

namespace ty::launch {
namespace {

constexpr char kHandlePrefix[] = "slurm:";
constexpr auto kPartitionsTtl = std::chrono::seconds(60);

// Single-quoted for sh: the paths are ours, but quoting makes any character safe.
std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

std::string ParentDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  size_t slash = dir.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : dir.substr(0, slash);
}

const SlurmResources* ResourcesOf(const SlurmLauncherOptions& o, const std::string& type) {
  auto it = o.instance_types.find(type);
  return it == o.instance_types.end() ? nullptr : &it->second;
}

std::string PartitionOf(const SlurmLauncherOptions& o, const std::string& type, bool spot) {
  const SlurmResources* r = ResourcesOf(o, type);
  if (r != nullptr && !r->partition.empty()) return r->partition;
  return spot ? o.spot_partition : o.on_demand_partition;
}

int CpusOf(const SlurmLauncherOptions& o, const AttemptPlan& plan) {
  const SlurmResources* r = ResourcesOf(o, plan.instance_type);
  if (r != nullptr && r->cpus > 0) return r->cpus;
  return plan.instances.empty() ? 1 : std::max(1, plan.instances[0].num_cpus);
}

std::string Value(const std::map<std::string, std::string>& r, const std::string& key,
                  const std::string& fallback = "?") {
  auto it = r.find(key);
  return it == r.end() || it->second.empty() ? fallback : it->second;
}

}  // namespace

std::string SlurmBatchScript(const std::string& agent_binary, const std::string& attempt_dir,
                             int cpus_per_task, const std::string& job_arn) {
  std::string s;
  s += "#!/bin/sh\n";
  // The ARN is the caller's text: kept out of the script except as a comment on one line.
  std::string arn;
  for (char c : job_arn) arn += (c == '\n' || c == '\r') ? ' ' : c;
  s += "# Trainyard attempt of " + TruncateUtf8(arn, 512) + " (generated; do not edit)\n";
  // Slurm signals the agents' step itself (preemption, scancel --signal); srun is this batch
  // step, so exec keeps no shell in between that a signal could end early.
  s += "exec srun --ntasks-per-node=1 --cpus-per-task=" + std::to_string(cpus_per_task) +
       " --kill-on-bad-exit=0 /bin/sh -c "
       "'i=$((SLURM_NODEID+1)); exec \"$0\" agent --instance \"$1/algo-$i.instance.json\" "
       ">>\"$1/algo-$i.agent.log\" 2>&1' " +
       ShellQuote(agent_binary) + " " + ShellQuote(attempt_dir) + "\n";
  return s;
}

std::string SlurmJobName(const std::string& prefix, const std::string& job_name, int attempt) {
  std::string name = prefix;
  for (char c : job_name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    name += ok ? c : '-';
  }
  std::string suffix = "-" + std::to_string(attempt);
  if (name.size() + suffix.size() > 128) name.resize(128 - suffix.size());
  return name + suffix;
}

std::vector<std::string> SlurmSbatchArgs(const SlurmLauncherOptions& options,
                                         const AttemptPlan& plan, const std::string& attempt_dir) {
  const int count = std::max<int>(1, static_cast<int>(plan.instances.size()));
  const std::string job_name = plan.instances.empty() ? "job" : plan.instances[0].job_name;
  std::vector<std::string> args = {
      "--no-requeue",
      "-N",
      std::to_string(count),
      "--ntasks-per-node=1",
      "-J",
      SlurmJobName(options.job_name_prefix, job_name, plan.attempt),
      "-p",
      PartitionOf(options, plan.instance_type, plan.spot),
      "--cpus-per-task=" + std::to_string(CpusOf(options, plan)),
      "--chdir=" + attempt_dir,
      "-o",
      JoinPath(attempt_dir, "slurm-%j.out"),
  };
  if (const SlurmResources* r = ResourcesOf(options, plan.instance_type)) {
    if (r->memory_mb > 0) args.push_back("--mem=" + std::to_string(r->memory_mb));
    if (!r->gres.empty()) args.push_back("--gres=" + r->gres);
    if (!r->constraint.empty()) args.push_back("--constraint=" + r->constraint);
  }
  args.insert(args.end(), options.extra_sbatch_args.begin(), options.extra_sbatch_args.end());
  return args;
}

AttemptState StateOfRow(const SqueueRow& row, int count) {
  AttemptState s;
  const std::string& st = row.state;
  const std::string why = row.reason.empty() || row.reason == "None" ? "" : " (" + row.reason + ")";
  if (st == "PENDING" || st == "REQUEUED" || st == "REQUEUE_HOLD" || st == "REQUEUE_FED") {
    if (row.restarts > 0 || st != "PENDING") {
      // Trainyard submits with --no-requeue: someone requeued it (scontrol requeue). The attempt
      // is over; ReleaseAttempt cancels what Slurm would run again.
      s.phase = AttemptState::Phase::kEnded;
      s.preempted = true;
      s.reason = "requeued by Slurm (job " + std::to_string(row.job_id) + ")";
      return s;
    }
    s.phase = AttemptState::Phase::kPending;
    s.reason = row.reason.empty() ? "Pending" : row.reason;
    return s;
  }
  if (st == "RUNNING" || st == "COMPLETING" || st == "CONFIGURING" || st == "SUSPENDED" ||
      st == "RESIZING" || st == "SIGNALING" || st == "STAGE_OUT") {
    s.phase = AttemptState::Phase::kRunning;
    s.alive.assign(static_cast<size_t>(std::max(count, 1)), true);
    return s;
  }
  if (st == "PREEMPTED") {
    s.phase = AttemptState::Phase::kEnded;
    s.preempted = true;
    s.reason = "preempted by Slurm" + why;
    return s;
  }
  static const std::set<std::string> kEndedStates = {
      "COMPLETED", "FAILED",        "CANCELLED", "TIMEOUT", "NODE_FAIL",
      "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE",  "REVOKED", "SPECIAL_EXIT"};
  if (kEndedStates.count(st) > 0) {
    s.phase = AttemptState::Phase::kEnded;
    s.reason = "Slurm job " + std::to_string(row.job_id) + " " + st + why;
    if (!row.preempt_time.empty()) {
      // Its agents finished within the GraceTime (the job then ends COMPLETED): still the
      // engine taking the nodes away.
      s.preempted = true;
      s.reason += ", preempted at " + row.preempt_time;
    }
    return s;
  }
  s.phase = AttemptState::Phase::kUnknown;
  s.reason = "Slurm job " + std::to_string(row.job_id) + " is in state " + st;
  return s;
}

int64_t SlurmJobIdOf(const AttemptHandle& handle) {
  if (handle.id.rfind(kHandlePrefix, 0) != 0) return 0;
  std::string digits = handle.id.substr(sizeof(kHandlePrefix) - 1);
  if (digits.empty() || digits.size() > 18) return 0;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

Status ValidateSlurmOptions(const SlurmLauncherOptions& o) {
  if (o.spot_partition.empty()) return InvalidArgument("slurm.spot_partition is required");
  if (o.on_demand_partition.empty()) {
    return InvalidArgument("slurm.on_demand_partition is required");
  }
  if (o.server_url.rfind("http://", 0) != 0 && o.server_url.rfind("https://", 0) != 0) {
    return InvalidArgument(
        "slurm.server_url must be the control plane's URL as the Slurm nodes reach it "
        "(http://HOST:PORT), not '" +
        o.server_url + "'");
  }
  if (o.agent_binary.empty()) return InvalidArgument("no trainyard binary for the agents");
  for (const auto& a : o.extra_sbatch_args) {
    if (a.empty() || a[0] != '-') {
      return InvalidArgument("slurm.sbatch_args: '" + a + "' is not an option");
    }
  }
  for (const auto& [type, r] : o.instance_types) {
    if (r.cpus < 0 || r.memory_mb < 0) {
      return InvalidArgument("slurm.instance_types." + type + ": cpus and memory_mb must be >= 0");
    }
  }
  return Status::Ok();
}

SlurmLauncher::SlurmLauncher(SlurmLauncherOptions options)
    : options_(std::move(options)), client_(options_.client) {}

std::string SlurmLauncher::Describe() const {
  std::ostringstream out;
  auto plain = client_.Run("scontrol", {"show", "config"});
  if (!plain.ok() || plain->exit_code != 0) {
    std::string why =
        !plain.ok() ? plain.status().message()
                    : SlurmErrorLine(plain->err, "exit code " + std::to_string(plain->exit_code));
    return "launcher: slurm — ERROR: Slurm cannot be reached: " + why;
  }
  std::string cluster = "?", ctld = "?";
  for (std::string_view line : SplitNonEmpty(plain->out, '\n')) {
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key(line.substr(0, eq));
    while (!key.empty() && key.back() == ' ') key.pop_back();
    std::string value(line.substr(eq + 1));
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (key == "ClusterName") cluster = value;
    if (key == "SlurmctldHost[0]") ctld = value;
  }
  out << "launcher: slurm (cluster " << cluster << " via " << ctld << ")\n";
  auto parts = client_.Show("partition");
  for (const auto& [role, name] :
       {std::pair<std::string, std::string>{"spot", options_.spot_partition},
        {"on-demand", options_.on_demand_partition}}) {
    const std::map<std::string, std::string>* rec = nullptr;
    if (parts.ok()) {
      for (const auto& r : *parts) {
        if (Value(r, "PartitionName") == name) rec = &r;
      }
    }
    if (rec == nullptr) {
      out << "  " << role << " partition " << name << ": ERROR: no such partition"
          << (parts.ok() ? "" : " (" + parts.status().message() + ")") << "\n";
      continue;
    }
    out << "  " << role << " partition " << name << ": PreemptMode=" << Value(*rec, "PreemptMode")
        << " GraceTime=" << Value(*rec, "GraceTime")
        << " PriorityTier=" << Value(*rec, "PriorityTier") << " nodes " << Value(*rec, "Nodes")
        << " (" << Value(*rec, "TotalNodes") << ") State=" << Value(*rec, "State") << "\n";
  }
  auto nodes = client_.Show("node");
  if (nodes.ok()) {
    out << "  nodes:";
    int shown = 0;
    for (const auto& r : *nodes) {
      if (++shown > 16) {
        out << " ...";
        break;
      }
      out << " " << Value(r, "NodeName") << "=" << Value(r, "NodeAddr") << "/" << Value(r, "CPUTot")
          << "cpu/" << Value(r, "State");
    }
    out << "\n";
  }
  out << "  agents report to " << options_.server_url << "; job trees and the trainyard binary ("
      << options_.agent_binary << ") must be at the same paths on every node";
  return out.str();
}

Placement SlurmLauncher::Place(const PlacementRequest& request) {
  // Slurm's queue decides; a spot attempt's notice is its partition's GraceTime (what Slurm
  // gives before its SIGKILL), so the controller's kill deadline matches Slurm's.
  Placement placed{true, ""};
  if (request.spot) {
    const int64_t grace =
        Partition(PartitionOf(options_, request.instance_type, true)).grace_seconds;
    if (grace > 0) placed.notice = std::chrono::seconds(grace);
  }
  return placed;
}
void SlurmLauncher::Unplace(const PlacementRequest&) {}
void SlurmLauncher::Adopt(const PlacementRequest&) {}
CapacityView SlurmLauncher::Capacity(const std::string&) const { return {}; }

SlurmLauncher::PartitionInfo SlurmLauncher::Partition(const std::string& partition) const {
  {
    MutexLock lock(&mu_);
    if (std::chrono::steady_clock::now() - partitions_read_ < kPartitionsTtl) {
      auto it = partitions_.find(partition);
      return it == partitions_.end() ? PartitionInfo{} : it->second;
    }
  }
  auto parts = client_.Show("partition");
  MutexLock lock(&mu_);
  if (!parts.ok()) return PartitionInfo{};
  partitions_.clear();
  for (const auto& r : *parts) {
    PartitionInfo info;
    std::string total = Value(r, "TotalNodes", "");
    if (!total.empty() && total.size() < 9 &&
        total.find_first_not_of("0123456789") == std::string::npos) {
      info.nodes = std::stoi(total);
    }
    if (auto grace = ParseSlurmSeconds(Value(r, "GraceTime", ""))) info.grace_seconds = *grace;
    partitions_[Value(r, "PartitionName")] = info;
  }
  partitions_read_ = std::chrono::steady_clock::now();
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? PartitionInfo{} : it->second;
}

Status SlurmLauncher::CheckRunnable(const PlacementRequest& request) const {
  if (request.network_isolation) {
    return InvalidArgument(
        "EnableNetworkIsolation is not available with the Slurm launcher: the instances run on "
        "the nodes' own networks");
  }
  if (options_.require_instance_types && ResourcesOf(options_, request.instance_type) == nullptr) {
    return InvalidArgument("instance type " + request.instance_type +
                           " has no Slurm resources configured (slurm.instance_types)");
  }
  const std::string partition = PartitionOf(options_, request.instance_type, request.spot);
  const int nodes = Partition(partition).nodes;
  if (nodes >= 0 && request.instance_count > nodes) {
    return InvalidArgument("InstanceCount " + std::to_string(request.instance_count) +
                           " is more than the " + std::to_string(nodes) +
                           " nodes of Slurm partition " + partition);
  }
  return Status::Ok();
}

Result<AttemptHandle> SlurmLauncher::LaunchAttempt(const AttemptPlan& plan) {
  if (plan.network.isolated) {
    return FailedPrecondition("EnableNetworkIsolation is not available with the Slurm launcher");
  }
  if (plan.instances.empty()) return InvalidArgument("an attempt without instances");
  const std::string attempt_dir = ParentDir(plan.instances[0].instance_dir);
  const int count = static_cast<int>(plan.instances.size());
  // Slurm's GraceTime is the notice: the agents must be done syncing before its SIGKILL.
  const int64_t grace =
      plan.spot ? Partition(PartitionOf(options_, plan.instance_type, true)).grace_seconds : -1;
  for (const model::InstanceConfig& base : plan.instances) {
    model::InstanceConfig c = base;
    if (grace > 0) c.notice_seconds = grace;
    c.server_url = options_.server_url;
    c.sigterm_means_notice = plan.spot;
    c.slurm_network = count > 1;
    c.engine_signals_every_process = true;
    c.network = {};
    std::string file =
        JoinPath(attempt_dir, "algo-" + std::to_string(c.host_index) + ".instance.json");
    TY_RETURN_IF_ERROR(WriteFileAtomic(file, model::InstanceConfigToJson(c).dump(2), 0600,
                                       /*durable=*/false));
  }
  const std::string script = JoinPath(attempt_dir, "slurm-batch.sh");
  TY_RETURN_IF_ERROR(WriteFileAtomic(
      script,
      SlurmBatchScript(options_.agent_binary, attempt_dir, CpusOf(options_, plan), plan.job_arn),
      0700, /*durable=*/false));
  auto id = client_.Submit(SlurmSbatchArgs(options_, plan, attempt_dir), script);
  if (!id.ok()) {
    return Status(id.status().code(), "Slurm refused the job: " + id.status().message());
  }
  {
    MutexLock lock(&mu_);
    submitted_[*id] = Submitted{std::chrono::steady_clock::now(), count, plan.spot};
  }
  return AttemptHandle{kHandlePrefix + std::to_string(*id)};
}

void SlurmLauncher::Signal(const AttemptHandle& attempt, AttemptSignal signal,
                           std::span<const int>) {
  const int64_t id = SlurmJobIdOf(attempt);
  if (id == 0) return;
  switch (signal) {
    case AttemptSignal::kStop:
      // A job still queued has nothing to stop or upload: it leaves the queue (MaxWait while
      // pending). A running one gets the stop signal.
      (void)client_.CancelPending(id);
      // scancel knows no name for these two (checked with 22.05): numbers, as on this host.
      (void)client_.Cancel(id, std::to_string(SIGWINCH));
      return;
    case AttemptSignal::kAbort:
      (void)client_.CancelPending(id);
      (void)client_.Cancel(id, std::to_string(SIGURG));
      return;
    case AttemptSignal::kKill:
      (void)client_.Cancel(id, "KILL", /*full=*/true);
      CancelOrRemember(id);
      return;
    case AttemptSignal::kNotice: {
      bool spot = false;
      bool known = false;
      {
        MutexLock lock(&mu_);
        auto it = submitted_.find(id);
        if (it != submitted_.end()) {
          known = true;
          spot = it->second.spot;
        }
      }
      if (!known) {
        // Adopted after a restart: the partition says what the agents were told.
        auto jobs = client_.Show("job", std::to_string(id));
        if (jobs.ok() && !jobs->empty()) {
          const std::string part = Value(jobs->front(), "Partition", "");
          spot = part == options_.spot_partition;
        }
      }
      // On a spot partition, exactly what a preemption delivers.
      (void)client_.Cancel(id, spot ? "TERM" : "USR1");
      return;
    }
  }
}

void SlurmLauncher::CancelOrRemember(int64_t id) {
  const bool cancelled = client_.Cancel(id).ok();
  MutexLock lock(&mu_);
  if (cancelled) {
    to_cancel_.erase(id);
  } else {
    to_cancel_.insert(id);
  }
}

std::vector<AttemptState> SlurmLauncher::Poll(std::span<const AttemptHandle> attempts) {
  std::vector<int64_t> retry;
  {
    MutexLock lock(&mu_);
    retry.assign(to_cancel_.begin(), to_cancel_.end());
  }
  std::vector<AttemptState> states(attempts.size());
  std::vector<int64_t> ids;
  for (size_t i = 0; i < attempts.size(); ++i) {
    int64_t id = SlurmJobIdOf(attempts[i]);
    if (id == 0) {
      states[i].phase = AttemptState::Phase::kEnded;
      states[i].reason = "not a Slurm job handle: '" + TruncateUtf8(attempts[i].id, 64) + "'";
    } else {
      ids.push_back(id);
    }
  }
  auto rows =
      ids.empty() ? Result<std::vector<SqueueRow>>(std::vector<SqueueRow>{}) : client_.Jobs(ids);
  // Cancels that failed are retried once Slurm answers again (not while it does not: each
  // would wait out the client's timeout on the control loop).
  if (rows.ok() && !retry.empty() && (!ids.empty() || client_.Jobs(retry).ok())) {
    for (int64_t id : retry) CancelOrRemember(id);
  }
  if (ids.empty()) return states;
  std::map<int64_t, SqueueRow> by_id;
  if (rows.ok()) {
    for (auto& r : *rows) by_id[r.job_id] = std::move(r);
  }
  const auto now = std::chrono::steady_clock::now();
  MutexLock lock(&mu_);
  for (size_t i = 0; i < attempts.size(); ++i) {
    const int64_t id = SlurmJobIdOf(attempts[i]);
    if (id == 0) continue;
    if (!rows.ok()) {
      states[i].phase = AttemptState::Phase::kUnknown;
      states[i].reason = "Slurm cannot be asked: " + rows.status().message();
      continue;
    }
    auto sub = submitted_.find(id);
    auto row = by_id.find(id);
    if (row == by_id.end()) {
      if (sub != submitted_.end() && now - sub->second.at < options_.unknown_grace) {
        states[i].phase = AttemptState::Phase::kStarting;
        states[i].reason = "submitted as Slurm job " + std::to_string(id);
      } else {
        // Gone from slurmctld's memory (MinJobAge after its end) or never known.
        states[i].phase = AttemptState::Phase::kEnded;
        states[i].reason = "Slurm job " + std::to_string(id) + " is no longer known to Slurm";
      }
      continue;
    }
    const int count = sub != submitted_.end() ? sub->second.count : row->second.nodes;
    states[i] = StateOfRow(row->second, count);
  }
  return states;
}

void SlurmLauncher::ReleaseAttempt(const AttemptHandle& attempt) {
  const int64_t id = SlurmJobIdOf(attempt);
  if (id == 0) return;
  CancelOrRemember(id);
  MutexLock lock(&mu_);
  submitted_.erase(id);
}

void SlurmLauncher::ReleaseJob(const std::string&) {}

void SlurmLauncher::Sweep(std::span<const AttemptHandle> keep_attempts,
                          std::span<const std::string>) {
  std::set<int64_t> keep;
  for (const auto& h : keep_attempts) keep.insert(SlurmJobIdOf(h));
  auto rows = client_.JobsNamed(options_.job_name_prefix);
  if (!rows.ok()) return;
  for (const auto& r : *rows) {
    if (keep.count(r.job_id) > 0) continue;
    AttemptState s = StateOfRow(r, 1);
    if (s.phase == AttemptState::Phase::kEnded && !s.preempted) continue;  // nothing to free
    (void)client_.Cancel(r.job_id);
  }
}

}  // namespace ty::launch
