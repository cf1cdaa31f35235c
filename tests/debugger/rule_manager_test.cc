// RuleManager over fake evaluations: the status flow, Stopping/Stopped, the spot hold-back,
// restart, actions confined to the account, the bounded pool, and the end marker.
#include "debugger/rule_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/mutex.h"
#include "storage/uri.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

using model::JobRecord;
using model::RuleEvaluation;
using nlohmann::json;

// What the fake rules read: steps 0..available-1 are written; each evaluation records the steps
// it evaluated, so a step evaluated twice is seen.
struct FakeTrial {
  std::atomic<int64_t> available{0};
  Mutex mu;
  std::multiset<std::pair<std::string, int64_t>> evaluated TY_GUARDED_BY(mu);
  std::vector<AdvanceLimits> limits TY_GUARDED_BY(mu);
  int running TY_GUARDED_BY(mu) = 0;
  int max_running TY_GUARDED_BY(mu) = 0;
  std::atomic<int> made{0};
};

// RuleParameters of the fake: fire_at (a step), hang ("True": never concludes), slow_ms.
class FakeEvaluation final : public Evaluation {
 public:
  FakeEvaluation(FakeTrial* trial, const model::RuleSpec& rule)
      : trial_(trial), name_(rule.configuration_name) {
    auto get = [&](const char* k) {
      auto it = rule.parameters.find(k);
      return it == rule.parameters.end() ? std::string() : it->second;
    };
    if (!get("fire_at").empty()) fire_at_ = std::stoll(get("fire_at"));
    hang_ = get("hang") == "True";
    if (!get("slow_ms").empty()) slow_ms_ = std::stoi(get("slow_ms"));
  }
  EvaluationResult Advance(const AdvanceLimits& limits) override {
    {
      MutexLock lock(&trial_->mu);
      trial_->limits.push_back(limits);
      trial_->max_running = std::max(trial_->max_running, ++trial_->running);
    }
    if (slow_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms_));
    int64_t last = trial_->available.load() - 1;
    if (limits.through_step) last = std::min(last, *limits.through_step);
    while (result_.status == RuleStatus::kInProgress && next_ <= last) {
      {
        MutexLock lock(&trial_->mu);
        trial_->evaluated.insert({name_, next_});
      }
      ++result_.steps_evaluated;
      result_.last_step = next_;
      if (fire_at_ && next_ == *fire_at_) {
        result_.status = RuleStatus::kIssuesFound;
        result_.fired_step = next_;
        result_.details = "fired at step " + std::to_string(next_);
        result_.findings = {{"value", 0.5}};
      }
      ++next_;
    }
    if (result_.status == RuleStatus::kInProgress && limits.training_ended && !hang_ &&
        next_ >= trial_->available.load()) {
      result_.status = RuleStatus::kNoIssuesFound;
      result_.details = "no issues in " + std::to_string(result_.steps_evaluated) + " steps";
    }
    {
      MutexLock lock(&trial_->mu);
      --trial_->running;
    }
    return result_;
  }

 private:
  FakeTrial* trial_;
  std::string name_;
  std::optional<int64_t> fire_at_;
  bool hang_ = false;
  int slow_ms_ = 0;
  int64_t next_ = 0;
  EvaluationResult result_;
};

class FakeActions final : public control::JobActions {
 public:
  void RecordFinalMetrics(const std::string&, const std::vector<model::FinalMetric>&) override {}
  void Stop(const std::string& arn, const std::string& why) override {
    stops.emplace_back(arn, why);
  }
  void SetStatusMessage(const std::string& arn, const std::string& message) override {
    messages.emplace_back(arn, message);
  }
  void Create(const std::string&, model::JobSpec, std::string, std::vector<store::Tag>) override {}
  std::vector<std::pair<std::string, std::string>> stops;
  std::vector<std::pair<std::string, std::string>> messages;
};

model::RuleSpec Rule(const std::string& name, std::map<std::string, std::string> params = {}) {
  model::RuleSpec r;
  r.configuration_name = name;
  r.evaluator_image =
      "895741380848.dkr.ecr.us-west-2.amazonaws.com/sagemaker-debugger-rules:latest";
  r.rule = "VanishingGradient";
  r.parameters = std::move(params);
  r.parameters["rule_to_invoke"] = r.rule;
  return r;
}

class RuleManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.Sub("data"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    std::filesystem::create_directories(root() + "/other");
    storage_ = std::make_unique<RootsAccountStorage>(
        std::vector<std::string>{root()},
        std::map<std::string, std::vector<std::string>>{{"222222222222", {root() + "/other"}}},
        std::nullopt);
    options_.threads = 2;
    options_.poll_interval = std::chrono::milliseconds(1);
    options_.stop_grace = std::chrono::seconds(60);
    options_.scratch_dir = dir_.Sub("scratch");
  }
  void TearDown() override {
    if (manager_) manager_->Shutdown();
  }

  std::string root() { return std::filesystem::canonical(dir_.path()).string() + "/root"; }
  std::string out_uri() { return storage::FileUriFromPath(root() + "/out"); }

  void StartManager(FakeTrial* trial, const EvaluationFactories* custom = nullptr) {
    EvaluationFactories factories;
    if (custom != nullptr) {
      factories = *custom;
    } else {
      factories.debug = [trial](const model::RuleSpec& r,
                                const EvaluationContext&) -> Result<std::unique_ptr<Evaluation>> {
        ++trial->made;
        return std::unique_ptr<Evaluation>(new FakeEvaluation(trial, r));
      };
      factories.profiler = factories.debug;
    }
    RuleEventSink sink;
    sink.make = [](const JobRecord& job, const std::vector<RuleEvaluation>& rules, TimePoint) {
      json statuses = json::array();
      for (const auto& r : rules) statuses.push_back({r.configuration_name, r.status});
      store::OutboxEvent e;
      e.account = job.account;
      e.ordering_key = job.arn;
      e.event_json = json{{"rules", statuses}}.dump();
      return std::vector<store::OutboxEvent>{e};
    };
    manager_ = std::make_unique<RuleManager>(options_, store_.get(), storage_.get(), &clock_, sink,
                                             factories);
    ASSERT_TRUE(manager_->Start().ok());
  }

  JobRecord Job(const std::string& name, std::vector<model::RuleSpec> rules,
                const std::string& account = "111111111111") {
    JobRecord r;
    r.account = account;
    r.arn = model::TrainingJobArn("us-west-2", account, name);
    r.spec.name = name;
    r.spec.output_path = out_uri();
    r.spec.debug_hook = model::DebugHookSpec{};
    r.spec.debug_hook->s3_output_path = out_uri();
    r.spec.debug_rules = std::move(rules);
    r.request_json = R"({"RoleArn": "arn:aws:iam::111111111111:role/r"})";
    r.creation_time = clock_.Now();
    r.last_modified_time = clock_.Now();
    r.status = model::TrainingJobStatus::kInProgress;
    r.secondary = model::SecondaryStatus::kStarting;
    return r;
  }

  void Insert(JobRecord* job) { ASSERT_TRUE(store_->InsertJob(job).ok()); }

  // The job moves on (a transition the controller would report).
  void Transition(const JobRecord& before, JobRecord* after, model::TrainingJobStatus status,
                  model::SecondaryStatus secondary) {
    after->status = status;
    after->secondary = secondary;
    ASSERT_TRUE(store_->UpdateJob(*after).ok());
    manager_->OnTransition(before, *after, actions_);
  }
  void Start(JobRecord* job) {
    JobRecord before = *job;
    Transition(before, job, model::TrainingJobStatus::kInProgress,
               model::SecondaryStatus::kTraining);
  }
  void End(JobRecord* job, model::TrainingJobStatus status) {
    JobRecord before = *job;
    Transition(before, job, status,
               status == model::TrainingJobStatus::kCompleted ? model::SecondaryStatus::kCompleted
                                                              : model::SecondaryStatus::kStopped);
  }

  RuleEvaluation Row(const JobRecord& job, const std::string& name) {
    auto rows = store_->RuleEvaluations(job.arn);
    EXPECT_TRUE(rows.ok());
    for (const auto& r : *rows) {
      if (r.configuration_name == name) return r;
    }
    ADD_FAILURE() << "no row " << name;
    return {};
  }

  // Ticks (as the controller's loop does) until `pred` holds; false after 20 s.
  bool TickUntil(const std::function<bool()>& pred) {
    for (int i = 0; i < 20000; ++i) {
      manager_->OnTick(clock_.Now(), actions_);
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  bool StatusBecomes(const JobRecord& job, const std::string& name, const std::string& status) {
    bool ok = TickUntil([&] { return Row(job, name).status == status; });
    if (!ok) {
      RuleEvaluation r = Row(job, name);
      ADD_FAILURE() << name << " is " << r.status << ": " << r.details;
    }
    return ok;
  }

  int OutboxCount() {
    auto events = store_->ReadOutbox(0, 1000);
    return events.ok() ? static_cast<int>(events->size()) : -1;
  }

  testing::TempDir dir_{"ty_rule_manager_"};
  testing::FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<RootsAccountStorage> storage_;
  RuleManagerOptions options_;
  std::unique_ptr<RuleManager> manager_;
  FakeActions actions_;
};

TEST_F(RuleManagerTest, StatusFlowFromCreationToConclusion) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job = Job("flow", {Rule("Fires", {{"fire_at", "3"}}), Rule("Quiet")});
  Insert(&job);
  Start(&job);
  // Both InProgress from the first transition, waiting for data.
  EXPECT_EQ(Row(job, "Fires").status, "InProgress");
  EXPECT_EQ(Row(job, "Quiet").status, "InProgress");
  EXPECT_TRUE(Row(job, "Fires")
                  .evaluation_arn.starts_with(
                      "arn:aws:sagemaker:us-west-2:111111111111:processing-job/flow-fires-"));
  trial.available = 10;
  ASSERT_TRUE(StatusBecomes(job, "Fires", "IssuesFound"));
  RuleEvaluation fired = Row(job, "Fires");
  EXPECT_EQ(fired.fired_step, 3);
  EXPECT_EQ(fired.details, "fired at step 3");
  EXPECT_EQ(json::parse(fired.findings_json)["value"], 0.5);
  EXPECT_TRUE(fired.end_time.has_value());
  // The quiet rule evaluates what is there and waits for more.
  ASSERT_TRUE(TickUntil([&] { return Row(job, "Quiet").steps_evaluated == 10; }));
  EXPECT_EQ(Row(job, "Quiet").status, "InProgress");

  End(&job, model::TrainingJobStatus::kCompleted);
  ASSERT_TRUE(StatusBecomes(job, "Quiet", "NoIssuesFound"));
  EXPECT_EQ(Row(job, "Quiet").steps_evaluated, 10);
  EXPECT_EQ(Row(job, "Fires").status, "IssuesFound");  // stays
  // The end marker is in the debug output, and the ended evaluations were told after it.
  EXPECT_TRUE(std::filesystem::exists(root() + "/out/flow/debug-output/training_job_end.ts"));
  // No step evaluated twice.
  MutexLock lock(&trial.mu);
  for (const auto& e : trial.evaluated) EXPECT_EQ(trial.evaluated.count(e), 1u) << e.second;
  // Each status change wrote one event: Fires IssuesFound, Quiet NoIssuesFound (the first
  // InProgress rows are inserted without one: DescribeTrainingJob already showed them).
  auto events = store_->ReadOutbox(0, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ(json::parse(events->back().event_json)["rules"],
            json::parse(R"([["Fires","IssuesFound"],["Quiet","NoIssuesFound"]])"));
}

TEST_F(RuleManagerTest, FactoryRefusalIsTheRulesErrorAndTheOtherRulesGoOn) {
  FakeTrial trial;
  EvaluationFactories f;
  f.debug = [&trial](const model::RuleSpec& r,
                     const EvaluationContext& ctx) -> Result<std::unique_ptr<Evaluation>> {
    if (r.configuration_name == "Unknown") {
      return FailedPrecondition("debugger rule NoSuchRule is not implemented yet");
    }
    EXPECT_TRUE(ctx.trial_uri.ends_with("/out/refuse/debug-output/")) << ctx.trial_uri;
    return std::unique_ptr<Evaluation>(new FakeEvaluation(&trial, r));
  };
  StartManager(&trial, &f);
  JobRecord job = Job("refuse", {Rule("Unknown"), Rule("Quiet")});
  Insert(&job);
  Start(&job);
  ASSERT_TRUE(StatusBecomes(job, "Unknown", "Error"));
  EXPECT_EQ(Row(job, "Unknown").details, "debugger rule NoSuchRule is not implemented yet");
  EXPECT_EQ(Row(job, "Quiet").status, "InProgress");
  End(&job, model::TrainingJobStatus::kCompleted);
  ASSERT_TRUE(StatusBecomes(job, "Quiet", "NoIssuesFound"));
}

TEST_F(RuleManagerTest, StoppedJobStopsItsRulesAfterEvaluatingWhatIsThere) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job = Job("stopme", {Rule("Ends"), Rule("Hangs", {{"hang", "True"}}),
                                 Rule("Late", {{"fire_at", "7"}})});
  Insert(&job);
  Start(&job);
  trial.available = 5;
  ASSERT_TRUE(TickUntil([&] { return Row(job, "Ends").steps_evaluated == 5; }));
  trial.available = 8;  // the last steps land as the job stops
  End(&job, model::TrainingJobStatus::kStopped);
  EXPECT_EQ(Row(job, "Hangs").status, "Stopping");
  EXPECT_EQ(Row(job, "Ends").status == "Stopping" || Row(job, "Ends").status == "Stopped", true);
  // What is there is evaluated: one ends quietly (Stopped), one fires (IssuesFound).
  ASSERT_TRUE(StatusBecomes(job, "Ends", "Stopped"));
  EXPECT_EQ(Row(job, "Ends").steps_evaluated, 8);
  ASSERT_TRUE(StatusBecomes(job, "Late", "IssuesFound"));
  // The one that never concludes is Stopping until the grace period is over.
  ASSERT_TRUE(TickUntil([&] { return Row(job, "Hangs").steps_evaluated == 8; }));
  EXPECT_EQ(Row(job, "Hangs").status, "Stopping");
  clock_.Advance(std::chrono::seconds(61));
  ASSERT_TRUE(StatusBecomes(job, "Hangs", "Stopped"));
  EXPECT_NE(Row(job, "Hangs").details.find("Stopped"), std::string::npos);
  EXPECT_TRUE(TickUntil([&] { return manager_->ActiveEvaluations() == 0; }));
}

TEST_F(RuleManagerTest, SpotJobHoldsBackStepsNoCheckpointCovers) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job = Job("spot", {Rule("Quiet")});
  job.spec.managed_spot = true;
  std::filesystem::create_directories(root() + "/ckpt");
  job.spec.checkpoint_uri = storage::FileUriFromPath(root() + "/ckpt");
  Insert(&job);
  Start(&job);
  trial.available = 10;
  // No state store yet: nothing is evaluated.
  ASSERT_TRUE(TickUntil([&] {
    MutexLock lock(&trial.mu);
    return trial.limits.size() >= 3;
  }));
  EXPECT_EQ(Row(job, "Quiet").steps_evaluated, 0);
  {
    MutexLock lock(&trial.mu);
    EXPECT_EQ(trial.limits.back().through_step, -1);
  }
  // A checkpoint at step 4 (the newest state by latest-global-step-seen).
  std::ofstream(root() + "/ckpt/metadata.json")
      << R"([{"training-run": 0, "latest-global-step-saved": 2, "latest-global-step-seen": 4},
             {"training-run": 1, "latest-global-step-saved": 1, "latest-global-step-seen": 1}])";
  ASSERT_TRUE(TickUntil([&] { return Row(job, "Quiet").steps_evaluated == 5; }));
  EXPECT_EQ(Row(job, "Quiet").last_step, 4);
  // On job end, everything.
  End(&job, model::TrainingJobStatus::kCompleted);
  ASSERT_TRUE(StatusBecomes(job, "Quiet", "NoIssuesFound"));
  EXPECT_EQ(Row(job, "Quiet").steps_evaluated, 10);
  MutexLock lock(&trial.mu);
  EXPECT_FALSE(trial.limits.back().through_step.has_value());
  EXPECT_TRUE(trial.limits.back().training_ended);
}

TEST_F(RuleManagerTest, IssuesFoundSurvivesAnInterruption) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job = Job("spotfire", {Rule("Fires", {{"fire_at", "1"}})});
  Insert(&job);
  Start(&job);
  trial.available = 3;
  ASSERT_TRUE(StatusBecomes(job, "Fires", "IssuesFound"));
  // The attempt is interrupted and restarts: transitions of a job whose rules have concluded.
  JobRecord before = job;
  Transition(before, &job, model::TrainingJobStatus::kInProgress,
             model::SecondaryStatus::kInterrupted);
  before = job;
  Transition(before, &job, model::TrainingJobStatus::kInProgress,
             model::SecondaryStatus::kTraining);
  End(&job, model::TrainingJobStatus::kCompleted);
  ASSERT_TRUE(TickUntil([&] {
    return std::filesystem::exists(root() + "/out/spotfire/debug-output/training_job_end.ts");
  }));
  EXPECT_EQ(Row(job, "Fires").status, "IssuesFound");
  EXPECT_EQ(trial.made.load(), 1);
}

TEST_F(RuleManagerTest, UnfinishedEvaluationsRestartAfterAServerRestart) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job = Job("restart", {Rule("Fires", {{"fire_at", "0"}}), Rule("Quiet")});
  Insert(&job);
  Start(&job);
  trial.available = 2;
  ASSERT_TRUE(StatusBecomes(job, "Fires", "IssuesFound"));
  ASSERT_TRUE(TickUntil([&] { return Row(job, "Quiet").steps_evaluated == 2; }));
  manager_->Shutdown();
  manager_.reset();
  EXPECT_EQ(trial.made.load(), 2);
  // A new server: only the unfinished rule is evaluated again (from its trial's start).
  StartManager(&trial);
  EXPECT_EQ(manager_->ActiveEvaluations(), 1u);
  ASSERT_TRUE(TickUntil([&] { return trial.made.load() == 3; }));
  End(&job, model::TrainingJobStatus::kCompleted);
  ASSERT_TRUE(StatusBecomes(job, "Quiet", "NoIssuesFound"));
  EXPECT_EQ(Row(job, "Quiet").steps_evaluated, 2);
  EXPECT_EQ(Row(job, "Fires").status, "IssuesFound");
}

TEST_F(RuleManagerTest, StopTrainingStopsTheOneMatchingJobOfTheSameAccountOnly) {
  FakeTrial trial;
  StartManager(&trial);
  // The SDK's ActionList(StopTraining()) after prepare_actions: quotes arrive escaped.
  JobRecord job =
      Job("stopper", {Rule("Fires", {{"fire_at", "2"},
                                     {"action_json", R"([{\"name\": \"stoptraining\", )"
                                                     R"(\"training_job_prefix\": \"stopper\"}, )"
                                                     R"({\"name\": \"email\", )"
                                                     R"(\"endpoint\": \"a@b.c\"}])"}})});
  Insert(&job);
  // Another account's job with the same name is never touched.
  JobRecord other = Job("stopper", {}, "222222222222");
  Insert(&other);
  Start(&job);
  trial.available = 5;
  ASSERT_TRUE(StatusBecomes(job, "Fires", "IssuesFound"));
  ASSERT_EQ(actions_.stops.size(), 1u);
  EXPECT_EQ(actions_.stops[0].first, job.arn);
  EXPECT_EQ(actions_.stops[0].second, "Stopped by debugger rule Fires (IssuesFound at step 2)");
  ASSERT_EQ(actions_.messages.size(), 1u);
  EXPECT_EQ(actions_.messages[0].second, "Stopped by debugger rule Fires (IssuesFound at step 2)");
}

TEST_F(RuleManagerTest, StopTrainingWithAnAmbiguousPrefixStopsNothing) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job =
      Job("amb-1", {Rule("Fires", {{"fire_at", "0"},
                                   {"action_json", R"({"name": "StopTraining", )"
                                                   R"("training_job_prefix": "amb"})"}})});
  Insert(&job);
  JobRecord sibling = Job("amb-2", {});
  Insert(&sibling);
  Start(&job);
  trial.available = 1;
  ASSERT_TRUE(StatusBecomes(job, "Fires", "IssuesFound"));
  EXPECT_TRUE(actions_.stops.empty());
}

TEST_F(RuleManagerTest, StalledTrainingRuleStopsItsOwnJobWhenAsked) {
  FakeTrial trial;
  StartManager(&trial);
  model::RuleSpec stalled = Rule("Stalled", {{"fire_at", "0"}, {"stop_training_on_fire", "True"}});
  stalled.rule = "StalledTrainingRule";
  JobRecord job = Job("stalled-job", {stalled});
  Insert(&job);
  Start(&job);
  trial.available = 1;
  ASSERT_TRUE(StatusBecomes(job, "Stalled", "IssuesFound"));
  ASSERT_EQ(actions_.stops.size(), 1u);
  EXPECT_EQ(actions_.stops[0].first, job.arn);
}

TEST_F(RuleManagerTest, OtherTrialsOutsideTheAccountAreTheRulesError) {
  FakeTrial trial;
  StartManager(&trial);
  // Account 222222222222 has its own root (root/other): the server-wide root is not its.
  JobRecord job =
      Job("similar", {Rule("Similar", {{"other_trial_0", out_uri() + "/x/"}})}, "222222222222");
  job.spec.debug_hook->s3_output_path = storage::FileUriFromPath(root() + "/other/out");
  Insert(&job);
  Start(&job);
  ASSERT_TRUE(StatusBecomes(job, "Similar", "Error"));
  EXPECT_NE(Row(job, "Similar").details.find("outside the file roots"), std::string::npos);
  EXPECT_EQ(trial.made.load(), 0);
}

TEST_F(RuleManagerTest, PoolAdvancesAtMostItsThreadsAtOnce) {
  FakeTrial trial;
  options_.threads = 2;
  StartManager(&trial);
  std::vector<model::RuleSpec> rules;
  for (int i = 0; i < 6; ++i) rules.push_back(Rule("R" + std::to_string(i), {{"slow_ms", "5"}}));
  JobRecord job = Job("pool", rules);
  Insert(&job);
  Start(&job);
  trial.available = 3;
  End(&job, model::TrainingJobStatus::kCompleted);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(StatusBecomes(job, "R" + std::to_string(i), "NoIssuesFound"));
  }
  EXPECT_EQ(manager_->ActiveEvaluations(), 0u);
  MutexLock lock(&trial.mu);
  EXPECT_LE(trial.max_running, 2);
  EXPECT_GE(trial.max_running, 1);
}

TEST_F(RuleManagerTest, EndMarkerIsPlacedForAHookWithoutRulesAndNeverReplaced) {
  FakeTrial trial;
  StartManager(&trial);
  JobRecord job = Job("hookonly", {});
  Insert(&job);
  Start(&job);
  std::filesystem::create_directories(root() + "/out/hookonly/debug-output");
  End(&job, model::TrainingJobStatus::kFailed);
  const std::string marker = root() + "/out/hookonly/debug-output/training_job_end.ts";
  ASSERT_TRUE(TickUntil([&] { return std::filesystem::exists(marker); }));
  EXPECT_EQ(std::filesystem::file_size(marker), 0u);
}

TEST(ParseActionJson, ReadsWhatTheSdkAndSmdebugWrite) {
  auto a = ParseActionJson(
      R"([{\"name\": \"stoptraining\", \"training_job_prefix\": \"Job-A\"}, {\"name\": \"sms\", \"endpoint\": \"+1555\"}])");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].name, "stoptraining");
  EXPECT_EQ((*a)[0].prefix, "job-a");  // smdebug lowercases the action string
  EXPECT_EQ((*a)[1].endpoint, "+1555");
  auto one = ParseActionJson(R"({"name": "StopTraining"})");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ((*one)[0].prefix, "");
  EXPECT_TRUE(ParseActionJson("")->empty());
  EXPECT_FALSE(ParseActionJson("[{\"name\": \"reboot\"}]").ok());
  EXPECT_FALSE(ParseActionJson("not json").ok());
  EXPECT_FALSE(ParseActionJson("42").ok());
  EXPECT_FALSE(ParseActionJson(std::string(70000, '[')).ok());
  EXPECT_FALSE(ParseActionJson("[[[[[[[[{}]]]]]]]]").ok());
}

}  // namespace
}  // namespace ty::debugger
