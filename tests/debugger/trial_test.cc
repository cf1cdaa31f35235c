#include "debugger/trial.h"

#include <gtest/gtest.h>

#include "debugger/trial_writer.h"
#include "storage/file_object_store.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

using testing::Filled;
using testing::Scalar;
using testing::TrialWriter;

class TrialTest : public ::testing::Test {
 protected:
  TrialTest() : store_({dir_.path()}), writer_(dir_.path() + "/trial") {}
  std::unique_ptr<Trial> Open(TrialOptions o = {}) {
    return Trial::Open(&store_, "file://" + dir_.path() + "/trial", o);
  }
  ty::testing::TempDir dir_;
  storage::FileObjectStore store_;
  TrialWriter writer_;
};

TEST_F(TrialTest, StepsModesAndValues) {
  writer_.WriteCollections();
  writer_.WriteStep(
      0, {Filled("Net_fc.weight", {2, 2}, 0.5f), Scalar("CrossEntropyLoss_output_0", 2.0f)},
      Mode::kTrain, 0);
  writer_.WriteStep(
      5, {Filled("Net_fc.weight", {2, 2}, 0.25f), Scalar("CrossEntropyLoss_output_0", 1.0f)},
      Mode::kEval, 0);
  auto trial = Open();
  ASSERT_TRUE(trial->Refresh().ok());
  // One worker: each step with its index file is complete.
  EXPECT_EQ(trial->steps(), (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(trial->steps(Mode::kEval), (std::vector<int64_t>{0}));
  EXPECT_EQ(trial->global_step(Mode::kEval, 0), 5);
  EXPECT_EQ(trial->mode_step(5)->first, Mode::kEval);
  EXPECT_EQ(trial->step_state(3), StepState::kUnavailable);      // a later step is complete
  EXPECT_EQ(trial->step_state(6), StepState::kNotYetAvailable);  // training has not ended
  auto w = trial->tensor("Net_fc.weight");
  ASSERT_TRUE(w.ok());
  auto v = w->value(5);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(v->values, (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  EXPECT_EQ(w->value(0, Mode::kEval)->values[0], 0.25);
  EXPECT_DOUBLE_EQ(*w->reduction(0, "l1"), 2.0);
  EXPECT_EQ(w->value(3).status().code(), StatusCode::kNotFound);
  auto losses = trial->tensor_names({.collection = "losses"});
  ASSERT_TRUE(losses.ok());
  EXPECT_EQ(*losses, (std::vector<std::string>{"CrossEntropyLoss_output_0"}));
  EXPECT_EQ(*trial->tensor_names({.collection = "weights"}),
            (std::vector<std::string>{"Net_fc.weight"}));
  EXPECT_FALSE(trial->tensor_names({.regex = "(?!x)y"}).ok());  // RE2 has no lookahead
  EXPECT_FALSE(trial->tensor_names({.collection = "nope"}).ok());
  EXPECT_FALSE(trial->loaded_all_steps());
  writer_.End();
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_TRUE(trial->loaded_all_steps());
  EXPECT_EQ(trial->step_state(6), StepState::kUnavailable);
}

TEST_F(TrialTest, StepCompletionWaitsForAllWorkers) {
  writer_.WriteCollections("worker_0", 2);
  writer_.WriteCollections("worker_1", 2);
  writer_.WriteStep(0, {Scalar("loss_output", 1)}, Mode::kTrain, 0, "worker_0");
  auto trial = Open();
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->num_workers(), 2);
  EXPECT_TRUE(trial->steps().empty());
  EXPECT_EQ(trial->step_state(0), StepState::kNotYetAvailable);
  writer_.WriteStep(1, {Scalar("loss_output", 1)}, Mode::kTrain, 1, "worker_0");
  writer_.WriteStep(1, {Scalar("loss_output", 1)}, Mode::kTrain, 1, "worker_1");
  ASSERT_TRUE(trial->Refresh().ok());
  // Step 1 is complete, so step 0 (worker_1 never wrote it) is complete too.
  EXPECT_EQ(trial->steps(), (std::vector<int64_t>{0, 1}));
  writer_.WriteStep(2, {Scalar("loss_output", 1)}, Mode::kTrain, 2, "worker_1");
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->steps(), (std::vector<int64_t>{0, 1}));
  writer_.End();
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->steps(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(trial->stats().index_files_read, 4u);  // nothing read twice
}

TEST_F(TrialTest, WaitWindowMovesPastAMissingWorker) {
  writer_.WriteCollections("worker_0", 2);
  TrialOptions o;
  o.incomplete_step_wait_window = 4;
  for (int s = 0; s < 6; ++s) writer_.WriteStep(s, {Scalar("x", 1)}, Mode::kTrain, s, "worker_0");
  auto trial = Open(o);
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->last_complete_step(), 2);
}

TEST_F(TrialTest, SavedReductionsAndComputedOnes) {
  writer_.WriteCollections();
  writer_.WriteStep(0, {{"g", {4}, {1, -2, 3, -4}},
                        Scalar("smdebug/reductions/abs_mean/r", 7),
                        Scalar("smdebug/reductions/variance/r", 9)});
  writer_.End();
  auto trial = Open();
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_DOUBLE_EQ(*trial->tensor("g")->reduction(0, "mean", true), 2.5);
  EXPECT_DOUBLE_EQ(*trial->tensor("g")->reduction(0, "variance"), 7.25);
  auto r = trial->tensor("r");
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(*r->reduction(0, "mean", true), 7);
  EXPECT_DOUBLE_EQ(*r->reduction(0, "variance"), 9);
  EXPECT_EQ(r->value(0).status().code(), StatusCode::kFailedPrecondition);  // reductions only
  EXPECT_EQ(r->reduction(0, "max").status().code(), StatusCode::kNotFound);
  auto names = trial->tensor_names({.show_prefixed = true});
  EXPECT_EQ(*names, (std::vector<std::string>{"g", "r", "smdebug/reductions/abs_mean/r",
                                              "smdebug/reductions/variance/r"}));
}

TEST_F(TrialTest, RewrittenStepIsReadAgain) {
  writer_.WriteCollections();
  writer_.WriteStep(0, {Scalar("x", 1)});
  auto trial = Open();
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->tensor("x")->value(0)->values[0], 1);
  // A spot restart rewrites step 0 with other content (and a longer index file).
  writer_.WriteStep(0, {Scalar("y", 0), Scalar("x", 2)});
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->tensor("x")->value(0)->values[0], 2);
}

TEST_F(TrialTest, MalformedFilesAreClearErrors) {
  writer_.WriteCollections();
  writer_.WriteStep(0, {Scalar("x", 1)});
  writer_.WriteStep(1, {Filled("big", {1000}, 1)});
  // Index pointing past the end of the event file.
  writer_.Write(writer_.EventKey(0), "");
  TrialOptions o;
  o.max_tensor_bytes = 1000;
  auto trial = Open(o);
  ASSERT_TRUE(trial->Refresh().ok());
  auto v = trial->tensor("x")->value(0);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("points past the end"), std::string::npos)
      << v.status().message();
  auto big = trial->tensor("big")->value(1);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("limit of 1000 bytes"), std::string::npos)
      << big.status().message();
  writer_.Write(writer_.IndexKey(2), "{not json");
  Status s = trial->Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("index/000000000/000000000002_worker_0.json is malformed"),
            std::string::npos)
      << s.message();
}

TEST_F(TrialTest, ListsOnlyTheNewestIndexFoldersBetweenFullListings) {
  writer_.WriteCollections();
  writer_.WriteStep(0, {Scalar("x", 1)});
  auto trial = Open();
  ASSERT_TRUE(trial->Refresh().ok());         // the first refresh lists everything
  writer_.WriteStep(1000, {Scalar("x", 1)});  // the next folder: seen at once
  writer_.WriteStep(3000, {Scalar("x", 1)});  // two folders on: seen at the next full listing
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->all_steps(), (std::vector<int64_t>{0, 1000}));
  for (int i = 0; i < 20 && trial->all_steps().size() < 3; ++i) ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->all_steps(), (std::vector<int64_t>{0, 1000, 3000}));
  writer_.WriteStep(6000, {Scalar("x", 1)});
  writer_.End();  // once training ended every refresh lists everything
  ASSERT_TRUE(trial->Refresh().ok());
  EXPECT_EQ(trial->all_steps(), (std::vector<int64_t>{0, 1000, 3000, 6000}));
  EXPECT_TRUE(trial->loaded_all_steps());
}

TEST(RegexSearchTest, BuiltInLookaheadsAndRe2) {
  struct Case {
    std::string pattern, name;
    bool want;
  };
  std::vector<Case> cases = {
      {"^(?!gradient).*weight", "Net_fc1.weight", true},
      {"^(?!gradient).*weight", "gradient/Net_fc1.weight", false},
      {"^(?!gradient).*bias", "Net_fc1.bias", true},
      {"^(?!gradient).*bias", "gradient/Net_fc1.bias", false},
      {"[Ll]oss_(?!input).*output", "CrossEntropyLoss_output_0", true},
      {"[Ll]oss_(?!input).*output", "CrossEntropyLoss_input_0", false},
      {"[Ll]oss_(?!input).*output", "my_loss_input_then_loss_x_output", true},
      {"^gradient", "gradient/x", true},
      {".*relu_output", "Net_relu_output_0", true},
      {"relu", "Net_fc", false},
  };
  for (const auto& c : cases) {
    auto r = RegexSearch(c.pattern, c.name);
    ASSERT_TRUE(r.ok()) << c.pattern;
    EXPECT_EQ(*r, c.want) << c.pattern << " ~ " << c.name;
  }
  auto bad = RegexSearch("^(?!foo)bar", "bar");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'^(?!foo)bar' is not supported"), std::string::npos);
}

}  // namespace
}  // namespace ty::debugger
