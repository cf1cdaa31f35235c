// AgentReport JSON: instance samples round-trip, bad values are dropped, too many are refused.
#include "model/agent_protocol.h"

#include <gtest/gtest.h>

namespace ty::model {
namespace {

using nlohmann::json;

TEST(AgentProtocolTest, SamplesRideOnLogReports) {
  AgentReport r;
  r.type = AgentReport::Type::kLog;
  r.job_arn = "arn:aws:sagemaker:us-east-1:1:training-job/j";
  r.stream = "j/algo-1-1";
  InstanceSample s;
  s.timestamp_ms = 1234;
  s.cpu = 150.5;
  s.disk = 3;
  r.samples = {s};
  auto back = AgentReportFromJson(AgentReportToJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->samples.size(), 1u);
  EXPECT_EQ(back->samples[0].timestamp_ms, 1234);
  EXPECT_EQ(back->samples[0].cpu, 150.5);
  EXPECT_EQ(back->samples[0].disk, 3);
  EXPECT_FALSE(back->samples[0].memory);
  EXPECT_FALSE(back->samples[0].gpu);
  // A report without samples has no member for them (older servers see nothing new).
  r.samples.clear();
  EXPECT_FALSE(AgentReportToJson(r).contains("samples"));
}

TEST(AgentProtocolTest, BadSampleValuesAreDroppedAndTooManySamplesRefused) {
  json j = {{"type", "log"}, {"job_arn", "a"}, {"stream", "s"}, {"lines", json::array()}};
  j["samples"] = {{{"t", 1}, {"cpu", -1}, {"mem", 1e9}, {"disk", "x"}, {"gpu", 50}}};
  auto r = AgentReportFromJson(j);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->samples.size(), 1u);
  EXPECT_FALSE(r->samples[0].cpu);
  EXPECT_FALSE(r->samples[0].memory);
  EXPECT_FALSE(r->samples[0].disk);
  EXPECT_EQ(r->samples[0].gpu, 50);
  j["samples"] = json::array();
  for (size_t i = 0; i <= kMaxSamplesPerReport; ++i) j["samples"].push_back({{"t", 1}});
  EXPECT_FALSE(AgentReportFromJson(j).ok());
  j["samples"] = "nope";
  EXPECT_FALSE(AgentReportFromJson(j).ok());
}

}  // namespace
}  // namespace ty::model
