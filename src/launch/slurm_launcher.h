// SlurmLauncher: runs each attempt of a job as one Slurm batch job (server config `launcher:
// slurm`). The attempt's instance files and a batch script are written into the attempt
// directory (which every node must mount at the same path), then
//   sbatch --no-requeue -N <count> --ntasks-per-node=1 -p <spot or on-demand partition> ...
// whose script runs one `trainyard agent` per node through srun; the agent of node SLURM_NODEID
// reads <attempt>/algo-<SLURM_NODEID+1>.instance.json, learns its peers' addresses from the
// allocation (launch/slurm_allocation.h) and reports to `server_url`. The handle is
// "slurm:<job id>".
//
// Spot is Slurm's preemption (decisions 1-3 of issue 14): spot attempts go to the preemptible
// partition, and their agents treat SIGTERM as the interruption notice (Slurm's SIGTERM +
// GraceTime on preemption). Trainyard resubmits after a preemption (--no-requeue): a job that
// Slurm requeues anyway (an operator's `scontrol requeue`) is reported kEnded, preempted, and
// ReleaseAttempt cancels it.
//
// Signals go through Slurm to every process of the job's steps (scancel --signal; with
// proctrack/linuxproc a training process in a session of its own gets them too, measured), so
// the meanings use signals that are harmless to a training script that receives them:
//   kNotice  spot: SIGTERM (what a preemption delivers); on-demand: SIGUSR1
//   kStop    SIGWINCH (ignored by default; the agent stops, and the training process then gets
//            SIGTERM from it as locally). By number: scancel knows no name for it.
//   kAbort   SIGURG   (ignored by default; the agent aborts)
//   kKill    SIGKILL to every step, then scancel
// A subset of instances cannot be addressed: Signal always signals every instance.
//
// Thread contract: as launch::Launcher (the loop thread; Describe and ReleaseJob from any
// thread). Internal state is guarded by a mutex; Slurm calls are bounded by the client's timeout
// and never made with the mutex held.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "launch/launcher.h"
#include "launch/slurm_client.h"

namespace ty::launch {

// The Slurm resources of one instance type (config slurm.instance_types.<type>).
struct SlurmResources {
  int cpus = 0;            // --cpus-per-task; 0: the instance type's vCPUs
  int64_t memory_mb = 0;   // --mem; 0: memory is not requested
  std::string gres;        // --gres (e.g. "gpu:1"); "": none
  std::string constraint;  // --constraint; "": none
  std::string partition;   // overrides the spot/on-demand partition for this type; "": none
};

struct SlurmLauncherOptions {
  SlurmClientOptions client;
  std::string spot_partition;       // REQUIRED: the preemptible partition
  std::string on_demand_partition;  // REQUIRED
  // REQUIRED: the control plane's URL as the nodes reach it (http://host:port).
  std::string server_url;
  // The trainyard executable, at a path every node has.
  std::string agent_binary;
  // Names this server's Slurm jobs ("ty-<server id>-"): Sweep cancels exactly the jobs with it.
  std::string job_name_prefix = "ty-";
  std::map<std::string, SlurmResources> instance_types;
  // When true, a type without an entry above is refused (CheckRunnable).
  bool require_instance_types = false;
  // Added to every sbatch (e.g. "--account=ml"). Options only, each one argument.
  std::vector<std::string> extra_sbatch_args;
  // A submitted job squeue does not show yet is kStarting for this long, then kEnded.
  std::chrono::seconds unknown_grace{30};
};

// The batch script of an attempt (pure; for tests): runs `agent_binary agent` once per node
// through srun, each agent's output appended to <attempt_dir>/algo-<i>.agent.log.
std::string SlurmBatchScript(const std::string& agent_binary, const std::string& attempt_dir,
                             int cpus_per_task, const std::string& job_arn);

// The sbatch arguments of an attempt (pure; for tests), without the script.
std::vector<std::string> SlurmSbatchArgs(const SlurmLauncherOptions& options,
                                         const AttemptPlan& plan, const std::string& attempt_dir);

// "<prefix><name>-<attempt>" with characters other than [A-Za-z0-9-] replaced, at most 128.
std::string SlurmJobName(const std::string& prefix, const std::string& job_name, int attempt);

// The Launcher phase of a squeue row (pure; for tests). `count` sizes `alive`.
AttemptState StateOfRow(const SqueueRow& row, int count);

// Parses "slurm:<id>"; 0 when `handle` is not one.
int64_t SlurmJobIdOf(const AttemptHandle& handle);

// Checks options for start-up (kInvalidArgument with the key at fault).
Status ValidateSlurmOptions(const SlurmLauncherOptions& options);

class SlurmLauncher final : public Launcher {
 public:
  // REQUIRES: ValidateSlurmOptions(options).ok().
  explicit SlurmLauncher(SlurmLauncherOptions options);

  std::string Describe() const override;
  bool OwnsSpotCapacity() const override { return true; }

  // Always placed: Slurm's queue decides (a queued attempt is kPending).
  Placement Place(const PlacementRequest& request) override;
  void Unplace(const PlacementRequest& request) override;
  void Adopt(const PlacementRequest& request) override;
  // {0, 0}: Slurm's nodes are shared with other users' jobs.
  CapacityView Capacity(const std::string& instance_type) const override;
  // Refuses network isolation, a type without resources when they are required, and more
  // instances than the partition has nodes (when Slurm can be asked).
  Status CheckRunnable(const PlacementRequest& request) const override;

  // Writes the instance files and the batch script, then sbatch. A spot attempt's notice
  // period (InstanceConfig::notice_seconds) is the spot partition's GraceTime when it has one.
  // Errors: kFailedPrecondition (network isolation), kUnavailable with Slurm's message (a refused
  // submission, slurmctld down), kIoError (files, sbatch not runnable).
  Result<AttemptHandle> LaunchAttempt(const AttemptPlan& plan) override;
  void Signal(const AttemptHandle& attempt, AttemptSignal signal,
              std::span<const int> instances = {}) override;
  // One squeue call for all handles; squeue failing makes every one kUnknown.
  std::vector<AttemptState> Poll(std::span<const AttemptHandle> attempts) override;
  // scancel (a requeued or still queued job goes away; an ended one is not an error).
  void ReleaseAttempt(const AttemptHandle& attempt) override;
  void ReleaseJob(const std::string& job_arn) override;
  // Cancels every job of this user named with the prefix that is not in keep_attempts.
  void Sweep(std::span<const AttemptHandle> keep_attempts,
             std::span<const std::string> keep_jobs) override;

  const SlurmClient& client() const { return client_; }

 private:
  struct Submitted {
    std::chrono::steady_clock::time_point at;
    int count = 1;
    bool spot = false;
  };
  struct PartitionInfo {
    int nodes = -1;              // TotalNodes; -1: unknown
    int64_t grace_seconds = -1;  // GraceTime; -1: unknown
  };
  // What Slurm says of a partition, refreshed at most once a minute; unknown when Slurm
  // cannot be asked (its refusal at sbatch then says what is wrong).
  PartitionInfo Partition(const std::string& partition) const;

  SlurmLauncherOptions options_;
  SlurmClient client_;
  // scancel `id`; remembered in to_cancel_ when Slurm cannot be reached.
  void CancelOrRemember(int64_t id);

  mutable Mutex mu_;
  std::map<int64_t, Submitted> submitted_ TY_GUARDED_BY(mu_);
  // Jobs killed or released whose scancel failed (slurmctld down): retried on every Poll, so a
  // job the controller gave up on does not run on once Slurm is back.
  std::set<int64_t> to_cancel_ TY_GUARDED_BY(mu_);
  mutable std::map<std::string, PartitionInfo> partitions_ TY_GUARDED_BY(mu_);
  mutable std::chrono::steady_clock::time_point partitions_read_ TY_GUARDED_BY(mu_);
};

}  // namespace ty::launch
