// SlurmLauncher against a real Slurm cluster (scripts/slurm.sh up; SLURM_CONF names it). The
// agent is a stand-in script that records what reaches it (its node, signals), and a child of
// it in a session of its own records what reaches a training process. Skipped, with a message,
// when no cluster answers. Partitions: $TY_SLURM_SPOT (spot), $TY_SLURM_ONDEMAND (ondemand).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "common/fs.h"
#include "launch/slurm_launcher.h"
#include "testing/temp_dir.h"

namespace ty::launch {
namespace {

using testing::TempDir;

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v ? v : fallback;
}

// Waits for `done` up to `seconds` (Slurm schedules every second or so).
bool WaitFor(const std::function<bool()>& done, int seconds = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

constexpr char kFakeAgent[] = R"(#!/bin/sh
# Stand-in for `trainyard agent --instance FILE`: records its node and every signal it gets,
# and so does a child in its own session (a training process).
f="$3"; out="${f%.instance.json}.signals"; child="${f%.instance.json}.child-signals"
echo "start node=$SLURM_NODEID" >> "$out"
for s in TERM INT HUP USR1 USR2 WINCH URG; do trap "echo $s >> '$out'" $s; done
setsid sh -c "for s in TERM INT HUP USR1 USR2 WINCH URG; do trap \"echo \$s >> '$child'\" \$s; done; echo start >> '$child'; while :; do sleep 0.2; done" &
while :; do sleep 0.2; done
)";

class SlurmClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SlurmClient probe(SlurmClientOptions{});
    auto ping = probe.Run("scontrol", {"ping"});
    if (!ping.ok() || ping->exit_code != 0 || ping->out.find("UP") == std::string::npos) {
      GTEST_SKIP() << "no Slurm cluster answers (start one with `scripts/slurm.sh up` and "
                      "export SLURM_CONF, e.g. eval \"$(scripts/slurm.sh env)\")";
    }
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub("agent"), kFakeAgent, 0755).ok());
    options_.spot_partition = Env("TY_SLURM_SPOT", "spot");
    options_.on_demand_partition = Env("TY_SLURM_ONDEMAND", "ondemand");
    options_.server_url = "http://127.0.0.1:1";
    options_.agent_binary = dir_.Sub("agent");
    options_.job_name_prefix = "tyut" + std::to_string(::getpid()) + "-";
    options_.instance_types["ml.m5.large"].cpus = 1;
    launcher_ = std::make_unique<SlurmLauncher>(options_);
  }
  void TearDown() override {
    if (launcher_) launcher_->Sweep({}, {});  // nothing of ours is left in Slurm
  }

  AttemptPlan Plan(const std::string& name, int count, bool spot) {
    AttemptPlan p;
    p.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/" + name;
    p.spot = spot;
    p.instance_type = "ml.m5.large";
    p.network.count = count;
    std::string attempt = dir_.Sub(name + "/attempt-1");
    for (int i = 1; i <= count; ++i) {
      model::InstanceConfig c;
      c.job_name = name;
      c.job_arn = p.job_arn;
      c.host_index = i;
      c.num_cpus = 1;
      c.instance_dir = attempt + "/algo-" + std::to_string(i);
      EXPECT_TRUE(MakeDirs(c.instance_dir).ok());
      p.instances.push_back(c);
    }
    return p;
  }
  AttemptState PollOne(const AttemptHandle& h) {
    std::vector<AttemptHandle> hs = {h};
    return launcher_->Poll(hs).at(0);
  }
  std::string Read(const std::string& path) {
    auto t = ReadFile(path);
    return t.ok() ? *t : "";
  }

  TempDir dir_{"ty_slurm_cluster_test_"};
  SlurmLauncherOptions options_;
  std::unique_ptr<SlurmLauncher> launcher_;
};

TEST_F(SlurmClusterTest, DescribeNamesTheClusterAndPartitions) {
  std::string d = launcher_->Describe();
  EXPECT_NE(d.find("launcher: slurm (cluster "), std::string::npos) << d;
  EXPECT_NE(d.find("spot partition " + options_.spot_partition + ": PreemptMode="),
            std::string::npos)
      << d;
  EXPECT_EQ(d.find("ERROR"), std::string::npos) << d;
}

TEST_F(SlurmClusterTest, RefusedSubmissionCarriesSlurmsReason) {
  options_.on_demand_partition = "no-such-partition";
  SlurmLauncher l(options_);
  auto h = l.LaunchAttempt(Plan("badpart", 1, false));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("partition specified: no-such-partition"), std::string::npos)
      << h.status().message();
}

// Two nodes, one agent each; the meanings reach them as the header says, and kKill ends it.
TEST_F(SlurmClusterTest, TwoNodeAttemptSignalsAndKill) {
  AttemptPlan plan = Plan("sig", 2, /*spot=*/true);
  auto h = launcher_->LaunchAttempt(plan);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  std::string attempt = dir_.Sub("sig/attempt-1");
  ASSERT_TRUE(WaitFor([&] {
    return PollOne(*h).phase == AttemptState::Phase::kRunning &&
           Read(attempt + "/algo-1.signals").find("start") != std::string::npos &&
           Read(attempt + "/algo-2.signals").find("start") != std::string::npos &&
           Read(attempt + "/algo-2.child-signals").find("start") != std::string::npos;
  })) << Read(attempt + "/slurm-" + h->id.substr(6) + ".out");
  EXPECT_EQ(PollOne(*h).alive, (std::vector<bool>{true, true}));
  EXPECT_NE(Read(attempt + "/algo-1.signals").find("node=0"), std::string::npos);
  EXPECT_NE(Read(attempt + "/algo-2.signals").find("node=1"), std::string::npos);

  launcher_->Signal(*h, AttemptSignal::kStop);
  ASSERT_TRUE(WaitFor([&] {
    return Read(attempt + "/algo-1.signals").find("WINCH") != std::string::npos &&
           Read(attempt + "/algo-2.signals").find("WINCH") != std::string::npos;
  }));
  launcher_->Signal(*h, AttemptSignal::kAbort);
  ASSERT_TRUE(
      WaitFor([&] { return Read(attempt + "/algo-2.signals").find("URG") != std::string::npos; }));
  launcher_->Signal(*h, AttemptSignal::kNotice);  // spot: SIGTERM, as a preemption
  ASSERT_TRUE(
      WaitFor([&] { return Read(attempt + "/algo-1.signals").find("TERM") != std::string::npos; }));
  // Slurm signals every process of the step, a training process in a session of its own too:
  // why the meanings use signals that are harmless to it.
  EXPECT_TRUE(WaitFor([&] {
    std::string seen = Read(attempt + "/algo-2.child-signals");
    return seen.find("WINCH") != std::string::npos && seen.find("TERM") != std::string::npos;
  })) << Read(attempt + "/algo-2.child-signals");

  launcher_->Signal(*h, AttemptSignal::kKill);
  ASSERT_TRUE(WaitFor([&] { return PollOne(*h).phase == AttemptState::Phase::kEnded; }));
  launcher_->ReleaseAttempt(*h);
}

// A second attempt that cannot fit waits in Slurm's queue with Slurm's reason; Sweep cancels
// attempts not kept.
TEST_F(SlurmClusterTest, QueuedAttemptIsPendingThenSwept) {
  auto first = launcher_->LaunchAttempt(Plan("big", 2, false));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return PollOne(*first).phase == AttemptState::Phase::kRunning; }));
  auto second = launcher_->LaunchAttempt(Plan("waiter", 2, false));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  AttemptState s;
  ASSERT_TRUE(WaitFor([&] {
    s = PollOne(*second);
    return s.phase == AttemptState::Phase::kPending && !s.reason.empty();
  }));
  std::cerr << "pending reason: " << s.reason << std::endl;
  std::vector<AttemptHandle> keep = {*first};
  launcher_->Sweep(keep, {});
  ASSERT_TRUE(WaitFor([&] { return PollOne(*second).phase == AttemptState::Phase::kEnded; }));
  EXPECT_EQ(PollOne(*first).phase, AttemptState::Phase::kRunning);
  launcher_->Signal(*first, AttemptSignal::kKill);
  ASSERT_TRUE(WaitFor([&] { return PollOne(*first).phase == AttemptState::Phase::kEnded; }));
}

}  // namespace
}  // namespace ty::launch
