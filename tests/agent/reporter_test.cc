#include "agent/reporter.h"

#include <gtest/gtest.h>

#include <optional>

#include "agent_test_util.h"
#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

using testing::FakeControlPlane;
using ty::testing::TempDir;

model::AgentReport Log(const std::string& msg) {
  model::AgentReport r;
  r.type = model::AgentReport::Type::kLog;
  r.job_arn = "arn";
  r.stream = "s";
  r.lines = {{1, msg}};
  return r;
}

Reporter::Options Opts(const TempDir& dir) {
  Reporter::Options o;
  o.server_url_file = dir.Sub("url");
  o.token = "tok";
  o.undelivered_log = dir.Sub("undelivered.log");
  o.min_backoff = std::chrono::milliseconds(10);
  o.max_backoff = std::chrono::milliseconds(50);
  return o;
}

TEST(ReporterTest, DeliversInOrderWithIncreasingSeq) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url() + "\n").ok());
  Reporter rep(Opts(dir), [](const std::string&) {});
  for (int i = 0; i < 20; ++i) rep.Send(Log("m" + std::to_string(i)));
  model::AgentReport exit;
  exit.type = model::AgentReport::Type::kExit;
  exit.job_arn = "arn";
  rep.Send(exit);
  ASSERT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  auto reports = cp.reports();
  ASSERT_EQ(reports.size(), 21u);
  for (size_t i = 0; i < reports.size(); ++i)
    EXPECT_EQ(reports[i].seq, static_cast<int64_t>(i + 1));
  EXPECT_EQ(reports[3].lines[0].message, "m3");
  EXPECT_EQ(reports.back().type, model::AgentReport::Type::kExit);
}

TEST(ReporterTest, RetriesTransientFailures) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url()).ok());
  cp.FailNext(3, 503);
  Reporter rep(Opts(dir), [](const std::string&) {});
  rep.Send(Log("a"));
  rep.Send(Log("b"));
  ASSERT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  EXPECT_EQ(cp.LogLines(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cp.requests(), 5);
}

TEST(ReporterTest, RereadsUrlFileAfterConnectionFailure) {
  TempDir dir("ty_agent_test_");
  int dead_port;
  {
    FakeControlPlane gone;
    dead_port = gone.port();
  }
  ASSERT_TRUE(
      WriteFileAtomic(dir.Sub("url"), "http://127.0.0.1:" + std::to_string(dead_port)).ok());
  std::optional<FakeControlPlane> cp;  // outlives the reporter's connection
  Reporter rep(Opts(dir), [](const std::string&) {});
  rep.Send(Log("hello"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it fail a few times
  EXPECT_EQ(rep.delivered(), 0);
  cp.emplace();
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp->url()).ok());
  ASSERT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  EXPECT_EQ(cp->LogLines(), (std::vector<std::string>{"hello"}));
}

TEST(ReporterTest, PermanentErrorDropsTheReport) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp("other-token");  // our token is refused with 401
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url()).ok());
  std::vector<std::string> diags;
  std::mutex mu;
  Reporter rep(Opts(dir), [&](const std::string& l) {
    std::lock_guard<std::mutex> lock(mu);
    diags.push_back(l);
  });
  rep.Send(Log("lost line"));
  EXPECT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  EXPECT_EQ(cp.requests(), 1);
  EXPECT_EQ(rep.dropped(), 1);
  auto undelivered = ReadFile(dir.Sub("undelivered.log"));
  ASSERT_TRUE(undelivered.ok());
  EXPECT_NE(undelivered->find("lost line"), std::string::npos);
}

TEST(ReporterTest, BoundedBufferCountsDroppedLinesOnLaterReports) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url()).ok());
  cp.FailNext(1000000, 503);  // the control plane cannot store anything (a full disk)
  Reporter::Options o = Opts(dir);
  o.max_buffered_lines = 5;
  Reporter rep(o, [](const std::string&) {});
  for (int i = 0; i < 20; ++i) rep.Send(Log("m" + std::to_string(i)));
  EXPECT_GE(rep.lost_lines(), 14);  // at most 5 queued and one in flight are kept
  cp.FailNext(0, 503);              // the disk was freed
  model::AgentReport exit;
  exit.type = model::AgentReport::Type::kExit;
  exit.job_arn = "arn";
  rep.Send(exit);
  ASSERT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  auto reports = cp.reports();
  ASSERT_FALSE(reports.empty());
  const auto& last = reports.back();
  EXPECT_EQ(last.type, model::AgentReport::Type::kExit);
  // Every line is either delivered or counted on the exit report.
  EXPECT_EQ(static_cast<int64_t>(cp.LogLines().size()) + last.lost_lines, 20);
  EXPECT_EQ(last.lost_lines, rep.lost_lines());
  EXPECT_NE(last.lost_reason.find("buffer of 5 lines overflowed"), std::string::npos)
      << last.lost_reason;
  // The newest lines are kept: the last one arrived.
  EXPECT_EQ(cp.LogLines().back(), "m19");
}

TEST(ReporterTest, OneReportLongerThanTheBufferKeepsItsNewestLines) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url()).ok());
  cp.FailNext(1000000, 503);
  Reporter::Options o = Opts(dir);
  o.max_buffered_lines = 10;
  Reporter rep(o, [](const std::string&) {});
  model::AgentReport big = Log("m0");
  for (int i = 1; i < 40; ++i) big.lines.push_back({1, "m" + std::to_string(i)});
  rep.Send(big);
  EXPECT_EQ(rep.lost_lines(), 30);
  cp.FailNext(0, 503);
  ASSERT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  auto lines = cp.LogLines();
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_EQ(lines[0], "m30");
  EXPECT_EQ(lines.back(), "m39");
}

TEST(ReporterTest, RefusedLinesAreCounted) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp("other-token");
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url()).ok());
  Reporter rep(Opts(dir), [](const std::string&) {});
  model::AgentReport two = Log("a");
  two.lines.push_back({2, "b"});
  rep.Send(two);
  EXPECT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  EXPECT_EQ(rep.lost_lines(), 2);
}

}  // namespace
}  // namespace ty::agent

namespace ty::agent {
namespace {

// Samples-only log reports (a quiet job's metrics) queue at most max_buffered_samples samples
// while the control plane cannot take them; the newest are kept, no line is counted as lost.
TEST(ReporterTest, QueuedSamplesAreBoundedOldestFirst) {
  TempDir dir("ty_agent_test_");
  FakeControlPlane cp;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("url"), cp.url()).ok());
  cp.FailNext(1000000, 503);
  Reporter::Options o = Opts(dir);
  o.max_buffered_samples = 10;
  Reporter rep(o, [](const std::string&) {});
  for (int i = 0; i < 50; ++i) {
    model::AgentReport r;
    r.type = model::AgentReport::Type::kLog;
    r.job_arn = "arn";
    r.stream = "s";
    model::InstanceSample s;
    s.timestamp_ms = i;
    s.cpu = i;
    r.samples = {s, s};
    rep.Send(std::move(r));
  }
  cp.FailNext(0, 503);
  ASSERT_TRUE(rep.WaitIdle(std::chrono::seconds(10)));
  std::vector<int64_t> times;
  for (const auto& r : cp.reports()) {
    for (const auto& s : r.samples) times.push_back(s.timestamp_ms);
  }
  // At most the bound queued plus the report in flight; the newest among them.
  EXPECT_LE(times.size(), 12u);
  ASSERT_FALSE(times.empty());
  EXPECT_EQ(times.back(), 49);
  EXPECT_EQ(rep.lost_lines(), 0);
}

}  // namespace
}  // namespace ty::agent
