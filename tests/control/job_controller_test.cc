// The controller service with a real SQLite store, a fake launcher and the
// real clock's loop: submission, agent reports, stop, agent loss, restart
// re-adoption and shutdown.
#include "control/job_controller.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "testing/fake_launcher.h"
#include "testing/temp_dir.h"

namespace ty::control {
namespace {

using model::AgentReport;
using model::SecondaryStatus;
using model::TrainingJobStatus;

using testing::FakeLauncher;

class JobControllerTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenAll(); }
  void TearDown() override {
    controller_.reset();
    store_.reset();
  }
  void OpenAll() {
    auto store = store::Store::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    ControllerOptions o;
    o.data_dir = dir_.path();
    o.server_url_file = dir_.Sub("server.url");
    o.tick = std::chrono::milliseconds(20);
    controller_ = std::make_unique<JobController>(o, store_.get(), &launcher_, &images_,
                                                  SystemClock::Default());
    ASSERT_TRUE(controller_->Start().ok());
  }
  model::JobSpec Spec(const std::string& name) {
    model::JobSpec s;
    s.name = name;
    s.training_image = "123.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.13";
    s.output_path = "file://" + dir_.Sub("out");
    s.instance_type = "ml.m5.large";
    return s;
  }
  AgentReport Report(const model::JobRecord& job, AgentReport::Type type, int64_t seq) {
    AgentReport r;
    r.type = type;
    r.job_arn = job.arn;
    r.attempt = 1;
    r.seq = seq;
    return r;
  }
  model::JobRecord Get(const std::string& name) {
    auto j = store_->GetJob("123456789012", name);
    EXPECT_TRUE(j.ok());
    return j.ok() ? *j : model::JobRecord{};
  }
  template <typename Pred>
  bool WaitFor(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  testing::TempDir dir_{"ty-controller-"};
  FakeLauncher launcher_;
  launch::ImageCatalog images_{{}};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<JobController> controller_;
};

TEST_F(JobControllerTest, RunsAJobToCompletionFromAgentReports) {
  model::JobSpec spec = Spec("ok");
  spec.metric_definitions = {{"acc", "acc=([0-9.]+)"}};
  auto job = controller_->Submit("123456789012", spec, "{}");
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  ASSERT_EQ(launcher_.configs.size(), 1u);
  const auto& cfg = launcher_.configs[0];
  EXPECT_EQ(cfg.hosts, std::vector<std::string>{"algo-1"});
  EXPECT_EQ(cfg.log_stream.rfind("ok/algo-1-", 0), 0u);
  EXPECT_EQ(cfg.image.runtime, model::ImageEntry::Runtime::kPythonFramework);
  std::string token = cfg.token;

  auto phase = Report(*job, AgentReport::Type::kPhase, 1);
  phase.phase = SecondaryStatus::kTraining;
  EXPECT_EQ(controller_->HandleReport("wrong", phase).code(), StatusCode::kPermissionDenied);
  ASSERT_TRUE(controller_->HandleReport(token, phase).ok());
  auto logs = Report(*job, AgentReport::Type::kLog, 2);
  logs.stream = cfg.log_stream;
  logs.lines = {{1000, "epoch 1 acc=0.5"}, {2000, "epoch 2 acc=0.93"}};
  ASSERT_TRUE(controller_->HandleReport(token, logs).ok());
  ASSERT_TRUE(controller_->HandleReport(token, logs).ok());  // a retry is applied once
  auto exit = Report(*job, AgentReport::Type::kExit, 3);
  exit.outcome = AgentReport::Outcome::kCompleted;
  exit.model_artifacts = "file:///x/model.tar.gz";
  ASSERT_TRUE(controller_->HandleReport(token, exit).ok());

  model::JobRecord done = Get("ok");
  EXPECT_EQ(done.status, TrainingJobStatus::kCompleted);
  EXPECT_EQ(done.model_artifacts, "file:///x/model.tar.gz");
  ASSERT_EQ(done.final_metrics.size(), 1u);
  EXPECT_DOUBLE_EQ(done.final_metrics[0].value, 0.93);
  auto events = store_->ReadLogEvents(done.id, 0, 100);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 2u);
  auto samples = store_->ReadMetricSamples(done.id);
  ASSERT_TRUE(samples.ok());
  EXPECT_EQ(samples->size(), 2u);
  // Reports for a finished job are refused so the agent stops retrying.
  EXPECT_EQ(controller_->HandleReport(token, exit).code(), StatusCode::kNotFound);
}

TEST_F(JobControllerTest, DuplicateNamesAreRefused) {
  ASSERT_TRUE(controller_->Submit("123456789012", Spec("dup"), "{}").ok());
  EXPECT_EQ(controller_->Submit("123456789012", Spec("dup"), "{}").status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_TRUE(controller_->Submit("999999999999", Spec("dup"), "{}").ok());  // other account
}

TEST_F(JobControllerTest, StopSignalsTheAgentAndEndsStopped) {
  auto job = controller_->Submit("123456789012", Spec("stop"), "{}");
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(controller_->Stop("123456789012", "stop").ok());
  EXPECT_EQ(Get("stop").status, TrainingJobStatus::kStopping);
  ASSERT_EQ(launcher_.signals.size(), 1u);
  EXPECT_EQ(launcher_.signals[0].second, SIGTERM);
  auto exit = Report(*job, AgentReport::Type::kExit, 1);
  exit.outcome = AgentReport::Outcome::kStopped;
  ASSERT_TRUE(controller_->HandleReport(launcher_.configs[0].token, exit).ok());
  EXPECT_EQ(Get("stop").status, TrainingJobStatus::kStopped);
  EXPECT_EQ(Get("stop").secondary, SecondaryStatus::kStopped);
  Status again = controller_->Stop("123456789012", "stop");
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(again.message(), "The request was rejected because the training job is in status Stopped.");
  EXPECT_EQ(controller_->Stop("123456789012", "nope").code(), StatusCode::kNotFound);
}

TEST_F(JobControllerTest, AnAgentThatVanishesFailsTheJob) {
  auto job = controller_->Submit("123456789012", Spec("lost"), "{}");
  ASSERT_TRUE(job.ok());
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.alive.clear();
  }
  ASSERT_TRUE(WaitFor([&] { return Get("lost").status == TrainingJobStatus::kFailed; }));
  EXPECT_NE(Get("lost").failure_reason.find("InternalServerError: "), std::string::npos);
}

TEST_F(JobControllerTest, UnknownImageFailsWithClientError) {
  model::JobSpec spec = Spec("img");
  spec.training_image = "example.com/unknown:1";
  auto job = controller_->Submit("123456789012", spec, "{}");
  ASSERT_TRUE(job.ok());
  model::JobRecord j = Get("img");
  EXPECT_EQ(j.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(j.failure_reason.rfind("ClientError: the training image 'example.com/unknown:1'", 0), 0u)
      << j.failure_reason;
}

TEST_F(JobControllerTest, RestartReadoptsLiveAgentsAndFailsDeadOnes) {
  auto live = controller_->Submit("123456789012", Spec("live"), "{}");
  auto dead = controller_->Submit("123456789012", Spec("dead"), "{}");
  ASSERT_TRUE(live.ok() && dead.ok());
  std::string live_token = launcher_.configs[0].token;
  // Simulate a crash: drop the controller without a graceful shutdown path
  // by marking the second agent dead before a new controller starts.
  controller_.reset();  // graceful shutdown kills agents...
  // ...so restore the store state a crash would leave: both still InProgress.
  for (auto name : {"live", "dead"}) {
    model::JobRecord r = Get(name);
    r.status = TrainingJobStatus::kInProgress;
    r.secondary = SecondaryStatus::kTraining;
    r.failure_reason.clear();
    r.agent_pid = std::string(name) == "live" ? 1000 : 1001;
    r.agent_start_ticks = 7;
    ASSERT_TRUE(store_->UpdateJob(r).ok());
  }
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.alive = {1000};
  }
  OpenAll();
  EXPECT_EQ(Get("live").status, TrainingJobStatus::kInProgress);
  model::JobRecord d = Get("dead");
  EXPECT_EQ(d.status, TrainingJobStatus::kFailed);
  EXPECT_NE(d.failure_reason.find("restarted"), std::string::npos) << d.failure_reason;
  auto exit = Report(*live, AgentReport::Type::kExit, 99);
  exit.outcome = AgentReport::Outcome::kCompleted;
  ASSERT_TRUE(controller_->HandleReport(live_token, exit).ok());
  EXPECT_EQ(Get("live").status, TrainingJobStatus::kCompleted);
}

TEST_F(JobControllerTest, ShutdownKillsAgentsAndFailsRunningJobs) {
  ASSERT_TRUE(controller_->Submit("123456789012", Spec("running"), "{}").ok());
  controller_->Shutdown();
  model::JobRecord j = Get("running");
  EXPECT_EQ(j.status, TrainingJobStatus::kFailed);
  bool killed = false;
  for (const auto& [pid, sig] : launcher_.signals) killed |= sig == SIGKILL;
  EXPECT_TRUE(killed);
  EXPECT_EQ(controller_->Submit("123456789012", Spec("late"), "{}").status().code(),
            StatusCode::kUnavailable);
}

TEST_F(JobControllerTest, DeleteOnlyWhenTerminal) {
  ASSERT_TRUE(controller_->Submit("123456789012", Spec("del"), "{}").ok());
  EXPECT_EQ(controller_->Delete("123456789012", "del").code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(controller_->Stop("123456789012", "del").ok());
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    launcher_.alive.clear();  // the agent exits after the stop
  }
  ASSERT_TRUE(WaitFor([&] { return Get("del").status == TrainingJobStatus::kStopped; }));
  ASSERT_TRUE(controller_->Delete("123456789012", "del").ok());
  EXPECT_EQ(store_->GetJob("123456789012", "del").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(controller_->Delete("123456789012", "del").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ty::control
