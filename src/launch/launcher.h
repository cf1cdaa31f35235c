// Launcher: the contract between the control loop and whatever runs a job's instances — local
// processes (LocalLauncher), a Slurm cluster (SlurmLauncher), a test fake. It is shaped by the
// engine that knows least (a batch scheduler): the controller speaks in attempts and meanings,
// the launcher in its engine's terms.
//
//  - An attempt (all instances of one run of a job) is launched at once, or not at all.
//  - The launcher owns placement: whether an attempt may start now, and if not, why (the local
//    capacity pool; Slurm always accepts and its queue decides, reported as kPending).
//  - It returns an opaque handle that the store persists ("local:..." pids, "slurm:<job id>"),
//    so a restarted server finds its attempts again (Poll) or sweeps them (Sweep).
//  - Signals are meanings (AttemptSignal), each launcher maps them onto its engine.
//  - Liveness and exits of every attempt come back in one batch (Poll), without side effects.
//  - It tells each instance its hosts once they are known: before launch where it makes the
//    network (local), after allocation where the engine places them (Slurm: the agents learn
//    their peers' addresses from the allocation).
//
// Thread contract: every method is called from the controller's loop thread only, except
// Describe (any thread) and ReleaseJob (off the loop, concurrently with the others). Methods return
// quickly: slow work (making a network, a round trip to slurmctld) is either bounded by a short
// timeout or done on the launcher's own threads, with its progress reported through Poll
// (kStarting). Implementations are not required to be thread-safe beyond that.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "model/agent_protocol.h"

namespace ty::launch {

// What the controller asks of an attempt's instances. Each agent knows these meanings; how they
// reach it is the launcher's business (local: POSIX signals to the agent; Slurm: scancel
// --signal, or the engine's own preemption notice).
enum class AttemptSignal {
  kStop,    // stop training (StopTrainingJob, MaxRuntime, MaxWait): the script gets SIGTERM, the
            // agent uploads the model and reports
  kNotice,  // spot interruption notice: sync the checkpoints and exit within the notice period
  kAbort,   // another instance failed: stop training, keep checkpoints, upload nothing
  kKill,    // end now, no cleanup (the allowance is over, or the server is going away)
};
const char* Name(AttemptSignal signal);

// Identifies a launched attempt. Opaque to the controller and the store (persisted as text);
// "" means none. The launcher that made it parses it back, also after a server restart.
struct AttemptHandle {
  std::string id;
  bool empty() const { return id.empty(); }
  friend bool operator==(const AttemptHandle&, const AttemptHandle&) = default;
};

// What a job's network must allow.
struct NetworkRequest {
  int count = 1;              // instances
  bool isolated = false;      // EnableNetworkIsolation: its peers only, nothing outside
  bool store_access = false;  // storage.pass_credentials_to_jobs: the S3 store too
  // The training process runs in the sandbox (and so can enter a network namespace).
  bool sandboxed = true;
};

// Asks whether an attempt of a job may start now.
struct PlacementRequest {
  std::string job_arn;
  std::string instance_type;
  int instance_count = 1;
  bool spot = false;  // ManagedSpotTraining: the attempt runs on spot (preemptible) capacity
  // EnableNetworkIsolation (CheckRunnable: a launcher that cannot give it refuses the job).
  bool network_isolation = false;
};

struct Placement {
  bool placed = false;  // capacity is held for the attempt until Unplace
  // Not placed: the status message, e.g. "Waiting for capacity: all 2 ml.m5.large instances of
  // this machine are in use".
  std::string waiting;
  // Placed: the interruption notice the engine gives the attempt's instances (Slurm's GraceTime
  // of the partition), when the engine decides it; unset: the controller's (the spot market's
  // notice on spot, the stop grace on demand). It becomes InstanceConfig::notice_seconds and the
  // time the controller waits after a notice before it kills the attempt.
  std::optional<std::chrono::milliseconds> notice;
};

// The capacity the launcher manages for one instance type (for `trainyard spot status`).
struct CapacityView {
  int total = 0;   // instances of the type it can host at once; 0 when it cannot say
  int in_use = 0;  // held by placed attempts
};

// One attempt to launch. The controller fills every InstanceConfig except what the launcher
// owns: `network` (the addresses of the instance and its peers) and, for engines that place
// instances themselves, anything that depends on the node.
struct AttemptPlan {
  std::string job_arn;
  int attempt = 1;
  bool spot = false;  // ManagedSpotTraining and placed on spot capacity
  std::string instance_type;
  NetworkRequest network;
  // One per instance, algo-1 first; instance_dir exists (on a file system the launcher's
  // instances reach).
  std::vector<model::InstanceConfig> instances;
};

// What Poll knows about one attempt.
struct AttemptState {
  enum class Phase {
    kStarting,  // accepted; its instances are being set up (network, processes, submission)
    kPending,   // waiting in the engine's queue for resources; `reason` says why (the engine's
                // words, e.g. Slurm's "Resources" or "Priority")
    kRunning,   // its instances run; `alive` says which still do
    kEnded,     // nothing of it runs any more; `reason` says how it ended when the engine knows
    kFailed,    // it could not start (e.g. the network could not be made); `reason` says why
    kUnknown,   // the engine could not be asked (e.g. slurmctld is down); `reason` says why. The
                // controller decides how long it tolerates not knowing.
  };
  Phase phase = Phase::kUnknown;
  std::string reason;
  // kRunning: per instance, algo-1 first; false for an instance whose agent is gone. Engines
  // that cannot tell instances apart report all true while the attempt runs.
  std::vector<bool> alive;
  // The engine took the attempt's resources away (Slurm preemption): an interruption, whatever
  // the agents managed to report.
  bool preempted = false;
};

class Launcher {
 public:
  virtual ~Launcher() = default;

  // Lines for `trainyard server`'s start-up output: the engine, what it found (the cluster,
  // partitions, nodes; the local network), and what jobs reach.
  virtual std::string Describe() const = 0;
  // True when the engine has spot capacity of its own (Slurm's preemptible partition): the
  // controller's simulated spot market then neither holds spot jobs back nor draws
  // interruptions; it still prices them.
  virtual bool OwnsSpotCapacity() const = 0;

  // Whether an attempt may start now. A placed attempt holds its capacity until Unplace (which
  // the controller calls once the attempt has ended and its instances are gone, or when it was
  // never launched). Adopt holds the capacity of an attempt a previous server placed.
  virtual Placement Place(const PlacementRequest& request) = 0;
  virtual void Unplace(const PlacementRequest& request) = 0;
  virtual void Adopt(const PlacementRequest& request) = 0;
  virtual CapacityView Capacity(const std::string& instance_type) const = 0;
  // Refuses at CreateTrainingJob what this launcher can never run: more instances of a type
  // than it will ever host, a type it has no resources for. kInvalidArgument with the reason.
  virtual Status CheckRunnable(const PlacementRequest& request) const = 0;

  // Starts every instance of the attempt, or none. Returns at once with the handle; the
  // instances may still be starting (Poll: kStarting, kPending), and a failure found later is
  // reported as kFailed. Errors here: the attempt was not launched (kFailedPrecondition: it
  // cannot run on this launcher, e.g. isolation it cannot give; kUnavailable/kIoError: the
  // engine refused or could not be reached).
  virtual Result<AttemptHandle> LaunchAttempt(const AttemptPlan& plan) = 0;

  // Tells instances of the attempt what to do. `instances` (0-based, algo-1 is 0) limits it to
  // those; empty means all. An attempt that is gone is not an error.
  virtual void Signal(const AttemptHandle& attempt, AttemptSignal signal,
                      std::span<const int> instances = {}) = 0;

  // The state of each attempt, in order; no side effects beyond reaping.
  virtual std::vector<AttemptState> Poll(std::span<const AttemptHandle> attempts) = 0;

  // The attempt has ended and the controller is done with it: free what the engine still holds
  // for it (a requeued Slurm job is cancelled). Idempotent.
  virtual void ReleaseAttempt(const AttemptHandle& attempt) = 0;
  // The job has ended and none of its attempts runs: free what it held across attempts (its
  // instance network). Idempotent; may block briefly (the controller calls it off the loop).
  virtual void ReleaseJob(const std::string& job_arn) = 0;
  // After a restart: ends attempts and frees job resources this launcher (scoped to this
  // server) left behind, except those of `keep_attempts` and `keep_jobs` (re-adopted).
  virtual void Sweep(std::span<const AttemptHandle> keep_attempts,
                     std::span<const std::string> keep_jobs) = 0;
};

}  // namespace ty::launch
