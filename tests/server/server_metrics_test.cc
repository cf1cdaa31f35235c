#include "server/server_metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/crypto.h"

namespace ty::server {
namespace {

using namespace std::chrono_literals;

TEST(ServerMetricsTest, CountsRequestsByOutcomeAndBucketsLatency) {
  ServerMetrics m;
  m.OnRequest({"SageMaker", "ListTrainingJobs", 200, "", 2ms});
  m.OnRequest({"SageMaker", "ListTrainingJobs", 200, "", 700ms});
  m.OnRequest({"SageMaker", "DescribeTrainingJob", 400, "ValidationException", 1ms});
  std::string text = m.Render({});
  EXPECT_NE(text.find("trainyard_api_requests_total{service=\"SageMaker\",operation="
                      "\"ListTrainingJobs\",outcome=\"ok\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("outcome=\"ValidationException\"} 1\n"), std::string::npos) << text;
  // Buckets are cumulative: 2 ms falls in le=0.0025 and everything after; 700 ms from le=1.
  EXPECT_NE(text.find("operation=\"ListTrainingJobs\",le=\"0.0025\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("operation=\"ListTrainingJobs\",le=\"0.5\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("operation=\"ListTrainingJobs\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("operation=\"ListTrainingJobs\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("trainyard_api_request_duration_seconds_count{service=\"SageMaker\","
                      "operation=\"ListTrainingJobs\"} 2\n"),
            std::string::npos);
}

TEST(ServerMetricsTest, UnknownServiceAndOperationAreNamedSo) {
  ServerMetrics m;
  m.OnRequest({"", "", 404, "UnknownOperationException", 1ms});
  EXPECT_NE(m.Render({}).find("{service=\"unknown\",operation=\"unknown\",outcome="
                              "\"UnknownOperationException\"} 1"),
            std::string::npos);
}

TEST(ServerMetricsTest, AgentsConnectedCountsRecentReportersOnly) {
  ServerMetrics m;
  TimePoint t0 = FromEpochMillis(1'000'000);
  m.OnAgentReport("job-a/1", 10, 100, 0, t0);
  m.OnAgentReport("job-b/1", 5, 50, 3, t0 + 40s);
  EXPECT_EQ(m.AgentsConnected(t0 + 45s, 30s), 1);
  EXPECT_EQ(m.AgentsConnected(t0 + 20s, 30s), 2);  // both within 30 s of now
  std::string text = m.Render({});
  EXPECT_NE(text.find("trainyard_log_lines_ingested_total 15\n"), std::string::npos) << text;
  EXPECT_NE(text.find("trainyard_log_bytes_ingested_total 150\n"), std::string::npos);
  EXPECT_NE(text.find("trainyard_metric_points_ingested_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("trainyard_agent_reports_total 2\n"), std::string::npos);
}

TEST(ServerMetricsTest, GaugesAndLabelEscaping) {
  ServerMetrics m;
  std::string text =
      m.Render({{"trainyard_jobs", "Jobs.", "gauge", {{{{"status", "a\"b\\c\nd"}}, 3}}}});
  EXPECT_NE(text.find("# TYPE trainyard_jobs gauge\n"), std::string::npos);
  EXPECT_NE(text.find("trainyard_jobs{status=\"a\\\"b\\\\c\\nd\"} 3\n"), std::string::npos) << text;
}

TEST(Base64Test, RoundTripsAndRefusesMalformed) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    std::string out;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &out)) << s;
    EXPECT_EQ(out, s);
  }
  EXPECT_EQ(Base64Encode("AKID:secret"), "QUtJRDpzZWNyZXQ=");
  std::string out;
  EXPECT_FALSE(Base64Decode("abc", &out));   // not a multiple of 4
  EXPECT_FALSE(Base64Decode("ab$=", &out));  // not base64
}

}  // namespace
}  // namespace ty::server
