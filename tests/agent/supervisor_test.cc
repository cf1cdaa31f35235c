#include "agent/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <thread>

namespace ty::agent {
namespace {

SpawnOptions Sh(const std::string& script) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.env = {{"PATH", "/usr/bin:/bin"}};
  return o;
}

TEST(LineSplitterTest, SplitsAndFlushesPartialLine) {
  LineSplitter s;
  std::vector<std::string> lines;
  auto emit = [&](std::string l) { lines.push_back(std::move(l)); };
  s.Feed("a\nbc", 4, emit);
  s.Feed("d\n\ne", 4, emit);
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "bcd", ""}));
  s.Finish(emit);
  EXPECT_EQ(lines.back(), "e");
}

TEST(LineSplitterTest, CapsLineLength) {
  LineSplitter s(4);
  std::vector<std::string> lines;
  auto emit = [&](std::string l) { lines.push_back(std::move(l)); };
  s.Feed("abcdefghij\n", 11, emit);
  EXPECT_EQ(lines, (std::vector<std::string>{"abcd", "efgh", "ij"}));
}

TEST(SupervisorTest, CapturesLinesInOrderAndExitCode) {
  Supervisor sup;
  std::vector<OutputLine> lines;
  int ticks = 0;
  auto r = sup.Run(
      Sh("for i in 1 2 3; do echo out$i; done; echo err >&2; printf tail; exit 4"),
      std::chrono::seconds(5), [&](const OutputLine& l) { lines.push_back(l); }, [&] { ++ticks; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_FALSE(r->stopped);
  std::vector<std::string> out, err;
  for (const auto& l : lines) {
    (l.is_stderr ? err : out).push_back(l.text);
    EXPECT_GT(l.timestamp_ms, 0);
  }
  EXPECT_EQ(out, (std::vector<std::string>{"out1", "out2", "out3", "tail"}));
  EXPECT_EQ(err, (std::vector<std::string>{"err"}));
  EXPECT_GT(ticks, 0);
}

TEST(SupervisorTest, StopSendsTermToTheGroup) {
  Supervisor sup;
  std::vector<std::string> lines;
  std::thread stopper;
  auto r = sup.Run(
      Sh("trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"),
      std::chrono::seconds(5),
      [&](const OutputLine& l) {
        lines.push_back(l.text);
        if (l.text == "ready") sup.RequestStop();
      },
      nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->exit_code, 0);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[0], "ready");
  // sh may also report its TERMed foreground sleep ("Terminated") first.
  EXPECT_NE(std::find(lines.begin(), lines.end(), "got-term"), lines.end());
}

TEST(SupervisorTest, KillsAfterGraceWhenTermIsIgnored) {
  Supervisor sup;
  auto start = std::chrono::steady_clock::now();
  auto r = sup.Run(
      Sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"), std::chrono::milliseconds(300),
      [&](const OutputLine& l) {
        if (l.text == "ready") sup.RequestStop();
      },
      nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

TEST(SupervisorTest, StopBeforeRunDoesNotStart) {
  Supervisor sup;
  sup.RequestStop();
  bool any = false;
  auto r = sup.Run(
      Sh("echo hi"), std::chrono::seconds(1), [&](const OutputLine&) { any = true; }, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stopped);
  EXPECT_FALSE(any);
}

TEST(SupervisorTest, DoesNotHangOnBackgroundChildHoldingThePipe) {
  Supervisor sup;
  auto start = std::chrono::steady_clock::now();
  auto r = sup.Run(
      Sh("sleep 30 & echo bye"), std::chrono::seconds(1), [](const OutputLine&) {}, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(SupervisorTest, SpawnFailureIsAnError) {
  Supervisor sup;
  SpawnOptions o;
  o.argv = {"definitely-not-a-program"};
  auto r = sup.Run(
      o, std::chrono::seconds(1), [](const OutputLine&) {}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "cannot execute 'definitely-not-a-program': No such file or directory");
}

}  // namespace
}  // namespace ty::agent
