#include "debugger/profiler_rules.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/fs.h"
#include "debugger/profiler_test_util.h"
#include "storage/file_object_store.h"
#include "storage/uri.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

using testing::Round;

constexpr double kT0 = 1765134000;  // 2025-12-07T19:00:00Z

// `n` rounds, one a second from kT0, each made by `f(i)`.
std::vector<Round> Rounds(int n, const std::function<Round(int)>& f) {
  std::vector<Round> out;
  for (int i = 0; i < n; ++i) {
    Round r = f(i);
    r.t = kT0 + i;
    out.push_back(r);
  }
  return out;
}

// Small patience/window/scan interval so that two minutes of data are enough.
const std::map<std::string, std::string> kFast = {{"patience", "5"},
                                                  {"scan_interval_us", "10000000"}};

class ProfilerRuleTest : public ::testing::Test {
 protected:
  ProfilerRuleTest() : store_({dir_.path()}) {
    spec_.name = "job";
    ctx_.trial_uri = storage::FileUriFromPath(ProfilerDir()) + "/";
    ctx_.open_store = [this](const std::string&) -> Result<storage::ObjectStore*> {
      return static_cast<storage::ObjectStore*>(&store_);
    };
    ctx_.spec = &spec_;
  }

  std::string ProfilerDir() const { return dir_.Sub("out/job/profiler-output"); }

  Result<std::unique_ptr<Evaluation>> Make(const std::string& rule,
                                           std::map<std::string, std::string> params) {
    model::RuleSpec spec;
    spec.configuration_name = rule;
    spec.rule = rule;
    params["rule_to_invoke"] = rule;
    spec.parameters = params;
    return MakeProfilerRuleEvaluation(spec, ctx_, clock_);
  }

  // Advances with training_ended until the evaluation concludes.
  EvaluationResult RunToEnd(Evaluation& e) {
    AdvanceLimits limits;
    limits.training_ended = true;
    EvaluationResult r;
    for (int i = 0; i < 10; ++i) {
      r = e.Advance(limits);
      if (r.status != RuleStatus::kInProgress) break;
    }
    return r;
  }

  ty::testing::TempDir dir_;
  storage::FileObjectStore store_;
  ty::testing::FakeClock clock_{FromEpochMillis(static_cast<int64_t>(kT0 * 1000))};
  model::JobSpec spec_;
  EvaluationContext ctx_;
};

struct RuleCase {
  const char* name;
  const char* rule;
  std::map<std::string, std::string> params;
  std::function<Round(int)> round;
  RuleStatus want;
  const char* details_part;
};

Round Cpu(double cpu, double io = 0) { return Round{0, {cpu, cpu}, {io, io}, {}, {}}; }
Round CpuGpu(double cpu, double gpu, double io = 0, double gpumem = 30) {
  return Round{0, {cpu, cpu}, {io, io}, {gpu}, {gpumem}};
}

std::map<std::string, std::string> With(std::map<std::string, std::string> extra) {
  auto out = kFast;
  for (auto& [k, v] : extra) out[k] = v;
  return out;
}

TEST_F(ProfilerRuleTest, EachRuleFiresAndStaysQuietOnKnownData) {
  const std::vector<RuleCase> cases = {
      {"low gpu fires", "LowGPUUtilization", With({{"window", "10"}}),
       [](int) { return CpuGpu(50, 20); }, RuleStatus::kIssuesFound, "underutilized"},
      {"low gpu fluctuating", "LowGPUUtilization", With({{"window", "10"}}),
       [](int i) { return CpuGpu(50, i % 2 ? 95 : 2); }, RuleStatus::kIssuesFound, "fluctuates"},
      {"low gpu healthy", "LowGPUUtilization", With({{"window", "10"}}),
       [](int i) { return CpuGpu(50, 85 + i % 10); }, RuleStatus::kNoIssuesFound, "healthy"},
      {"low gpu warmup ignored", "LowGPUUtilization", With({{"window", "10"}, {"patience", "30"}}),
       [](int i) { return CpuGpu(50, i < 30 ? 0 : 90); }, RuleStatus::kNoIssuesFound, "healthy"},
      {"low gpu no gpu", "LowGPUUtilization", kFast, [](int) { return Cpu(50); },
       RuleStatus::kNoIssuesFound, "No GPU was present"},
      {"cpu bottleneck fires", "CPUBottleneck", kFast, [](int) { return CpuGpu(95, 5); },
       RuleStatus::kIssuesFound, "CPU bottleneck on algo-1"},
      {"cpu busy gpu busy", "CPUBottleneck", kFast, [](int) { return CpuGpu(95, 80); },
       RuleStatus::kNoIssuesFound, "No CPU bottleneck"},
      {"cpu bottleneck under threshold", "CPUBottleneck", kFast,
       [](int i) { return i % 3 == 0 ? CpuGpu(95, 5) : CpuGpu(50, 5); }, RuleStatus::kNoIssuesFound,
       "No CPU bottleneck"},
      {"cpu bottleneck lower threshold", "CPUBottleneck", With({{"threshold", "20"}}),
       [](int i) { return i % 3 == 0 ? CpuGpu(95, 5) : CpuGpu(50, 5); }, RuleStatus::kIssuesFound,
       "more than threshold 20%"},
      {"cpu bottleneck no gpu", "CPUBottleneck", kFast, [](int) { return Cpu(99); },
       RuleStatus::kNoIssuesFound, "No GPU was present"},
      {"io bottleneck fires", "IOBottleneck", kFast, [](int) { return CpuGpu(20, 3, 70); },
       RuleStatus::kIssuesFound, "I/O bottleneck on algo-1"},
      {"io low wait", "IOBottleneck", kFast, [](int) { return CpuGpu(20, 3, 10); },
       RuleStatus::kNoIssuesFound, "No I/O bottleneck"},
      {"io no gpu", "IOBottleneck", kFast, [](int) { return Cpu(20, 90); },
       RuleStatus::kNoIssuesFound, "No GPU was present"},
      {"gpu memory grows", "GPUMemoryIncrease", With({{"window", "5"}}),
       [](int i) { return CpuGpu(50, 80, 0, 10 + i * 0.6); }, RuleStatus::kIssuesFound,
       "GPU memory on algo-1/gpu0 increased"},
      {"gpu memory level", "GPUMemoryIncrease", With({{"window", "5"}}),
       [](int i) { return CpuGpu(50, 80, 0, 40 + i % 3); }, RuleStatus::kNoIssuesFound,
       "stayed level"},
      {"gpu memory no gpu", "GPUMemoryIncrease", kFast, [](int) { return Cpu(50); },
       RuleStatus::kNoIssuesFound, "No GPU was present"},
      {"overall usage",
       "OverallSystemUsage",
       {{"scan_interval_us", "10000000"}},
       [](int) { return CpuGpu(95, 5); },
       RuleStatus::kNoIssuesFound,
       "never fires"},
      {"max init no hook",
       "MaxInitializationTime",
       {{"threshold", "1"}},
       [](int) { return Cpu(50); },
       RuleStatus::kNoIssuesFound,
       "No step information"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(RemoveAll(dir_.Sub("out")).ok());
    testing::WriteRounds(ProfilerDir(), "algo-1", Rounds(120, c.round));
    auto eval = Make(c.rule, c.params);
    ASSERT_TRUE(eval.ok()) << eval.status().message();
    EvaluationResult r = RunToEnd(**eval);
    EXPECT_EQ(Name(r.status), std::string(Name(c.want))) << r.details;
    EXPECT_NE(r.details.find(c.details_part), std::string::npos) << r.details;
    EXPECT_LE(r.details.size(), 1024u);
    if (r.status == RuleStatus::kIssuesFound) EXPECT_FALSE(r.findings.empty()) << r.details;
  }
}

TEST_F(ProfilerRuleTest, FindingsCarryTheValuesAndTimesThatTriggered) {
  testing::WriteRounds(ProfilerDir(), "algo-1", Rounds(120, [](int) { return CpuGpu(95, 5); }));
  auto eval = Make("CPUBottleneck", kFast);
  ASSERT_TRUE(eval.ok());
  EvaluationResult r = RunToEnd(**eval);
  ASSERT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
  EXPECT_EQ(r.findings["node"], "algo-1");
  EXPECT_DOUBLE_EQ(r.findings["percent"].get<double>(), 100.0);
  // Rounds 0..4 are patience; the first bottleneck checked is round 5 (kT0 + 5 s).
  EXPECT_EQ(r.findings["first_bottleneck_time"], "2025-12-07T19:00:05Z");
  EXPECT_GT(r.steps_evaluated, 0);
}

TEST_F(ProfilerRuleTest, FiresWhileTrainingRunsAndReadsOnlyNewSamples) {
  // The first minute: GPUs busy. Not ended: InProgress.
  std::vector<Round> rounds = Rounds(60, [](int) { return CpuGpu(95, 90); });
  testing::WriteRounds(ProfilerDir(), "algo-1", rounds);
  auto eval = Make("CPUBottleneck", kFast);
  ASSERT_TRUE(eval.ok());
  AdvanceLimits running;
  EvaluationResult r = (*eval)->Advance(running);
  EXPECT_EQ(r.status, RuleStatus::kInProgress);
  const int64_t first = r.steps_evaluated;
  EXPECT_EQ(first, 60 * 6);  // 2 CPU + 2 I/O wait + 1 GPU + 1 GPU memory per round
  // The second minute: GPUs idle under a busy CPU. The rule fires before the job ends.
  auto more = Rounds(300, [](int i) { return i < 60 ? CpuGpu(95, 90) : CpuGpu(95, 2); });
  testing::WriteRounds(ProfilerDir(), "algo-1", more);
  r = (*eval)->Advance(running);
  EXPECT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
  EXPECT_LE(r.steps_evaluated, 300 * 6);
  // Stays where it is.
  AdvanceLimits ended;
  ended.training_ended = true;
  EXPECT_EQ((*eval)->Advance(ended).status, RuleStatus::kIssuesFound);
}

TEST_F(ProfilerRuleTest, NoSampleIsCountedTwiceAcrossAdvances) {
  auto eval = Make("OverallSystemUsage", {});
  ASSERT_TRUE(eval.ok());
  AdvanceLimits running;
  for (int n : {10, 70, 130}) {
    testing::WriteRounds(ProfilerDir(), "algo-1", Rounds(n, [](int) { return Cpu(40); }));
    EXPECT_EQ((*eval)->Advance(running).steps_evaluated, n * 4);
  }
  EvaluationResult r = RunToEnd(**eval);
  ASSERT_EQ(r.status, RuleStatus::kNoIssuesFound);
  EXPECT_EQ(r.findings["algo-1"]["CPUUtilization"]["samples"], 260);
  EXPECT_EQ(r.findings["algo-1"]["CPUUtilization"]["p50"], 40.0);
}

TEST_F(ProfilerRuleTest, MaxInitializationTimeWaitsOnTheInjectedClock) {
  spec_.debug_hook = model::DebugHookSpec{};
  spec_.debug_hook->s3_output_path = storage::FileUriFromPath(dir_.Sub("out"));
  testing::WriteRounds(ProfilerDir(), "algo-1", Rounds(30, [](int) { return Cpu(50); }));
  auto eval = Make("MaxInitializationTime", {{"threshold", "20"}});
  ASSERT_TRUE(eval.ok());
  AdvanceLimits running;
  clock_.Advance(std::chrono::minutes(10));
  EXPECT_EQ((*eval)->Advance(running).status, RuleStatus::kInProgress);
  clock_.Advance(std::chrono::minutes(11));
  EvaluationResult r = (*eval)->Advance(running);
  EXPECT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
  EXPECT_NE(r.details.find("No training step appeared within threshold 20 minutes"),
            std::string::npos)
      << r.details;
}

TEST_F(ProfilerRuleTest, MaxInitializationTimeQuietWhenAStepAppears) {
  spec_.debug_hook = model::DebugHookSpec{};
  spec_.debug_hook->s3_output_path = storage::FileUriFromPath(dir_.Sub("out"));
  // The first step's index file lands now (its mtime); the samples start a minute before.
  const double now = ToEpochMillis(SystemClock::Default()->Now()) / 1000.0;
  std::vector<Round> rounds;
  for (int i = 0; i < 30; ++i) {
    Round r = Cpu(50);
    r.t = now - 60 + i;
    rounds.push_back(r);
  }
  testing::WriteRounds(ProfilerDir(), "algo-1", rounds);
  const std::string index =
      dir_.Sub("out/job/debug-output/index/000000000/000000000000_worker_0.json");
  ASSERT_TRUE(MakeDirs(index.substr(0, index.rfind('/'))).ok());
  ASSERT_TRUE(WriteFileAtomic(index, "{}", 0644, false).ok());
  ty::testing::FakeClock late(FromEpochMillis(static_cast<int64_t>((now + 3600) * 1000)));
  model::RuleSpec spec;
  spec.configuration_name = spec.rule = "MaxInitializationTime";
  spec.parameters = {{"threshold", "20"}};
  auto eval = MakeProfilerRuleEvaluation(spec, ctx_, late);
  ASSERT_TRUE(eval.ok());
  EvaluationResult r = RunToEnd(**eval);
  EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
  EXPECT_NE(r.details.find("The first step appeared"), std::string::npos) << r.details;
}

TEST_F(ProfilerRuleTest, MalformedFileEndsInErrorWithAClearSentence) {
  testing::WriteRounds(ProfilerDir(), "algo-1", Rounds(10, [](int) { return CpuGpu(95, 5); }));
  const std::string path = testing::FileFor(ProfilerDir(), "algo-1", kT0);
  auto text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  ASSERT_TRUE(WriteFileAtomic(path,
                              *text + "{\"Type\":\"cpu\",\"Value\":1}\n" +
                                  testing::RoundLines("algo-1", CpuGpu(95, 5)),
                              0644, false)
                  .ok());
  for (const std::string& rule : ProfilerRuleNames()) {
    SCOPED_TRACE(rule);
    auto eval = Make(rule, {});
    ASSERT_TRUE(eval.ok());
    EvaluationResult r = RunToEnd(**eval);
    EXPECT_EQ(r.status, RuleStatus::kError);
    EXPECT_NE(r.details.find("line 61"), std::string::npos) << r.details;
    EXPECT_NE(r.details.find("has no \"Dimension\""), std::string::npos) << r.details;
  }
}

TEST_F(ProfilerRuleTest, OversizedFileEndsInError) {
  testing::WriteRounds(ProfilerDir(), "algo-1", Rounds(60, [](int) { return CpuGpu(95, 5); }));
  auto eval = Make("CPUBottleneck", kFast);
  ASSERT_TRUE(eval.ok());
  AdvanceLimits limits;
  limits.training_ended = true;
  limits.max_tensor_bytes = 1000;
  EvaluationResult r = (*eval)->Advance(limits);
  EXPECT_EQ(r.status, RuleStatus::kError);
  EXPECT_NE(r.details.find("byte limit"), std::string::npos) << r.details;
}

TEST_F(ProfilerRuleTest, NoDataAtAllEndsQuietly) {
  for (const std::string& rule : ProfilerRuleNames()) {
    SCOPED_TRACE(rule);
    auto eval = Make(rule, {});
    ASSERT_TRUE(eval.ok());
    EvaluationResult r = RunToEnd(**eval);
    EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
  }
}

TEST_F(ProfilerRuleTest, BadConfigurationIsRefusedWithASentence) {
  struct Case {
    const char* rule;
    std::map<std::string, std::string> params;
    const char* part;
  } cases[] = {
      {"NoSuchRule", {}, "Unknown profiler rule \"NoSuchRule\""},
      {"StepOutlier", {}, "Unknown profiler rule"},
      {"CPUBottleneck", {{"threshold", "150"}}, "valid percentile"},
      {"CPUBottleneck", {{"threshold", "abc"}}, "must be a number"},
      {"CPUBottleneck", {{"patience", "0"}}, "positive integer"},
      {"CPUBottleneck", {{"patience", "1.5"}}, "positive integer"},
      {"CPUBottleneck", {{"tresh", "1"}}, "not a parameter of CPUBottleneck"},
      {"LowGPUUtilization", {{"window", "100000000"}}, "at most"},
      {"MaxInitializationTime", {{"threshold", "-1"}}, "must be positive"},
      {"ProfilerReport", {{"opt_out_telemetry", "maybe"}}, "boolean"},
      {"ProfilerReport", {{"custom_rule_parameters", "{'Nope_x': 1}"}}, "invalid rule name"},
      {"ProfilerReport",
       {{"custom_rule_parameters", "{'CPUBottleneck_x': 1}"}},
       "x is not a parameter"},
      {"ProfilerReport",
       {{"custom_rule_parameters", "{'CPUBottleneck_threshold': 101}"}},
       "valid percentile"},
      {"ProfilerReport", {{"custom_rule_parameters", "{'a': "}}, "not a dict literal"},
  };
  for (const auto& c : cases) {
    auto eval = Make(c.rule, c.params);
    ASSERT_FALSE(eval.ok()) << c.rule;
    EXPECT_EQ(eval.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(eval.status().message().find(c.part), std::string::npos) << eval.status().message();
  }
  // What the SDK sends for rule_configs.ProfilerReport() and a float-valued percentile.
  EXPECT_TRUE(
      Make("ProfilerReport", {{"opt_out_telemetry", "False"}, {"custom_rule_parameters", "{}"}})
          .ok());
  EXPECT_TRUE(Make("CPUBottleneck", {{"threshold", "50.5"}, {"patience", "1000.0"}}).ok());
  EXPECT_TRUE(
      Make("ProfilerReport", {{"custom_rule_parameters", "{'stepoutlier_stddev': 3}"}}).ok());
}

TEST(PythonDictLiteral, Table) {
  struct Case {
    const char* text;
    bool ok;
    std::map<std::string, std::string> want;
  } cases[] = {
      {"{}", true, {}},
      {" { } ", true, {}},
      {"{'CPUBottleneck_threshold': 20}", true, {{"CPUBottleneck_threshold", "20"}}},
      {"{'a': 1.5, \"b\": 'x y', 'c': True, 'd': None,}",
       true,
       {{"a", "1.5"}, {"b", "x y"}, {"c", "True"}, {"d", "None"}}},
      {"{\"a\": true, \"b\": null, \"c\": -2e3}",
       true,
       {{"a", "True"}, {"b", "None"}, {"c", "-2e3"}}},
      {"{'a\\'b': 1}", true, {{"a'b", "1"}}},
      {"", false, {}},
      {"{'a' 1}", false, {}},
      {"{'a': [1]}", false, {}},
      {"{'a': {'b': 1}}", false, {}},
      {"{'a': 1} x", false, {}},
      {"{1: 2}", false, {}},
      {"{'a': nan}", false, {}},
      {"{'a': 'unterminated}", false, {}},
  };
  for (const auto& c : cases) {
    auto r = ParsePythonDictLiteral(c.text);
    EXPECT_EQ(r.ok(), c.ok) << c.text << ": " << r.status().message();
    if (c.ok && r.ok()) EXPECT_EQ(*r, c.want) << c.text;
  }
  std::string many = "{";
  for (int i = 0; i < 300; ++i) many += "'k" + std::to_string(i) + "': 1,";
  many += "}";
  EXPECT_FALSE(ParsePythonDictLiteral(many).ok());
  EXPECT_FALSE(ParsePythonDictLiteral("{'" + std::string(70000, 'a') + "': 1}").ok());
}

}  // namespace
}  // namespace ty::debugger
