// Built-in governance: the policy document (table-driven), admission at create, and each
// policy as an observer on a fake clock with fake JobActions and a real store.
#include "events/governance.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::events {
namespace {

using model::JobRecord;
using model::SecondaryStatus;
using model::TrainingJobStatus;
using nlohmann::json;
using std::chrono::seconds;

constexpr char kAccount[] = "111111111111";
constexpr char kOther[] = "222222222222";

// ---- the policy document ------------------------------------------------------------------

TEST(GovernancePolicyTest, ReadsEveryPolicyInBothSpellingsAndRendersItBack) {
  json config = json::parse(R"({
    "required_tags": {"keys": ["team", "cost-center"], "action": "refuse"},
    "allowed_instance_types": ["ml.m5.large"], "max_instance_count": 2,
    "max_runtime_seconds": 3600,
    "idle_stop": {"metric": "GPUUtilization", "threshold_percent": 2.5, "duration_seconds": 60},
    "auto_resume": {"min_runtime_seconds": 600, "max_resumes": 3, "on_algorithm_error": true},
    "spot_fallback": {"after_interruptions": 4, "max_capacity_wait_seconds": 900}})");
  auto p = ParsePolicies(config, PolicyKeys::kConfig);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->required_tags->mode, RequiredTagsPolicy::Mode::kRefuse);
  EXPECT_EQ(p->required_tags->keys, (std::vector<std::string>{"team", "cost-center"}));
  EXPECT_EQ(p->idle_stop->metric, IdleStopPolicy::Metric::kGpu);
  EXPECT_EQ(p->idle_stop->threshold_percent, 2.5);
  EXPECT_EQ(p->auto_resume->max_resumes, 3);
  EXPECT_EQ(p->spot_fallback->max_capacity_wait, seconds(900));
  EXPECT_EQ(RenderPolicies(*p, PolicyKeys::kConfig), config);

  json api = RenderPolicies(*p, PolicyKeys::kApi);
  EXPECT_EQ(api["IdleStop"]["DurationSeconds"], 60);
  EXPECT_EQ(api["SpotFallback"]["AfterInterruptions"], 4);
  auto back = ParsePolicies(api, PolicyKeys::kApi);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(RenderPolicies(*back, PolicyKeys::kConfig), config);
  EXPECT_TRUE(ParsePolicies(nullptr, PolicyKeys::kConfig)->empty());
}

TEST(GovernancePolicyTest, RefusesBadDocumentsNamingTheKey) {
  struct Case {
    const char* doc;
    PolicyKeys keys;
    const char* names;
  } cases[] = {
      {R"({"idle": {}})", PolicyKeys::kConfig, "idle is not a governance setting"},
      {R"({"idle_stop": {"metric": "DiskUtilization"}})", PolicyKeys::kConfig,
       "idle_stop.metric must be CPUUtilization or GPUUtilization"},
      {R"({"IdleStop": {"Metric": "CPU"}})", PolicyKeys::kApi, "IdleStop.Metric must be"},
      {R"({"idle_stop": {"duration_seconds": 0}})", PolicyKeys::kConfig,
       "idle_stop.duration_seconds must be a whole number from 1"},
      {R"({"idle_stop": {"threshold_percent": -1}})", PolicyKeys::kConfig,
       "idle_stop.threshold_percent must be a number from 0"},
      {R"({"required_tags": {"keys": []}})", PolicyKeys::kConfig, "required_tags.keys must be"},
      {R"({"required_tags": {"keys": ["a", "a"]}})", PolicyKeys::kConfig,
       "required_tags.keys must be a list of at most 50 distinct strings"},
      {R"({"required_tags": {"keys": ["a"], "action": "warn"}})", PolicyKeys::kConfig,
       "required_tags.action must be stop or refuse"},
      {R"({"max_instance_count": 1.5})", PolicyKeys::kConfig, "max_instance_count must be"},
      {R"({"auto_resume": {"max_resumes": 0}})", PolicyKeys::kConfig,
       "auto_resume.max_resumes must be a whole number from 1 to 100"},
      {R"({"auto_resume": {"on_algorithm_error": "yes"}})", PolicyKeys::kConfig,
       "auto_resume.on_algorithm_error must be true or false"},
      {R"({"spot_fallback": {}})", PolicyKeys::kConfig,
       "spot_fallback must be after_interruptions or max_capacity_wait_seconds"},
      {R"({"SpotFallback": {"after_interruptions": 2}})", PolicyKeys::kApi,
       "SpotFallback.after_interruptions is not a governance setting"},
      {R"([1])", PolicyKeys::kConfig, "the governance document must be a mapping"},
  };
  for (const auto& c : cases) {
    auto p = ParsePolicies(json::parse(c.doc), c.keys);
    ASSERT_FALSE(p.ok()) << c.doc;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << c.doc;
    EXPECT_NE(p.status().message().find(c.names), std::string::npos)
        << c.doc << " -> " << p.status().message();
  }
  json big = {{"allowed_instance_types", json::array()}};
  for (int i = 0; i < 51; ++i) big["allowed_instance_types"].push_back("t" + std::to_string(i));
  EXPECT_FALSE(ParsePolicies(big, PolicyKeys::kConfig).ok());
}

// ---- the observer -----------------------------------------------------------------------

class FakeActions final : public control::JobActions {
 public:
  void RecordFinalMetrics(const std::string&, const std::vector<model::FinalMetric>&) override {}
  void Stop(const std::string& arn, const std::string&) override { stops.push_back(arn); }
  void SetStatusMessage(const std::string& arn, const std::string& message) override {
    messages.emplace_back(arn, message);
  }
  void Create(const std::string& account, model::JobSpec spec, std::string request_json,
              std::vector<store::Tag> tags) override {
    creates.push_back({account, std::move(spec), std::move(request_json), std::move(tags)});
  }
  struct Created {
    std::string account;
    model::JobSpec spec;
    std::string request_json;
    std::vector<store::Tag> tags;
    std::string Tag(const std::string& key) const {
      for (const auto& t : tags) {
        if (t.key == key) return t.value;
      }
      return "";
    }
  };
  std::vector<std::string> stops;
  std::vector<std::pair<std::string, std::string>> messages;
  std::vector<Created> creates;
};

class GovernanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  void Make(const char* policies_json, bool allow_updates = true) {
    GovernanceOptions o;
    auto p = ParsePolicies(json::parse(policies_json), PolicyKeys::kConfig);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    o.defaults = *p;
    o.allow_account_updates = allow_updates;
    gov_ = std::make_unique<Governance>(o, store_.get(), &clock_);
  }

  // A job in the store, InProgress/Starting, with `tags`.
  JobRecord Job(const std::string& name, std::vector<store::Tag> tags = {},
                const std::string& account = kAccount) {
    JobRecord r;
    r.account = account;
    r.arn = model::TrainingJobArn("us-east-1", account, name);
    r.spec.name = name;
    r.spec.training_image = "img:1";
    r.spec.instance_type = "ml.m5.large";
    r.spec.checkpoint_uri = "s3://bucket/ckpt/" + name;
    json req = {{"TrainingJobName", name},
                {"CheckpointConfig", {{"S3Uri", *r.spec.checkpoint_uri}}},
                {"StoppingCondition", {{"MaxRuntimeInSeconds", 3600}}}};
    r.request_json = req.dump();
    r.status = TrainingJobStatus::kInProgress;
    r.creation_time = clock_.Now();
    r.last_modified_time = clock_.Now();
    r.transitions.push_back({SecondaryStatus::kStarting, clock_.Now(), std::nullopt, "Starting"});
    EXPECT_TRUE(store_->InsertJob(&r).ok());
    if (!tags.empty()) {
      EXPECT_TRUE(store_->SetTags(r.arn, tags).ok());
    }
    return r;
  }

  static JobRecord Enter(JobRecord r, SecondaryStatus s, TimePoint at) {
    if (!r.transitions.empty()) r.transitions.back().end = at;
    r.transitions.push_back({s, at, std::nullopt, model::Name(s)});
    r.secondary = s;
    return r;
  }

  static JobRecord End(JobRecord r, TrainingJobStatus status, TimePoint at) {
    r = Enter(
        std::move(r),
        status == TrainingJobStatus::kFailed ? SecondaryStatus::kFailed : SecondaryStatus::kStopped,
        at);
    r.status = status;
    return r;
  }

  std::string TagOf(const std::string& arn, const std::string& key) {
    auto tags = store_->GetTags(arn);
    for (const auto& t : *tags) {
      if (t.key == key) return t.value;
    }
    return "";
  }

  std::vector<json> Outbox() {
    std::vector<json> out;
    auto events = store_->ReadOutbox(0, 100);
    EXPECT_TRUE(events.ok());
    for (const auto& e : *events) out.push_back(json::parse(e.event_json));
    return out;
  }

  std::vector<model::InstanceSample> Samples(int64_t from_s, int64_t to_s, double cpu) {
    std::vector<model::InstanceSample> out;
    for (int64_t t = from_s; t <= to_s; t += 10) {
      model::InstanceSample s;
      s.timestamp_ms = ToEpochMillis(clock_.Now()) + t * 1000;
      s.cpu = cpu;
      out.push_back(s);
    }
    return out;
  }

  testing::TempDir dir_{"ty_governance_"};
  testing::FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Governance> gov_;
  FakeActions actions_;
};

TEST_F(GovernanceTest, AdmissionRefusesJobsOutsideTheLimitsAndWithoutRequiredTags) {
  Make(R"({"required_tags": {"keys": ["team", "project"], "action": "refuse"},
           "allowed_instance_types": ["ml.m5.large"], "max_instance_count": 2,
           "max_runtime_seconds": 600})");
  model::JobSpec spec;
  spec.name = "j";
  spec.instance_type = "ml.m5.large";
  spec.max_runtime = seconds(600);
  EXPECT_TRUE(gov_->Admit(kAccount, spec, {{"team", "a"}, {"project", "b"}}).ok());

  Status s = gov_->Admit(kAccount, spec, {{"team", "a"}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("lacks the required tag(s) project"), std::string::npos)
      << s.message();
  model::JobSpec other = spec;
  other.instance_type = "ml.p3.2xlarge";
  s = gov_->Admit(kAccount, other, {{"team", "a"}, {"project", "b"}});
  EXPECT_NE(s.message().find("ml.p3.2xlarge is not allowed"), std::string::npos) << s.message();
  other = spec;
  other.instance_count = 3;
  s = gov_->Admit(kAccount, other, {{"team", "a"}, {"project", "b"}});
  EXPECT_NE(s.message().find("InstanceCount 3 is more than the 2"), std::string::npos);
  other = spec;
  other.max_runtime = seconds(601);
  s = gov_->Admit(kAccount, other, {{"team", "a"}, {"project", "b"}});
  EXPECT_NE(s.message().find("MaxRuntimeInSeconds 601 is more than the 600"), std::string::npos);
}

TEST_F(GovernanceTest, StopModeAdmitsAndStopsTheUntaggedJobAtStarting) {
  Make(R"({"required_tags": {"keys": ["team"]}})");
  model::JobSpec spec;
  EXPECT_TRUE(gov_->Admit(kAccount, spec, {}).ok());

  JobRecord tagged = Job("tagged", {{"team", "ml"}});
  gov_->OnTransition(tagged, tagged, actions_);
  EXPECT_TRUE(actions_.stops.empty());

  JobRecord bare = Job("bare");
  gov_->OnTransition(bare, bare, actions_);
  gov_->OnTransition(bare, bare, actions_);  // once per job
  ASSERT_EQ(actions_.stops, std::vector<std::string>{bare.arn});
  EXPECT_EQ(TagOf(bare.arn, kGovernanceTag), "required-tags:stopped");
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 1u);
  EXPECT_EQ(outbox[0]["source"], "trainyard.governance");
  EXPECT_EQ(outbox[0]["detail-type"], "Trainyard Governance Action");
  EXPECT_EQ(outbox[0]["account"], kAccount);
  EXPECT_EQ(outbox[0]["resources"], json::array({bare.arn}));
  EXPECT_EQ(outbox[0]["detail"]["Policy"], "required-tags");
  EXPECT_EQ(outbox[0]["detail"]["Action"], "stopped");
  // The stopped job's last transition says why.
  gov_->OnTransition(bare, End(bare, TrainingJobStatus::kStopped, clock_.Now()), actions_);
  ASSERT_FALSE(actions_.messages.empty());
  EXPECT_EQ(actions_.messages.back().first, bare.arn);
  EXPECT_NE(actions_.messages.back().second.find("lacks the required tag(s) team"),
            std::string::npos);
  auto recent = gov_->RecentActions(kAccount, 10);
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].job_name, "bare");
  EXPECT_TRUE(gov_->RecentActions(kOther, 10).empty());
}

TEST_F(GovernanceTest, IdleStopNeedsEveryInstanceIdleForTheWholeDurationWhileTraining) {
  Make(R"({"idle_stop": {"metric": "CPUUtilization", "threshold_percent": 5,
                         "duration_seconds": 60}})");
  JobRecord job = Job("idle");
  job.spec.instance_count = 2;
  // Idle but not yet Training: ignored.
  gov_->OnInstanceSamples(job, 1, Samples(0, 120, 0.5), actions_);
  EXPECT_TRUE(actions_.stops.empty());

  job = Enter(job, SecondaryStatus::kTraining, clock_.Now());
  gov_->OnInstanceSamples(job, 1, Samples(0, 120, 0.5), actions_);
  EXPECT_TRUE(actions_.stops.empty()) << "algo-2 has not reported";
  gov_->OnInstanceSamples(job, 2, Samples(0, 50, 1.0), actions_);
  EXPECT_TRUE(actions_.stops.empty()) << "algo-2 idle for 50 s only";
  gov_->OnInstanceSamples(job, 2, Samples(60, 60, 90.0), actions_);  // busy: starts over
  gov_->OnInstanceSamples(job, 2, Samples(70, 120, 1.0), actions_);
  EXPECT_TRUE(actions_.stops.empty());
  gov_->OnInstanceSamples(job, 2, Samples(130, 130, 1.0), actions_);
  ASSERT_EQ(actions_.stops, std::vector<std::string>{job.arn});
  EXPECT_EQ(TagOf(job.arn, kGovernanceTag), "idle-stop:stopped");
  EXPECT_NE(gov_->RecentActions(kAccount, 1)[0].message.find("CPUUtilization stayed below 5%"),
            std::string::npos);
}

TEST_F(GovernanceTest, IdleStopOnGpuNeverStopsAnInstanceWithoutAGpu) {
  Make(R"({"idle_stop": {"metric": "GPUUtilization", "duration_seconds": 10}})");
  JobRecord job = Enter(Job("cpu-only"), SecondaryStatus::kTraining, clock_.Now());
  gov_->OnInstanceSamples(job, 1, Samples(0, 300, 0.0), actions_);
  EXPECT_TRUE(actions_.stops.empty());
  auto gpu = Samples(0, 300, 0.0);
  for (auto& s : gpu) s.gpu = 0.0;
  gov_->OnInstanceSamples(job, 1, gpu, actions_);
  EXPECT_EQ(actions_.stops.size(), 1u);
}

TEST_F(GovernanceTest, AutoResumeClonesALongFailureFromItsCheckpointAtMostKTimes) {
  Make(R"({"auto_resume": {"min_runtime_seconds": 300, "max_resumes": 2}})");
  JobRecord job = Job("long", {{"team", "ml"}});
  JobRecord running = Enter(job, SecondaryStatus::kTraining, clock_.Now());
  JobRecord failed = End(running, TrainingJobStatus::kFailed, clock_.Now());
  failed.failure_reason = "InternalServerError: the instance was lost";

  failed.run_ms = 299'000;  // too short
  gov_->OnTransition(running, failed, actions_);
  EXPECT_TRUE(actions_.creates.empty());

  failed.run_ms = 300'000;
  gov_->OnTransition(running, failed, actions_);
  ASSERT_EQ(actions_.creates.size(), 1u);
  const auto& c = actions_.creates[0];
  EXPECT_EQ(c.account, kAccount);
  EXPECT_EQ(c.spec.name, "long-r1");
  EXPECT_EQ(c.spec.checkpoint_uri, job.spec.checkpoint_uri);
  json req = json::parse(c.request_json);
  EXPECT_EQ(req["TrainingJobName"], "long-r1");
  EXPECT_EQ(req["CheckpointConfig"]["S3Uri"], "s3://bucket/ckpt/long");
  EXPECT_EQ(c.Tag("team"), "ml");
  EXPECT_EQ(c.Tag(kOriginTag), "long");
  EXPECT_EQ(c.Tag(kResumesTag), "1");
  EXPECT_EQ(c.Tag(kGovernanceTag), "auto-resume:clone");
  EXPECT_EQ(TagOf(job.arn, kGovernanceTag), "auto-resume:cloned");
  ASSERT_FALSE(actions_.messages.empty());
  EXPECT_NE(actions_.messages.back().second.find("cloned as long-r1"), std::string::npos);
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 1u);
  EXPECT_EQ(outbox[0]["detail"]["CloneTrainingJobName"], "long-r1");
  EXPECT_EQ(outbox[0]["resources"].size(), 2u);

  // The clone (as the controller would make it) fails too: the second and last resume.
  JobRecord r1 = Job("long-r1", c.tags);
  JobRecord r1_failed = End(Enter(r1, SecondaryStatus::kTraining, clock_.Now()),
                            TrainingJobStatus::kFailed, clock_.Now());
  r1_failed.run_ms = 400'000;
  gov_->OnTransition(r1, r1_failed, actions_);
  ASSERT_EQ(actions_.creates.size(), 2u);
  EXPECT_EQ(actions_.creates[1].spec.name, "long-r2");
  EXPECT_EQ(actions_.creates[1].Tag(kResumesTag), "2");
  EXPECT_EQ(actions_.creates[1].Tag(kOriginTag), "long");

  JobRecord r2 = Job("long-r2", actions_.creates[1].tags);
  JobRecord r2_failed = End(r2, TrainingJobStatus::kFailed, clock_.Now());
  r2_failed.run_ms = 400'000;
  gov_->OnTransition(r2, r2_failed, actions_);
  EXPECT_EQ(actions_.creates.size(), 2u) << "max_resumes 2 reached";
  EXPECT_EQ(TagOf(r2.arn, kGovernanceTag), "auto-resume:not-cloned");
  EXPECT_EQ(actions_.messages.back().first, r2.arn);
  EXPECT_NE(actions_.messages.back().second.find("not cloned: the job was already resumed 2"),
            std::string::npos)
      << actions_.messages.back().second;
}

TEST_F(GovernanceTest, AutoResumeSkipsAlgorithmErrorsUnlessAsked) {
  Make(R"({"auto_resume": {"min_runtime_seconds": 0}})");
  JobRecord job = Job("bug");
  JobRecord failed = End(job, TrainingJobStatus::kFailed, clock_.Now());
  failed.failure_reason = "AlgorithmError: Exit Code: 1";
  gov_->OnTransition(job, failed, actions_);
  EXPECT_TRUE(actions_.creates.empty());
  EXPECT_NE(gov_->RecentActions(kAccount, 1)[0].message.find("AlgorithmError"), std::string::npos);

  ASSERT_TRUE(gov_->Update(kAccount, *ParsePolicies(json::parse(R"({"auto_resume":
      {"min_runtime_seconds": 0, "on_algorithm_error": true}})"),
                                                    PolicyKeys::kConfig))
                  .ok());
  gov_->OnTransition(job, failed, actions_);
  EXPECT_EQ(actions_.creates.size(), 1u);
}

TEST_F(GovernanceTest, CloneNamesStayWithin63CharactersAndSkipTakenNames) {
  Make(R"({"auto_resume": {"min_runtime_seconds": 0}})");
  const std::string long_name(63, 'a');
  JobRecord job = Job(long_name);
  Job(long_name.substr(0, 60) + "-r1");  // taken
  JobRecord failed = End(job, TrainingJobStatus::kFailed, clock_.Now());
  gov_->OnTransition(job, failed, actions_);
  ASSERT_EQ(actions_.creates.size(), 1u);
  EXPECT_EQ(actions_.creates[0].spec.name, long_name.substr(0, 60) + "-r2");
}

TEST_F(GovernanceTest, SpotFallbackStopsAtTheNthInterruptionAndClonesOnDemandOnceStopped) {
  Make(R"({"spot_fallback": {"after_interruptions": 4}})");
  JobRecord job = Job("spotty");
  job.spec.managed_spot = true;
  job.spec.max_wait = seconds(7200);
  json req = json::parse(job.request_json);
  req["EnableManagedSpotTraining"] = true;
  req["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200;
  job.request_json = req.dump();
  JobRecord cur = job;
  for (int i = 1; i <= 4; ++i) {
    JobRecord next = Enter(Enter(cur, SecondaryStatus::kTraining, clock_.Now()),
                           SecondaryStatus::kInterrupted, clock_.Now());
    gov_->OnTransition(cur, next, actions_);
    EXPECT_EQ(actions_.stops.size(), i < 4 ? 0u : 1u) << "interruption " << i;
    cur = next;
  }
  EXPECT_TRUE(actions_.creates.empty()) << "cloned only once stopped";
  JobRecord stopped = End(cur, TrainingJobStatus::kStopped, clock_.Now());
  gov_->OnTransition(cur, stopped, actions_);
  ASSERT_EQ(actions_.creates.size(), 1u);
  const auto& c = actions_.creates[0];
  EXPECT_EQ(c.spec.name, "spotty-r1");
  EXPECT_FALSE(c.spec.managed_spot);
  EXPECT_FALSE(c.spec.max_wait.has_value());
  json creq = json::parse(c.request_json);
  EXPECT_EQ(creq["EnableManagedSpotTraining"], false);
  EXPECT_FALSE(creq["StoppingCondition"].contains("MaxWaitTimeInSeconds"));
  EXPECT_EQ(creq["StoppingCondition"]["MaxRuntimeInSeconds"], 3600);
  EXPECT_EQ(creq["CheckpointConfig"]["S3Uri"], "s3://bucket/ckpt/spotty");
  EXPECT_EQ(c.Tag(kResumesTag), "0") << "a fallback is not a resume";
  EXPECT_EQ(TagOf(job.arn, kGovernanceTag), "spot-fallback:cloned");
  EXPECT_NE(actions_.messages.back().second.find("interrupted 4 time(s)"), std::string::npos);
  EXPECT_NE(actions_.messages.back().second.find("cloned on demand as spotty-r1"),
            std::string::npos);
}

TEST_F(GovernanceTest, SpotFallbackAfterWaitingTooLongForSpotCapacity) {
  Make(R"({"spot_fallback": {"max_capacity_wait_seconds": 600}})");
  JobRecord job = Job("waiting");
  job.spec.managed_spot = true;
  job.queued = true;
  gov_->OnTransition(job, job, actions_);
  clock_.Advance(seconds(600));
  gov_->OnTick(clock_.Now(), actions_);
  EXPECT_TRUE(actions_.stops.empty()) << "waited 600 s, not longer";
  clock_.Advance(seconds(1));
  gov_->OnTick(clock_.Now(), actions_);
  ASSERT_EQ(actions_.stops, std::vector<std::string>{job.arn});
  gov_->OnTransition(job, End(job, TrainingJobStatus::kStopped, clock_.Now()), actions_);
  ASSERT_EQ(actions_.creates.size(), 1u);
  EXPECT_FALSE(actions_.creates[0].spec.managed_spot);

  // A spot job that got capacity stops waiting.
  JobRecord placed = Job("placed");
  placed.spec.managed_spot = true;
  placed.queued = true;
  gov_->OnTransition(placed, placed, actions_);
  JobRecord running = Enter(placed, SecondaryStatus::kTraining, clock_.Now());
  running.queued = false;
  gov_->OnTransition(placed, running, actions_);
  clock_.Advance(seconds(3600));
  gov_->OnTick(clock_.Now(), actions_);
  EXPECT_EQ(actions_.stops.size(), 1u);
}

TEST_F(GovernanceTest, AnAccountChangesOnlyItsOwnPoliciesAndTheyArePersisted) {
  Make(R"({"max_instance_count": 4})");
  auto mine = ParsePolicies(json::parse(R"({"max_instance_count": 1})"), PolicyKeys::kConfig);
  ASSERT_TRUE(gov_->Update(kAccount, *mine).ok());
  EXPECT_TRUE(gov_->PoliciesFor(kAccount).own);
  EXPECT_EQ(gov_->PoliciesFor(kAccount).policies.max_instance_count, 1);
  EXPECT_FALSE(gov_->PoliciesFor(kOther).own);
  EXPECT_EQ(gov_->PoliciesFor(kOther).policies.max_instance_count, 4);

  Make(R"({"max_instance_count": 4})");  // a restarted server
  EXPECT_EQ(gov_->PoliciesFor(kAccount).policies.max_instance_count, 1);
  ASSERT_TRUE(gov_->Update(kAccount, std::nullopt).ok());
  EXPECT_FALSE(gov_->PoliciesFor(kAccount).own);
  Make(R"({"max_instance_count": 4})");
  EXPECT_EQ(gov_->PoliciesFor(kAccount).policies.max_instance_count, 4);

  Make(R"({})", /*allow_updates=*/false);
  EXPECT_EQ(gov_->Update(kAccount, *mine).code(), StatusCode::kPermissionDenied);
}

TEST_F(GovernanceTest, RecentActionsSurviveARestartAndAreBounded) {
  Make(R"({"required_tags": {"keys": ["team"]}})");
  for (int i = 0; i < 3; ++i) {
    JobRecord j = Job("j" + std::to_string(i));
    gov_->OnTransition(j, j, actions_);
  }
  Make(R"({"required_tags": {"keys": ["team"]}})");
  auto actions = gov_->RecentActions(kAccount, 2);
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].job_name, "j2");
  EXPECT_EQ(actions[1].job_name, "j1");
  JobRecord j = Job("j3");
  gov_->OnTransition(j, j, actions_);
  EXPECT_EQ(gov_->RecentActions(kAccount, 10).size(), 4u);
}

}  // namespace
}  // namespace ty::events
