#include "control/state_machine.h"

#include <algorithm>
#include <cmath>

#include "common/text.h"

namespace ty::control {

using model::AgentReport;
using model::JobRecord;
using model::SecondaryStatus;
using model::StopReason;
using model::TrainingJobStatus;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

// Enters `status`: a new transition, unless the job is already in it, in
// which case only the message changes (as SageMaker shows progress inside a
// secondary status).
void Enter(JobRecord* job, SecondaryStatus status, const std::string& message, TimePoint now) {
  if (!job->transitions.empty() && job->transitions.back().status == status &&
      !job->transitions.back().end) {
    job->transitions.back().message = message;
  } else {
    if (!job->transitions.empty() && !job->transitions.back().end) {
      job->transitions.back().end = now;
    }
    job->transitions.push_back({status, now, std::nullopt, message});
  }
  job->secondary = status;
  job->last_modified_time = now;
}

int64_t WholeSecondsAtLeastOne(double ms) {
  return std::max<int64_t>(static_cast<int64_t>(std::llround(ms / 1000.0)), 1);
}

int64_t Ms(TimePoint from, TimePoint to) {
  return std::max<int64_t>(duration_cast<milliseconds>(to - from).count(), 0);
}

// The current attempt is over: its running time joins the totals and its
// agent is forgotten.
void EndAttempt(JobRecord* job, TimePoint now) {
  if (job->attempt_run_start) {
    int64_t ran = Ms(*job->attempt_run_start, now);
    job->run_ms += ran;
    job->billable_ms += static_cast<double>(ran) * job->attempt_price_fraction;
    job->attempt_run_start.reset();
  }
  // Progress lost to an interruption of this attempt: the work since its
  // last synced checkpoint (checkpoints written during the notice count).
  if (!job->interruptions.empty() && job->interruptions.back().attempt == job->attempt &&
      job->interruptions.back().lost_ms == 0) {
    auto& i = job->interruptions.back();
    TimePoint from = i.time;
    if (job->last_checkpoint) {
      from = std::min(i.time, *job->last_checkpoint);
    } else if (!job->transitions.empty()) {
      // No checkpoint in this attempt: everything it did is lost.
      for (auto it = job->transitions.rbegin(); it != job->transitions.rend(); ++it) {
        if (it->status == SecondaryStatus::kStarting) {
          from = it->start;
          break;
        }
      }
    }
    i.lost_ms = job->last_checkpoint && *job->last_checkpoint >= i.time ? 0 : Ms(from, i.time);
  }
  job->notice_deadline.reset();
  job->interruption_at.reset();
  job->attempt_handle.clear();
  job->instances_exited.clear();
}

// Closes the job in a terminal status: end time, training and billable time.
void Finish(JobRecord* job, TrainingJobStatus status, SecondaryStatus secondary,
            const std::string& message, TimePoint now) {
  EndAttempt(job, now);
  job->queued = false;
  job->status = status;
  Enter(job, secondary, message, now);
  job->transitions.back().end = now;
  if (job->training_start_time) {
    job->training_end_time = now;
    job->training_time_seconds =
        WholeSecondsAtLeastOne(static_cast<double>(Ms(*job->training_start_time, now)));
    job->billable_time_seconds = BillableSeconds(*job);
  }
}

void FinishStopped(JobRecord* job, TimePoint now) {
  switch (job->stop_reason) {
    case StopReason::kMaxRuntime:
      Finish(job, TrainingJobStatus::kStopped, SecondaryStatus::kMaxRuntimeExceeded, kMsgMaxRuntime,
             now);
      break;
    case StopReason::kMaxWait:
      Finish(job, TrainingJobStatus::kStopped, SecondaryStatus::kMaxWaitTimeExceeded, kMsgMaxWait,
             now);
      break;
    default:
      Finish(job, TrainingJobStatus::kStopped, SecondaryStatus::kStopped, kMsgStopped, now);
      break;
  }
}

void Fail(JobRecord* job, const std::string& reason, TimePoint now) {
  job->failure_reason = TruncateUtf8(reason, 1024);
  Finish(job, TrainingJobStatus::kFailed, SecondaryStatus::kFailed, kMsgFailed, now);
}

// Order of the in-progress phases; an agent may only move forward.
int PhaseRank(SecondaryStatus s) {
  switch (s) {
    case SecondaryStatus::kStarting:
      return 0;
    case SecondaryStatus::kDownloading:
      return 1;
    case SecondaryStatus::kTraining:
      return 2;
    case SecondaryStatus::kUploading:
      return 3;
    default:
      return -1;
  }
}

void BeginStopping(JobRecord* job, StopReason reason, TimePoint now, StepResult* r) {
  job->status = TrainingJobStatus::kStopping;
  job->stop_reason = reason;
  job->queued = false;
  Enter(job, SecondaryStatus::kStopping, kMsgStopping, now);
  r->changed = true;
  if (!job->attempt_handle.empty()) {
    // Also an attempt still pending in the engine's queue: the launcher withdraws it, and its
    // disappearance ends the job (kAgentLost while stopping).
    r->actions.push_back({Action::Kind::kSignalStop});
  } else {
    // Nothing runs (queued for capacity): there is nothing to wait for.
    FinishStopped(job, now);
  }
}

bool IsPlatformFault(const std::string& reason) {
  return reason.rfind("InternalServerError", 0) == 0;
}

// A failure of our own making: retried while RetryStrategy allows, else the
// job fails with `reason`.
void RetryOrFail(JobRecord* job, const std::string& reason, TimePoint now) {
  if (job->retries >= job->spec.max_retry_attempts) {
    Fail(job, reason, now);
    return;
  }
  job->retries += 1;
  job->interruptions.push_back({job->attempt, now, TruncateUtf8(reason, 1024), 0});
  EndAttempt(job, now);
  job->queued = true;
  Enter(job, SecondaryStatus::kStarting,
        "Restarting the training job after an instance failure (retry " +
            std::to_string(job->retries) + " of " + std::to_string(job->spec.max_retry_attempts) +
            ")",
        now);
}

// The interrupted instance is gone: wait for spot capacity to come back.
void EndInterrupted(JobRecord* job, TimePoint now) {
  EndAttempt(job, now);
  job->queued = true;
  Enter(job, SecondaryStatus::kInterrupted, kMsgInterruptedWaiting, now);
}

void Interrupt(JobRecord* job, const std::string& cause, TimePoint now, StepResult* r) {
  job->notice_deadline = now + milliseconds(job->attempt_notice_ms);
  job->interruptions.push_back({job->attempt, now, cause, 0});
  int64_t notice_s = (job->attempt_notice_ms + 999) / 1000;
  Enter(job, SecondaryStatus::kInterrupted,
        "Spot interruption notice: " + cause + ". The instance has " + std::to_string(notice_s) +
            " s to save a checkpoint",
        now);
  r->actions.push_back({Action::Kind::kSignalInterrupt});
  r->changed = true;
}

bool Running(const JobRecord& job) {
  return job.status == TrainingJobStatus::kInProgress && !job.attempt_handle.empty();
}

}  // namespace

int64_t BillableSeconds(const JobRecord& job) { return WholeSecondsAtLeastOne(job.billable_ms); }

JobRecord NewJob(model::JobSpec spec, std::string account, std::string arn,
                 std::string request_json, TimePoint now) {
  JobRecord job;
  job.account = std::move(account);
  job.arn = std::move(arn);
  job.request_json = std::move(request_json);
  job.model_artifacts = model::ModelArtifactUri(spec);
  job.spec = std::move(spec);
  job.status = TrainingJobStatus::kInProgress;
  job.creation_time = now;
  Enter(&job, SecondaryStatus::kStarting, kMsgStarting, now);
  return job;
}

StepResult Step(const JobRecord& in, const Event& e, TimePoint now, const StopPolicy& policy) {
  StepResult r{in, {}, false};
  JobRecord& job = r.job;
  if (model::IsTerminal(job.status)) return r;  // terminal jobs ignore everything
  const bool interrupting = job.notice_deadline.has_value();

  switch (e.kind) {
    case Event::Kind::kStart:
      if (job.status != TrainingJobStatus::kInProgress || !job.attempt_handle.empty()) break;
      job.queued = true;
      r.changed = true;
      break;

    case Event::Kind::kWaiting:
      if (!job.queued || job.status != TrainingJobStatus::kInProgress) break;
      if (!job.transitions.empty() && job.transitions.back().message == e.message) break;
      Enter(&job, job.secondary, e.message, now);
      r.changed = true;
      break;

    case Event::Kind::kPlaced:
      if (!job.queued || job.status != TrainingJobStatus::kInProgress) break;
      job.queued = false;
      job.attempt += 1;
      job.attempt_on_spot = e.on_spot;
      job.attempt_price_fraction = e.on_spot ? e.price_fraction : 1.0;
      job.attempt_notice_ms = e.notice.count();
      job.interruption_at = e.interruption_at;
      job.last_checkpoint.reset();
      if (job.attempt == 1) {
        Enter(&job, SecondaryStatus::kStarting, kMsgPreparing, now);
      } else if (job.secondary == SecondaryStatus::kStarting && !job.transitions.empty()) {
        // A retry: keep saying why the job restarts.
        Enter(&job, SecondaryStatus::kStarting,
              job.transitions.back().message + "; launching attempt " + std::to_string(job.attempt),
              now);
      } else {
        Enter(&job, SecondaryStatus::kStarting,
              "Restarting the training job (attempt " + std::to_string(job.attempt) + ")", now);
      }
      r.actions.push_back({Action::Kind::kLaunch});
      r.changed = true;
      break;

    case Event::Kind::kLaunchFailed: {
      std::string reason = e.failure_reason.empty() ? e.message : e.failure_reason;
      if (IsPlatformFault(reason)) {
        RetryOrFail(&job, reason, now);
      } else {
        Fail(&job, reason, now);
      }
      r.changed = true;
      break;
    }

    case Event::Kind::kPending:
      // Only before the attempt's first phase report: once an agent runs, the engine's queue
      // is behind it. The secondary status stays Starting (and MaxWait keeps counting).
      if (!Running(job) || interrupting || job.attempt_run_start ||
          job.secondary != SecondaryStatus::kStarting || e.message.empty()) {
        break;
      }
      if (!job.transitions.empty() && job.transitions.back().message == e.message) break;
      Enter(&job, SecondaryStatus::kStarting, e.message, now);
      r.changed = true;
      break;

    case Event::Kind::kPhase: {
      if (!Running(job) || interrupting) break;
      if (PhaseRank(e.phase) <= PhaseRank(job.secondary)) break;  // stale or repeated
      if (!job.training_start_time) job.training_start_time = now;
      if (!job.attempt_run_start) job.attempt_run_start = now;
      Enter(&job, e.phase, e.message.empty() ? model::Name(e.phase) : e.message, now);
      r.changed = true;
      break;
    }

    case Event::Kind::kCheckpoint:
      if (job.attempt_handle.empty()) break;
      job.last_checkpoint = e.at;
      r.changed = true;
      break;

    case Event::Kind::kAgentExit:
      if (!e.model_artifacts.empty()) job.model_artifacts = e.model_artifacts;
      r.changed = true;
      if (job.status == TrainingJobStatus::kStopping) {
        FinishStopped(&job, now);
      } else if (e.outcome == AgentReport::Outcome::kCompleted) {
        Finish(&job, TrainingJobStatus::kCompleted, SecondaryStatus::kCompleted, kMsgCompleted,
               now);
      } else if (interrupting || e.outcome == AgentReport::Outcome::kInterrupted) {
        if (!interrupting) {
          // Someone else sent the notice (an operator's SIGUSR1): still an interruption.
          job.interruptions.push_back({job.attempt, now, "the instance received a notice", 0});
        }
        EndInterrupted(&job, now);
      } else if (e.outcome == AgentReport::Outcome::kStopped) {
        // The agent was told to stop by someone other than us (e.g. an
        // operator's kill): report it as a stop, not a failure of the script.
        job.stop_reason = StopReason::kUser;
        FinishStopped(&job, now);
      } else {
        std::string reason = e.failure_reason.empty() ? "InternalServerError: the instance failed"
                                                      : e.failure_reason;
        if (IsPlatformFault(reason)) {
          RetryOrFail(&job, reason, now);
        } else {
          Fail(&job, reason, now);
        }
      }
      // A note from the controller (log lines that were lost) goes where the user looks:
      // the last status message of the job.
      if (!e.message.empty() && model::IsTerminal(job.status) && !job.transitions.empty()) {
        job.transitions.back().message += " (" + e.message + ")";
      }
      break;

    case Event::Kind::kAgentLost:
      r.changed = true;
      if (job.status == TrainingJobStatus::kStopping) {
        FinishStopped(&job, now);
      } else if (interrupting) {
        EndInterrupted(&job, now);
      } else {
        RetryOrFail(&job, "InternalServerError: " + e.message, now);
      }
      break;

    case Event::Kind::kInterrupt:
      if (!Running(job) || !job.attempt_on_spot || interrupting) break;
      Interrupt(&job, e.message.empty() ? "spot capacity reclaimed" : e.message, now, &r);
      break;

    case Event::Kind::kStopRequested:
      if (job.status != TrainingJobStatus::kInProgress) break;
      BeginStopping(&job, StopReason::kUser, now, &r);
      break;

    case Event::Kind::kTick: {
      if (job.status == TrainingJobStatus::kStopping) {
        if (!job.attempt_handle.empty() &&
            now - job.transitions.back().start >= policy.stop_grace + policy.upload_allowance) {
          r.actions.push_back({Action::Kind::kKill});
        }
        break;
      }
      // MaxWaitTimeInSeconds: waiting plus running, over all attempts.
      if (job.spec.max_wait && now - job.creation_time >= *job.spec.max_wait) {
        BeginStopping(&job, StopReason::kMaxWait, now, &r);
        break;
      }
      // MaxRuntimeInSeconds: running time over all attempts.
      int64_t ran = job.run_ms + (job.attempt_run_start ? Ms(*job.attempt_run_start, now) : 0);
      if (!job.attempt_handle.empty() &&
          ran >= duration_cast<milliseconds>(job.spec.max_runtime).count()) {
        BeginStopping(&job, StopReason::kMaxRuntime, now, &r);
        break;
      }
      if (interrupting) {
        if (!job.attempt_handle.empty() && now >= *job.notice_deadline) {
          r.actions.push_back({Action::Kind::kKill});
        }
        break;
      }
      if (Running(job) && job.interruption_at && now >= *job.interruption_at) {
        Interrupt(&job, "spot capacity reclaimed (drawn by the spot market model)", now, &r);
      }
      break;
    }

    case Event::Kind::kShutdown:
      job.failure_reason =
          "InternalServerError: the Trainyard server shut down while the job was running";
      Finish(&job, TrainingJobStatus::kFailed, SecondaryStatus::kFailed, kMsgFailed, now);
      r.actions.push_back({Action::Kind::kKill});
      r.changed = true;
      break;
  }
  return r;
}

}  // namespace ty::control
