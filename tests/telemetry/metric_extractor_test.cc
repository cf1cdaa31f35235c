#include "telemetry/metric_extractor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ty::telemetry {
namespace {

using model::MetricDefinition;

std::vector<Sample> ExtractLine(const std::vector<MetricDefinition>& defs, const std::string& line,
                                int64_t ts = 1000) {
  MetricExtractor extractor(defs);
  std::vector<Sample> out;
  extractor.Extract(line, ts, &out);
  return out;
}

struct NumberCase {
  std::string line;
  bool matches;
  double value;
};

class MetricExtractorNumberTest : public ::testing::TestWithParam<NumberCase> {};

TEST_P(MetricExtractorNumberTest, ParsesFirstGroupAsNumber) {
  const NumberCase& c = GetParam();
  auto samples = ExtractLine({{"loss", "loss=(\\S+)"}}, c.line, 42);
  if (!c.matches) {
    EXPECT_TRUE(samples.empty()) << c.line;
    return;
  }
  ASSERT_EQ(samples.size(), 1u) << c.line;
  EXPECT_EQ(samples[0].name, "loss");
  EXPECT_DOUBLE_EQ(samples[0].value, c.value);
  EXPECT_EQ(samples[0].timestamp_ms, 42);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, MetricExtractorNumberTest,
    ::testing::Values(NumberCase{"epoch 1 loss=1", true, 1.0},
                      NumberCase{"epoch 1 loss=1.5", true, 1.5},
                      NumberCase{"loss=1e-05", true, 1e-05}, NumberCase{"loss=-2", true, -2.0},
                      NumberCase{"loss=0.25 done", true, 0.25}, NumberCase{"loss=nan", false, 0},
                      NumberCase{"loss=inf", false, 0}, NumberCase{"loss=-inf", false, 0},
                      NumberCase{"loss=abc", false, 0}, NumberCase{"loss=1.5x", false, 0},
                      NumberCase{"accuracy=0.9", false, 0}, NumberCase{"", false, 0}));

TEST(MetricExtractorTest, UsesFirstCaptureGroup) {
  auto samples = ExtractLine({{"acc", "acc=([0-9.]+) of ([0-9]+)"}}, "acc=0.75 of 100");
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_DOUBLE_EQ(samples[0].value, 0.75);
}

TEST(MetricExtractorTest, GroupWithSurroundingBlanksParses) {
  auto samples = ExtractLine({{"loss", "loss:(.*);"}}, "loss:  3.5 ;");
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_DOUBLE_EQ(samples[0].value, 3.5);
}

TEST(MetricExtractorTest, SeveralDefinitionsMatchOneLine) {
  std::vector<MetricDefinition> defs = {{"train:loss", "loss=([0-9.]+)"},
                                        {"train:acc", "acc=([0-9.]+)"},
                                        {"val:loss", "val_loss=([0-9.]+)"}};
  auto samples = ExtractLine(defs, "step 3 loss=0.5 acc=0.8", 7);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].name, "train:loss");
  EXPECT_DOUBLE_EQ(samples[0].value, 0.5);
  EXPECT_EQ(samples[1].name, "train:acc");
  EXPECT_DOUBLE_EQ(samples[1].value, 0.8);
  EXPECT_EQ(samples[1].timestamp_ms, 7);
}

TEST(MetricExtractorTest, AppendsToExistingSamples) {
  MetricExtractor extractor(std::vector<MetricDefinition>{{"loss", "loss=([0-9.]+)"}});
  std::vector<Sample> out = {{"old", 1, 1}};
  extractor.Extract("loss=2", 5, &out);
  extractor.Extract("loss=3", 6, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].name, "old");
  EXPECT_DOUBLE_EQ(out[2].value, 3);
}

TEST(MetricExtractorTest, InvalidRegexesAreReportedAndNeverMatch) {
  MetricExtractor extractor(std::vector<MetricDefinition>{
      {"bad", "loss=([0-9"}, {"nogroup", "loss=[0-9]+"}, {"good", "loss=([0-9]+)"}});
  EXPECT_EQ(extractor.invalid(), (std::vector<std::string>{"bad", "nogroup"}));
  EXPECT_FALSE(extractor.empty());
  std::vector<Sample> out;
  extractor.Extract("loss=12", 0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "good");
  EXPECT_DOUBLE_EQ(out[0].value, 12);
}

TEST(MetricExtractorTest, EmptyWhenNoUsableDefinition) {
  EXPECT_TRUE(MetricExtractor({}).empty());
  MetricExtractor only_bad(std::vector<MetricDefinition>{{"bad", "("}});
  EXPECT_TRUE(only_bad.empty());
  EXPECT_EQ(only_bad.invalid(), std::vector<std::string>{"bad"});
}

TEST(MergeFinalMetricsTest, KeepsLastValuePerMetricInFirstSeenOrder) {
  std::vector<Sample> samples = {{"loss", 3, 1000},
                                 {"acc", 0.5, 1500},
                                 {"loss", 2, 2000},
                                 {"loss", 1, 3000},
                                 {"acc", 0.7, 3500}};
  std::vector<model::FinalMetric> finals;
  MergeFinalMetrics(samples, &finals);
  ASSERT_EQ(finals.size(), 2u);
  EXPECT_EQ(finals[0].name, "loss");
  EXPECT_DOUBLE_EQ(finals[0].value, 1);
  EXPECT_EQ(ToEpochMillis(finals[0].timestamp), 3000);
  EXPECT_EQ(finals[1].name, "acc");
  EXPECT_DOUBLE_EQ(finals[1].value, 0.7);
  EXPECT_EQ(ToEpochMillis(finals[1].timestamp), 3500);
}

TEST(MergeFinalMetricsTest, UpdatesExistingFinalsAndAppendsNewOnes) {
  std::vector<model::FinalMetric> finals = {{"acc", 0.1, FromEpochMillis(10)},
                                            {"loss", 9, FromEpochMillis(10)}};
  MergeFinalMetrics({{"loss", 4, 20}, {"f1", 0.3, 30}}, &finals);
  ASSERT_EQ(finals.size(), 3u);
  EXPECT_EQ(finals[0].name, "acc");
  EXPECT_DOUBLE_EQ(finals[0].value, 0.1);
  EXPECT_EQ(finals[1].name, "loss");
  EXPECT_DOUBLE_EQ(finals[1].value, 4);
  EXPECT_EQ(ToEpochMillis(finals[1].timestamp), 20);
  EXPECT_EQ(finals[2].name, "f1");
}

TEST(MergeFinalMetricsTest, NoSamplesLeavesFinalsUnchanged) {
  std::vector<model::FinalMetric> finals = {{"acc", 0.1, FromEpochMillis(10)}};
  MergeFinalMetrics({}, &finals);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_DOUBLE_EQ(finals[0].value, 0.1);
}

}  // namespace
}  // namespace ty::telemetry
