#include "launch/local_launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "testing/temp_dir.h"

namespace ty::launch {
namespace {

using testing::TempDir;

// Polls `done` until it holds or 10 s pass; the launcher has no blocking wait.
bool WaitFor(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : text) {
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

class LocalLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    agent_ = dir_.path() + "/fake-agent.sh";
    argv_file_ = dir_.path() + "/argv.txt";
    // Records its argv (atomically, one per line), then waits to be signalled.
    std::string script = "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '" + argv_file_ +
                         ".tmp'\nmv '" + argv_file_ + ".tmp' '" + argv_file_ + "'\nexec sleep 60\n";
    ASSERT_TRUE(WriteFileAtomic(agent_, script, 0755).ok());
    instance_dir_ = dir_.path() + "/jobs/my-job/algo-1";
    ASSERT_TRUE(MakeDirs(instance_dir_).ok());
    config_.job_name = "my-job";
    config_.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job";
    config_.host_index = 1;
    config_.hosts = {"algo-1"};
    config_.instance_dir = instance_dir_;
    config_.token = "secret-token";
    config_.spec.name = "my-job";
  }

  void TearDown() override {
    for (const AgentHandle& h : started_) {
      if (h.pid > 0 && ProcessStartTicks(h.pid) == h.start_ticks) ::kill(h.pid, SIGKILL);
      ::waitpid(static_cast<pid_t>(h.pid), nullptr, 0);
    }
  }

  TempDir dir_{"ty_launch_test_"};
  std::string agent_;
  std::string argv_file_;
  std::string instance_dir_;
  model::InstanceConfig config_;
  std::vector<AgentHandle> started_;
};

TEST_F(LocalLauncherTest, LaunchWritesInstanceFileBesideInstanceDirAndPassesIt) {
  LocalLauncher launcher(agent_);
  config_.memory_gib = 8;
  config_.enforce_limits = true;
  config_.network.netns = "ty-0123abcd-1";
  config_.network.interface = "eth0";
  config_.network.address = "10.1.2.2";
  config_.network.hosts = {{"algo-1", "10.1.2.2"}, {"algo-2", "10.1.2.3"}};
  auto handle = launcher.Launch(config_);
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  started_.push_back(*handle);
  EXPECT_GT(handle->pid, 0);
  EXPECT_GT(handle->start_ticks, 0);

  auto parent = RealPath(dir_.path() + "/jobs/my-job");
  ASSERT_TRUE(parent.ok());
  std::string instance_file = *parent + "/algo-1.instance.json";
  struct stat st {};
  ASSERT_EQ(::stat(instance_file.c_str(), &st), 0) << instance_file;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(PathExists(instance_dir_ + "/algo-1.instance.json"));
  EXPECT_FALSE(PathExists(instance_dir_ + "/instance.json"));
  EXPECT_TRUE(PathExists(*parent + "/algo-1.agent.log"));

  auto text = ReadFile(instance_file);
  ASSERT_TRUE(text.ok());
  auto parsed = model::InstanceConfigFromJson(nlohmann::json::parse(*text));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->job_name, "my-job");
  EXPECT_EQ(parsed->token, "secret-token");
  EXPECT_EQ(parsed->instance_dir, instance_dir_);
  EXPECT_EQ(parsed->memory_gib, 8);
  EXPECT_TRUE(parsed->enforce_limits);
  EXPECT_EQ(parsed->network.netns, "ty-0123abcd-1");
  EXPECT_EQ(parsed->network.interface, "eth0");
  EXPECT_EQ(parsed->network.address, "10.1.2.2");
  EXPECT_EQ(parsed->network.master_port, 7777);
  EXPECT_EQ(parsed->network.hosts, (std::vector<std::pair<std::string, std::string>>{
                                       {"algo-1", "10.1.2.2"}, {"algo-2", "10.1.2.3"}}));

  ASSERT_TRUE(WaitFor([&] { return PathExists(argv_file_); }));
  auto argv = ReadFile(argv_file_);
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ(Lines(*argv), (std::vector<std::string>{"agent", "--instance", instance_file}));
}

TEST_F(LocalLauncherTest, AliveUntilSignalledThenReaped) {
  LocalLauncher launcher(agent_);
  auto handle = launcher.Launch(config_);
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  started_.push_back(*handle);
  EXPECT_TRUE(launcher.Alive(*handle));
  EXPECT_EQ(ProcessStartTicks(handle->pid), handle->start_ticks);

  launcher.Signal(*handle, SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return !launcher.Alive(*handle); }));
  EXPECT_FALSE(launcher.Alive(*handle));
  // Reaped: the pid no longer exists, not even as a zombie we own.
  EXPECT_EQ(::waitpid(static_cast<pid_t>(handle->pid), nullptr, WNOHANG), -1);
  EXPECT_EQ(ProcessStartTicks(handle->pid), 0);
  // Signalling a gone agent is harmless.
  launcher.Signal(*handle, SIGKILL);
  EXPECT_FALSE(launcher.Alive(*handle));
}

TEST_F(LocalLauncherTest, SecondInstanceGetsItsOwnFile) {
  LocalLauncher launcher(agent_);
  std::string second_dir = dir_.path() + "/jobs/my-job/algo-2";
  ASSERT_TRUE(MakeDirs(second_dir).ok());
  config_.host_index = 2;
  config_.instance_dir = second_dir;
  auto handle = launcher.Launch(config_);
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  started_.push_back(*handle);
  EXPECT_TRUE(PathExists(dir_.path() + "/jobs/my-job/algo-2.instance.json"));
  EXPECT_FALSE(PathExists(dir_.path() + "/jobs/my-job/algo-1.instance.json"));
  launcher.Signal(*handle, SIGKILL);
  EXPECT_TRUE(WaitFor([&] { return !launcher.Alive(*handle); }));
}

TEST_F(LocalLauncherTest, MissingAgentBinaryIsAnErrorNamingIt) {
  std::string missing = dir_.path() + "/no-such-agent";
  LocalLauncher launcher(missing);
  auto handle = launcher.Launch(config_);
  ASSERT_FALSE(handle.ok());
  EXPECT_NE(handle.status().message().find(missing), std::string::npos)
      << handle.status().message();
}

TEST_F(LocalLauncherTest, MissingInstanceDirIsAnError) {
  LocalLauncher launcher(agent_);
  config_.instance_dir = dir_.path() + "/nowhere/algo-1";
  auto handle = launcher.Launch(config_);
  EXPECT_FALSE(handle.ok());
}

// ProcessStartTicks / ProcessAlive (zombies, reaped and foreign pids):
// tests/common/subprocess_test.cc.

TEST(LocalHandleTest, FormatsAlgo1FirstAndParsesBack) {
  std::vector<LocalAgent> agents = {{1234, 98765}, {0, 0}, {7, 1}};
  const std::string text = FormatLocalHandle(agents);
  EXPECT_EQ(text, "local:1234/98765,0/0,7/1");
  auto back = ParseLocalHandle(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, agents);
  // One instance, and the largest pid the kernel hands out.
  EXPECT_EQ(*ParseLocalHandle("local:2147483647/5"), (std::vector<LocalAgent>{{2147483647, 5}}));
}

TEST(LocalHandleTest, MalformedHandlesAreNone) {
  for (const std::string& text : std::vector<std::string>{
           "",
           "local:",
           "local",
           "slurm:1234",
           "LOCAL:1/2",
           "local:1",
           "local:1/",
           "local:/2",
           "local:1/2,",
           "local:,1/2",
           "local:1/2,,3/4",
           "local:1/2/3",
           "local:-1/2",
           "local:1/-2",
           "local: 1/2",
           "local:1/2 ",
           "local:+1/2",
           "local:1x/2",
           "local:0x10/2",
           "local:1/99999999999999999999",
           "local:2147483648/1",
           // A running pid without its start time could be any process; 0/ticks is nothing.
           "local:1/0",
           "local:1234/0",
           "local:0/5",
           std::string("local:1/2\0", 11),
       }) {
    EXPECT_FALSE(ParseLocalHandle(text).has_value()) << "'" << text << "'";
  }
}

TEST(LocalHandleTest, ParsingIsBounded) {
  std::string many = "local:";
  for (size_t i = 0; i < kMaxLocalHandleAgents; ++i) many += (i ? ",1/1" : "1/1");
  EXPECT_EQ(ParseLocalHandle(many)->size(), kMaxLocalHandleAgents);
  EXPECT_FALSE(ParseLocalHandle(many + ",1/1").has_value());
  EXPECT_FALSE(ParseLocalHandle("local:" + std::string(1 << 20, '1') + "/1").has_value());
  EXPECT_FALSE(ParseLocalHandle("local:1/" + std::string(1 << 20, '1')).has_value());
}

TEST(LocalLauncherAliveTest, ForeignProcessCheckedByStartTicks) {
  LocalLauncher launcher("/bin/true");
  int64_t ticks = ProcessStartTicks(::getpid());
  EXPECT_TRUE(launcher.Alive({::getpid(), ticks}));
  EXPECT_TRUE(launcher.Alive({::getpid(), 0}));
  EXPECT_FALSE(launcher.Alive({::getpid(), ticks + 1}));
  EXPECT_FALSE(launcher.Alive({0, 0}));
}

TEST(NetworkPolicyTest, ParsesTheThreePoliciesAndRefusesOthers) {
  EXPECT_EQ(*ParseNetworkPolicy("auto"), NetworkPolicy::kAuto);
  EXPECT_EQ(*ParseNetworkPolicy("namespaces"), NetworkPolicy::kNamespaces);
  EXPECT_EQ(*ParseNetworkPolicy("loopback"), NetworkPolicy::kLoopback);
  EXPECT_FALSE(ParseNetworkPolicy("host").ok());
}

TEST(LocalLauncherNetworkTest, ASingleInstanceOnTheHostsNetworkIsSaidLoudly) {
  LocalLauncher launcher("/bin/true", NetworkPolicy::kLoopback);
  const std::string arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/hostnet";
  NetworkRequest one;
  EXPECT_TRUE(launcher.PreparesNetworkAtOnce(one));  // nothing to make in the kernel
  auto net = launcher.PrepareNetwork(arn, one);
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  ASSERT_EQ(net->size(), 1u);
  EXPECT_TRUE((*net)[0].empty());
  EXPECT_NE((*net)[0].notice.find("WARNING: shares the host's network"), std::string::npos)
      << (*net)[0].notice;
  EXPECT_NE((*net)[0].notice.find("'loopback'"), std::string::npos) << (*net)[0].notice;
  // Network isolation is never given weaker than promised.
  NetworkRequest isolated;
  isolated.isolated = true;
  auto refused = launcher.PrepareNetwork(arn, isolated);
  ASSERT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("EnableNetworkIsolation"), std::string::npos);
}

TEST(LocalLauncherNetworkTest, ASingleInstanceGetsANamespaceWhereTheMachineAllowsIt) {
  const NetworkSupport support = ProbeNetworkSupport();
  if (!support.namespaces) GTEST_SKIP() << "no network namespaces here: " << support.reason;
  // The firewall is off here (LocalNetworkOptions' default): the notice says so.
  LocalLauncher launcher("/bin/true", NetworkPolicy::kAuto,
                         {"t" + JobNetworkKey(RandomUuid()).substr(1)});
  const std::string arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/own";
  NetworkRequest one;
  EXPECT_FALSE(launcher.PreparesNetworkAtOnce(one));
  auto net = launcher.PrepareNetwork(arn, one);
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  ASSERT_EQ(net->size(), 1u);
  EXPECT_EQ((*net)[0].interface, "eth0");
  EXPECT_EQ((*net)[0].netns.rfind("ty-", 0), 0u) << (*net)[0].netns;
  EXPECT_TRUE(PathExists("/run/netns/" + (*net)[0].netns));
  EXPECT_NE((*net)[0].notice.find("WARNING: no firewall"), std::string::npos) << (*net)[0].notice;
  NetworkRequest bare;
  bare.sandboxed = false;  // isolation: none cannot enter a namespace
  EXPECT_TRUE(launcher.PreparesNetworkAtOnce(bare));
  launcher.ReleaseNetwork(arn);
  EXPECT_FALSE(PathExists("/run/netns/" + (*net)[0].netns));
  // Without the firewall a namespace keeps nothing out: an isolated job is refused, not run.
  NetworkRequest isolated;
  isolated.isolated = true;
  auto refused = launcher.PrepareNetwork(
      "arn:aws:sagemaker:us-east-1:123456789012:training-job/iso", isolated);
  ASSERT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("nftables firewall"), std::string::npos)
      << refused.status().message();
}

TEST(LocalLauncherNetworkTest, LoopbackPolicyGivesAliasesAndTheSameAddressesAgain) {
  LocalLauncher launcher("/bin/true", NetworkPolicy::kLoopback);
  const std::string arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/loop";
  auto net = launcher.PrepareNetwork(arn, NetworkRequest{3});
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  ASSERT_EQ(net->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*net)[i].interface, "lo");
    EXPECT_TRUE((*net)[i].netns.empty());
    EXPECT_EQ((*net)[i].address.rfind("127.", 0), 0u) << (*net)[i].address;
    EXPECT_EQ((*net)[i].hosts.size(), 3u);
    EXPECT_EQ((*net)[i].hosts[i].second, (*net)[i].address);
  }
  auto again = launcher.PrepareNetwork(arn, NetworkRequest{3});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[2].address, (*net)[2].address);
  launcher.ReleaseNetwork(arn);
  EXPECT_NE(launcher.NetworkSummary().find("loopback"), std::string::npos);
}

}  // namespace
}  // namespace ty::launch
