// The profiler rules over s3:// (a real s3rver): the system-metrics fixture uploaded to a bucket
// is read to the summary smdebug reads, incrementally, and ProfilerReport uploads its report.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "debugger/profiler_rules.h"
#include "debugger/system_metrics.h"
#include "storage/s3_object_store.h"
#include "testing/fake_clock.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

const std::string kData = std::string(TY_SOURCE_DIR) + "/tests/debugger/data";

TEST(ProfilerOverS3, ReadsTheFixtureIncrementallyAndUploadsTheReport) {
  TY_S3RVER_OR_SKIP(s3rver);
  const std::string bucket = ty::testing::S3rver::UniqueBucketName("profiler");
  ASSERT_TRUE(s3rver->CreateBucket(bucket).ok());
  storage::S3ObjectStore store(s3rver->settings());
  const std::string profiler_uri = "s3://" + bucket + "/out/job/profiler-output/";

  // Upload the fixture's files one node at a time: the reader sees the second node only later.
  std::map<std::string, std::vector<std::string>> by_node;
  const std::string root = kData + "/profiler-output";
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = entry.path().string().substr(root.size() + 1);
    by_node[rel.find("algo-1") != std::string::npos ? "algo-1" : "algo-2"].push_back(rel);
  }
  auto upload = [&](const std::string& node) {
    for (const auto& rel : by_node[node]) {
      ASSERT_TRUE(store.UploadFile(root + "/" + rel, profiler_uri + rel).ok()) << rel;
    }
  };

  ty::testing::TempDir scratch;
  SystemMetricsReader reader(&store, profiler_uri, scratch.path());
  std::map<std::string, std::pair<int64_t, double>> series;
  auto sink = [&](const SystemMetricEvent& e) {
    auto& s = series[e.node_id + "/" + e.dimension];
    ++s.first;
    s.second += e.value;
    return Status::Ok();
  };
  const auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(60); };
  upload("algo-1");
  ASSERT_TRUE(reader.Poll(sink, deadline(), false, 1 << 20).ok());
  const int64_t first = reader.samples_read();
  EXPECT_GT(first, 0);
  upload("algo-2");
  ASSERT_TRUE(reader.Poll(sink, deadline(), true, 1 << 20).ok());
  EXPECT_TRUE(reader.caught_up());

  auto text = ReadFile(kData + "/expected_summary.json");
  ASSERT_TRUE(text.ok());
  auto expected = nlohmann::json::parse(*text);
  EXPECT_EQ(reader.samples_read(), expected["samples"].get<int64_t>());
  ASSERT_EQ(series.size(), expected["series"].size());
  for (const auto& [key, want] : expected["series"].items()) {
    EXPECT_EQ(series[key].first, want["count"].get<int64_t>()) << key;
    EXPECT_NEAR(series[key].second, want["sum"].get<double>(), 1e-6) << key;
  }

  // ProfilerReport over the same bucket writes its report there.
  model::JobSpec spec;
  spec.name = "job";
  EvaluationContext ctx;
  ctx.trial_uri = profiler_uri;
  ctx.open_store = [&](const std::string&) -> Result<storage::ObjectStore*> {
    return static_cast<storage::ObjectStore*>(&store);
  };
  ctx.spec = &spec;
  model::RuleSpec rule;
  rule.configuration_name = rule.rule = "ProfilerReport";
  ty::testing::FakeClock clock;
  auto eval = MakeProfilerRuleEvaluation(rule, ctx, clock);
  ASSERT_TRUE(eval.ok()) << eval.status().message();
  AdvanceLimits ended;
  ended.training_ended = true;
  EvaluationResult r = (*eval)->Advance(ended);
  EXPECT_EQ(r.status, RuleStatus::kNoIssuesFound) << r.details;
  EXPECT_EQ(r.steps_evaluated, expected["samples"].get<int64_t>());
  auto listed =
      store.List("s3://" + bucket + "/out/job/rule-output/ProfilerReport/profiler-output/");
  ASSERT_TRUE(listed.ok());
  std::vector<std::string> keys;
  for (const auto& o : *listed) keys.push_back(o.key);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "profiler-report.html"), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), "profiler-reports/CPUBottleneck.json"), keys.end());
}

}  // namespace
}  // namespace ty::debugger
