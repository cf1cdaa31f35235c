// The real `trainyard agent` started by SlurmLauncher through sbatch/srun on a real Slurm
// cluster (scripts/slurm.sh up; SLURM_CONF names it), reporting to a stand-in control plane:
// each agent learns its host and its peers' addresses from the allocation, the container
// contract (SM_HOSTS, SM_CURRENT_HOST, resourceconfig.json, /etc/hosts) holds as locally, and
// the launcher's meanings reach the agents. Skipped, with a message, when no cluster answers
// or the trainyard binary is not found ($TRAINYARD_BIN, else <build>/trainyard).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "agent/agent_test_util.h"
#include "common/fs.h"
#include "launch/slurm_launcher.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

using model::AgentReport;
using ty::testing::TempDir;

class SlurmAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    launch::SlurmClient probe(launch::SlurmClientOptions{});
    auto ping = probe.Run("scontrol", {"ping"});
    if (!ping.ok() || ping->exit_code != 0 || ping->out.find("UP") == std::string::npos) {
      GTEST_SKIP() << "no Slurm cluster answers (start one with `scripts/slurm.sh up` and "
                      "export SLURM_CONF, e.g. eval \"$(scripts/slurm.sh env)\")";
    }
    const char* bin = std::getenv("TRAINYARD_BIN");
    auto self = RealPath("/proc/self/exe");
    std::string exe_dir = self.ok() ? self->substr(0, self->find_last_of('/')) : ".";
    binary_ = bin != nullptr && *bin ? bin : JoinPath(exe_dir, "../../trainyard");
    auto real = RealPath(binary_);
    if (!real.ok()) GTEST_SKIP() << "no trainyard binary at " << binary_ << " (TRAINYARD_BIN)";
    binary_ = *real;
    launch::SlurmLauncherOptions o;
    o.spot_partition = "spot";
    o.on_demand_partition = "ondemand";
    o.server_url = cp_.url();
    o.agent_binary = binary_;
    o.job_name_prefix = "tyagent" + std::to_string(::getpid()) + "-";
    o.instance_types["ml.m5.large"].cpus = 1;
    launcher_ = std::make_unique<launch::SlurmLauncher>(o);
  }
  void TearDown() override {
    if (launcher_) launcher_->Sweep({}, {});
  }

  launch::AttemptPlan Plan(const std::string& name, int count, bool spot,
                           const std::string& script) {
    launch::AttemptPlan p;
    p.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/" + name;
    p.spot = spot;
    p.instance_type = "ml.m5.large";
    p.network.count = count;
    for (int i = 1; i <= count; ++i) {
      model::InstanceConfig c;
      c.job_name = name;
      c.job_arn = p.job_arn;
      c.region = "us-east-1";
      c.account = "123456789012";
      c.host_index = i;
      for (int h = 1; h <= count; ++h) c.hosts.push_back("algo-" + std::to_string(h));
      c.instance_dir = dir_.Sub(name + "/attempt-1/algo-" + std::to_string(i));
      EXPECT_TRUE(MakeDirs(c.instance_dir).ok());
      c.log_stream = name + "/algo-" + std::to_string(i) + "-1700000000";
      c.server_url_file = dir_.Sub("no-such-url-file");  // server_url is used instead
      c.token = "tok";
      c.stop_grace_seconds = 5;
      c.metrics_interval_ms = 0;
      c.file_roots = {dir_.path()};
      c.image.command = {"/bin/sh"};
      c.spec.name = name;
      c.spec.instance_type = "ml.m5.large";
      c.spec.output_path = "file://" + dir_.Sub("out");
      c.spec.container_entrypoint = {"/bin/sh", "-c"};
      c.spec.container_arguments = {script};
      p.instances.push_back(c);
    }
    return p;
  }

  static int Exits(const std::vector<AgentReport>& rs) {
    int n = 0;
    for (const auto& r : rs) n += r.type == AgentReport::Type::kExit ? 1 : 0;
    return n;
  }
  bool WaitForExits(int n, int seconds = 90) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Exits(cp_.reports()) >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string AllLines() {
    std::string all;
    for (const auto& l : cp_.LogLines()) all += l + "\n";
    return all;
  }

  testing::FakeControlPlane cp_;
  TempDir dir_{"ty_slurm_agent_test_"};
  std::string binary_;
  std::unique_ptr<launch::SlurmLauncher> launcher_;
};

TEST_F(SlurmAgentTest, TwoAgentsLearnTheirPeersFromTheAllocation) {
  auto h = launcher_->LaunchAttempt(
      Plan("peers", 2, false,
           "echo \"me=$SM_CURRENT_HOST hosts=$SM_HOSTS port=$SM_MASTER_PORT\"; "
           "echo \"rc=$(cat /opt/ml/input/config/resourceconfig.json)\"; "
           "echo \"peer=$(getent hosts algo-2 | cut -d' ' -f1)\""));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_TRUE(WaitForExits(2)) << AllLines();
  for (const auto& r : cp_.reports()) {
    if (r.type == AgentReport::Type::kExit) {
      EXPECT_EQ(r.outcome, AgentReport::Outcome::kCompleted) << r.failure_reason;
    }
  }
  std::string all = AllLines();
  EXPECT_NE(all.find("me=algo-1 hosts=[\"algo-1\",\"algo-2\"]"), std::string::npos) << all;
  EXPECT_NE(all.find("me=algo-2 hosts=[\"algo-1\",\"algo-2\"]"), std::string::npos) << all;
  EXPECT_NE(all.find("\"current_host\":\"algo-2\""), std::string::npos) << all;
  EXPECT_NE(all.find("peer=127.0.0.1"), std::string::npos) << all;  // the nodes' NodeAddr
  EXPECT_NE(all.find("is node n2"), std::string::npos) << all;
}

// A spot attempt's agent takes Slurm's SIGTERM as the notice (reports Interrupted); kStop
// (SIGWINCH) to an on-demand attempt stops it (reports Stopped), and the script, which gets
// the signal too, is unharmed by it and stops on the agent's SIGTERM.
TEST_F(SlurmAgentTest, NoticeAndStopReachTheAgents) {
  const std::string script =
      "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.1; done";
  auto spot = launcher_->LaunchAttempt(Plan("spotty", 1, true, script));
  ASSERT_TRUE(spot.ok()) << spot.status().ToString();
  auto demand = launcher_->LaunchAttempt(Plan("steady", 1, false, script));
  ASSERT_TRUE(demand.ok()) << demand.status().ToString();
  // Both scripts run (one node each).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  auto started = [&] {
    int n = 0;
    for (const auto& l : cp_.LogLines()) n += l == "started" ? 1 : 0;
    return n;
  };
  while (started() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(started(), 2) << AllLines();
  launcher_->Signal(*spot, launch::AttemptSignal::kNotice);
  launcher_->Signal(*demand, launch::AttemptSignal::kStop);
  ASSERT_TRUE(WaitForExits(2)) << AllLines();
  for (const auto& r : cp_.reports()) {
    if (r.type != AgentReport::Type::kExit) continue;
    if (r.job_arn.find("spotty") != std::string::npos) {
      EXPECT_EQ(r.outcome, AgentReport::Outcome::kInterrupted);
    } else {
      EXPECT_EQ(r.outcome, AgentReport::Outcome::kStopped);
    }
  }
}

// Slurm preempting the spot attempt (an on-demand job wants its nodes) is the notice: the
// agents report Interrupted within the partition's GraceTime, and Poll says preempted.
TEST_F(SlurmAgentTest, PreemptionIsTheNotice) {
  const std::string script =
      "trap 'echo saving; sleep 1; echo saved; exit 0' TERM; echo started; "
      "while :; do sleep 0.1; done";
  auto spot = launcher_->LaunchAttempt(Plan("preempted", 2, true, script));
  ASSERT_TRUE(spot.ok()) << spot.status().ToString();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  auto started = [&] {
    int n = 0;
    for (const auto& l : cp_.LogLines()) n += l == "started" ? 1 : 0;
    return n;
  };
  while (started() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(started(), 2) << AllLines();
  const auto preempt_at = std::chrono::steady_clock::now();
  auto od = launcher_->client().Run("sbatch", {"--parsable", "-N", "2", "-p", "ondemand", "-J",
                                               "tyagent" + std::to_string(::getpid()) + "-od", "-o",
                                               "/dev/null", "--wrap", "true"});
  ASSERT_TRUE(od.ok() && od->exit_code == 0) << (od.ok() ? od->err : od.status().ToString());
  ASSERT_TRUE(WaitForExits(2)) << AllLines();
  std::cerr << "preemption to both exit reports: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - preempt_at)
                   .count()
            << " ms" << std::endl;
  for (const auto& r : cp_.reports()) {
    if (r.type == AgentReport::Type::kExit) {
      EXPECT_EQ(r.outcome, AgentReport::Outcome::kInterrupted) << r.failure_reason;
    }
  }
  EXPECT_NE(AllLines().find("saved"), std::string::npos) << AllLines();
  std::vector<launch::AttemptHandle> hs = {*spot};
  launch::AttemptState st;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  do {
    st = launcher_->Poll(hs).at(0);
    if (st.phase == launch::AttemptState::Phase::kEnded) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(st.phase, launch::AttemptState::Phase::kEnded) << st.reason;
  EXPECT_TRUE(st.preempted) << st.reason;
}

}  // namespace
}  // namespace ty::agent
