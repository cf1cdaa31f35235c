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

#include "capacity/instance_catalog.h"
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
    for (const AttemptHandle& h : started_) {
      auto agents = ParseLocalHandle(h.id);
      if (!agents) continue;
      for (const LocalAgent& a : *agents) {
        if (ProcessAlive(static_cast<pid_t>(a.pid), a.start_ticks)) ::kill(a.pid, SIGKILL);
        ::waitpid(static_cast<pid_t>(a.pid), nullptr, 0);
      }
    }
  }

  AttemptPlan PlanOf(const model::InstanceConfig& config) {
    AttemptPlan plan;
    plan.job_arn = config.job_arn;
    plan.instance_type = "ml.m5.large";
    plan.network.count = 1;
    plan.instances = {config};
    return plan;
  }

  TempDir dir_{"ty_launch_test_"};
  std::string agent_;
  std::string argv_file_;
  std::string instance_dir_;
  model::InstanceConfig config_;
  std::vector<AttemptHandle> started_;
};

TEST_F(LocalLauncherTest, LaunchWritesInstanceFileBesideInstanceDirAndPassesIt) {
  LocalLauncher launcher(agent_, NetworkPolicy::kLoopback);
  config_.memory_gib = 8;
  config_.enforce_limits = true;
  auto handle = launcher.LaunchAttempt(PlanOf(config_));
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  started_.push_back(*handle);
  auto agents = ParseLocalHandle(handle->id);
  ASSERT_TRUE(agents.has_value()) << handle->id;
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_GT((*agents)[0].pid, 0);
  EXPECT_GT((*agents)[0].start_ticks, 0);

  auto parent = RealPath(dir_.path() + "/jobs/my-job");
  ASSERT_TRUE(parent.ok());
  std::string instance_file = *parent + "/algo-1.instance.json";
  struct stat st {};
  ASSERT_EQ(::stat(instance_file.c_str(), &st), 0) << instance_file;
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // it holds the agent token
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
  // The launcher's part: a single instance on loopback shares the host's network, loudly.
  EXPECT_TRUE(parsed->network.address.empty());
  EXPECT_NE(parsed->network.notice.find("shares the host's network"), std::string::npos)
      << parsed->network.notice;

  ASSERT_TRUE(WaitFor([&] { return PathExists(argv_file_); }));
  auto argv = ReadFile(argv_file_);
  ASSERT_TRUE(argv.ok());
  EXPECT_EQ(Lines(*argv), (std::vector<std::string>{"agent", "--instance", instance_file}));
}

TEST_F(LocalLauncherTest, RunningUntilStoppedThenReaped) {
  LocalLauncher launcher(agent_, NetworkPolicy::kLoopback);
  auto handle = launcher.LaunchAttempt(PlanOf(config_));
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  started_.push_back(*handle);
  const LocalAgent agent = (*ParseLocalHandle(handle->id))[0];
  auto poll = [&] { return launcher.Poll(std::span<const AttemptHandle>(&*handle, 1))[0]; };
  EXPECT_EQ(poll().phase, AttemptState::Phase::kRunning);
  EXPECT_EQ(ProcessStartTicks(static_cast<pid_t>(agent.pid)), agent.start_ticks);

  launcher.Signal(*handle, AttemptSignal::kStop);  // sh dies of SIGTERM
  ASSERT_TRUE(WaitFor([&] { return poll().phase == AttemptState::Phase::kEnded; }));
  // Reaped: the pid no longer exists, not even as a zombie we own.
  EXPECT_EQ(::waitpid(static_cast<pid_t>(agent.pid), nullptr, WNOHANG), -1);
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>(agent.pid), 0));
  // Signalling a gone agent is harmless.
  launcher.Signal(*handle, AttemptSignal::kKill);
  EXPECT_EQ(poll().phase, AttemptState::Phase::kEnded);
}

TEST_F(LocalLauncherTest, MissingInstanceDirIsAnError) {
  LocalLauncher launcher(agent_, NetworkPolicy::kLoopback);
  config_.instance_dir = dir_.path() + "/nowhere/algo-1";
  auto handle = launcher.LaunchAttempt(PlanOf(config_));
  EXPECT_EQ(handle.status().code(), StatusCode::kIoError);
  EXPECT_NE(handle.status().message().find("nowhere"), std::string::npos);
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

TEST(LocalLauncherAliveTest, AStoredHandleIsCheckedByStartTicksAndSignalsOnlyAgents) {
  LocalLauncher launcher("/bin/true", NetworkPolicy::kLoopback);
  const int64_t ticks = ProcessStartTicks(::getpid());
  const std::string self = std::to_string(::getpid());
  const AttemptHandle same{"local:" + self + "/" + std::to_string(ticks)};
  const AttemptHandle reused{"local:" + self + "/" + std::to_string(ticks + 1)};
  auto states = launcher.Poll(std::vector<AttemptHandle>{same, reused});
  EXPECT_EQ(states[0].phase, AttemptState::Phase::kRunning);
  EXPECT_EQ(states[0].alive, std::vector<bool>{true});
  EXPECT_EQ(states[1].phase, AttemptState::Phase::kEnded);  // a reused pid is not our agent
  // This test is not an agent (`... agent --instance FILE`): a handle naming it signals nothing.
  launcher.Signal(same, AttemptSignal::kStop);
  launcher.Signal(same, AttemptSignal::kKill);
  SUCCEED() << "still here";
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

// --- The launcher contract (what every launcher does: launcher_conformance_test.cc)

class LocalAttemptTest : public ::testing::Test {
 protected:
  AttemptPlan Plan(const std::string& job, int count, int attempt = 1) {
    AttemptPlan plan;
    plan.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/" + job;
    plan.attempt = attempt;
    plan.instance_type = "ml.m5.large";
    plan.network.count = count;
    for (int i = 1; i <= count; ++i) {
      model::InstanceConfig c;
      c.job_name = job;
      c.job_arn = plan.job_arn;
      c.attempt = attempt;
      c.host_index = i;
      c.instance_dir = dir_.path() + "/jobs/" + job + "/attempt-" + std::to_string(attempt) +
                       "/algo-" + std::to_string(i);
      c.token = "secret-token";
      c.spec.name = job;
      EXPECT_TRUE(MakeDirs(c.instance_dir).ok());
      plan.instances.push_back(std::move(c));
    }
    return plan;
  }
  // The instance file the agent of `plan`'s instance `i` was started with.
  model::InstanceConfig Written(const AttemptPlan& plan, int i) {
    const std::string dir = plan.instances[static_cast<size_t>(i)].instance_dir;
    auto text = ReadFile(dir + ".instance.json");
    EXPECT_TRUE(text.ok());
    auto config = model::InstanceConfigFromJson(nlohmann::json::parse(text.ok() ? *text : "{}"));
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return config.ok() ? *config : model::InstanceConfig{};
  }
  AttemptState WaitSettled(Launcher& l, const AttemptHandle& h) {
    AttemptState s;
    EXPECT_TRUE(WaitFor([&] {
      s = l.Poll(std::span<const AttemptHandle>(&h, 1))[0];
      return s.phase != AttemptState::Phase::kStarting;
    }));
    return s;
  }
  void Kill(Launcher& l, const AttemptHandle& h) {
    l.Signal(h, AttemptSignal::kKill);
    EXPECT_TRUE(WaitFor([&] {
      return l.Poll(std::span<const AttemptHandle>(&h, 1))[0].phase == AttemptState::Phase::kEnded;
    }));
    l.ReleaseAttempt(h);
  }

  TempDir dir_{"ty_attempt_test_"};
  // A fake agent that exits on SIGTERM (tests/launch/fake_agent.cc).
  std::string agent_ = TY_FAKE_AGENT;
};

TEST_F(LocalAttemptTest, LoopbackInstancesGetTheirPeersAndTheSameAddressesOnTheNextAttempt) {
  LocalLauncher launcher(agent_, NetworkPolicy::kLoopback);
  AttemptPlan first = Plan("peers", 2);
  auto h1 = launcher.LaunchAttempt(first);
  ASSERT_TRUE(h1.ok()) << h1.status().ToString();
  EXPECT_EQ(h1->id.rfind("local:", 0), 0u) << h1->id;
  ASSERT_EQ(WaitSettled(launcher, *h1).phase, AttemptState::Phase::kRunning);
  const model::InstanceConfig a1 = Written(first, 0);
  const model::InstanceConfig a2 = Written(first, 1);
  EXPECT_EQ(a1.network.address.rfind("127.", 0), 0u) << a1.network.address;
  EXPECT_NE(a1.network.address, a2.network.address);
  ASSERT_EQ(a1.network.hosts.size(), 2u);
  EXPECT_EQ(a1.network.hosts[1].first, "algo-2");
  EXPECT_EQ(a1.network.hosts[1].second, a2.network.address);
  Kill(launcher, *h1);
  // A spot restart: the same job's next attempt keeps its hosts' addresses.
  AttemptPlan second = Plan("peers", 2, 2);
  auto h2 = launcher.LaunchAttempt(second);
  ASSERT_TRUE(h2.ok()) << h2.status().ToString();
  ASSERT_EQ(WaitSettled(launcher, *h2).phase, AttemptState::Phase::kRunning);
  EXPECT_EQ(Written(second, 0).network.address, a1.network.address);
  EXPECT_EQ(Written(second, 1).network.address, a2.network.address);
  Kill(launcher, *h2);
  launcher.ReleaseJob(first.job_arn);
}

TEST_F(LocalAttemptTest, NamespacesAreMadeOffTheCallerAndKeptUntilReleaseJob) {
  const NetworkSupport support = ProbeNetworkSupport();
  if (!support.namespaces) GTEST_SKIP() << "no network namespaces here: " << support.reason;
  LocalLauncher launcher(agent_, NetworkPolicy::kNamespaces,
                         {"t" + JobNetworkKey(RandomUuid()).substr(1)});
  AttemptPlan plan = Plan("netns", 2);
  auto h = launcher.LaunchAttempt(plan);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  // The handle names the agents at once, before the network is there.
  auto agents = ParseLocalHandle(h->id);
  ASSERT_TRUE(agents.has_value()) << h->id;
  EXPECT_EQ(agents->size(), 2u);
  ASSERT_EQ(WaitSettled(launcher, *h).phase, AttemptState::Phase::kRunning);
  const model::InstanceConfig c = Written(plan, 1);
  EXPECT_EQ(c.network.netns.rfind("ty-", 0), 0u) << c.network.netns;
  EXPECT_TRUE(PathExists("/run/netns/" + c.network.netns));
  // A late release (an ended job of the same ARN) leaves a running attempt its network.
  launcher.ReleaseJob(plan.job_arn);
  EXPECT_TRUE(PathExists("/run/netns/" + c.network.netns));
  Kill(launcher, *h);
  EXPECT_TRUE(PathExists("/run/netns/" + c.network.netns));  // the job's, across attempts
  launcher.ReleaseJob(plan.job_arn);
  EXPECT_FALSE(PathExists("/run/netns/" + c.network.netns));
  launcher.ReleaseJob(plan.job_arn);  // idempotent
}

TEST_F(LocalAttemptTest, AnAttemptStoppedWhileStartingEndsWithoutLeavingProcesses) {
  const NetworkSupport support = ProbeNetworkSupport();
  if (!support.namespaces) GTEST_SKIP() << "no network namespaces here: " << support.reason;
  LocalLauncher launcher(agent_, NetworkPolicy::kNamespaces,
                         {"t" + JobNetworkKey(RandomUuid()).substr(1)});
  AttemptPlan plan = Plan("early-stop", 1);
  auto h = launcher.LaunchAttempt(plan);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  // Either it was still starting (it never starts) or its agent stops: it ends both ways.
  launcher.Signal(*h, AttemptSignal::kStop);
  EXPECT_TRUE(WaitFor([&] {
    auto s = launcher.Poll(std::span<const AttemptHandle>(&*h, 1))[0];
    return s.phase == AttemptState::Phase::kEnded;
  }));
  auto agents = ParseLocalHandle(h->id);
  ASSERT_TRUE(agents.has_value());
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>((*agents)[0].pid), (*agents)[0].start_ticks));
  launcher.ReleaseAttempt(*h);
  launcher.ReleaseJob(plan.job_arn);
}

TEST_F(LocalAttemptTest, AnAgentThatCannotExecuteFailsTheWholeAttemptNamingIt) {
  const std::string missing = dir_.path() + "/no-such-agent";
  LocalLauncher launcher(missing, NetworkPolicy::kLoopback);
  AttemptPlan plan = Plan("noexec", 2);
  auto h = launcher.LaunchAttempt(plan);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find(missing), std::string::npos) << h.status().message();
  // The agent token is not left on disk.
  EXPECT_FALSE(PathExists(plan.instances[0].instance_dir + ".instance.json"));
  EXPECT_FALSE(PathExists(plan.instances[1].instance_dir + ".instance.json"));
}

TEST_F(LocalAttemptTest, AnExitedInstanceOfAStoredHandleIsNotAlive) {
  LocalLauncher launcher(agent_, NetworkPolicy::kLoopback);
  AttemptPlan plan = Plan("stored", 1);
  auto h = launcher.LaunchAttempt(plan);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(WaitSettled(launcher, *h).phase, AttemptState::Phase::kRunning);
  // As the controller converts an old store row whose algo-2 had exited.
  const AttemptHandle stored{h->id + ",0/0"};
  LocalLauncher restarted(agent_, NetworkPolicy::kLoopback);
  auto s = restarted.Poll(std::span<const AttemptHandle>(&stored, 1))[0];
  EXPECT_EQ(s.phase, AttemptState::Phase::kRunning);
  EXPECT_EQ(s.alive, (std::vector<bool>{true, false}));
  Kill(launcher, *h);
}

TEST(LocalPlacementTest, CapacityComesFromTheConfigOrTheHostAndIsDescribed) {
  capacity::InstanceCatalog catalog = capacity::InstanceCatalog::Builtin();
  LocalLauncherOptions options;
  options.capacity.counts["ml.m5.large"] = 3;
  options.catalog = &catalog;
  options.host_cpus = 8;
  options.host_memory_gib = 32;
  LocalLauncher launcher("/bin/true", NetworkPolicy::kLoopback, {}, options);
  EXPECT_FALSE(launcher.OwnsSpotCapacity());
  EXPECT_EQ(launcher.Capacity("ml.m5.large").total, 3);
  // ml.m5.xlarge (4 vCPUs, 16 GiB) on 8 CPUs and 32 GiB: 2.
  EXPECT_EQ(launcher.Capacity("ml.m5.xlarge").total, 2);
  PlacementRequest r{"arn", "ml.m5.xlarge", 2, false};
  EXPECT_TRUE(launcher.Place(r).placed);
  r.instance_count = 1;
  Placement p = launcher.Place(r);
  EXPECT_FALSE(p.placed);
  EXPECT_EQ(p.waiting,
            "Waiting for capacity: all 2 ml.m5.xlarge instances of this machine are in use");
  PlacementRequest unknown{"arn", "ml.nope.large", 1, false};
  EXPECT_EQ(launcher.CheckRunnable(unknown).code(), StatusCode::kInvalidArgument);
  PlacementRequest big{"arn", "ml.m5.large", 4, false};
  Status s = launcher.CheckRunnable(big);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("more than the 3 ml.m5.large instance(s)"), std::string::npos)
      << s.message();
  const std::string d = launcher.Describe();
  EXPECT_NE(d.find("instances: multi-node on loopback addresses"), std::string::npos) << d;
  EXPECT_NE(d.find("launcher: local (this machine: 8 CPUs, 32.0 GiB; capacity: ml.m5.large 3, "
                   "other types as many as its CPUs and memory hold)"),
            std::string::npos)
      << d;
}

}  // namespace
}  // namespace ty::launch
