#include "control/state_machine.h"

#include <algorithm>

#include "common/text.h"

namespace ty::control {

using model::JobRecord;
using model::SecondaryStatus;
using model::StopReason;
using model::TrainingJobStatus;

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

int64_t WholeSecondsAtLeastOne(std::chrono::milliseconds d) {
  int64_t s = (d.count() + 500) / 1000;
  return std::max<int64_t>(s, 1);
}

// Closes the job in a terminal status: end time, training and billable time.
void Finish(JobRecord* job, TrainingJobStatus status, SecondaryStatus secondary,
            const std::string& message, TimePoint now) {
  job->status = status;
  Enter(job, secondary, message, now);
  job->transitions.back().end = now;
  if (job->training_start_time) {
    job->training_end_time = now;
    auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(now - *job->training_start_time);
    job->training_time_seconds = WholeSecondsAtLeastOne(ran);
    job->billable_time_seconds = job->training_time_seconds;
  }
  job->agent_pid = 0;
  job->agent_start_ticks = 0;
}

void FinishStopped(JobRecord* job, TimePoint now) {
  switch (job->stop_reason) {
    case StopReason::kMaxRuntime:
      Finish(job, TrainingJobStatus::kStopped, SecondaryStatus::kMaxRuntimeExceeded,
             kMsgMaxRuntime, now);
      break;
    case StopReason::kMaxWait:
      Finish(job, TrainingJobStatus::kStopped, SecondaryStatus::kMaxWaitTimeExceeded,
             "Training job stopped: MaxWaitTimeInSeconds was exceeded", now);
      break;
    default:
      Finish(job, TrainingJobStatus::kStopped, SecondaryStatus::kStopped, kMsgStopped, now);
      break;
  }
}

// Order of the in-progress phases; an agent may only move forward.
int PhaseRank(SecondaryStatus s) {
  switch (s) {
    case SecondaryStatus::kStarting: return 0;
    case SecondaryStatus::kDownloading: return 1;
    case SecondaryStatus::kTraining: return 2;
    case SecondaryStatus::kUploading: return 3;
    default: return -1;
  }
}

void BeginStopping(JobRecord* job, StopReason reason, TimePoint now, StepResult* r) {
  job->status = TrainingJobStatus::kStopping;
  job->stop_reason = reason;
  Enter(job, SecondaryStatus::kStopping, kMsgStopping, now);
  r->changed = true;
  if (job->agent_pid != 0) {
    r->actions.push_back({Action::Kind::kSignalStop});
  } else {
    // Nothing runs yet (still starting): there is nothing to wait for.
    FinishStopped(job, now);
  }
}

}  // namespace

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

  switch (e.kind) {
    case Event::Kind::kStart:
      if (job.status != TrainingJobStatus::kInProgress) break;
      job.attempt += 1;
      Enter(&job, SecondaryStatus::kStarting, kMsgPreparing, now);
      r.actions.push_back({Action::Kind::kLaunch});
      r.changed = true;
      break;

    case Event::Kind::kLaunchFailed:
      job.failure_reason = e.failure_reason.empty() ? e.message : e.failure_reason;
      Finish(&job, TrainingJobStatus::kFailed, SecondaryStatus::kFailed, kMsgFailed, now);
      r.changed = true;
      break;

    case Event::Kind::kPhase: {
      if (job.status != TrainingJobStatus::kInProgress) break;
      if (PhaseRank(e.phase) <= PhaseRank(job.secondary)) break;  // stale or repeated
      if (!job.training_start_time) job.training_start_time = now;
      Enter(&job, e.phase, e.message.empty() ? model::Name(e.phase) : e.message, now);
      r.changed = true;
      break;
    }

    case Event::Kind::kAgentExit:
      if (!e.model_artifacts.empty()) job.model_artifacts = e.model_artifacts;
      if (job.status == TrainingJobStatus::kStopping) {
        FinishStopped(&job, now);
      } else if (e.outcome == model::AgentReport::Outcome::kCompleted) {
        Finish(&job, TrainingJobStatus::kCompleted, SecondaryStatus::kCompleted, kMsgCompleted, now);
      } else if (e.outcome == model::AgentReport::Outcome::kStopped) {
        // The agent was told to stop by someone other than us (e.g. an
        // operator's kill): report it as a stop, not a failure of the script.
        job.stop_reason = StopReason::kUser;
        FinishStopped(&job, now);
      } else {
        job.failure_reason = TruncateUtf8(e.failure_reason, 1024);
        if (job.failure_reason.empty()) job.failure_reason = "InternalServerError: the instance failed";
        Finish(&job, TrainingJobStatus::kFailed, SecondaryStatus::kFailed, kMsgFailed, now);
      }
      r.changed = true;
      break;

    case Event::Kind::kAgentLost:
      if (job.status == TrainingJobStatus::kStopping) {
        FinishStopped(&job, now);
      } else {
        job.failure_reason = TruncateUtf8("InternalServerError: " + e.message, 1024);
        Finish(&job, TrainingJobStatus::kFailed, SecondaryStatus::kFailed, kMsgFailed, now);
      }
      r.changed = true;
      break;

    case Event::Kind::kStopRequested:
      if (job.status != TrainingJobStatus::kInProgress) break;
      BeginStopping(&job, StopReason::kUser, now, &r);
      break;

    case Event::Kind::kTick:
      if (job.status == TrainingJobStatus::kInProgress && job.training_start_time &&
          std::chrono::duration_cast<std::chrono::seconds>(now - *job.training_start_time) >=
              job.spec.max_runtime) {
        BeginStopping(&job, StopReason::kMaxRuntime, now, &r);
      } else if (job.status == TrainingJobStatus::kStopping && job.agent_pid != 0 &&
                 now - job.transitions.back().start >=
                     policy.stop_grace + policy.upload_allowance) {
        r.actions.push_back({Action::Kind::kKill});
      }
      break;

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
