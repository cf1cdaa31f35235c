// The pure state machine through every managed-spot sequence of
// ../shared/spec/sagemaker-training.md section 4 on a fake clock: no
// interruption; one interruption then success; interrupted twice then
// MaxWaitTimeExceeded; capacity never available; retries after an instance
// is lost; and the billing arithmetic (control/billing.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/billing.h"
#include "control/state_machine.h"
#include "testing/fake_clock.h"

namespace ty::control {
namespace {

using model::AgentReport;
using model::SecondaryStatus;
using model::TrainingJobStatus;
using std::chrono::milliseconds;
using std::chrono::seconds;
using EK = Event::Kind;
using AK = Action::Kind;

// Drives one job through events the way the controller would, recording
// every action.
class SpotJob {
 public:
  explicit SpotJob(model::JobSpec spec) {
    job = NewJob(std::move(spec), "123456789012", "arn:job", "{}", clock.Now());
  }
  static model::JobSpec Spec(int max_wait_s = 3600, int max_runtime_s = 1800, int retries = 0) {
    model::JobSpec s;
    s.name = "spot";
    s.output_path = "file:///out";
    s.instance_type = "ml.m5.large";
    s.managed_spot = true;
    s.max_runtime = seconds(max_runtime_s);
    s.max_wait = seconds(max_wait_s);
    s.checkpoint_uri = "file:///ckpt/";
    s.max_retry_attempts = retries;
    return s;
  }

  void Send(Event e, seconds after = seconds(0)) {
    clock.Advance(after);
    StepResult r = Step(job, e, clock.Now());
    job = r.job;
    for (const auto& a : r.actions) {
      actions.push_back(a.kind);
      if (a.kind == AK::kLaunch) {
        job.attempt_handle = "fake:" + std::to_string(job.attempt);  // the launcher's handle
      }
    }
  }
  void Place(double fraction = 0.3, seconds notice = seconds(120),
             std::optional<TimePoint> interruption_at = std::nullopt) {
    Event e{EK::kPlaced};
    e.on_spot = job.spec.managed_spot;
    e.price_fraction = fraction;
    e.notice = notice;
    e.interruption_at = interruption_at;
    Send(e);
  }
  void Phase(SecondaryStatus s, seconds after = seconds(1)) {
    Event e{EK::kPhase};
    e.phase = s;
    Send(e, after);
  }
  void Run(seconds download = seconds(5)) {
    Phase(SecondaryStatus::kDownloading, seconds(1));
    Phase(SecondaryStatus::kTraining, download);
  }
  void Checkpoint(seconds after) {
    clock.Advance(after);
    Event e{EK::kCheckpoint};
    e.at = clock.Now();
    Send(e);
  }
  void Exit(AgentReport::Outcome o, seconds after, std::string reason = "") {
    Event e{EK::kAgentExit};
    e.outcome = o;
    e.failure_reason = std::move(reason);
    Send(e, after);
  }
  void Interrupt(seconds after) {
    Event e{EK::kInterrupt};
    e.message = "spot capacity reclaimed (test)";
    Send(e, after);
  }
  void Tick(seconds after) { Send(Event{EK::kTick}, after); }

  std::vector<std::string> Sequence() const {
    std::vector<std::string> seq;
    for (const auto& t : job.transitions) seq.push_back(model::Name(t.status));
    return seq;
  }

  testing::FakeClock clock;
  model::JobRecord job;
  std::vector<AK> actions;
};

using Seq = std::vector<std::string>;

TEST(SpotSequence, NoInterruption) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  EXPECT_TRUE(j.job.queued);
  j.Place(0.3);
  EXPECT_FALSE(j.job.queued);
  j.Run();
  j.Phase(SecondaryStatus::kUploading, seconds(93));
  j.Exit(AgentReport::Outcome::kCompleted, seconds(1));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kCompleted);
  EXPECT_EQ(j.Sequence(), (Seq{"Starting", "Downloading", "Training", "Uploading", "Completed"}));
  EXPECT_EQ(j.actions, (std::vector<AK>{AK::kLaunch}));
  EXPECT_EQ(*j.job.training_time_seconds, 99);  // from the first report (t=1) to the end
  EXPECT_EQ(*j.job.billable_time_seconds, 30);  // 99 s at 0.3 of the on-demand price
  EXPECT_TRUE(j.job.interruptions.empty());
  EXPECT_EQ(j.job.attempt, 1);
}

TEST(SpotSequence, OneInterruptionThenSuccess) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  j.Place(0.3, seconds(120));
  j.Run();                    // running from t=1
  j.Checkpoint(seconds(44));  // t=50: a checkpoint synced
  j.Interrupt(seconds(10));   // t=60: notice
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kInterrupted);
  EXPECT_EQ(j.actions.back(), AK::kSignalInterrupt);
  ASSERT_TRUE(j.job.notice_deadline);
  EXPECT_EQ(*j.job.notice_deadline, j.clock.Now() + seconds(120));
  // Phase reports of the going instance change nothing.
  j.Phase(SecondaryStatus::kUploading, seconds(1));
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kInterrupted);
  j.Exit(AgentReport::Outcome::kInterrupted, seconds(4));  // t=65: agent gone
  EXPECT_TRUE(j.job.queued);
  EXPECT_TRUE(j.job.attempt_handle.empty());
  EXPECT_EQ(j.job.transitions.back().message, kMsgInterruptedWaiting);
  ASSERT_EQ(j.job.interruptions.size(), 1u);
  EXPECT_EQ(j.job.interruptions[0].attempt, 1);
  EXPECT_EQ(j.job.interruptions[0].lost_ms,
            10000);  // from the checkpoint (t=50) to the notice (t=60)
  EXPECT_EQ(j.job.run_ms, 64000);
  Event wait{EK::kWaiting};
  wait.message = "Waiting for spot capacity";
  j.Send(wait, seconds(15));
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kInterrupted);
  j.Place(0.3);  // t=80
  EXPECT_EQ(j.job.attempt, 2);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kStarting);
  j.Run();                                                 // running from t=81
  j.Exit(AgentReport::Outcome::kCompleted, seconds(114));  // t=200
  EXPECT_EQ(j.job.status, TrainingJobStatus::kCompleted);
  EXPECT_EQ(j.Sequence(), (Seq{"Starting", "Downloading", "Training", "Interrupted", "Starting",
                               "Downloading", "Training", "Completed"}));
  EXPECT_EQ(j.actions, (std::vector<AK>{AK::kLaunch, AK::kSignalInterrupt, AK::kLaunch}));
  EXPECT_EQ(*j.job.training_time_seconds, 199);  // wall time from the first start
  EXPECT_EQ(j.job.run_ms, 64000 + 119000);
  EXPECT_EQ(*j.job.billable_time_seconds, 55);  // 183 s x 0.3 = 54.9
}

TEST(SpotSequence, InterruptedTwiceThenMaxWaitTimeExceeded) {
  SpotJob j(SpotJob::Spec(/*max_wait_s=*/300, /*max_runtime_s=*/200));
  j.Send(Event{EK::kStart});
  for (int i = 0; i < 2; ++i) {
    j.Place();
    j.Run();
    j.Interrupt(seconds(30));
    j.Exit(AgentReport::Outcome::kInterrupted, seconds(2));
    j.Tick(seconds(10));
    EXPECT_TRUE(j.job.queued);
  }
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  j.Tick(seconds(150));  // t≈250: still within MaxWait
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  j.Tick(seconds(60));  // t≈310: past MaxWait while waiting for capacity
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kMaxWaitTimeExceeded);
  EXPECT_EQ(j.job.transitions.back().message, kMsgMaxWait);
  EXPECT_EQ(j.job.interruptions.size(), 2u);
  EXPECT_FALSE(j.job.queued);
  // Nothing ran at the end, so nothing is signalled: both launches, both notices.
  EXPECT_EQ(j.actions, (std::vector<AK>{AK::kLaunch, AK::kSignalInterrupt, AK::kLaunch,
                                        AK::kSignalInterrupt}));
  EXPECT_EQ(j.Sequence(),
            (Seq{"Starting", "Downloading", "Training", "Interrupted", "Starting", "Downloading",
                 "Training", "Interrupted", "Stopping", "MaxWaitTimeExceeded"}));
}

TEST(SpotSequence, MaxWaitWhileRunningStopsTheJobAndUploads) {
  SpotJob j(SpotJob::Spec(/*max_wait_s=*/100, /*max_runtime_s=*/100));
  j.Send(Event{EK::kStart});
  j.Tick(seconds(40));  // waited 40 s for capacity
  j.Place();
  j.Run();
  j.Tick(seconds(50));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  j.Tick(seconds(5));  // t=101
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopping);
  EXPECT_EQ(j.actions.back(), AK::kSignalStop);
  j.Exit(AgentReport::Outcome::kStopped, seconds(2));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kMaxWaitTimeExceeded);
}

TEST(SpotSequence, CapacityNeverAvailable) {
  SpotJob j(SpotJob::Spec(/*max_wait_s=*/120, /*max_runtime_s=*/60));
  j.Send(Event{EK::kStart});
  Event wait{EK::kWaiting};
  wait.message = "Waiting for spot capacity: no ml.m5.large spot capacity is available";
  for (int i = 0; i < 11; ++i) {
    j.Send(wait, seconds(10));
    j.Tick(seconds(0));
  }
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(j.job.transitions.size(), 1u);  // one Starting, its message updated in place
  EXPECT_EQ(j.job.transitions[0].message, wait.message);
  j.Tick(seconds(10));  // t=120
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kMaxWaitTimeExceeded);
  EXPECT_FALSE(j.job.training_time_seconds.has_value());  // it never ran
  EXPECT_TRUE(j.actions.empty());
}

TEST(SpotSequence, MaxRuntimeCountsRunningTimeOverAllAttempts) {
  SpotJob j(SpotJob::Spec(/*max_wait_s=*/3600, /*max_runtime_s=*/100));
  j.Send(Event{EK::kStart});
  j.Place();
  j.Run();                   // running from t=1
  j.Interrupt(seconds(54));  // t=60
  j.Exit(AgentReport::Outcome::kInterrupted, seconds(0));
  EXPECT_EQ(j.job.run_ms, 59000);
  j.Tick(seconds(500));  // waiting does not count as running
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  j.Place();
  j.Run();              // 5 s in
  j.Tick(seconds(35));  // 59 + 40 = 99 s of running
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  j.Tick(seconds(1));  // 100 s
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopping);
  j.Exit(AgentReport::Outcome::kStopped, seconds(1));
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kMaxRuntimeExceeded);
}

TEST(SpotSequence, TheMarketsDrawnInterruptionFiresOnATick) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  j.Place(0.3, seconds(30), j.clock.Now() + seconds(20));
  j.Run();
  j.Tick(seconds(10));  // t=16
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kTraining);
  j.Tick(seconds(4));  // t=20
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kInterrupted);
  EXPECT_EQ(j.actions.back(), AK::kSignalInterrupt);
  // The notice runs out: the instance is killed; its loss ends the attempt.
  j.Tick(seconds(29));
  EXPECT_EQ(j.actions.back(), AK::kSignalInterrupt);
  j.Tick(seconds(1));
  EXPECT_EQ(j.actions.back(), AK::kKill);
  Event lost{EK::kAgentLost};
  lost.message = "killed";
  j.Send(lost, seconds(1));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  EXPECT_TRUE(j.job.queued);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kInterrupted);
  ASSERT_EQ(j.job.interruptions.size(), 1u);
  EXPECT_EQ(j.job.interruptions[0].lost_ms, 20000);  // no checkpoint: the whole attempt
}

TEST(SpotSequence, StopWhileWaitingForSpotCapacity) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  j.Place();
  j.Run();
  j.Interrupt(seconds(10));
  j.Exit(AgentReport::Outcome::kInterrupted, seconds(1));
  j.Send(Event{EK::kStopRequested}, seconds(5));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kStopped);
  EXPECT_FALSE(j.job.queued);
  EXPECT_EQ(j.actions, (std::vector<AK>{AK::kLaunch, AK::kSignalInterrupt}));
}

TEST(SpotSequence, StopDuringTheNoticeUploadsAsAStop) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  j.Place();
  j.Run();
  j.Interrupt(seconds(10));
  j.Send(Event{EK::kStopRequested}, seconds(1));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopping);
  EXPECT_EQ(j.actions.back(), AK::kSignalStop);
  j.Exit(AgentReport::Outcome::kStopped, seconds(1));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kStopped);
}

TEST(SpotSequence, RetryAfterAnInstanceIsLost) {
  model::JobSpec spec = SpotJob::Spec();
  spec.managed_spot = false;
  spec.max_wait.reset();
  spec.max_retry_attempts = 1;
  SpotJob j(spec);
  j.Send(Event{EK::kStart});
  j.Place(1.0);
  j.Run();
  Event lost{EK::kAgentLost};
  lost.message = "the instance's agent exited without reporting a result";
  j.Send(lost, seconds(20));
  EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(j.job.secondary, SecondaryStatus::kStarting);
  EXPECT_EQ(j.job.retries, 1);
  EXPECT_TRUE(j.job.queued);
  EXPECT_NE(j.job.transitions.back().message.find("retry 1 of 1"), std::string::npos);
  j.Place(1.0);
  EXPECT_EQ(j.job.attempt, 2);
  j.Run();
  j.Send(lost, seconds(20));  // no retries left
  EXPECT_EQ(j.job.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(j.job.failure_reason, "InternalServerError: " + lost.message);
  EXPECT_EQ(j.Sequence(), (Seq{"Starting", "Downloading", "Training", "Starting", "Downloading",
                               "Training", "Failed"}));
  // On-demand attempts bill their running time in full.
  EXPECT_EQ(*j.job.billable_time_seconds, 50);
}

TEST(SpotSequence, PlatformFailuresAreRetriedAlgorithmErrorsNever) {
  model::JobSpec spec = SpotJob::Spec();
  spec.max_retry_attempts = 3;
  {
    SpotJob j(spec);
    j.Send(Event{EK::kStart});
    j.Place();
    j.Run();
    j.Exit(AgentReport::Outcome::kFailed, seconds(10), "AlgorithmError: Exit Code: 1");
    EXPECT_EQ(j.job.status, TrainingJobStatus::kFailed);
    EXPECT_EQ(j.job.retries, 0);
  }
  {
    SpotJob j(spec);
    j.Send(Event{EK::kStart});
    j.Place();
    j.Run();
    j.Exit(AgentReport::Outcome::kFailed, seconds(10), "InternalServerError: cannot upload");
    EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
    EXPECT_EQ(j.job.retries, 1);
    Event failed{EK::kLaunchFailed};
    failed.failure_reason = "InternalServerError: could not launch the instance";
    j.Place();
    j.Send(failed);
    EXPECT_EQ(j.job.status, TrainingJobStatus::kInProgress);
    EXPECT_EQ(j.job.retries, 2);
    failed.failure_reason = "ClientError: unknown image";
    j.Place();
    j.Send(failed);
    EXPECT_EQ(j.job.status, TrainingJobStatus::kFailed);
    EXPECT_EQ(j.job.failure_reason, "ClientError: unknown image");
  }
}

TEST(SpotSequence, ACheckpointWrittenDuringTheNoticeLosesNothing) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  j.Place();
  j.Run();
  j.Interrupt(seconds(30));
  j.Checkpoint(seconds(2));  // the script's SIGTERM handler saved and it synced
  j.Exit(AgentReport::Outcome::kInterrupted, seconds(1));
  ASSERT_EQ(j.job.interruptions.size(), 1u);
  EXPECT_EQ(j.job.interruptions[0].lost_ms, 0);
}

TEST(Billing, SpotCostAgainstOnDemand) {
  SpotJob j(SpotJob::Spec());
  j.Send(Event{EK::kStart});
  j.Place(0.25);
  j.Run();                                                  // running from t=1
  j.Checkpoint(seconds(3595));                              // t=3601
  j.Interrupt(seconds(360));                                // t=3961: 360 s lost
  j.Exit(AgentReport::Outcome::kInterrupted, seconds(40));  // 4000 s of running
  j.Place(0.5);
  j.Phase(SecondaryStatus::kDownloading, seconds(0));
  j.Exit(AgentReport::Outcome::kCompleted, seconds(3200));
  JobCost c = ComputeJobCost(j.job, /*on_demand_price=*/0.36, j.clock.Now());
  EXPECT_DOUBLE_EQ(c.running_seconds, 7200);
  EXPECT_DOUBLE_EQ(c.billable_seconds, 4000 * 0.25 + 3200 * 0.5);
  EXPECT_DOUBLE_EQ(c.lost_seconds, 360);
  EXPECT_NEAR(c.cost, 2600 * 0.36 / 3600, 1e-12);                    // $0.26
  EXPECT_NEAR(c.on_demand_cost, (7200 - 360) * 0.36 / 3600, 1e-12);  // $0.684
  EXPECT_NEAR(c.savings_percent, 100 * (1 - 0.26 / 0.684), 1e-9);
  EXPECT_EQ(*j.job.billable_time_seconds, 2600);
}

TEST(Billing, CountsTheRunningAttemptAndInstanceCount) {
  model::JobSpec spec = SpotJob::Spec();
  spec.instance_count = 2;
  SpotJob j(spec);
  j.Send(Event{EK::kStart});
  j.Place(0.5);
  j.Phase(SecondaryStatus::kDownloading, seconds(0));
  j.clock.Advance(seconds(1800));
  JobCost c = ComputeJobCost(j.job, 1.0, j.clock.Now());
  EXPECT_DOUBLE_EQ(c.running_seconds, 1800);
  EXPECT_DOUBLE_EQ(c.cost, 900.0 / 3600 * 2);
  EXPECT_DOUBLE_EQ(c.on_demand_cost, 1800.0 / 3600 * 2);
  EXPECT_DOUBLE_EQ(c.savings_percent, 50);
}

}  // namespace
}  // namespace ty::control
