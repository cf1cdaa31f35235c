#include "debugger/system_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "debugger/profiler_test_util.h"
#include "storage/file_object_store.h"
#include "storage/uri.h"
#include "testing/temp_dir.h"

namespace ty::debugger {
namespace {

struct LineCase {
  const char* name;
  std::string line;
  bool ok;
  const char* error_part;  // a part of the error message (when !ok)
};

TEST(SystemMetricLine, Table) {
  const std::vector<LineCase> cases = {
      {"full",
       R"({"Type":"cpu","Name":"cpu0","Dimension":"CPUUtilization","Value":12.5,"NodeId":"algo-1","Timestamp":1591160699.45})",
       true, ""},
      {"no name",
       R"({"Type":"memory","Dimension":"MemoryUsedPercent","Value":40,"NodeId":"algo-1","Timestamp":1})",
       true, ""},
      {"null name",
       R"({"Type":"memory","Name":null,"Dimension":"M","Value":40,"NodeId":"algo-1","Timestamp":1})",
       true, ""},
      {"extra keys",
       R"({"Type":"cpu","Dimension":"D","Value":1,"NodeId":"n","Timestamp":1,"X":"y"})", true, ""},
      {"not json", "{\"Type\":", false, "not a JSON sample"},
      {"array", "[1,2]", false, "not a JSON object"},
      {"nested", R"({"Type":{"a":1},"Dimension":"D","Value":1,"NodeId":"n","Timestamp":1})", false,
       "deeper"},
      {"no type", R"({"Dimension":"D","Value":1,"NodeId":"n","Timestamp":1})", false, "\"Type\""},
      {"no value", R"({"Type":"cpu","Dimension":"D","NodeId":"n","Timestamp":1})", false,
       "\"Value\""},
      {"string value", R"({"Type":"cpu","Dimension":"D","Value":"1","NodeId":"n","Timestamp":1})",
       false, "not a number"},
      {"no node", R"({"Type":"cpu","Dimension":"D","Value":1,"Timestamp":1})", false, "\"NodeId\""},
      {"numeric node", R"({"Type":"cpu","Dimension":"D","Value":1,"NodeId":1,"Timestamp":1})",
       false, "not a string"},
      {"negative time", R"({"Type":"cpu","Dimension":"D","Value":1,"NodeId":"n","Timestamp":-1})",
       false, "seconds since the epoch"},
      {"millis time",
       R"({"Type":"cpu","Dimension":"D","Value":1,"NodeId":"n","Timestamp":1591160699457000})",
       false, "seconds since the epoch"},
      {"long field",
       "{\"Type\":\"" + std::string(300, 'x') +
           "\",\"Dimension\":\"D\",\"Value\":1,\"NodeId\":\"n\",\"Timestamp\":1}",
       false, "longer than 256"},
      {"long line", "{\"Type\":\"" + std::string(20000, 'x') + "\"}", false, "longer than"},
  };
  for (const auto& c : cases) {
    auto r = ParseSystemMetricLine(c.line);
    EXPECT_EQ(r.ok(), c.ok) << c.name << ": " << r.status().message();
    if (!c.ok && !r.ok()) {
      EXPECT_NE(r.status().message().find(c.error_part), std::string::npos)
          << c.name << ": " << r.status().message();
    }
  }
  auto full = ParseSystemMetricLine(cases[0].line);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->type, "cpu");
  EXPECT_EQ(full->name, "cpu0");
  EXPECT_EQ(full->dimension, "CPUUtilization");
  EXPECT_DOUBLE_EQ(full->value, 12.5);
  EXPECT_EQ(full->node_id, "algo-1");
  EXPECT_DOUBLE_EQ(full->timestamp, 1591160699.45);
}

TEST(SystemMetricKey, Table) {
  struct Case {
    const char* key;
    bool ok;
  } cases[] = {
      {"incremental/2020060500/1591160699.algo-1.json", true},
      {"incremental/2020060500/1591160699.algo-12.json", true},
      {"incremental/2020060500/1591160699.json", false},
      {"incremental/202006050/1591160699.algo-1.json", false},
      {"incremental/2020060500/159116069.algo-1.json", false},
      {"incremental/2020060500/1591160699.algo-1.json.tmp", false},
      {"incremental/2020060500/x/1591160699.algo-1.json", false},
      {"other/2020060500/1591160699.algo-1.json", false},
      {"incremental/2020060500/1591160699.al/go.json", false},
  };
  for (const auto& c : cases) EXPECT_EQ(ParseSystemMetricKey(c.key).has_value(), c.ok) << c.key;
  auto k = ParseSystemMetricKey("incremental/2020060500/1591160699.algo-1.json");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->hour_dir, "2020060500");
  EXPECT_EQ(k->epoch_seconds, 1591160699);
  EXPECT_EQ(k->node_id, "algo-1");
}

class ReaderTest : public ::testing::Test {
 protected:
  ReaderTest() : store_({dir_.path()}), scratch_("ty_scratch_") {}

  std::string ProfilerDir() const { return dir_.Sub("job/profiler-output"); }
  SystemMetricsReader MakeReader() {
    return SystemMetricsReader(&store_, storage::FileUriFromPath(ProfilerDir()) + "/",
                               scratch_.path());
  }
  Status Poll(SystemMetricsReader& r, std::vector<SystemMetricEvent>* out, bool final,
              uint64_t max_bytes = 1 << 20) {
    return r.Poll(
        [out](const SystemMetricEvent& e) {
          out->push_back(e);
          return Status::Ok();
        },
        std::chrono::steady_clock::now() + std::chrono::seconds(30), final, max_bytes);
  }
  void Write(const std::string& rel, const std::string& text) {
    const std::string path = ProfilerDir() + "/system/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    ASSERT_TRUE(WriteFileAtomic(path, text, 0644, false).ok());
  }

  ty::testing::TempDir dir_;
  storage::FileObjectStore store_;
  ty::testing::TempDir scratch_;
};

std::string Line(double t, double v, const std::string& node = "algo-1") {
  return testing::SampleLine(node, t, "cpu", "cpu0", "CPUUtilization", v);
}

TEST_F(ReaderTest, ReadsGrowingFilesOnceEachAndHoldsBackPartialLines) {
  auto reader = MakeReader();
  std::vector<SystemMetricEvent> got;
  ASSERT_TRUE(Poll(reader, &got, false).ok());
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(reader.caught_up());

  const std::string key = "incremental/2025120719/1765134000.algo-1.json";
  const std::string partial = Line(3, 3.0);
  Write(key, Line(1, 1.0) + Line(2, 2.0) + partial.substr(0, 20));
  ASSERT_TRUE(Poll(reader, &got, false).ok());
  ASSERT_EQ(got.size(), 2u);

  Write(key, Line(1, 1.0) + Line(2, 2.0) + partial + Line(4, 4.0));
  Write("incremental/2025120719/1765134060.algo-1.json", Line(61, 61.0));
  Write("incremental/2025120719/notes.txt", "not a metrics file\n");
  ASSERT_TRUE(Poll(reader, &got, false).ok());
  ASSERT_EQ(got.size(), 5u);
  std::vector<double> values;
  for (const auto& e : got) values.push_back(e.value);
  EXPECT_EQ(values, (std::vector<double>{1, 2, 3, 4, 61}));

  // Nothing new: nothing delivered twice.
  ASSERT_TRUE(Poll(reader, &got, true).ok());
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(reader.samples_read(), 5);
  EXPECT_EQ(reader.files_seen(), 2u);
}

TEST_F(ReaderTest, MalformedLineIsAnErrorNamingFileAndLine) {
  Write("incremental/2025120719/1765134000.algo-1.json",
        Line(1, 1.0) + "{\"Type\": \"cpu\", oops}\n" + Line(3, 3.0));
  auto reader = MakeReader();
  std::vector<SystemMetricEvent> got;
  Status s = Poll(reader, &got, false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1765134000.algo-1.json, line 2"), std::string::npos) << s.message();
}

TEST_F(ReaderTest, TruncatedLastLineIsSkippedOnceTheWriterIsDone) {
  Write("incremental/2025120719/1765134000.algo-1.json", Line(1, 1.0) + "{\"Type\": \"cp");
  auto reader = MakeReader();
  std::vector<SystemMetricEvent> got;
  ASSERT_TRUE(Poll(reader, &got, false).ok());
  EXPECT_EQ(got.size(), 1u);
  ASSERT_TRUE(Poll(reader, &got, true).ok());
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(reader.skipped_partial_lines(), 1);
  EXPECT_TRUE(reader.caught_up());
}

TEST_F(ReaderTest, UnterminatedWholeLastLineIsReadAtTheEnd) {
  std::string last = Line(2, 2.0);
  last.pop_back();
  Write("incremental/2025120719/1765134000.algo-1.json", Line(1, 1.0) + last);
  auto reader = MakeReader();
  std::vector<SystemMetricEvent> got;
  ASSERT_TRUE(Poll(reader, &got, true).ok());
  EXPECT_EQ(got.size(), 2u);
}

TEST_F(ReaderTest, FileOverTheLimitIsAnError) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += Line(i, i);
  Write("incremental/2025120719/1765134000.algo-1.json", text);
  auto reader = MakeReader();
  std::vector<SystemMetricEvent> got;
  Status s = Poll(reader, &got, false, 1000);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("limit"), std::string::npos) << s.message();
}

TEST_F(ReaderTest, OverlongLineIsAnErrorEvenWithoutNewline) {
  Write("incremental/2025120719/1765134000.algo-1.json", std::string(20000, 'x'));
  auto reader = MakeReader();
  std::vector<SystemMetricEvent> got;
  Status s = Poll(reader, &got, false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("longer than"), std::string::npos) << s.message();
}

// The checked-in fixture (tests/debugger/data/profiler-output) read by this reader gives the
// summary that the real smdebug LocalSystemMetricsReader gives (tests/e2e/test_profiler_rules.py
// checks smdebug against the same expected_summary.json).
TEST(SystemMetricsFixture, MatchesTheSummarySmdebugReads) {
  const std::string data = std::string(TY_SOURCE_DIR) + "/tests/debugger/data";
  storage::FileObjectStore store({data});
  ty::testing::TempDir scratch;
  SystemMetricsReader reader(&store, storage::FileUriFromPath(data + "/profiler-output"),
                             scratch.path());
  nlohmann::json series = nlohmann::json::object();
  int64_t samples = 0;
  Status s = reader.Poll(
      [&](const SystemMetricEvent& e) {
        auto& entry = series[e.node_id + "/" + e.dimension];
        if (entry.is_null()) entry = {{"count", 0}, {"sum", 0.0}};
        entry["count"] = entry.value("count", 0) + 1;
        entry["sum"] = entry.value("sum", 0.0) + e.value;
        ++samples;
        return Status::Ok();
      },
      std::chrono::steady_clock::now() + std::chrono::seconds(60), true, 1 << 20);
  ASSERT_TRUE(s.ok()) << s.message();
  auto text = ReadFile(data + "/expected_summary.json");
  ASSERT_TRUE(text.ok());
  auto expected = nlohmann::json::parse(*text);
  EXPECT_EQ(samples, expected["samples"].get<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(reader.files_seen()), expected["files"].get<int64_t>());
  ASSERT_EQ(series.size(), expected["series"].size());
  for (const auto& [key, want] : expected["series"].items()) {
    ASSERT_TRUE(series.contains(key)) << key;
    EXPECT_EQ(series[key]["count"], want["count"]) << key;
    EXPECT_NEAR(series[key]["sum"].get<double>(), want["sum"].get<double>(), 1e-6) << key;
  }
  EXPECT_EQ(reader.node_ids(), (std::vector<std::string>{"algo-1", "algo-2"}));
}

}  // namespace
}  // namespace ty::debugger
