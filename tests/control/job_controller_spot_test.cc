// The controller service on a fake clock with a fake launcher: scheduling
// onto finite capacity in order, spot capacity outages, interruptions
// (injected, drawn by the market, from a trace, preemptions by the engine) and their notice,
// restarts, RetryStrategy after a lost instance or a failed attempt, MaxWait while waiting (also
// pending in the engine's queue), and an engine that cannot be reached.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "control/job_controller.h"
#include "testing/fake_clock.h"
#include "testing/fake_launcher.h"
#include "testing/temp_dir.h"

namespace ty::control {
namespace {

using launch::AttemptSignal;
using model::AgentReport;
using model::SecondaryStatus;
using model::TrainingJobStatus;
using std::chrono::seconds;
using testing::FakeLauncher;
using Phase = launch::AttemptState::Phase;

constexpr char kAccount[] = "123456789012";

class ControllerSpotTest : public ::testing::Test {
 protected:
  void SetUp() override { catalog_ = capacity::InstanceCatalog::Builtin(); }
  void TearDown() override {
    controller_.reset();
    store_.reset();
  }
  void Open(capacity::CapacityConfig capacity = {{}, 8}, capacity::SpotMarketConfig spot = {}) {
    auto store = store::Store::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    ControllerOptions o;
    o.data_dir = dir_.path();
    o.server_url_file = dir_.Sub("server.url");
    o.tick = std::chrono::hours(1000);  // timers only run when the test ticks
    o.catalog = &catalog_;
    o.spot = std::move(spot);
    launcher_.SetCapacity(std::move(capacity));  // placement is the launcher's
    controller_ = std::make_unique<JobController>(o, store_.get(), &launcher_, &images_, &clock_);
    ASSERT_TRUE(controller_->Start().ok());
  }
  model::JobSpec Spec(const std::string& name, bool spot = true) {
    model::JobSpec s;
    s.name = name;
    s.training_image = "123.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.13";
    s.output_path = "file://" + dir_.Sub("out");
    s.instance_type = "ml.m5.large";
    s.managed_spot = spot;
    s.max_runtime = seconds(600);
    if (spot) s.max_wait = seconds(1200);
    return s;
  }
  model::JobRecord Get(const std::string& name) {
    auto j = store_->GetJob(kAccount, name);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? *j : model::JobRecord{};
  }
  // The agent of `name`'s current attempt reports.
  Status Report(const std::string& name, AgentReport r) {
    model::JobRecord job = Get(name);
    r.job_arn = job.arn;
    r.attempt = job.attempt;
    r.seq = ++seq_;
    return controller_->HandleReport(job.agent_token, r);
  }
  void Phase(const std::string& name, SecondaryStatus s) {
    AgentReport r;
    r.type = AgentReport::Type::kPhase;
    r.phase = s;
    ASSERT_TRUE(Report(name, r).ok());
  }
  void Exit(const std::string& name, AgentReport::Outcome o, std::string reason = "") {
    AgentReport r;
    r.type = AgentReport::Type::kExit;
    r.outcome = o;
    r.failure_reason = std::move(reason);
    ASSERT_TRUE(Report(name, r).ok());
  }
  void Advance(seconds s) {
    clock_.Advance(s);
    controller_->TickForTesting();
  }
  std::vector<AttemptSignal> SignalsTo(const std::string& handle) {
    return launcher_.SignalsTo(handle, 0);
  }
  size_t Launches() {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    return launcher_.configs.size();
  }
  // A job waiting for its predecessor's release is launched from a task posted to the loop.
  bool WaitForLaunches(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (Launches() < n) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  int CapacityInUse() {
    auto status = controller_->SpotStatus();
    EXPECT_TRUE(status.ok());
    return status.ok() && status->size() == 1 ? (*status)[0].capacity_in_use : -1;
  }

  testing::TempDir dir_{"ty-controller-spot-"};
  int64_t seq_ = 0;
  testing::FakeClock clock_;
  capacity::InstanceCatalog catalog_;
  FakeLauncher launcher_;
  launch::ImageCatalog images_{{}};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<JobController> controller_;
};

TEST_F(ControllerSpotTest, QueuedJobsStartInOrderAsCapacityFrees) {
  Open({{{"ml.m5.large", 1}}, 8});
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("a", false), "{}").ok());
  clock_.Advance(seconds(1));
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("b", false), "{}").ok());
  clock_.Advance(seconds(1));
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("c", false), "{}").ok());
  model::JobSpec other = Spec("other-type", false);
  other.instance_type = "ml.c5.xlarge";
  ASSERT_TRUE(controller_->Submit(kAccount, other, "{}").ok());
  EXPECT_EQ(Launches(), 2u);  // "a" and the other type
  model::JobRecord c = Get("c");
  EXPECT_TRUE(c.queued);
  EXPECT_EQ(c.secondary, SecondaryStatus::kStarting);
  EXPECT_EQ(c.transitions.back().message,
            "Waiting for capacity: all 1 ml.m5.large instances of this machine are in use; 1 "
            "job(s) queued ahead");
  Phase("a", SecondaryStatus::kTraining);
  Exit("a", AgentReport::Outcome::kCompleted);
  EXPECT_EQ(Get("b").attempt, 1);
  EXPECT_FALSE(Get("b").queued);
  EXPECT_TRUE(Get("c").queued);
  Exit("b", AgentReport::Outcome::kFailed, "AlgorithmError: x");
  EXPECT_FALSE(Get("c").queued);
  EXPECT_EQ(Launches(), 4u);
  EXPECT_EQ(Get("c").transitions.back().message, kMsgPreparing);
}

// The launcher sets an attempt up off the loop (kStarting: LocalLauncher makes its network);
// its capacity is taken all along.
TEST_F(ControllerSpotTest, CapacityStaysTakenWhileTheAttemptStarts) {
  launcher_.initial = {Phase::kStarting, "", {}, false};
  Open({{{"ml.m5.large", 1}}, 8});
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("a", false), "{}").ok());
  clock_.Advance(seconds(1));
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("b", false), "{}").ok());
  Advance(seconds(1));  // a tick polls and reconciles every job too
  EXPECT_EQ(Launches(), 1u);
  EXPECT_FALSE(Get("a").queued);
  EXPECT_EQ(Get("a").transitions.back().message, kMsgPreparing);
  EXPECT_TRUE(Get("b").queued);
  EXPECT_EQ(Get("b").transitions.back().message,
            "Waiting for capacity: all 1 ml.m5.large instances of this machine are in use");
  EXPECT_EQ(CapacityInUse(), 1);

  launcher_.SetState(Get("a").attempt_handle, Phase::kRunning);
  Advance(seconds(1));
  EXPECT_TRUE(Get("b").queued);
  EXPECT_EQ(CapacityInUse(), 1);
  Exit("a", AgentReport::Outcome::kCompleted);
  ASSERT_EQ(Launches(), 2u);
  EXPECT_EQ(launcher_.configs[1].job_name, "b");
  EXPECT_EQ(CapacityInUse(), 1);
}

// A job stopped while its attempt starts: the launcher withdraws the attempt, and once it has
// ended the job is Stopped and its capacity goes to the next job.
TEST_F(ControllerSpotTest, AStopWhileTheAttemptStartsFreesTheCapacityOnceItEnded) {
  launcher_.initial = {Phase::kStarting, "", {}, false};
  Open({{{"ml.m5.large", 1}}, 8});
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("a", false), "{}").ok());
  clock_.Advance(seconds(1));
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("b", false), "{}").ok());
  EXPECT_TRUE(Get("b").queued);
  ASSERT_TRUE(controller_->Stop(kAccount, "a").ok());
  EXPECT_EQ(Get("a").status, TrainingJobStatus::kStopping);
  EXPECT_EQ(SignalsTo("fake:1"), std::vector<AttemptSignal>{AttemptSignal::kStop});
  Advance(seconds(1));
  EXPECT_EQ(Get("a").status, TrainingJobStatus::kStopped);
  EXPECT_FALSE(Get("b").queued);
  EXPECT_EQ(CapacityInUse(), 1);
  ASSERT_EQ(Launches(), 2u);
  EXPECT_EQ(launcher_.configs[1].job_name, "b");
}

// A job deleted and created again under the same name while the ended one's attempt is still
// exiting: the new one waits until the launcher has released the old one's resources (its
// network has the same name), then launches.
TEST_F(ControllerSpotTest, AJobRecreatedWhileItsPredecessorIsReleasedWaitsForIt) {
  Open({{{"ml.m5.large", 2}}, 8});
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("a", false), "{}").ok());
  ASSERT_TRUE(controller_->Stop(kAccount, "a").ok());
  Exit("a", AgentReport::Outcome::kStopped);  // its agent still runs a moment
  EXPECT_EQ(Get("a").status, TrainingJobStatus::kStopped);
  const std::string arn = Get("a").arn;
  ASSERT_TRUE(controller_->Delete(kAccount, "a").ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("a", false), "{}").ok());
  Advance(seconds(1));
  EXPECT_EQ(Launches(), 1u);
  EXPECT_TRUE(Get("a").queued);
  EXPECT_FALSE(launcher_.JobReleased(arn));
  launcher_.EndAll();
  Advance(seconds(1));  // gone: released, then the loop places the new job
  ASSERT_TRUE(WaitForLaunches(2));
  EXPECT_TRUE(launcher_.JobReleased(arn));
  EXPECT_EQ(launcher_.configs[1].job_name, "a");
  EXPECT_EQ(CapacityInUse(), 1);
}

TEST_F(ControllerSpotTest, InjectedInterruptionRestartsTheJobWithANewAttempt) {
  capacity::SpotMarketConfig spot;
  spot.defaults.notice = seconds(30);
  spot.defaults.price_fraction = 0.4;
  Open({{}, 8}, spot);
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("s"), "{}").ok());
  Phase("s", SecondaryStatus::kDownloading);
  Phase("s", SecondaryStatus::kTraining);
  const std::string first = Get("s").attempt_handle;
  EXPECT_EQ(launcher_.configs[0].notice_seconds, 30);
  clock_.Advance(seconds(100));
  ASSERT_TRUE(controller_->Interrupt(kAccount, "s").ok());
  EXPECT_EQ(SignalsTo(first), std::vector<AttemptSignal>{AttemptSignal::kNotice});
  EXPECT_EQ(Get("s").secondary, SecondaryStatus::kInterrupted);
  EXPECT_EQ(controller_->Interrupt(kAccount, "s").code(), StatusCode::kFailedPrecondition);
  // The notice runs out before the agent is done: it is killed.
  Advance(seconds(29));
  EXPECT_EQ(SignalsTo(first), std::vector<AttemptSignal>{AttemptSignal::kNotice});
  Advance(seconds(1));
  EXPECT_EQ(SignalsTo(first),
            (std::vector<AttemptSignal>{AttemptSignal::kNotice, AttemptSignal::kKill}));
  Advance(seconds(1));  // its loss is noticed; spot capacity is there: relaunch
  model::JobRecord s = Get("s");
  EXPECT_EQ(s.attempt, 2);
  EXPECT_NE(s.attempt_handle, first);
  EXPECT_EQ(s.secondary, SecondaryStatus::kStarting);
  ASSERT_EQ(launcher_.configs.size(), 2u);
  EXPECT_NE(launcher_.configs[0].log_stream, launcher_.configs[1].log_stream);
  EXPECT_NE(launcher_.configs[0].instance_dir, launcher_.configs[1].instance_dir);
  EXPECT_EQ(launcher_.configs[1].attempt, 2);
  Phase("s", SecondaryStatus::kDownloading);
  Phase("s", SecondaryStatus::kTraining);
  clock_.Advance(seconds(50));
  Exit("s", AgentReport::Outcome::kCompleted);
  s = Get("s");
  EXPECT_EQ(s.status, TrainingJobStatus::kCompleted);
  // 130 s on the first instance, 50 on the second, at 0.4.
  EXPECT_EQ(*s.billable_time_seconds, 72);
  EXPECT_EQ(*s.training_time_seconds, 181);
  ASSERT_EQ(s.interruptions.size(), 1u);
  EXPECT_EQ(s.interruptions[0].lost_ms, 100000);
}

TEST_F(ControllerSpotTest, OutageKeepsSpotJobsWaitingButNotOnDemandOnes) {
  Open();
  ASSERT_TRUE(controller_->MakeSpotUnavailable("ml.m5.large", seconds(60)).ok());
  EXPECT_EQ(controller_->MakeSpotUnavailable("ml.nope.large", seconds(60)).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("spot"), "{}").ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("ondemand", false), "{}").ok());
  EXPECT_TRUE(Get("spot").queued);
  EXPECT_NE(Get("spot").transitions.back().message.find(
                "Waiting for spot capacity: no ml.m5.large spot capacity is available"),
            std::string::npos);
  EXPECT_FALSE(Get("ondemand").queued);
  auto status = controller_->SpotStatus();
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->size(), 1u);
  EXPECT_FALSE((*status)[0].market.available);
  EXPECT_EQ((*status)[0].queued_jobs, 1);
  EXPECT_EQ((*status)[0].capacity_in_use, 1);
  Advance(seconds(59));
  EXPECT_TRUE(Get("spot").queued);
  Advance(seconds(1));
  EXPECT_FALSE(Get("spot").queued);
  EXPECT_EQ(Get("spot").attempt, 1);
}

TEST_F(ControllerSpotTest, CapacityThatNeverReturnsEndsInMaxWaitExactly) {
  Open();
  ASSERT_TRUE(controller_->MakeSpotUnavailable("ml.m5.large", seconds(100000)).ok());
  model::JobSpec spec = Spec("never");
  spec.max_runtime = seconds(60);
  spec.max_wait = seconds(120);
  ASSERT_TRUE(controller_->Submit(kAccount, spec, "{}").ok());
  Advance(seconds(119));
  EXPECT_EQ(Get("never").status, TrainingJobStatus::kInProgress);
  Advance(seconds(1));
  model::JobRecord j = Get("never");
  EXPECT_EQ(j.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(j.secondary, SecondaryStatus::kMaxWaitTimeExceeded);
  EXPECT_EQ(j.last_modified_time - j.creation_time, seconds(120));
  EXPECT_EQ(Launches(), 0u);
}

TEST_F(ControllerSpotTest, TheMarketDrawsInterruptionsReplayably) {
  capacity::SpotMarketConfig spot;
  spot.seed = 11;
  spot.defaults.mean_time_between_interruptions = seconds(300);
  spot.defaults.notice = seconds(10);
  Open({{}, 8}, spot);
  model::JobSpec spec = Spec("drawn");
  spec.max_runtime = seconds(100000);
  spec.max_wait = seconds(200000);
  ASSERT_TRUE(controller_->Submit(kAccount, spec, "{}").ok());
  model::JobRecord j = Get("drawn");
  ASSERT_TRUE(j.interruption_at.has_value());
  // The same seed, type and key give the same draw in a fresh market.
  capacity::SpotMarket replay(spot, clock_.Now());
  EXPECT_EQ(replay.DrawInterruption("ml.m5.large", "drawn#1", clock_.Now()), j.interruption_at);
  Phase("drawn", SecondaryStatus::kTraining);
  clock_.Advance(
      std::chrono::duration_cast<std::chrono::milliseconds>(*j.interruption_at - clock_.Now()));
  controller_->TickForTesting();
  EXPECT_EQ(Get("drawn").secondary, SecondaryStatus::kInterrupted);
  EXPECT_EQ(SignalsTo(j.attempt_handle), std::vector<AttemptSignal>{AttemptSignal::kNotice});
  Exit("drawn", AgentReport::Outcome::kInterrupted);
  EXPECT_EQ(Get("drawn").attempt, 2);  // capacity is available: restarted at once
}

TEST_F(ControllerSpotTest, TraceInterruptsRunningSpotJobsOfItsType) {
  capacity::SpotMarketConfig spot;
  auto trace = capacity::ParseTrace("5 interrupt ml.m5.large\n");
  ASSERT_TRUE(trace.ok());
  spot.trace = *trace;
  Open({{}, 8}, spot);
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("t1"), "{}").ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("t2", false), "{}").ok());
  Advance(seconds(5));
  EXPECT_EQ(Get("t1").secondary, SecondaryStatus::kInterrupted);
  EXPECT_NE(Get("t2").secondary, SecondaryStatus::kInterrupted);  // on-demand is never interrupted
}

TEST_F(ControllerSpotTest, ALostInstanceIsRetriedThenFails) {
  Open();
  model::JobSpec spec = Spec("retry", false);
  spec.max_retry_attempts = 1;
  ASSERT_TRUE(controller_->Submit(kAccount, spec, "{}").ok());
  Phase("retry", SecondaryStatus::kTraining);
  launcher_.EndAll();
  Advance(seconds(1));
  model::JobRecord j = Get("retry");
  EXPECT_EQ(j.status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(j.retries, 1);
  EXPECT_EQ(j.attempt, 2);
  launcher_.EndAll();
  Advance(seconds(1));
  j = Get("retry");
  EXPECT_EQ(j.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(j.failure_reason.rfind("InternalServerError: ", 0), 0u) << j.failure_reason;
}

TEST_F(ControllerSpotTest, UnknownInstanceTypesAreRefused) {
  Open();
  model::JobSpec spec = Spec("bad");
  spec.instance_type = "ml.nope.large";
  EXPECT_EQ(controller_->Submit(kAccount, spec, "{}").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ControllerSpotTest, InstanceCountsFollowTheCatalog) {
  Open();
  model::JobSpec spec = Spec("gpu", false);
  spec.instance_type = "ml.g5.2xlarge";
  ASSERT_TRUE(controller_->Submit(kAccount, spec, "{}").ok());
  ASSERT_EQ(launcher_.configs.size(), 1u);
  EXPECT_EQ(launcher_.configs[0].num_cpus, 8);
  EXPECT_EQ(launcher_.configs[0].num_gpus, 1);
}

TEST_F(ControllerSpotTest, ARestartKeepsQueuedJobsQueuedAndHoldsAdoptedCapacity) {
  Open({{{"ml.m5.large", 1}}, 8});
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("running", false), "{}").ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("waiting", false), "{}").ok());
  EXPECT_TRUE(Get("waiting").queued);
  controller_.reset();  // a crash would leave the same state; Shutdown fails running jobs
  // Bring the running job back to life in the store, as a crashed server leaves it.
  model::JobRecord r = Get("running");
  r.status = TrainingJobStatus::kInProgress;
  r.secondary = SecondaryStatus::kTraining;
  r.attempt_handle = "fake:1";
  r.instances_exited = {false};
  ASSERT_TRUE(store_->UpdateJob(r).ok());
  model::JobRecord w = Get("waiting");
  w.status = TrainingJobStatus::kInProgress;
  w.secondary = SecondaryStatus::kStarting;
  w.queued = true;
  ASSERT_TRUE(store_->UpdateJob(w).ok());
  store_.reset();
  launcher_.SetState("fake:1", Phase::kRunning);
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.configs.clear();
  }
  Open({{{"ml.m5.large", 1}}, 8});
  EXPECT_TRUE(Get("waiting").queued);  // the adopted agent still holds the one instance
  EXPECT_EQ(Launches(), 0u);
}

TEST_F(ControllerSpotTest, QueuedJobsSurviveAGracefulShutdown) {
  Open({{{"ml.m5.large", 1}}, 8});
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("busy", false), "{}").ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("queued", false), "{}").ok());
  controller_->Shutdown();
  EXPECT_EQ(Get("busy").status, TrainingJobStatus::kFailed);  // its process could not outlive us
  model::JobRecord q = Get("queued");
  EXPECT_EQ(q.status, TrainingJobStatus::kInProgress);
  EXPECT_TRUE(q.queued);
  controller_.reset();
  store_.reset();
  Open({{{"ml.m5.large", 1}}, 8});
  q = Get("queued");
  EXPECT_FALSE(q.queued);  // the slot is free now: it started
  EXPECT_EQ(q.attempt, 1);
  EXPECT_FALSE(q.attempt_handle.empty());
}

// An engine with spot capacity of its own (Slurm's preemptible partition): an attempt pending in
// its queue says why, and MaxWait (from creation) stops it; once the pending attempt is gone
// the job is Stopped/MaxWaitTimeExceeded, never billed.
TEST_F(ControllerSpotTest, APendingAttemptShowsWhyAndIsStoppedAtMaxWait) {
  launcher_.owns_spot = true;
  launcher_.initial = {Phase::kPending, "Resources", {}, false};
  Open();
  model::JobSpec spec = Spec("queued");
  spec.max_runtime = seconds(60);
  spec.max_wait = seconds(120);
  ASSERT_TRUE(controller_->Submit(kAccount, spec, "{}").ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("ondemand", false), "{}").ok());
  EXPECT_EQ(Launches(), 2u);  // the engine queues them, not the controller
  Advance(seconds(1));
  model::JobRecord j = Get("queued");
  EXPECT_EQ(j.secondary, SecondaryStatus::kStarting);
  EXPECT_EQ(j.transitions.back().message, "Waiting for spot capacity: Resources");
  EXPECT_EQ(Get("ondemand").transitions.back().message, "Waiting for capacity: Resources");
  Advance(seconds(118));
  EXPECT_EQ(Get("queued").status, TrainingJobStatus::kInProgress);
  Advance(seconds(1));
  EXPECT_EQ(Get("queued").status, TrainingJobStatus::kStopping);
  EXPECT_EQ(SignalsTo(Get("queued").attempt_handle),
            std::vector<AttemptSignal>{AttemptSignal::kStop});
  Advance(seconds(1));  // the withdrawn attempt is gone
  j = Get("queued");
  EXPECT_EQ(j.status, TrainingJobStatus::kStopped);
  EXPECT_EQ(j.secondary, SecondaryStatus::kMaxWaitTimeExceeded);
  EXPECT_FALSE(j.billable_time_seconds.has_value());
}

// The engine preempts a running spot attempt (Slurm's preemption, requeue or cancel): an
// interruption, whatever the agents report; the job waits for spot capacity again and a new
// attempt starts within MaxWait, and the market draws nothing for the engine's spot.
TEST_F(ControllerSpotTest, APreemptedAttemptIsInterruptedAndRestarted) {
  capacity::SpotMarketConfig spot;
  spot.defaults.mean_time_between_interruptions = seconds(10);
  spot.defaults.notice = seconds(30);
  Open({{}, 8}, spot);
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.owns_spot = true;
    launcher_.placement_notice = std::chrono::milliseconds(45000);  // the engine's GraceTime
  }
  ASSERT_TRUE(controller_->MakeSpotUnavailable("ml.m5.large", seconds(1000)).ok());
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("p"), "{}").ok());
  model::JobRecord j = Get("p");
  EXPECT_FALSE(j.queued);  // the simulated market's outage does not hold it back
  EXPECT_FALSE(j.interruption_at.has_value());
  EXPECT_EQ(launcher_.configs[0].notice_seconds, 45);
  Phase("p", SecondaryStatus::kTraining);
  const std::string first = Get("p").attempt_handle;
  launcher_.SetState(first, Phase::kRunning, "spot capacity reclaimed (preempted by Slurm)", true);
  Advance(seconds(1));
  j = Get("p");
  EXPECT_EQ(j.secondary, SecondaryStatus::kInterrupted);
  EXPECT_NE(j.transitions.back().message.find("spot capacity reclaimed (preempted by Slurm)"),
            std::string::npos)
      << j.transitions.back().message;
  EXPECT_EQ(SignalsTo(first), std::vector<AttemptSignal>{AttemptSignal::kNotice});
  Exit("p", AgentReport::Outcome::kInterrupted);  // synced its checkpoints
  j = Get("p");
  EXPECT_EQ(j.attempt, 2);
  EXPECT_NE(j.attempt_handle, first);
  ASSERT_EQ(j.interruptions.size(), 1u);
  // The second attempt is preempted before any agent reports: still an interruption.
  const std::string second = j.attempt_handle;
  launcher_.SetState(second, Phase::kEnded, "preempted", true);
  Advance(seconds(1));
  j = Get("p");
  EXPECT_EQ(j.status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(j.interruptions.size(), 2u);
  EXPECT_EQ(j.attempt, 3);
  Phase("p", SecondaryStatus::kTraining);
  Exit("p", AgentReport::Outcome::kCompleted);
  EXPECT_EQ(Get("p").status, TrainingJobStatus::kCompleted);
}

// An attempt the launcher reports failed (it could not start) is a platform fault: retried by
// RetryStrategy, then the job fails with the launcher's reason.
TEST_F(ControllerSpotTest, AFailedAttemptIsRetriedThenFails) {
  launcher_.initial = {Phase::kFailed, "sbatch: error: invalid partition", {}, false};
  Open();
  model::JobSpec spec = Spec("f", false);
  spec.max_retry_attempts = 1;
  ASSERT_TRUE(controller_->Submit(kAccount, spec, "{}").ok());
  Advance(seconds(1));
  model::JobRecord j = Get("f");
  EXPECT_EQ(j.status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(j.retries, 1);
  EXPECT_EQ(j.attempt, 2);
  Advance(seconds(1));
  j = Get("f");
  EXPECT_EQ(j.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(j.failure_reason, "InternalServerError: sbatch: error: invalid partition");
  EXPECT_EQ(launcher_.Capacity("ml.m5.large").in_use, 0);
}

// The engine cannot be asked (slurmctld down): tolerated for the bound, then the attempt is lost
// with the reason, never a stuck InProgress. Answers in between reset the bound.
TEST_F(ControllerSpotTest, AnUnreachableEngineIsToleratedForTheBoundThenTheAttemptIsLost) {
  Open();
  ASSERT_TRUE(controller_->Submit(kAccount, Spec("u", false), "{}").ok());
  Phase("u", SecondaryStatus::kTraining);
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.unreachable = "slurmctld: Connection refused";
  }
  Advance(seconds(1));  // unknown from here
  Advance(seconds(50));
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.unreachable.clear();
  }
  Advance(seconds(1));  // it answered: the bound starts again
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.unreachable = "slurmctld: Connection refused";
  }
  Advance(seconds(1));
  Advance(seconds(59));
  EXPECT_EQ(Get("u").status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(Get("u").secondary, SecondaryStatus::kTraining);
  Advance(seconds(1));
  model::JobRecord j = Get("u");
  EXPECT_EQ(j.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(j.failure_reason,
            "InternalServerError: the cluster could not be reached for 60 s: slurmctld: "
            "Connection refused");
  EXPECT_EQ(SignalsTo("fake:1"), std::vector<AttemptSignal>{AttemptSignal::kKill});
}

}  // namespace
}  // namespace ty::control
