#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "debugger/evaluation.h"
#include "debugger/rules_internal.h"
#include "debugger/trial_writer.h"
#include "storage/file_object_store.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

using testing::Filled;
using testing::Scalar;
using testing::TensorSpec;
using testing::TrialWriter;

TensorSpec Alternating(std::string name, std::vector<int64_t> shape, float a) {
  TensorSpec t = Filled(std::move(name), std::move(shape), a);
  for (size_t i = 1; i < t.values.size(); i += 2) t.values[i] = -a;
  return t;
}

class RulesTest : public ::testing::Test {
 protected:
  RulesTest() : store_({dir_.path()}) {}

  TrialWriter Writer(const std::string& name = "trial") {
    return TrialWriter(dir_.path() + "/" + name);
  }
  std::string Uri(const std::string& name = "trial") {
    return "file://" + dir_.path() + "/" + name;
  }

  EvaluationContext Context(const std::string& name = "trial") {
    EvaluationContext ctx;
    ctx.trial_uri = Uri(name);
    ctx.open_store = [this](const std::string&) -> Result<storage::ObjectStore*> {
      return &store_;
    };
    ctx.clock = &clock_;
    return ctx;
  }

  Result<std::unique_ptr<Evaluation>> Make(const std::string& rule,
                                           std::map<std::string, std::string> params = {},
                                           EvaluationContext ctx = {}) {
    model::RuleSpec spec;
    spec.rule = rule;
    spec.parameters = std::move(params);
    spec.parameters["rule_to_invoke"] = rule;
    if (ctx.trial_uri.empty()) ctx = Context();
    return MakeDebugRuleEvaluation(spec, ctx);
  }

  // Advances until the evaluation leaves InProgress (the trial is complete).
  EvaluationResult Run(Evaluation& e) {
    AdvanceLimits limits;
    limits.training_ended = true;
    EvaluationResult r;
    for (int i = 0; i < 10 && r.status == RuleStatus::kInProgress; ++i) r = e.Advance(limits);
    return r;
  }

  ty::testing::TempDir dir_;
  storage::FileObjectStore store_;
  ty::testing::FakeClock clock_;
};

struct RuleCase {
  std::string rule;
  std::map<std::string, std::string> params;
  std::function<void(TrialWriter&)> firing;
  int64_t fired_step;
  std::string details;  // a part of StatusDetails
  std::function<void(TrialWriter&)> healthy;
};

std::vector<RuleCase> Cases() {
  const Mode T = Mode::kTrain, E = Mode::kEval;
  return {
      {"VanishingGradient",
       {},
       [](TrialWriter& w) {
         for (int s = 0; s < 5; ++s) {
           w.WriteStep(s, {Alternating("gradient/Net_fc1.weight", {4}, s == 3 ? 3.1e-9f : 1e-3f)});
         }
       },
       3,
       "VanishingGradient: gradient/Net_fc1.weight abs mean 3.1e-09 < threshold 1e-07 at step 3",
       [](TrialWriter& w) {
         for (int s = 0; s < 5; ++s)
           w.WriteStep(s, {Alternating("gradient/Net_fc1.weight", {4}, 1e-3f)});
       }},
      {"ExplodingTensor",
       {},
       [](TrialWriter& w) {
         for (int s = 0; s < 4; ++s) {
           TensorSpec t = Filled("Net_fc.weight", {3}, 1);
           if (s == 2) t.values[1] = std::numeric_limits<float>::quiet_NaN();
           w.WriteStep(s, {t});
         }
       },
       2,
       "Net_fc.weight has a NaN value at step 2",
       [](TrialWriter& w) {
         for (int s = 0; s < 4; ++s) w.WriteStep(s, {Filled("Net_fc.weight", {3}, 1e30f)});
       }},
      {"LossNotDecreasing",
       {{"diff_percent", "0"}},
       [](TrialWriter& w) {
         std::vector<float> v = {.30f, .33f, .31f, .30f, .28f};
         for (int i = 0; i < 5; ++i)
           w.WriteStep(4 * i, {Scalar("CrossEntropyLoss_output_0", v[i])});
       },
       12,
       "did not decrease",
       [](TrialWriter& w) {
         for (int i = 0; i < 5; ++i) {
           w.WriteStep(
               4 * i, {Scalar("CrossEntropyLoss_output_0", std::pow(0.9f, static_cast<float>(i)))});
         }
       }},
      {"Overfit",
       {},
       [](TrialWriter& w) {
         for (int s = 0; s < 3; ++s)
           w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", 1.0f)}, T, s);
         for (int s = 3; s < 5; ++s)
           w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", 2.0f)}, E, s - 3);
         w.WriteStep(5, {Scalar("CrossEntropyLoss_output_0", 1.0f)}, T, 3);
       },
       5,
       "ratio 1 > ratio_threshold 0.1",
       [](TrialWriter& w) {
         for (int s = 0; s < 3; ++s)
           w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", 1.0f)}, T, s);
         for (int s = 3; s < 5; ++s)
           w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", 1.05f)}, E, s - 3);
         w.WriteStep(5, {Scalar("CrossEntropyLoss_output_0", 1.0f)}, T, 3);
       }},
      {"Overtraining",
       {{"patience_train", "3"}},
       [](TrialWriter& w) {
         std::vector<float> v = {1.0f, 0.9f, 0.9f, 0.895f, 0.9f, 0.5f};
         for (int s = 0; s < 6; ++s) w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", v[s])});
       },
       4,
       "training loss CrossEntropyLoss_output_0 has not improved",
       [](TrialWriter& w) {
         for (int s = 0; s < 6; ++s)
           w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", 1.0f - 0.1f * s)});
       }},
      {"PoorWeightInitialization",
       {},
       [](TrialWriter& w) {
         w.WriteStep(0, {Alternating("layer1.relu_input_0", {4, 2}, 10),
                         Alternating("layer2.relu_input_0", {4, 2}, 1)});
       },
       0,
       "activation-input variance ratio across layers 100",
       [](TrialWriter& w) {
         w.WriteStep(0, {Alternating("layer1.relu_input_0", {4, 2}, 2),
                         Alternating("layer2.relu_input_0", {4, 2}, 1)});
       }},
      {"SaturatedActivation",
       {},
       [](TrialWriter& w) {
         w.WriteStep(0, {Filled("Net_tanh_input_0", {4, 2}, 0)});
         w.WriteStep(1, {Filled("Net_tanh_input_0", {4, 2}, 20)});
       },
       1,
       "Net_tanh_input_0 has 100% saturated units",
       [](TrialWriter& w) {
         w.WriteStep(
             0, {Filled("Net_tanh_input_0", {4, 2}, 0), Filled("Net_sigmoid_input_0", {4, 2}, 10)});
         w.WriteStep(1, {Filled("Net_tanh_input_0", {4, 2}, 9),
                         Filled("Net_sigmoid_input_0", {4, 2}, -20)});
       }},
      {"DeadRelu",
       {},
       [](TrialWriter& w) {
         for (int s = 0; s < 2; ++s) w.WriteStep(s, {Filled("Net_relu_output_0", {4, 3}, 1)});
         w.WriteStep(2, {Filled("Net_relu_output_0", {4, 3}, 0)});
       },
       2,
       "Net_relu_output_0 has 100% dead units",
       [](TrialWriter& w) {
         for (int s = 0; s < 3; ++s) {
           TensorSpec t = Filled("Net_relu_output_0", {4, 3}, 0);
           for (int u = 0; u < 3; ++u) t.values[3 * s + u] = 1;  // each unit alive in one sample
           w.WriteStep(s, {t});
         }
       }},
      {"TensorVariance",
       {{"max_threshold", "10"}},
       [](TrialWriter& w) {
         w.WriteStep(0, {Alternating("Net_fc.weight", {4}, 1)});
         w.WriteStep(1, {Alternating("Net_fc.weight", {4}, 10)});
       },
       1,
       "Net_fc.weight variance 100 > max_threshold 10",
       [](TrialWriter& w) {
         w.WriteStep(0, {Alternating("Net_fc.weight", {4}, 1)});
         w.WriteStep(1, {Alternating("Net_fc.weight", {4}, 3)});
       }},
      {"AllZero",
       {{"tensor_regex", ".*weight"}},
       [](TrialWriter& w) {
         for (int s = 0; s < 4; ++s) w.WriteStep(s, {Filled("Net_fc.weight", {5}, s == 2 ? 0 : 1)});
       },
       2,
       "Net_fc.weight is 100% zeros",
       [](TrialWriter& w) {
         for (int s = 0; s < 4; ++s) {
           TensorSpec t = Filled("Net_fc.weight", {5}, 0);
           t.values[4] = 1;
           w.WriteStep(s, {t, Filled("Net_fc.bias", {5}, 0)});  // the bias is not selected
         }
       }},
      {"UnchangedTensor",
       {{"tensor_regex", "Net_fc.weight"}},
       [](TrialWriter& w) {
         for (int s = 0; s < 4; ++s) w.WriteStep(s, {Filled("Net_fc.weight", {3}, 0.5f)});
       },
       2,
       "Net_fc.weight did not change over its last 3 saved steps",
       [](TrialWriter& w) {
         for (int s = 0; s < 4; ++s)
           w.WriteStep(s, {Filled("Net_fc.weight", {3}, 0.5f + 0.01f * s)});
       }},
      {"ClassImbalance",
       {},
       [](TrialWriter& w) {
         for (int s = 0; s < 3; ++s) w.WriteStep(s, {Scalar("CrossEntropyLoss_output_0", 1)});
         TensorSpec labels = Filled("labels", {1000}, 0);
         for (int i = 990; i < 1000; ++i) labels.values[i] = 1;
         w.WriteStep(3, {labels});
       },
       3,
       "class 0 has 990 samples, class 1 10: ratio 99 > threshold_imbalance 10",
       [](TrialWriter& w) {
         TensorSpec labels = Filled("labels", {1000}, 0);
         for (int i = 500; i < 1000; ++i) labels.values[i] = 1;
         TensorSpec preds = labels;
         preds.name = "predictions";
         w.WriteStep(3, {labels, preds});
       }},
      {"WeightUpdateRatio",
       {},
       [](TrialWriter& w) {
         w.WriteStep(0, {Filled("Net_fc.weight", {4}, 1)});
         w.WriteStep(1, {Filled("Net_fc.weight", {4}, 1)});
       },
       1,
       "Net_fc.weight update/weight ratio 0 since step 0 < small_threshold 1e-08",
       [](TrialWriter& w) {
         w.WriteStep(0, {Filled("Net_fc.weight", {4}, 1)});
         w.WriteStep(1, {Filled("Net_fc.weight", {4}, 1.01f)});
         w.WriteStep(2, {Filled("Net_fc.weight", {4}, 1.01f)}, Mode::kEval,
                     0);  // no update in EVAL
         w.WriteStep(3, {Filled("Net_fc.weight", {4}, 1.02f)});
       }},
  };
}

TEST_F(RulesTest, EachRuleFiresWhereItShouldAndStaysQuietOtherwise) {
  for (const RuleCase& c : Cases()) {
    for (bool firing : {true, false}) {
      SCOPED_TRACE(c.rule + (firing ? " firing" : " healthy"));
      const std::string name = c.rule + (firing ? "_bad" : "_good");
      TrialWriter w = Writer(name);
      w.WriteCollections();
      (firing ? c.firing : c.healthy)(w);
      w.End();
      auto e = Make(c.rule, c.params, Context(name));
      ASSERT_TRUE(e.ok()) << e.status().message();
      EvaluationResult r = Run(**e);
      if (firing) {
        EXPECT_EQ(Name(r.status), std::string("IssuesFound")) << r.details;
        EXPECT_EQ(r.fired_step, c.fired_step) << r.details;
        EXPECT_NE(r.details.find(c.details), std::string::npos) << r.details;
        EXPECT_EQ(r.findings.value("rule", ""), c.rule);
        EXPECT_EQ(r.steps_evaluated, r.last_step ? static_cast<int64_t>(r.steps_evaluated) : 0);
      } else {
        EXPECT_EQ(Name(r.status), std::string("NoIssuesFound")) << r.details;
        EXPECT_FALSE(r.fired_step);
      }
    }
  }
}

TEST_F(RulesTest, VanishingGradientUsesSavedAbsMeanReduction) {
  TrialWriter w = Writer();
  w.WriteCollections();
  w.WriteStep(0, {Scalar("smdebug/reductions/abs_mean/gradient/Net_fc1.weight", 1e-3f),
                  Scalar("CrossEntropyLoss_output_0", 1)});
  w.WriteStep(1, {Scalar("smdebug/reductions/abs_mean/gradient/Net_fc1.weight", 1e-8f)});
  w.End();
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  EvaluationResult r = Run(**e);
  EXPECT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
  EXPECT_EQ(r.fired_step, 1);
  EXPECT_EQ(r.findings["tensors"][0]["name"], "gradient/Net_fc1.weight");
}

TEST_F(RulesTest, HoldsBackAndNeverEvaluatesAStepTwice) {
  TrialWriter w = Writer();
  w.WriteCollections();
  for (int s = 0; s < 6; ++s) w.WriteStep(s, {Alternating("gradient/g", {2}, 1)});
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  AdvanceLimits limits;
  limits.through_step = 2;
  EvaluationResult r = (*e)->Advance(limits);
  EXPECT_EQ(r.status, RuleStatus::kInProgress);
  EXPECT_EQ(r.steps_evaluated, 3);
  EXPECT_EQ(r.last_step, 2);
  r = (*e)->Advance(limits);
  EXPECT_EQ(r.steps_evaluated, 3);
  limits.through_step.reset();
  r = (*e)->Advance(limits);
  EXPECT_EQ(r.steps_evaluated, 6);
  EXPECT_EQ(r.status, RuleStatus::kInProgress);  // not ended: more may come
  w.WriteStep(6, {Alternating("gradient/g", {2}, 1)});
  w.End();
  limits.training_ended = true;
  r = (*e)->Advance(limits);
  EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
  EXPECT_EQ(r.steps_evaluated, 7);
  EXPECT_EQ(r.last_step, 6);
}

TEST_F(RulesTest, TinyBudgetStillProgresses) {
  TrialWriter w = Writer();
  w.WriteCollections();
  for (int s = 0; s < 3; ++s) w.WriteStep(s, {Alternating("gradient/g", {2}, 1)});
  w.End();
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  AdvanceLimits limits;
  limits.budget = std::chrono::milliseconds(0);
  limits.training_ended = true;
  EvaluationResult r;
  int calls = 0;
  while (r.status == RuleStatus::kInProgress && calls < 10) {
    r = (*e)->Advance(limits);
    ++calls;
  }
  EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound);
  EXPECT_EQ(r.steps_evaluated, 3);
  EXPECT_GE(calls, 3);
}

TEST_F(RulesTest, IssuesFoundIsFinal) {
  TrialWriter w = Writer();
  w.WriteCollections();
  w.WriteStep(0, {Alternating("gradient/g", {2}, 0)});
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  EvaluationResult r = (*e)->Advance({});
  ASSERT_EQ(r.status, RuleStatus::kIssuesFound);
  w.WriteStep(1, {Alternating("gradient/g", {2}, 1)});
  r = (*e)->Advance({});
  EXPECT_EQ(r.status, RuleStatus::kIssuesFound);
  EXPECT_EQ(r.fired_step, 0);
  EXPECT_EQ(r.steps_evaluated, 1);
}

TEST_F(RulesTest, UnknownRuleAndBadParameters) {
  auto e = Make("Nope");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.status().message().rfind(
                "Unknown rule 'Nope'. Built-in rules: AllZero, ClassImbalance,", 0),
            0u)
      << e.status().message();
  struct Bad {
    std::string rule;
    std::map<std::string, std::string> params;
    std::string want;
  };
  std::vector<Bad> bad = {
      {"VanishingGradient",
       {{"threshold", "abc"}},
       "Invalid value 'abc' for parameter 'threshold' of rule VanishingGradient"},
      {"VanishingGradient",
       {{"thresold", "1"}},
       "Rule VanishingGradient has no parameter 'thresold'"},
      {"LossNotDecreasing", {{"diff_percent", "150"}}, "parameter 'diff_percent'"},
      {"LossNotDecreasing", {{"num_steps", "0"}}, "parameter 'num_steps'"},
      {"LossNotDecreasing", {{"mode", "TRAINING"}}, "parameter 'mode'"},
      {"ExplodingTensor", {{"only_nan", "maybe"}}, "parameter 'only_nan'"},
      {"ExplodingTensor", {{"tensor_regex", "^(?!gradient)x"}}, "parameter 'tensor_regex'"},
      {"AllZero", {}, "needs parameter 'collection_names' or 'tensor_regex'"},
      {"TensorVariance", {}, "needs parameter 'max_threshold' or 'min_threshold'"},
      {"SimilarAcrossRuns", {}, "needs parameter 'other_trials'"},
      {"UnchangedTensor", {{"num_steps", "1"}}, "parameter 'num_steps'"},
  };
  for (const auto& b : bad) {
    auto r = Make(b.rule, b.params);
    ASSERT_FALSE(r.ok()) << b.rule;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(b.want), std::string::npos) << r.status().message();
  }
  // Python-style strings, as the SDK sends them.
  EXPECT_TRUE(
      Make("ExplodingTensor", {{"only_nan", "True"}, {"collection_names", "weights, gradients"}})
          .ok());
  EXPECT_TRUE(Make("LossNotDecreasing", {{"mode", "EVAL"}, {"num_steps", "5"}}).ok());
}

TEST_F(RulesTest, NoCollectionsAfterTheJobEndedIsClientError) {
  TrialWriter w = Writer();
  w.End();
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  EvaluationResult r = (*e)->Advance({});
  EXPECT_EQ(r.status, RuleStatus::kError);
  EXPECT_EQ(r.details.rfind("ClientError: No debugging data was saved by the training job.", 0), 0u)
      << r.details;
}

TEST_F(RulesTest, NothingYetIsInProgress) {
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  EvaluationResult r = (*e)->Advance({});
  EXPECT_EQ(r.status, RuleStatus::kInProgress);
}

TEST_F(RulesTest, MalformedFilesEndInErrorWithClearDetails) {
  struct Case {
    std::string name;
    std::function<void(TrialWriter&)> corrupt;
    std::string want;
  };
  std::vector<Case> cases = {
      {"truncated record",
       [](TrialWriter& w) {
         std::string ev = TrialWriter::Record(
             TrialWriter::Event(1, Alternating("gradient/g", {2}, 1), Mode::kTrain, 1), false);
         w.Write(w.EventKey(1), ev.substr(0, ev.size() - 5));
       },
       "points past the end of event file events/000000000001/000000000001_worker_0.tfevents"},
      {"bad crc",
       [](TrialWriter& w) {
         std::string ev = TrialWriter::Record(
             TrialWriter::Event(1, Alternating("gradient/g", {2}, 1), Mode::kTrain, 1), false);
         ev[ev.size() - 1] ^= 0x40;
         w.Write(w.EventKey(1), ev);
       },
       "payload CRC does not match"},
      {"bad length crc",
       [](TrialWriter& w) {
         std::string ev = TrialWriter::Record(
             TrialWriter::Event(1, Alternating("gradient/g", {2}, 1), Mode::kTrain, 1), false);
         ev[9] ^= 0x40;
         w.Write(w.EventKey(1), ev);
       },
       "length CRC does not match"},
      {"missing event file", [](TrialWriter& w) { std::filesystem::remove(w.Path(w.EventKey(1))); },
       "the index points to a missing event file"},
      {"bad index json", [](TrialWriter& w) { w.Write(w.IndexKey(1), "{\"meta\": "); },
       "index file index/000000000/000000000001_worker_0.json is malformed"},
      {"bad collections json",
       [](TrialWriter& w) { w.Write("collections/000000000/worker_0_collections.json", "[1, 2"); },
       "collections file collections/000000000/worker_0_collections.json is malformed"},
      {"garbage protobuf",
       [](TrialWriter& w) {
         std::string rec = TrialWriter::Record(std::string("\x2a\xff\xff\xff\xff\x0f", 6), false);
         w.Write(w.EventKey(1), rec);
         nlohmann::json index = {
             {"meta", {{"mode", "TRAIN"}, {"mode_step", 1}, {"event_file_name", w.EventKey(1)}}},
             {"tensor_payload",
              {{{"tensorname", "gradient/g"}, {"start_idx", 0}, {"length", rec.size()}}}}};
         w.Write(w.IndexKey(1), index.dump());
       },
       "runs past the end of its message"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string name = "bad_" + std::to_string(&c - cases.data());
    TrialWriter w = Writer(name);
    w.WriteCollections();
    w.WriteStep(0, {Alternating("gradient/g", {2}, 1)});
    w.WriteStep(1, {Alternating("gradient/g", {2}, 1)});
    c.corrupt(w);
    w.End();
    auto e = Make("VanishingGradient", {}, Context(name));
    ASSERT_TRUE(e.ok());
    EvaluationResult r = Run(**e);
    EXPECT_EQ(r.status, RuleStatus::kError) << r.details;
    EXPECT_NE(r.details.find(c.want), std::string::npos) << r.details;
    EXPECT_LE(r.details.size(), 1024u);
  }
}

TEST_F(RulesTest, InvalidUtf8InFileNamesIsReplacedInDetails) {
  TrialWriter w = Writer();
  w.WriteCollections();
  w.WriteStep(0, {Alternating("gradient/g", {2}, 1)});
  w.Write("index/000000000/000000000001_worker_\xff.json", "{");  // a local name is any bytes
  w.End();
  auto e = Make("VanishingGradient");
  ASSERT_TRUE(e.ok());
  EvaluationResult r = Run(**e);
  ASSERT_EQ(r.status, RuleStatus::kError) << r.details;
  EXPECT_NO_THROW((void)nlohmann::json(r.details).dump());
  EXPECT_NE(r.details.find("worker_\xef\xbf\xbd.json is malformed"), std::string::npos)
      << r.details;  // U+FFFD
}

TEST_F(RulesTest, StalledTrainingUsesTheInjectedClock) {
  TrialWriter w = Writer();
  w.WriteCollections();
  w.WriteStep(0, {Scalar("CrossEntropyLoss_output_0", 1)});
  auto e = Make("StalledTrainingRule", {{"threshold", "60"}});
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->Advance({}).status, RuleStatus::kInProgress);
  clock_.Advance(std::chrono::seconds(50));
  w.WriteStep(1, {Scalar("CrossEntropyLoss_output_0", 1)});
  EXPECT_EQ((*e)->Advance({}).status, RuleStatus::kInProgress);
  clock_.Advance(std::chrono::seconds(60));
  EXPECT_EQ((*e)->Advance({}).status, RuleStatus::kInProgress);  // exactly the threshold
  clock_.Advance(std::chrono::seconds(1));
  EvaluationResult r = (*e)->Advance({});
  EXPECT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
  EXPECT_EQ(r.fired_step, 1);
  EXPECT_NE(r.details.find("no new step was saved for 61 s (threshold 60 s)"), std::string::npos)
      << r.details;
}

TEST_F(RulesTest, StalledTrainingQuietWhenTheJobEnds) {
  TrialWriter w = Writer();
  w.WriteCollections();
  w.WriteStep(0, {Scalar("CrossEntropyLoss_output_0", 1)});
  w.End();
  auto e = Make("StalledTrainingRule", {{"threshold", "60"}});
  ASSERT_TRUE(e.ok());
  clock_.Advance(std::chrono::hours(1));
  EXPECT_EQ(Run(**e).status, RuleStatus::kNoIssuesFound);
}

TEST_F(RulesTest, SimilarAcrossRuns) {
  for (bool differ : {true, false}) {
    SCOPED_TRACE(differ ? "differ" : "same");
    const std::string base = differ ? "base_d" : "base_s", other = differ ? "other_d" : "other_s";
    TrialWriter a = Writer(base), b = Writer(other);
    a.WriteCollections();
    b.WriteCollections();
    for (int s = 0; s < 3; ++s) a.WriteStep(s, {Filled("Net_fc.weight", {3}, 1.0f + s)});
    for (int s = 0; s < 2; ++s) b.WriteStep(s, {Filled("Net_fc.weight", {3}, 1.0f + s)});
    a.End();
    EvaluationContext ctx = Context(base);
    ctx.other_trials = {Uri(other)};
    auto e = Make("SimilarAcrossRuns", {{"other_trial_0", Uri(other)}}, ctx);
    ASSERT_TRUE(e.ok()) << e.status().message();
    AdvanceLimits limits;
    limits.training_ended = true;
    // The other trial has not finished: its last step may still change.
    EvaluationResult r = (*e)->Advance(limits);
    EXPECT_EQ(r.status, RuleStatus::kInProgress);
    EXPECT_EQ(r.last_step, 1);
    b.WriteStep(2, {Filled("Net_fc.weight", {3}, differ ? 3.5f : 3.0f)});
    b.End();
    r = Run(**e);
    if (differ) {
      EXPECT_EQ(r.status, RuleStatus::kIssuesFound) << r.details;
      EXPECT_EQ(r.fired_step, 2);
      EXPECT_NE(r.details.find("Net_fc.weight differs from the other trial's"), std::string::npos);
    } else {
      EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
      EXPECT_EQ(r.steps_evaluated, 3);
    }
  }
}

}  // namespace
}  // namespace ty::debugger
