// Table-driven tests of the pure job state machine over every sequence of
// ../shared/spec/sagemaker-training.md section 3.3 (non-spot), on a fake clock.
#include "control/state_machine.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/fake_clock.h"

namespace ty::control {
namespace {

using model::AgentReport;
using model::SecondaryStatus;
using model::TrainingJobStatus;
using std::chrono::seconds;

struct StepSpec {
  Event event;
  seconds advance{1};  // clock advance before the event
};

Event Phase(SecondaryStatus s) {
  Event e{Event::Kind::kPhase};
  e.phase = s;
  return e;
}
Event Exit(AgentReport::Outcome o, std::string reason = "") {
  Event e{Event::Kind::kAgentExit};
  e.outcome = o;
  e.failure_reason = std::move(reason);
  return e;
}
Event Kind(Event::Kind k) { return Event{k}; }
Event Pending(std::string why) {
  Event e{Event::Kind::kPending};
  e.message = std::move(why);
  return e;
}
Event Placed() { return Event{Event::Kind::kPlaced}; }

struct Case {
  std::string name;
  std::vector<StepSpec> steps;
  TrainingJobStatus status;
  std::vector<std::string> secondary_sequence;  // distinct transitions, in order
  std::vector<Action::Kind> actions;            // every action emitted, in order
  std::string failure_reason;
  bool has_training_time;
};

std::string Names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + " ";
  return s;
}

class StateMachineTable : public ::testing::TestWithParam<Case> {};

TEST_P(StateMachineTable, FollowsTheSpecSequence) {
  const Case& c = GetParam();
  testing::FakeClock clock;
  model::JobSpec spec;
  spec.name = "job";
  spec.output_path = "file:///out";
  spec.max_runtime = seconds(100);
  model::JobRecord job = NewJob(spec, "123456789012", "arn", "{}", clock.Now());
  std::vector<Action::Kind> actions;
  for (const auto& step : c.steps) {
    clock.Advance(step.advance);
    StepResult r = Step(job, step.event, clock.Now());
    job = r.job;
    for (const auto& a : r.actions) {
      actions.push_back(a.kind);
      if (a.kind == Action::Kind::kLaunch) {
        job.attempt_handle = "fake:1";  // the controller records the launched attempt
      }
    }
  }
  EXPECT_EQ(job.status, c.status) << model::Name(job.status);
  std::vector<std::string> seq;
  for (const auto& t : job.transitions) seq.push_back(model::Name(t.status));
  EXPECT_EQ(Names(seq), Names(c.secondary_sequence));
  EXPECT_EQ(actions, c.actions);
  EXPECT_EQ(job.failure_reason, c.failure_reason);
  EXPECT_EQ(job.training_time_seconds.has_value(), c.has_training_time);
  // Every transition has a message; all but an in-progress last one are closed.
  for (size_t i = 0; i < job.transitions.size(); ++i) {
    EXPECT_FALSE(job.transitions[i].message.empty());
    if (i + 1 < job.transitions.size() || model::IsTerminal(job.status)) {
      ASSERT_TRUE(job.transitions[i].end.has_value()) << i;
      EXPECT_GE(*job.transitions[i].end, job.transitions[i].start);
    }
  }
  if (model::IsTerminal(job.status) && job.training_start_time) {
    EXPECT_EQ(*job.training_time_seconds, *job.billable_time_seconds);
    EXPECT_GE(*job.training_end_time, *job.training_start_time);
  }
}

using AK = Action::Kind;
using EK = Event::Kind;
using O = AgentReport::Outcome;

INSTANTIATE_TEST_SUITE_P(
    Sequences, StateMachineTable,
    ::testing::Values(
        Case{"Completed",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kDownloading)},
              {Phase(SecondaryStatus::kTraining)},
              {Phase(SecondaryStatus::kUploading)},
              {Exit(O::kCompleted)}},
             TrainingJobStatus::kCompleted,
             {"Starting", "Downloading", "Training", "Uploading", "Completed"},
             {AK::kLaunch},
             "",
             true},
        Case{"FailedWithFailureFile",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kDownloading)},
              {Phase(SecondaryStatus::kTraining)},
              {Exit(O::kFailed, "AlgorithmError: boom")}},
             TrainingJobStatus::kFailed,
             {"Starting", "Downloading", "Training", "Failed"},
             {AK::kLaunch},
             "AlgorithmError: boom",
             true},
        Case{"StoppedDuringTraining",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kDownloading)},
              {Phase(SecondaryStatus::kTraining)},
              {Kind(EK::kStopRequested)},
              {Phase(SecondaryStatus::kUploading)},
              {Exit(O::kStopped)}},
             TrainingJobStatus::kStopped,
             {"Starting", "Downloading", "Training", "Stopping", "Stopped"},
             {AK::kLaunch, AK::kSignalStop},
             "",
             true},
        Case{"StoppedDuringDownload",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kDownloading)},
              {Kind(EK::kStopRequested)},
              {Exit(O::kStopped)}},
             TrainingJobStatus::kStopped,
             {"Starting", "Downloading", "Stopping", "Stopped"},
             {AK::kLaunch, AK::kSignalStop},
             "",
             true},
        Case{"MaxRuntimeExceeded",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kDownloading)},
              {Phase(SecondaryStatus::kTraining)},
              {Kind(EK::kTick), seconds(50)},
              {Kind(EK::kTick), seconds(60)},
              {Exit(O::kStopped)}},
             TrainingJobStatus::kStopped,
             {"Starting", "Downloading", "Training", "Stopping", "MaxRuntimeExceeded"},
             {AK::kLaunch, AK::kSignalStop},
             "",
             true},
        Case{"LaunchFailed",
             {{Kind(EK::kStart)}, {Placed()}, {[] {
                Event e{EK::kLaunchFailed};
                e.failure_reason = "ClientError: unknown image";
                return e;
              }()}},
             TrainingJobStatus::kFailed,
             {"Starting", "Failed"},
             {AK::kLaunch},
             "ClientError: unknown image",
             false},
        Case{"AgentLost",
             {{Kind(EK::kStart)}, {Placed()}, {Phase(SecondaryStatus::kDownloading)}, {[] {
                Event e{EK::kAgentLost};
                e.message = "agent vanished";
                return e;
              }()}},
             TrainingJobStatus::kFailed,
             {"Starting", "Downloading", "Failed"},
             {AK::kLaunch},
             "InternalServerError: agent vanished",
             true},
        Case{"StopWhileStartingNeedsNoAgent",
             {{Kind(EK::kStopRequested)}},
             TrainingJobStatus::kStopped,
             {"Starting", "Stopping", "Stopped"},
             {},
             "",
             false},
        Case{"StaleAndRepeatedPhasesIgnored",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kTraining)},
              {Phase(SecondaryStatus::kDownloading)},
              {Phase(SecondaryStatus::kTraining)},
              {Exit(O::kCompleted)}},
             TrainingJobStatus::kCompleted,
             {"Starting", "Training", "Completed"},
             {AK::kLaunch},
             "",
             true},
        Case{"StopOverstayedIsKilled",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kTraining)},
              {Kind(EK::kStopRequested)},
              {Kind(EK::kTick), seconds(10)},
              {Kind(EK::kTick), seconds(500)}},
             TrainingJobStatus::kStopping,
             {"Starting", "Training", "Stopping"},
             {AK::kLaunch, AK::kSignalStop, AK::kKill},
             "",
             false},
        Case{"ShutdownFailsRunningJob",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kTraining)},
              {Kind(EK::kShutdown)}},
             TrainingJobStatus::kFailed,
             {"Starting", "Training", "Failed"},
             {AK::kLaunch, AK::kKill},
             "InternalServerError: the Trainyard server shut down while the job was running",
             true},
        Case{"PendingThenRunsToCompletion",
             {{Kind(EK::kStart)},
              {Placed()},
              {Pending("Waiting for capacity: Priority")},
              {Pending("Waiting for capacity: Resources")},
              {Phase(SecondaryStatus::kDownloading)},
              {Pending("Waiting for capacity: late")},
              {Phase(SecondaryStatus::kTraining)},
              {Exit(O::kCompleted)}},
             TrainingJobStatus::kCompleted,
             {"Starting", "Downloading", "Training", "Completed"},
             {AK::kLaunch},
             "",
             true},
        Case{"PendingAttemptStoppedThenGoneEndsStopped",
             {{Kind(EK::kStart)},
              {Placed()},
              {Pending("Waiting for capacity: Resources")},
              {Kind(EK::kStopRequested)},
              {[] {
                Event e{EK::kAgentLost};
                e.message = "the attempt ended without a result from algo-1";
                return e;
              }()}},
             TrainingJobStatus::kStopped,
             {"Starting", "Stopping", "Stopped"},
             {AK::kLaunch, AK::kSignalStop},
             "",
             false},
        Case{"TerminalJobsIgnoreEvents",
             {{Kind(EK::kStart)},
              {Placed()},
              {Phase(SecondaryStatus::kTraining)},
              {Exit(O::kCompleted)},
              {Kind(EK::kStopRequested)},
              {Exit(O::kFailed, "late")}},
             TrainingJobStatus::kCompleted,
             {"Starting", "Training", "Completed"},
             {AK::kLaunch},
             "",
             true}),
    [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

TEST(StateMachine, StartingMessageIsUpdatedInPlace) {
  testing::FakeClock clock;
  model::JobSpec spec;
  spec.name = "j";
  model::JobRecord job = NewJob(spec, "1", "arn", "{}", clock.Now());
  ASSERT_EQ(job.transitions.size(), 1u);
  EXPECT_EQ(job.transitions[0].message, kMsgStarting);
  job = Step(job, Kind(EK::kStart), clock.Now()).job;
  EXPECT_TRUE(job.queued);
  job = Step(job, Placed(), clock.Now()).job;
  ASSERT_EQ(job.transitions.size(), 1u);
  EXPECT_EQ(job.transitions[0].message, kMsgPreparing);
  EXPECT_EQ(job.attempt, 1);
}

TEST(StateMachine, TrainingTimeIsRoundedWholeSecondsAtLeastOne) {
  testing::FakeClock clock;
  model::JobSpec spec;
  spec.name = "j";
  model::JobRecord job = NewJob(spec, "1", "arn", "{}", clock.Now());
  job = Step(job, Kind(EK::kStart), clock.Now()).job;
  job = Step(job, Placed(), clock.Now()).job;
  job.attempt_handle = "fake:1";
  job = Step(job, Phase(SecondaryStatus::kDownloading), clock.Now()).job;
  clock.Advance(std::chrono::milliseconds(200));
  job = Step(job, Exit(O::kCompleted), clock.Now()).job;
  EXPECT_EQ(job.training_time_seconds, 1);
  model::JobRecord job2 = NewJob(spec, "1", "arn", "{}", clock.Now());
  job2.attempt_handle = "fake:1";
  job2 = Step(job2, Phase(SecondaryStatus::kDownloading), clock.Now()).job;
  clock.Advance(std::chrono::milliseconds(62600));
  job2 = Step(job2, Exit(O::kCompleted), clock.Now()).job;
  EXPECT_EQ(job2.training_time_seconds, 63);
}

TEST(StateMachine, FailureReasonIsCappedAt1024) {
  testing::FakeClock clock;
  model::JobSpec spec;
  model::JobRecord job = NewJob(spec, "1", "arn", "{}", clock.Now());
  job = Step(job, Exit(O::kFailed, "AlgorithmError: " + std::string(3000, 'x')), clock.Now()).job;
  EXPECT_EQ(job.failure_reason.size(), 1024u);
}

TEST(StateMachine, LostLinesNoteEndsUpInTheFinalStatusMessage) {
  struct Row {
    O outcome;
    std::string reason;
    TrainingJobStatus status;
  };
  for (const Row& row : {Row{O::kCompleted, "", TrainingJobStatus::kCompleted},
                         Row{O::kFailed, "AlgorithmError: boom", TrainingJobStatus::kFailed}}) {
    testing::FakeClock clock;
    model::JobSpec spec;
    spec.name = "j";
    model::JobRecord job = NewJob(spec, "1", "arn", "{}", clock.Now());
    job = Step(job, Kind(EK::kStart), clock.Now()).job;
    job = Step(job, Placed(), clock.Now()).job;
    job.attempt_handle = "fake:1";
    job = Step(job, Phase(SecondaryStatus::kTraining), clock.Now()).job;
    Event e = Exit(row.outcome, row.reason);
    e.message = "trainyard: 3 log lines were lost: disk full";
    job = Step(job, e, clock.Now()).job;
    EXPECT_EQ(job.status, row.status);
    ASSERT_FALSE(job.transitions.empty());
    EXPECT_NE(job.transitions.back().message.find("(trainyard: 3 log lines were lost: disk full)"),
              std::string::npos)
        << job.transitions.back().message;
  }
}

// A pending attempt (the engine's queue) says why in the status message, while Starting; the
// first phase report ends that, and later pending reports change nothing.
TEST(StateMachine, PendingShowsTheEnginesReasonUntilTheFirstPhase) {
  testing::FakeClock clock;
  model::JobSpec spec;
  spec.name = "j";
  spec.managed_spot = true;
  model::JobRecord job = NewJob(spec, "1", "arn", "{}", clock.Now());
  // No attempt yet: nothing to say.
  EXPECT_FALSE(Step(job, Pending("Waiting for spot capacity: x"), clock.Now()).changed);
  job = Step(job, Kind(EK::kStart), clock.Now()).job;
  job = Step(job, Placed(), clock.Now()).job;
  job.attempt_handle = "slurm:7";
  StepResult r = Step(job, Pending("Waiting for spot capacity: Slurm says Resources"), clock.Now());
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.actions.empty());
  job = r.job;
  EXPECT_EQ(job.secondary, SecondaryStatus::kStarting);
  ASSERT_EQ(job.transitions.size(), 1u);  // the same transition, a new message
  EXPECT_EQ(job.transitions.back().message, "Waiting for spot capacity: Slurm says Resources");
  EXPECT_FALSE(job.attempt_run_start.has_value());  // not billed while pending
  EXPECT_FALSE(
      Step(job, Pending("Waiting for spot capacity: Slurm says Resources"), clock.Now()).changed);
  clock.Advance(seconds(5));
  job = Step(job, Phase(SecondaryStatus::kDownloading), clock.Now()).job;
  EXPECT_FALSE(Step(job, Pending("Waiting for spot capacity: again"), clock.Now()).changed);
}

// MaxWait counts from creation, pending time included: the pending attempt is told to stop, and
// when it disappears the job ends Stopped/MaxWaitTimeExceeded (not Failed).
TEST(StateMachine, APendingAttemptIsStoppedAtMaxWait) {
  testing::FakeClock clock;
  model::JobSpec spec;
  spec.name = "j";
  spec.managed_spot = true;
  spec.max_runtime = seconds(60);
  spec.max_wait = seconds(120);
  model::JobRecord job = NewJob(spec, "1", "arn", "{}", clock.Now());
  job = Step(job, Kind(EK::kStart), clock.Now()).job;
  job = Step(job, Placed(), clock.Now()).job;
  job.attempt_handle = "slurm:7";
  job = Step(job, Pending("Waiting for spot capacity: Resources"), clock.Now()).job;
  clock.Advance(seconds(119));
  StepResult r = Step(job, Kind(EK::kTick), clock.Now());
  EXPECT_FALSE(r.changed);
  clock.Advance(seconds(1));
  r = Step(r.job, Kind(EK::kTick), clock.Now());
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, AK::kSignalStop);
  EXPECT_EQ(r.job.status, TrainingJobStatus::kStopping);
  Event gone{EK::kAgentLost};
  gone.message = "the attempt ended without a result from algo-1";
  r = Step(r.job, gone, clock.Now());
  EXPECT_EQ(r.job.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(r.job.secondary, SecondaryStatus::kMaxWaitTimeExceeded);
  EXPECT_TRUE(r.job.failure_reason.empty());
  EXPECT_TRUE(r.job.attempt_handle.empty());
  EXPECT_FALSE(r.job.training_time_seconds.has_value());  // it never ran
}

}  // namespace
}  // namespace ty::control
