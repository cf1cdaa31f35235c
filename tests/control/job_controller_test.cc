// The controller service with a real SQLite store, a fake launcher and the
// real clock's loop: submission, agent reports, stop, attempt loss, restart
// re-adoption and shutdown.
#include "control/job_controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "telemetry/job_metrics_observer.h"
#include "testing/fake_launcher.h"
#include "testing/temp_dir.h"

namespace ty::control {
namespace {

using model::AgentReport;
using model::SecondaryStatus;
using model::TrainingJobStatus;

using launch::AttemptSignal;
using testing::FakeLauncher;
using Phase = launch::AttemptState::Phase;

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
    o.isolation = isolation_;
    // MetricDefinitions extraction is an observer now (telemetry/): registered as the server
    // registers it, so FinalMetricDataList keeps working through the seam.
    metrics_observer_ = std::make_unique<telemetry::JobMetricsObserver>(store_.get(), nullptr,
                                                                        SystemClock::Default());
    std::vector<JobObserver*> observers = {metrics_observer_.get()};
    if (extra_observer_ != nullptr) observers.push_back(extra_observer_);
    controller_ = std::make_unique<JobController>(o, store_.get(), &launcher_, &images_,
                                                  SystemClock::Default(), observers, events_);
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

  std::string isolation_ = "auto";
  testing::TempDir dir_{"ty-controller-"};
  FakeLauncher launcher_;
  launch::ImageCatalog images_{{}};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<telemetry::JobMetricsObserver> metrics_observer_;
  JobObserver* extra_observer_ = nullptr;
  JobEventSource* events_ = nullptr;
  std::unique_ptr<JobController> controller_;
};

// Records what the controller tells it; stops a job whose log says "STOP ME".
class RecordingObserver final : public JobObserver {
 public:
  void OnTransition(const model::JobRecord& before, const model::JobRecord& after,
                    JobActions&) override {
    std::lock_guard<std::mutex> lock(mu);
    transitions.push_back(std::string(model::Name(before.status)) + "/" +
                          model::Name(before.secondary) + "->" + model::Name(after.status) + "/" +
                          model::Name(after.secondary));
  }
  void OnLogLines(const model::JobRecord& job, std::span<const store::LogEvent> lines,
                  JobActions& actions) override {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& l : lines) {
      this->lines.push_back(l.message);
      if (l.message == "STOP ME") actions.Stop(job.arn, "stopped by an observer");
    }
  }
  void OnInstanceSamples(const model::JobRecord&, int host_index,
                         std::span<const model::InstanceSample> samples, JobActions&) override {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& s : samples) cpu.push_back({host_index, s.cpu.value_or(-1)});
  }
  void OnTick(TimePoint, JobActions&) override { ticks.fetch_add(1); }

  std::mutex mu;
  std::vector<std::string> transitions, lines;
  std::vector<std::pair<int, double>> cpu;
  std::atomic<int> ticks{0};
};

TEST_F(JobControllerTest, ObserversSeeTransitionsLinesSamplesAndTicksAndMayStopAJob) {
  RecordingObserver rec;
  controller_.reset();
  extra_observer_ = &rec;
  OpenAll();
  auto job = controller_->Submit("123456789012", Spec("watched"), "{}");
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  ASSERT_EQ(launcher_.configs.size(), 1u);
  const std::string token = launcher_.configs[0].token;
  auto logs = Report(*job, AgentReport::Type::kLog, 1);
  logs.stream = launcher_.configs[0].log_stream;
  logs.lines = {{1000, "hello"}};
  model::InstanceSample sample;
  sample.timestamp_ms = 1000;
  sample.cpu = 42;
  logs.samples = {sample};
  ASSERT_TRUE(controller_->HandleReport(token, logs).ok());
  // Samples alone ride on a log report without lines.
  auto quiet = Report(*job, AgentReport::Type::kLog, 2);
  quiet.stream = logs.stream;
  sample.cpu = 7;
  quiet.samples = {sample};
  ASSERT_TRUE(controller_->HandleReport(token, quiet).ok());
  EXPECT_TRUE(WaitFor([&] { return rec.ticks.load() > 0; }));
  auto stop = Report(*job, AgentReport::Type::kLog, 3);
  stop.stream = logs.stream;
  stop.lines = {{2000, "STOP ME"}};
  ASSERT_TRUE(controller_->HandleReport(token, stop).ok());
  EXPECT_EQ(Get("watched").status, TrainingJobStatus::kStopping);
  {
    std::lock_guard<std::mutex> lock(rec.mu);
    EXPECT_EQ(rec.lines, (std::vector<std::string>{"hello", "STOP ME"}));
    EXPECT_EQ(rec.cpu, (std::vector<std::pair<int, double>>{{1, 42}, {1, 7}}));
    ASSERT_FALSE(rec.transitions.empty());
    EXPECT_EQ(rec.transitions.front(), "InProgress/Starting->InProgress/Starting");
    EXPECT_EQ(rec.transitions.back().substr(rec.transitions.back().find("->")),
              "->Stopping/Stopping");
  }
  // `rec` goes before the fixture's controller, whose shutdown still notifies it (the stopping
  // job fails): the controller goes first.
  controller_.reset();
}

// Governance's seam: an observer names a job's status message and creates a job (a clone) from
// inside a callback; the new job's tags are stored before its first transition is observed.
class CloningObserver final : public JobObserver {
 public:
  // The fixture's store, reopened with the controller.
  explicit CloningObserver(const std::unique_ptr<store::Store>& store) : store_(store) {}
  void OnTransition(const model::JobRecord&, const model::JobRecord& after,
                    JobActions& actions) override {
    if (after.spec.name == "orig" && !cloned_) {
      cloned_ = true;
      model::JobSpec spec = after.spec;
      spec.name = "orig-r1";
      actions.SetStatusMessage(after.arn, "cloned by a policy");
      actions.Create(after.account, spec, R"({"TrainingJobName":"orig-r1"})", {{"origin", "orig"}});
      actions.Create(after.account, spec, "{}", {});  // a taken name: refused, logged
    } else if (after.spec.name == "orig-r1" && clone_tags_.empty()) {
      auto tags = store_->GetTags(after.arn);
      if (tags.ok()) {
        for (const auto& t : *tags) clone_tags_ += t.key + "=" + t.value;
      }
      // Messages are carried out before creations (and later phases may replace it).
      auto orig = store_->GetJob(after.account, "orig");
      if (orig.ok() && !orig->transitions.empty()) orig_message_ = orig->transitions.back().message;
    }
  }
  std::string clone_tags() const { return clone_tags_; }
  std::string orig_message() const { return orig_message_; }

 private:
  const std::unique_ptr<store::Store>& store_;
  bool cloned_ = false;
  std::string clone_tags_;    // as seen at the clone's first transition
  std::string orig_message_;  // the original's status message then
};

TEST_F(JobControllerTest, ObserversMayCreateJobsAndSetStatusMessages) {
  CloningObserver cloner(store_);
  controller_.reset();
  extra_observer_ = &cloner;
  OpenAll();
  ASSERT_TRUE(controller_->Submit("123456789012", Spec("orig"), "{}").ok());
  model::JobRecord clone = Get("orig-r1");
  EXPECT_EQ(clone.status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(clone.request_json, R"({"TrainingJobName":"orig-r1"})");
  controller_.reset();  // before `cloner`, which it notifies while shutting down
  EXPECT_EQ(cloner.clone_tags(), "origin=orig");
  EXPECT_EQ(cloner.orig_message(), "cloned by a policy");
}

// One outbox event per call, naming the state and the tags it was given.
class FakeEventSource final : public JobEventSource {
 public:
  std::vector<store::OutboxEvent> StateChangeEvents(const model::JobRecord& job,
                                                    const std::vector<store::Tag>& tags,
                                                    TimePoint now) override {
    std::string text = std::string(model::Name(job.status)) + "/" + model::Name(job.secondary);
    for (const auto& t : tags) text += " " + t.key + "=" + t.value;
    return {{0, job.account, job.arn, text, ToEpochMillis(now)}};
  }
  void Committed() override { committed.fetch_add(1); }
  std::atomic<int> committed{0};
};

TEST_F(JobControllerTest, StoresAnEventWithTheJobsCreationAndEachChangeOfItsStatuses) {
  FakeEventSource source;
  controller_.reset();
  events_ = &source;
  OpenAll();
  auto job = controller_->Submit("123456789012", Spec("evented"), "{}", {{"team", "ml"}});
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  auto tags = store_->GetTags(job->arn);
  ASSERT_TRUE(tags.ok());
  ASSERT_EQ(tags->size(), 1u);  // stored with the job
  const std::string token = launcher_.configs[0].token;
  auto phase = Report(*job, AgentReport::Type::kPhase, 1);
  phase.phase = SecondaryStatus::kTraining;
  ASSERT_TRUE(controller_->HandleReport(token, phase).ok());
  auto logs = Report(*job, AgentReport::Type::kLog, 2);  // no change of status: no event
  logs.stream = launcher_.configs[0].log_stream;
  logs.lines = {{1000, "hello"}};
  ASSERT_TRUE(controller_->HandleReport(token, logs).ok());
  ASSERT_TRUE(store_->SetTags(job->arn, {{"owner", "ana"}}).ok());
  auto exit = Report(*job, AgentReport::Type::kExit, 3);
  exit.outcome = AgentReport::Outcome::kCompleted;
  ASSERT_TRUE(controller_->HandleReport(token, exit).ok());
  auto outbox = store_->ReadOutbox(0, 100);
  ASSERT_TRUE(outbox.ok());
  std::vector<std::string> got;
  for (const auto& e : *outbox) {
    EXPECT_EQ(e.ordering_key, job->arn);
    got.push_back(e.event_json);
  }
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(got.front(), "InProgress/Starting team=ml");
  EXPECT_EQ(got.back(), "Completed/Completed team=ml owner=ana");  // tags as they are now
  EXPECT_NE(std::find(got.begin(), got.end(), "InProgress/Training team=ml"), got.end());
  for (size_t i = 1; i < got.size(); ++i) EXPECT_NE(got[i], got[i - 1]);  // only on a change
  EXPECT_EQ(source.committed.load(), static_cast<int>(got.size()));
  // A restarted controller reports nothing again for jobs it finds as they were.
  controller_.reset();
  OpenAll();
  EXPECT_EQ(store_->ReadOutbox(0, 100)->size(), got.size());
}

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
  EXPECT_EQ(launcher_.signals[0].signal, AttemptSignal::kStop);
  EXPECT_EQ(launcher_.signals[0].handle, Get("stop").attempt_handle);
  auto exit = Report(*job, AgentReport::Type::kExit, 1);
  exit.outcome = AgentReport::Outcome::kStopped;
  ASSERT_TRUE(controller_->HandleReport(launcher_.configs[0].token, exit).ok());
  EXPECT_EQ(Get("stop").status, TrainingJobStatus::kStopped);
  EXPECT_EQ(Get("stop").secondary, SecondaryStatus::kStopped);
  Status again = controller_->Stop("123456789012", "stop");
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(again.message(),
            "The request was rejected because the training job is in status Stopped.");
  EXPECT_EQ(controller_->Stop("123456789012", "nope").code(), StatusCode::kNotFound);
}

TEST_F(JobControllerTest, AnAgentThatVanishesFailsTheJob) {
  auto job = controller_->Submit("123456789012", Spec("lost"), "{}");
  ASSERT_TRUE(job.ok());
  launcher_.EndAll();
  ASSERT_TRUE(WaitFor([&] { return Get("lost").status == TrainingJobStatus::kFailed; }));
  EXPECT_NE(Get("lost").failure_reason.find("InternalServerError: the attempt ended without a "
                                            "result from algo-1"),
            std::string::npos)
      << Get("lost").failure_reason;
  // Once nothing of it runs, the attempt and the job's resources are released.
  EXPECT_TRUE(WaitFor([&] { return launcher_.JobReleased(job->arn); }));
  std::lock_guard<std::mutex> lock(launcher_.mu);
  EXPECT_EQ(launcher_.released_attempts, std::vector<std::string>{"fake:1"});
}

TEST_F(JobControllerTest, UnknownImageFailsWithClientError) {
  model::JobSpec spec = Spec("img");
  spec.training_image = "example.com/unknown:1";
  auto job = controller_->Submit("123456789012", spec, "{}");
  ASSERT_TRUE(job.ok());
  model::JobRecord j = Get("img");
  EXPECT_EQ(j.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(j.failure_reason.rfind("ClientError: the training image 'example.com/unknown:1'", 0),
            0u)
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
    r.attempt_handle = std::string(name) == "live" ? "fake:1" : "fake:2";
    r.instances_exited = {false};
    ASSERT_TRUE(store_->UpdateJob(r).ok());
  }
  launcher_.SetState("fake:1", Phase::kRunning);  // "fake:2" stays ended (killed)
  OpenAll();
  EXPECT_EQ(Get("live").status, TrainingJobStatus::kInProgress);
  model::JobRecord d = Get("dead");
  EXPECT_EQ(d.status, TrainingJobStatus::kFailed);
  EXPECT_NE(d.failure_reason.find("restarted"), std::string::npos) << d.failure_reason;
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    EXPECT_EQ(launcher_.swept_keep_attempts, std::vector<std::string>{"fake:1"});
    EXPECT_EQ(launcher_.swept_keep_jobs, std::vector<std::string>{live->arn});
  }
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
  EXPECT_EQ(launcher_.SignalsTo("fake:1", 0), std::vector<AttemptSignal>{AttemptSignal::kKill});
  EXPECT_EQ(controller_->Submit("123456789012", Spec("late"), "{}").status().code(),
            StatusCode::kUnavailable);
}

TEST_F(JobControllerTest, DeleteOnlyWhenTerminal) {
  ASSERT_TRUE(controller_->Submit("123456789012", Spec("del"), "{}").ok());
  EXPECT_EQ(controller_->Delete("123456789012", "del").code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(controller_->Stop("123456789012", "del").ok());
  launcher_.EndAll();  // the agent exits after the stop
  ASSERT_TRUE(WaitFor([&] { return Get("del").status == TrainingJobStatus::kStopped; }));
  ASSERT_TRUE(controller_->Delete("123456789012", "del").ok());
  EXPECT_EQ(store_->GetJob("123456789012", "del").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(controller_->Delete("123456789012", "del").code(), StatusCode::kNotFound);
}

// Multi-node jobs: one agent per instance, the job as one unit.
class MultiNodeControllerTest : public JobControllerTest {
 protected:
  model::JobSpec MultiSpec(const std::string& name, int count) {
    model::JobSpec s = Spec(name);
    s.instance_count = count;
    return s;
  }
  AgentReport Exit(const model::JobRecord& job, int host, AgentReport::Outcome outcome,
                   int64_t seq) {
    AgentReport r = Report(job, AgentReport::Type::kExit, seq);
    r.host_index = host;
    r.outcome = outcome;
    return r;
  }
  // The attempt is launched (at once) and its handle stored.
  void WaitForLaunch(size_t agents) {
    ASSERT_TRUE(WaitFor([&] {
      std::lock_guard<std::mutex> lock(launcher_.mu);
      return launcher_.configs.size() >= agents;
    }));
    ASSERT_TRUE(WaitFor([&] { return !Get(name_).attempt_handle.empty(); }));
  }
  std::string name_;
  std::vector<AttemptSignal> SignalsTo(int instance) {
    return launcher_.SignalsTo(
        Get(name_).attempt_handle.empty() ? launcher_.HandleOf(name_) : Get(name_).attempt_handle,
        instance);
  }
};

TEST_F(MultiNodeControllerTest, LaunchesOneAgentPerInstanceWithItsOwnAddressAndStream) {
  auto job = controller_->Submit("123456789012", MultiSpec("ddp", 3), "{}");
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  name_ = "ddp";
  WaitForLaunch(3);
  ASSERT_EQ(launcher_.configs.size(), 3u);
  std::set<std::string> streams, dirs;
  for (int i = 0; i < 3; ++i) {
    const auto& cfg = launcher_.configs[static_cast<size_t>(i)];
    EXPECT_EQ(cfg.host_index, i + 1);
    EXPECT_EQ(cfg.hosts, (std::vector<std::string>{"algo-1", "algo-2", "algo-3"}));
    EXPECT_EQ(cfg.log_stream.rfind("ddp/algo-" + std::to_string(i + 1) + "-", 0), 0u)
        << cfg.log_stream;
    EXPECT_EQ(cfg.instance_dir.substr(cfg.instance_dir.rfind('/')),
              "/algo-" + std::to_string(i + 1));
    streams.insert(cfg.log_stream);
    dirs.insert(cfg.instance_dir.substr(0, cfg.instance_dir.rfind('/')));
  }
  EXPECT_EQ(streams.size(), 3u);
  EXPECT_EQ(dirs.size(), 1u);  // siblings under one attempt directory
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    ASSERT_EQ(launcher_.plans.size(), 1u);  // one attempt, all instances at once
    EXPECT_EQ(launcher_.plans[0].network.count, 3);
    EXPECT_EQ(launcher_.plans[0].attempt, 1);
  }
  // The attempt's handle is persisted, so a restarted server can re-adopt it.
  EXPECT_EQ(Get("ddp").attempt_handle, "fake:1");
  EXPECT_EQ(Get("ddp").instances_exited, (std::vector<bool>{false, false, false}));
}

TEST_F(MultiNodeControllerTest, CompletesOnlyWhenEveryInstanceIsDoneAndReleasesTheNetwork) {
  auto job = controller_->Submit("123456789012", MultiSpec("all", 2), "{}");
  ASSERT_TRUE(job.ok());
  name_ = "all";
  WaitForLaunch(2);
  const std::string token = launcher_.configs[0].token;
  ASSERT_TRUE(
      controller_->HandleReport(token, Exit(*job, 2, AgentReport::Outcome::kCompleted, 1)).ok());
  EXPECT_EQ(Get("all").status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(Get("all").instances_exited, (std::vector<bool>{false, true}));
  AgentReport leader = Exit(*job, 1, AgentReport::Outcome::kCompleted, 1);
  leader.model_artifacts = "file:///out/all/output/model.tar.gz";
  ASSERT_TRUE(controller_->HandleReport(token, leader).ok());
  model::JobRecord done = Get("all");
  EXPECT_EQ(done.status, TrainingJobStatus::kCompleted);
  EXPECT_EQ(done.model_artifacts, "file:///out/all/output/model.tar.gz");
  // The agents are still exiting: the job's resources stay until they are gone. Ticks go by
  // (the fake counts its polls) without a release.
  int polls = 0;
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    polls = launcher_.polls;
  }
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    return launcher_.polls >= polls + 3;
  }));
  EXPECT_FALSE(launcher_.JobReleased(job->arn));
  launcher_.EndAll();
  EXPECT_TRUE(WaitFor([&] { return launcher_.JobReleased(job->arn); }));
}

TEST_F(MultiNodeControllerTest, OneFailingInstanceFailsTheJobAndAbortsTheOthers) {
  auto job = controller_->Submit("123456789012", MultiSpec("bad", 3), "{}");
  ASSERT_TRUE(job.ok());
  name_ = "bad";
  WaitForLaunch(3);
  const std::string token = launcher_.configs[0].token;
  AgentReport failed = Exit(*job, 2, AgentReport::Outcome::kFailed, 1);
  failed.failure_reason = "AlgorithmError: Exit Code: 3";
  ASSERT_TRUE(controller_->HandleReport(token, failed).ok());
  model::JobRecord r = Get("bad");
  EXPECT_EQ(r.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(r.failure_reason, "AlgorithmError: Exit Code: 3 (on algo-2)");
  // algo-1 and algo-3 are told to stop without uploading.
  EXPECT_EQ(SignalsTo(0), std::vector<AttemptSignal>{AttemptSignal::kAbort});
  EXPECT_EQ(SignalsTo(2), std::vector<AttemptSignal>{AttemptSignal::kAbort});
  EXPECT_TRUE(SignalsTo(1).empty());
}

TEST_F(MultiNodeControllerTest, StopAndInterruptionReachEveryInstance) {
  auto job = controller_->Submit("123456789012", MultiSpec("stop", 2), "{}");
  ASSERT_TRUE(job.ok());
  name_ = "stop";
  WaitForLaunch(2);
  const std::string token = launcher_.configs[0].token;
  ASSERT_TRUE(controller_->Stop("123456789012", "stop").ok());
  EXPECT_EQ(SignalsTo(0), std::vector<AttemptSignal>{AttemptSignal::kStop});
  EXPECT_EQ(SignalsTo(1), std::vector<AttemptSignal>{AttemptSignal::kStop});
  ASSERT_TRUE(
      controller_->HandleReport(token, Exit(*job, 2, AgentReport::Outcome::kStopped, 1)).ok());
  EXPECT_EQ(Get("stop").status, TrainingJobStatus::kStopping);
  ASSERT_TRUE(
      controller_->HandleReport(token, Exit(*job, 1, AgentReport::Outcome::kStopped, 1)).ok());
  EXPECT_EQ(Get("stop").status, TrainingJobStatus::kStopped);
}

TEST_F(MultiNodeControllerTest, AVanishedInstanceTakesTheAttemptDown) {
  auto job = controller_->Submit("123456789012", MultiSpec("lost", 2), "{}");
  ASSERT_TRUE(job.ok());
  name_ = "lost";
  WaitForLaunch(2);
  launcher_.SetAlive("fake:1", 1, false);  // algo-2's agent dies without a report
  ASSERT_TRUE(WaitFor([&] { return Get("lost").status == TrainingJobStatus::kFailed; }));
  EXPECT_NE(Get("lost").failure_reason.find("instance algo-2: the instance's agent exited"),
            std::string::npos)
      << Get("lost").failure_reason;
  EXPECT_EQ(launcher_.SignalsTo("fake:1", 0), std::vector<AttemptSignal>{AttemptSignal::kKill});
}

TEST_F(MultiNodeControllerTest, RefusesMoreInstancesThanTheMachineHosts) {
  auto job = controller_->Submit("123456789012", MultiSpec("huge", 5), "{}");
  ASSERT_EQ(job.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(job.status().message().find("capacity"), std::string::npos);
  EXPECT_TRUE(launcher_.configs.empty());
}

// The launcher finds out after LaunchAttempt that the attempt cannot start (LocalLauncher: the
// network could not be made): kFailed, a platform fault with its reason.
TEST_F(MultiNodeControllerTest, AnAttemptThatCannotStartFailsTheJobClearly) {
  launcher_.initial = {
      Phase::kFailed, "could not set up the instances' network: no networks", {}, false};
  auto job = controller_->Submit("123456789012", MultiSpec("nonet", 2), "{}");
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(WaitFor([&] { return Get("nonet").status == TrainingJobStatus::kFailed; }));
  model::JobRecord r = Get("nonet");
  EXPECT_EQ(r.failure_reason,
            "InternalServerError: could not set up the instances' network: no networks");
  EXPECT_TRUE(WaitFor([&] { return launcher_.JobReleased(job->arn); }));
}

// LaunchAttempt itself refuses: nothing was launched, the job fails with the reason.
TEST_F(MultiNodeControllerTest, ALaunchTheLauncherRefusesFailsTheJob) {
  launcher_.fail = true;
  auto job = controller_->Submit("123456789012", MultiSpec("refused", 2), "{}");
  ASSERT_TRUE(job.ok());
  model::JobRecord r = Get("refused");
  EXPECT_EQ(r.status, TrainingJobStatus::kFailed);
  EXPECT_EQ(r.failure_reason,
            "InternalServerError: could not launch the instances: no capacity in this test");
  EXPECT_EQ(launcher_.Capacity("ml.m5.large").in_use, 0);  // its placement was given back
}

TEST_F(MultiNodeControllerTest, RestartReadoptsEveryInstance) {
  auto job = controller_->Submit("123456789012", MultiSpec("keep", 2), "{}");
  ASSERT_TRUE(job.ok());
  name_ = "keep";
  WaitForLaunch(2);
  const std::string token = launcher_.configs[0].token;
  model::JobRecord before = Get("keep");
  controller_.reset();  // graceful shutdown fails the job: restore what a crash leaves
  before.status = TrainingJobStatus::kInProgress;
  before.instances_exited = {false, true};  // algo-2 had reported its exit
  ASSERT_TRUE(store_->UpdateJob(before).ok());
  launcher_.SetState("fake:1", Phase::kRunning);
  launcher_.SetAlive("fake:1", 1, false);  // and is gone: not a loss
  OpenAll();
  EXPECT_EQ(Get("keep").status, TrainingJobStatus::kInProgress);
  EXPECT_EQ(launcher_.Capacity("ml.m5.large").in_use, 2);  // adopted
  {
    std::lock_guard<std::mutex> lock(launcher_.mu);
    EXPECT_EQ(launcher_.swept_keep_jobs, std::vector<std::string>{job->arn});
  }
  ASSERT_TRUE(
      controller_->HandleReport(token, Exit(*job, 1, AgentReport::Outcome::kCompleted, 1)).ok());
  EXPECT_EQ(Get("keep").status, TrainingJobStatus::kCompleted);
}

// Stopped while the launcher still sets the attempt up (kStarting: the network is being made):
// the stop reaches the launcher, which ends the attempt; the job ends Stopped, nothing billed.
TEST_F(MultiNodeControllerTest, AStopWhileTheAttemptStartsEndsStoppedAndReleasesIt) {
  launcher_.initial = {Phase::kStarting, "", {}, false};
  auto job = controller_->Submit("123456789012", MultiSpec("early", 2), "{}");
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(controller_->Stop("123456789012", "early").ok());
  EXPECT_EQ(Get("early").status, TrainingJobStatus::kStopping);
  EXPECT_EQ(launcher_.SignalsTo("fake:1", 0), std::vector<AttemptSignal>{AttemptSignal::kStop});
  ASSERT_TRUE(WaitFor([&] { return Get("early").status == TrainingJobStatus::kStopped; }));
  EXPECT_EQ(Get("early").secondary, SecondaryStatus::kStopped);
  EXPECT_FALSE(Get("early").training_start_time.has_value());  // nothing ran
  EXPECT_TRUE(WaitFor([&] { return launcher_.JobReleased(job->arn); }));
  EXPECT_EQ(launcher_.Capacity("ml.m5.large").in_use, 0);
}

TEST_F(MultiNodeControllerTest, WithoutIsolationMultiNodeJobsAreRefusedAtSubmit) {
  controller_.reset();
  isolation_ = "none";
  OpenAll();
  auto job = controller_->Submit("123456789012", MultiSpec("bare", 2), "{}");
  ASSERT_EQ(job.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("isolation: none"), std::string::npos)
      << job.status().message();
  EXPECT_TRUE(controller_->Submit("123456789012", Spec("single"), "{}").ok());
}

TEST_F(MultiNodeControllerTest, EveryJobAsksForItsNetworkWithWhatItMayReach) {
  // A single-instance job gets a network too; the request carries isolation and the sandbox.
  model::JobSpec single = Spec("one");
  ASSERT_TRUE(controller_->Submit("123456789012", single, "{}").ok());
  name_ = "one";
  WaitForLaunch(1);
  model::JobSpec isolated = MultiSpec("iso", 2);
  isolated.network_isolation = true;
  ASSERT_TRUE(controller_->Submit("123456789012", isolated, "{}").ok());
  name_ = "iso";
  WaitForLaunch(3);
  std::lock_guard<std::mutex> lock(launcher_.mu);
  ASSERT_EQ(launcher_.plans.size(), 2u);
  EXPECT_EQ(launcher_.plans[0].network.count, 1);
  EXPECT_FALSE(launcher_.plans[0].network.isolated);
  EXPECT_TRUE(launcher_.plans[0].network.sandboxed);
  EXPECT_FALSE(launcher_.plans[0].network.store_access);  // no store configured
  EXPECT_EQ(launcher_.plans[1].network.count, 2);
  EXPECT_TRUE(launcher_.plans[1].network.isolated);
  EXPECT_EQ(launcher_.plans[1].job_arn, launcher_.plans[1].instances[1].job_arn);
}

TEST_F(MultiNodeControllerTest, WithoutIsolationNetworkIsolationIsRefusedAtSubmit) {
  controller_.reset();
  isolation_ = "none";
  OpenAll();
  model::JobSpec spec = Spec("iso");
  spec.network_isolation = true;
  auto job = controller_->Submit("123456789012", spec, "{}");
  ASSERT_EQ(job.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("EnableNetworkIsolation"), std::string::npos)
      << job.status().message();
}

}  // namespace
}  // namespace ty::control
