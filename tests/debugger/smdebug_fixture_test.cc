// The reader against files the REAL smdebug hook wrote (tests/debugger/data/smdebug_trial, made
// by data/make_smdebug_fixtures.py), checked against what smdebug's own trial reader read back
// from them (data/smdebug_expected.json).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "debugger/evaluation.h"
#include "debugger/trial.h"
#include "storage/file_object_store.h"
#include "storage/s3_object_store.h"
#include "testing/s3rver.h"

namespace ty::debugger {
namespace {

const std::string kData = std::string(TY_SOURCE_DIR) + "/tests/debugger/data";

class SmdebugFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(kData + "/smdebug_expected.json");
    std::stringstream ss;
    ss << in.rdbuf();
    expected_ = nlohmann::json::parse(ss.str());
    trial_ = Trial::Open(&store_, "file://" + kData + "/smdebug_trial");
    ASSERT_TRUE(trial_->Refresh().ok());
  }
  storage::FileObjectStore store_{{kData}};
  std::unique_ptr<Trial> trial_;
  nlohmann::json expected_;
};

TEST_F(SmdebugFixtureTest, StepsAndModes) {
  EXPECT_TRUE(trial_->loaded_all_steps());
  EXPECT_EQ(trial_->steps(), expected_["steps"].get<std::vector<int64_t>>());
  EXPECT_EQ(trial_->steps(Mode::kTrain), expected_["train_steps"].get<std::vector<int64_t>>());
  EXPECT_EQ(trial_->steps(Mode::kEval), expected_["eval_steps"].get<std::vector<int64_t>>());
  for (const auto& [step, m] : expected_["mode_of"].items()) {
    auto ms = trial_->mode_step(std::stoll(step));
    ASSERT_TRUE(ms) << step;
    EXPECT_STREQ(ModeName(ms->first), m[0].get<std::string>().c_str());
    EXPECT_EQ(ms->second, m[1].get<int64_t>());
  }
}

TEST_F(SmdebugFixtureTest, NamesAndCollections) {
  EXPECT_EQ(*trial_->tensor_names(), expected_["tensor_names"].get<std::vector<std::string>>());
  for (const auto& [c, names] : expected_["collections"].items()) {
    auto got = trial_->tensor_names({.collection = c});
    ASSERT_TRUE(got.ok()) << c << ": " << got.status().message();
    EXPECT_EQ(*got, names.get<std::vector<std::string>>()) << c;
  }
}

TEST_F(SmdebugFixtureTest, ValuesEqualSmdebugs) {
  int checked = 0;
  for (const auto& [name, steps] : expected_["values"].items()) {
    auto t = trial_->tensor(name);
    ASSERT_TRUE(t.ok()) << name;
    for (const auto& [step, v] : steps.items()) {
      auto got = t->value(std::stoll(step));
      ASSERT_TRUE(got.ok()) << name << "@" << step << ": " << got.status().message();
      EXPECT_EQ(got->shape, v["shape"].get<std::vector<int64_t>>()) << name;
      EXPECT_EQ(got->values, v["values"].get<std::vector<double>>()) << name << "@" << step;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST_F(SmdebugFixtureTest, SavedReductionsEqualSmdebugs) {
  int checked = 0;
  for (const auto& [name, steps] : expected_["reductions"].items()) {
    auto t = trial_->tensor(name);
    ASSERT_TRUE(t.ok()) << name;
    EXPECT_EQ(t->value(0).status().code(), StatusCode::kFailedPrecondition);  // reductions only
    for (const auto& [step, reds] : steps.items()) {
      for (const auto& [red, v] : reds.items()) {
        bool abs = red.rfind("abs_", 0) == 0;
        auto got = t->reduction(std::stoll(step), abs ? red.substr(4) : red, abs);
        ASSERT_TRUE(got.ok()) << name << " " << red << ": " << got.status().message();
        EXPECT_DOUBLE_EQ(*got, v.get<double>()) << name << " " << red << "@" << step;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 20);
}

TEST_F(SmdebugFixtureTest, ComputedReductionsMatchNumpy) {
  auto t = trial_->tensor("gradient/Net_fc1.weight");
  ASSERT_TRUE(t.ok());
  for (const auto& [step, reds] : expected_["computed"]["gradient/Net_fc1.weight"].items()) {
    int64_t s = std::stoll(step);
    EXPECT_NEAR(*t->reduction(s, "mean", true), reds["abs_mean"].get<double>(), 1e-7);
    EXPECT_NEAR(*t->reduction(s, "variance"), reds["variance"].get<double>(), 1e-7);
    // l2 is the vector norm of the flattened tensor (what torch.norm saves); numpy's fallback
    // in smdebug gives a matrix's spectral norm instead (README), so compare with the former.
    double ss = 0;
    for (double v : expected_["values"]["gradient/Net_fc1.weight"][step]["values"]) ss += v * v;
    EXPECT_NEAR(*t->reduction(s, "l2"), std::sqrt(ss), 1e-9);
    EXPECT_LE(reds["l2"].get<double>(), std::sqrt(ss) + 1e-9);  // spectral <= Frobenius
  }
}

// The same files through s3:// (a real s3rver): identical names, steps and values, and a rule
// evaluation over them.
TEST_F(SmdebugFixtureTest, SameTrialThroughS3) {
  TY_S3RVER_OR_SKIP(s3rver);
  const std::string bucket = ty::testing::S3rver::UniqueBucketName("dbg");
  ASSERT_TRUE(s3rver->CreateBucket(bucket).ok());
  storage::S3ObjectStore s3(s3rver->settings());
  const std::string uri = "s3://" + bucket + "/job/debug-output";
  ASSERT_TRUE(s3.UploadDirectory(kData + "/smdebug_trial", uri).ok());
  auto trial = Trial::Open(&s3, uri);
  Status st = trial->Refresh();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(trial->loaded_all_steps());
  EXPECT_EQ(trial->steps(), trial_->steps());
  EXPECT_EQ(*trial->tensor_names(), *trial_->tensor_names());
  const std::vector<std::string> names = *trial_->tensor_names();
  for (const std::string& name : names) {
    for (int64_t step : trial_->tensor(name)->steps()) {
      auto a = trial_->tensor(name)->value(step);
      auto b = trial->tensor(name)->value(step);
      ASSERT_EQ(a.ok(), b.ok()) << name;
      if (a.ok()) {
        EXPECT_EQ(a->values, b->values) << name << "@" << step;
      }
    }
  }
  EXPECT_GT(trial->stats().records_read, 40u);
}

// Built-in rules over what the real smdebug wrote.
TEST_F(SmdebugFixtureTest, RulesEvaluateRealSmdebugOutput) {
  struct Case {
    std::string rule;
    std::map<std::string, std::string> params;
    RuleStatus want;
    std::optional<int64_t> fired_step;
  };
  std::vector<Case> cases = {
      {"VanishingGradient", {}, RuleStatus::kNoIssuesFound, std::nullopt},
      {"VanishingGradient", {{"threshold", "0.1"}}, RuleStatus::kIssuesFound, 0},
      {"ExplodingTensor", {}, RuleStatus::kNoIssuesFound, std::nullopt},
      {"LossNotDecreasing",
       {{"num_steps", "1"}, {"mode", "TRAIN"}},
       RuleStatus::kNoIssuesFound,
       std::nullopt},
      // relu_output_0 has only reductions saved: nothing to judge per unit, no error.
      {"DeadRelu", {{"tensor_regex", "relu_output"}}, RuleStatus::kNoIssuesFound, std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rule);
    model::RuleSpec spec;
    spec.rule = c.rule;
    spec.parameters = c.params;
    EvaluationContext ctx;
    ctx.trial_uri = "file://" + kData + "/smdebug_trial";
    ctx.open_store = [this](const std::string&) -> Result<storage::ObjectStore*> {
      return &store_;
    };
    auto e = MakeDebugRuleEvaluation(spec, ctx);
    ASSERT_TRUE(e.ok()) << e.status().message();
    EvaluationResult r = (*e)->Advance({});
    EXPECT_EQ(r.status, c.want) << r.details;
    EXPECT_EQ(r.fired_step, c.fired_step) << r.details;
    if (c.want == RuleStatus::kNoIssuesFound) {
      EXPECT_EQ(r.steps_evaluated, 6) << r.details;
    }
  }
}

}  // namespace
}  // namespace ty::debugger
