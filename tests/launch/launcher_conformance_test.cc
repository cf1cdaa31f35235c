// The Launcher contract (launch/launcher.h), checked the same way for every launcher: each
// Engine below runs one (LocalLauncher with real processes on loopback addresses, and again
// with a network namespace per instance where this machine can make them). Adding a launcher is
// an Engine subclass and one line in kEngines. The SlurmLauncher's engine runs only where a
// Slurm cluster is up (it says why it is skipped otherwise).
//
// The agents are tests/launch/fake_agent.cc: each writes what it observes (its start, every
// signal it gets) into its instance directory, so a check sees what reached which instance, not
// what the launcher says it sent. Assertions speak the contract's terms only (phases, alive per
// instance, meanings), never pids or engine ids.
#include <gtest/gtest.h>
#include <unistd.h>

#include <dirent.h>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "launch/instance_network.h"
#include "launch/launcher.h"
#include "launch/local_launcher.h"
#include "testing/fake_launcher.h"
#include "testing/temp_dir.h"

namespace ty::launch {
namespace {

using Phase = AttemptState::Phase;
using testing::TempDir;

// Polls `done` until it holds or 30 s pass (a cluster's queue may take a few seconds).
bool WaitFor(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::kStarting:
      return "starting";
    case Phase::kPending:
      return "pending";
    case Phase::kRunning:
      return "running";
    case Phase::kEnded:
      return "ended";
    case Phase::kFailed:
      return "failed";
    case Phase::kUnknown:
      return "unknown";
  }
  return "?";
}

std::string Describe(const AttemptState& s) {
  std::string alive;
  for (bool a : s.alive) alive += a ? '1' : '0';
  return std::string(PhaseName(s.phase)) + " alive=" + alive + " reason=" + s.reason;
}

// ---------------------------------------------------------------------------------------------
// Engines

class Engine {
 public:
  virtual ~Engine() = default;
  // Non-empty: the engine cannot run here, and why (the test is skipped with it).
  virtual std::string Unavailable() { return ""; }
  virtual Launcher& launcher() = 0;
  // Another launcher on the same engine and state, as a restarted server makes.
  virtual std::unique_ptr<Launcher> Restarted() = 0;
  // A directory every instance reaches: the attempts' trees go under <work_dir>/jobs.
  virtual std::string work_dir() = 0;
  // The meaning of a signal the fake agent names ("TERM"); nullopt for none of ours.
  virtual std::optional<AttemptSignal> Meaning(const std::string& name) = 0;
  // What instance `i` of attempt `h` (empty: it did not launch) observed: "started", then the
  // meanings of the signals that reached it. By default what the fake agent wrote.
  virtual std::vector<std::string> Observed(const AttemptPlan& plan, const AttemptHandle& h,
                                            int i) {
    (void)h;
    std::vector<std::string> out;
    for (const auto& line :
         ReadLines(plan.instances[static_cast<size_t>(i)].instance_dir + "/fake-agent.log")) {
      if (line.rfind("started ", 0) == 0) {
        out.push_back("started");
      } else if (line.rfind("signal ", 0) == 0) {
        auto meaning = Meaning(line.substr(7));
        out.push_back(meaning ? Name(*meaning) : "other:" + line.substr(7));
      }
    }
    return out;
  }
  // False when instances do not end on kStop by themselves (a fake without processes).
  virtual bool agents_exit_on_stop() const { return true; }
  // False when the launcher takes any plan (a fake): the impossible-plan check is skipped.
  virtual bool validates_plans() const { return true; }
  // False when the engine signals and reports all instances of an attempt together.
  virtual bool addresses_instances() const { return true; }
  // False when the engine always places (its queue decides): no capacity to refuse.
  virtual bool bounded_capacity() const { return true; }
  virtual std::string instance_type() const { return "ml.m5.large"; }
  // What this test left running or made (processes, kernel objects) for jobs `arns`; checked
  // after the fixture has killed and released everything.
  virtual std::vector<std::string> Leftovers(const std::vector<std::string>& arns) = 0;
};

// The fake agent binary (built beside this test).
std::string FakeAgent() { return TY_FAKE_AGENT; }

// Processes started as `<anything> agent --instance FILE` with FILE under `root`.
std::vector<std::string> AgentsUnder(const std::string& root) {
  std::vector<std::string> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = ::readdir(proc)) {
    const std::string pid = e->d_name;
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> argv;
    std::stringstream ss(raw);
    for (std::string a; std::getline(ss, a, '\0');) argv.push_back(a);
    if (argv.size() >= 4 && argv[1] == "agent" && argv[3].rfind(root + "/", 0) == 0) {
      // A zombie is gone for our purposes (its parent reaps it).
      std::ifstream stat("/proc/" + pid + "/stat");
      std::string st;
      std::getline(stat, st);
      const size_t close = st.rfind(')');
      if (close != std::string::npos && close + 2 < st.size() && st[close + 2] == 'Z') continue;
      out.push_back(pid + " " + argv[3]);
    }
  }
  ::closedir(proc);
  return out;
}

class LocalEngine : public Engine {
 public:
  explicit LocalEngine(NetworkPolicy policy) : policy_(policy) {
    if (policy_ != NetworkPolicy::kLoopback) {
      NetworkSupport support = ProbeNetworkSupport();
      if (!support.namespaces) unavailable_ = "no network namespaces here: " + support.reason;
    }
    // Scoped to this test's temp dir, so other servers' networks on the machine are not ours.
    server_id_ = ServerNetworkId(tmp_.path());
    launcher_ = Make();
  }
  std::string Unavailable() override { return unavailable_; }
  Launcher& launcher() override { return *launcher_; }
  std::unique_ptr<Launcher> Restarted() override { return Make(); }
  std::string work_dir() override { return tmp_.path(); }
  std::optional<AttemptSignal> Meaning(const std::string& name) override {
    if (name == "TERM") return AttemptSignal::kStop;
    if (name == "USR1") return AttemptSignal::kNotice;
    if (name == "USR2") return AttemptSignal::kAbort;
    return std::nullopt;
  }
  std::vector<std::string> Leftovers(const std::vector<std::string>& arns) override {
    std::vector<std::string> out = AgentsUnder(tmp_.path());
    if (policy_ != NetworkPolicy::kLoopback) {
      // Namespaces "ty-<key>-<n>" of this test's jobs.
      std::string names;
      FILE* p = ::popen("ip netns list 2>/dev/null", "r");
      if (p != nullptr) {
        char buf[4096];
        while (std::fgets(buf, sizeof(buf), p) != nullptr) names += buf;
        ::pclose(p);
      }
      for (const auto& arn : arns) {
        const std::string prefix = "ty-" + JobNetworkKey(arn, server_id_) + "-";
        if (names.find(prefix) != std::string::npos) out.push_back("netns " + prefix + "*");
      }
    }
    return out;
  }

 private:
  std::unique_ptr<Launcher> Make() {
    LocalNetworkOptions net;
    net.server_id = server_id_;
    LocalLauncherOptions options;
    options.capacity.counts["ml.m5.large"] = 2;
    options.jobs_dir = tmp_.path() + "/jobs";
    return std::make_unique<LocalLauncher>(FakeAgent(), policy_, net, options);
  }

  NetworkPolicy policy_;
  TempDir tmp_{"ty-conformance-"};
  std::string server_id_;
  std::string unavailable_;
  std::unique_ptr<Launcher> launcher_;
};

// Another view of one launcher: what a restarted server sees of an engine that keeps its state
// (the fake's state is its engine).
class SameEngine final : public Launcher {
 public:
  explicit SameEngine(Launcher* l) : l_(l) {}
  std::string Describe() const override { return l_->Describe(); }
  bool OwnsSpotCapacity() const override { return l_->OwnsSpotCapacity(); }
  Placement Place(const PlacementRequest& r) override { return l_->Place(r); }
  void Unplace(const PlacementRequest& r) override { l_->Unplace(r); }
  void Adopt(const PlacementRequest& r) override { l_->Adopt(r); }
  CapacityView Capacity(const std::string& t) const override { return l_->Capacity(t); }
  Status CheckRunnable(const PlacementRequest& r) const override { return l_->CheckRunnable(r); }
  Result<AttemptHandle> LaunchAttempt(const AttemptPlan& p) override {
    return l_->LaunchAttempt(p);
  }
  void Signal(const AttemptHandle& h, AttemptSignal s, std::span<const int> i) override {
    l_->Signal(h, s, i);
  }
  std::vector<AttemptState> Poll(std::span<const AttemptHandle> h) override { return l_->Poll(h); }
  void ReleaseAttempt(const AttemptHandle& h) override { l_->ReleaseAttempt(h); }
  void ReleaseJob(const std::string& arn) override { l_->ReleaseJob(arn); }
  void Sweep(std::span<const AttemptHandle> a, std::span<const std::string> j) override {
    l_->Sweep(a, j);
  }

 private:
  Launcher* l_;
};

// tests/testing/fake_launcher.h, which the controller's tests use: it must keep the contract
// too. It starts nothing, so what "reached" an instance is what it recorded; its instances do
// not end on kStop (no agent) and it takes any plan.
class FakeEngine : public Engine {
 public:
  Launcher& launcher() override { return fake_; }
  std::unique_ptr<Launcher> Restarted() override { return std::make_unique<SameEngine>(&fake_); }
  std::string work_dir() override { return tmp_.path(); }
  std::optional<AttemptSignal> Meaning(const std::string&) override { return std::nullopt; }
  std::vector<std::string> Observed(const AttemptPlan&, const AttemptHandle& h, int i) override {
    std::vector<std::string> out;
    if (h.empty()) return out;
    out.push_back("started");
    for (AttemptSignal s : fake_.SignalsTo(h.id, i)) {
      if (s != AttemptSignal::kKill) out.push_back(Name(s));  // no agent observes a SIGKILL
    }
    return out;
  }
  bool agents_exit_on_stop() const override { return false; }
  bool validates_plans() const override { return false; }
  std::vector<std::string> Leftovers(const std::vector<std::string>&) override {
    std::vector<std::string> out;
    std::lock_guard<std::mutex> lock(fake_.mu);
    for (const auto& [id, a] : fake_.attempts) {
      if (a.state.phase != Phase::kEnded) out.push_back(id);
    }
    return out;
  }

 private:
  TempDir tmp_{"ty-conformance-fake-"};
  ty::testing::FakeLauncher fake_;
};

// Every engine the suite runs against: a name and how to make it. One line per launcher.
//   SlurmLauncher: an Engine that is Unavailable() unless scripts/slurm.sh's cluster is up.
const std::map<std::string, std::function<std::unique_ptr<Engine>()>> kEngines = {
    {"LocalLoopback", [] { return std::make_unique<LocalEngine>(NetworkPolicy::kLoopback); }},
    {"LocalNamespaces", [] { return std::make_unique<LocalEngine>(NetworkPolicy::kNamespaces); }},
    {"Fake", [] { return std::make_unique<FakeEngine>(); }},
};

std::vector<std::string> EngineNames() {
  std::vector<std::string> names;
  for (const auto& [name, make] : kEngines) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------------------------------------
// The suite

class LauncherConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_ = kEngines.at(GetParam())();
    const std::string why = engine_->Unavailable();
    if (!why.empty()) GTEST_SKIP() << GetParam() << " is not available here: " << why;
  }

  void TearDown() override {
    if (engine_ == nullptr || !engine_->Unavailable().empty()) return;
    Launcher& l = engine_->launcher();
    for (const AttemptHandle& h : launched_) {
      l.Signal(h, AttemptSignal::kKill);
      EXPECT_TRUE(WaitFor([&] {
        auto s = l.Poll(std::span<const AttemptHandle>(&h, 1));
        return s[0].phase == Phase::kEnded || s[0].phase == Phase::kFailed;
      })) << "an attempt outlived kKill";
      l.ReleaseAttempt(h);
    }
    for (const auto& arn : arns_) l.ReleaseJob(arn);
    std::vector<std::string> left;
    EXPECT_TRUE(WaitFor([&] {
      left = engine_->Leftovers(arns_);
      return left.empty();
    })) << "left behind: "
        << ::testing::PrintToString(left);
  }

  // A plan of `count` instances of a job of its own; its instance directories exist.
  AttemptPlan Plan(int count) {
    const std::string job = "conf-" + std::to_string(::getpid()) + "-" + std::to_string(jobs_++);
    AttemptPlan plan;
    plan.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/" + job;
    plan.attempt = 1;
    plan.instance_type = engine_->instance_type();
    plan.network.count = count;
    const std::string attempt_dir = engine_->work_dir() + "/jobs/" + job + "/attempt-1";
    std::vector<std::string> hosts;
    for (int i = 1; i <= count; ++i) hosts.push_back("algo-" + std::to_string(i));
    for (int i = 1; i <= count; ++i) {
      model::InstanceConfig c;
      c.job_name = job;
      c.job_arn = plan.job_arn;
      c.attempt = 1;
      c.host_index = i;
      c.hosts = hosts;
      c.instance_dir = attempt_dir + "/algo-" + std::to_string(i);
      c.token = "token-of-" + job;
      c.spec.name = job;
      c.spec.instance_type = plan.instance_type;
      c.spec.instance_count = count;
      EXPECT_TRUE(MakeDirs(c.instance_dir).ok());
      plan.instances.push_back(std::move(c));
    }
    return plan;
  }

  // Launches `plan` and remembers it for TearDown.
  AttemptHandle Launch(const AttemptPlan& plan) {
    arns_.push_back(plan.job_arn);
    auto handle = engine_->launcher().LaunchAttempt(plan);
    EXPECT_TRUE(handle.ok()) << handle.status().ToString();
    if (!handle.ok()) return {};
    EXPECT_FALSE(handle->empty());
    launched_.push_back(*handle);
    return *handle;
  }

  AttemptState PollOne(Launcher& l, const AttemptHandle& h) {
    return l.Poll(std::span<const AttemptHandle>(&h, 1))[0];
  }

  // Waits until the attempt runs with every instance's agent started (observed by the agents).
  void WaitRunning(const AttemptPlan& plan, const AttemptHandle& h) {
    AttemptState s;
    ASSERT_TRUE(WaitFor([&] {
      s = PollOne(engine_->launcher(), h);
      return s.phase == Phase::kRunning;
    })) << Describe(s);
    ASSERT_EQ(s.alive.size(), plan.instances.size()) << Describe(s);
    for (size_t i = 0; i < plan.instances.size(); ++i) {
      EXPECT_TRUE(s.alive[i]) << "instance " << i << ": " << Describe(s);
      ASSERT_TRUE(WaitFor([&] { return !Observed(plan, h, static_cast<int>(i)).empty(); }))
          << "the agent of instance " << i << " never started";
    }
  }

  // What instance `i` of attempt `h` observed (Engine::Observed).
  std::vector<std::string> Observed(const AttemptPlan& plan, const AttemptHandle& h, int i) {
    return engine_->Observed(plan, h, i);
  }

  std::unique_ptr<Engine> engine_;
  std::vector<AttemptHandle> launched_;
  std::vector<std::string> arns_;
  int jobs_ = 0;
};

TEST_P(LauncherConformanceTest, AnAttemptStartsEveryInstanceAndPollSaysRunning) {
  AttemptPlan plan = Plan(3);
  AttemptHandle h = Launch(plan);
  ASSERT_FALSE(h.empty());
  WaitRunning(plan, h);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Observed(plan, h, i), std::vector<std::string>{"started"}) << "instance " << i;
  }
  // Batched: the same attempt twice and a garbage handle, in order.
  AttemptHandle garbage{"garbage"};
  std::vector<AttemptHandle> three = {h, garbage, h};
  auto states = engine_->launcher().Poll(three);
  ASSERT_EQ(states.size(), 3u);
  EXPECT_EQ(states[0].phase, Phase::kRunning);
  EXPECT_EQ(states[1].phase, Phase::kEnded);
  EXPECT_EQ(states[2].phase, Phase::kRunning);
}

TEST_P(LauncherConformanceTest, SignalsReachTheListedInstancesOnly) {
  AttemptPlan plan = Plan(3);
  AttemptHandle h = Launch(plan);
  ASSERT_FALSE(h.empty());
  WaitRunning(plan, h);
  Launcher& l = engine_->launcher();
  if (!engine_->addresses_instances()) {
    l.Signal(h, AttemptSignal::kNotice);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(WaitFor([&] {
        return Observed(plan, h, i) == std::vector<std::string>{"started", "notice"};
      })) << "instance "
          << i << ": " << ::testing::PrintToString(Observed(plan, h, i));
    }
    return;
  }
  const int second[] = {1};
  const int third[] = {2};
  const int first[] = {0};
  l.Signal(h, AttemptSignal::kNotice, second);
  l.Signal(h, AttemptSignal::kAbort, third);
  l.Signal(h, AttemptSignal::kStop, first);
  const std::vector<std::vector<std::string>> want = {
      {"started", "stop"}, {"started", "notice"}, {"started", "abort"}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return Observed(plan, h, i) == want[static_cast<size_t>(i)]; }))
        << "instance " << i << ": " << ::testing::PrintToString(Observed(plan, h, i));
  }
  if (!engine_->agents_exit_on_stop()) return;
  // The stopped agent exits; the others run on.
  AttemptState s;
  EXPECT_TRUE(WaitFor([&] {
    s = PollOne(l, h);
    return s.phase == Phase::kRunning && s.alive == std::vector<bool>{false, true, true};
  })) << Describe(s);
  // Signals to everyone (no list) reach every running instance once more.
  l.Signal(h, AttemptSignal::kNotice);
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return Observed(plan, h, i).size() == 3; })) << "instance " << i;
    EXPECT_EQ(Observed(plan, h, i).back(), "notice");
  }
  EXPECT_EQ(Observed(plan, h, 0), want[0]);
}

TEST_P(LauncherConformanceTest, KillEndsTheAttempt) {
  AttemptPlan plan = Plan(2);
  AttemptHandle h = Launch(plan);
  ASSERT_FALSE(h.empty());
  WaitRunning(plan, h);
  Launcher& l = engine_->launcher();
  l.Signal(h, AttemptSignal::kKill);
  AttemptState s;
  EXPECT_TRUE(WaitFor([&] {
    s = PollOne(l, h);
    return s.phase == Phase::kEnded;
  })) << Describe(s);
  // No cleanup: the agents saw nothing.
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Observed(plan, h, i), std::vector<std::string>{"started"});
  // Signalling and releasing an ended attempt, twice, is harmless.
  l.Signal(h, AttemptSignal::kStop);
  l.Signal(h, AttemptSignal::kKill);
  l.ReleaseAttempt(h);
  l.ReleaseAttempt(h);
  EXPECT_EQ(PollOne(l, h).phase, Phase::kEnded);
}

TEST_P(LauncherConformanceTest, ARestartedLauncherFindsTheRunningAttemptAgain) {
  AttemptPlan plan = Plan(2);
  AttemptHandle h = Launch(plan);
  ASSERT_FALSE(h.empty());
  WaitRunning(plan, h);
  std::unique_ptr<Launcher> restarted = engine_->Restarted();
  AttemptState s = PollOne(*restarted, h);
  EXPECT_EQ(s.phase, Phase::kRunning) << Describe(s);
  EXPECT_EQ(s.alive, (std::vector<bool>{true, true})) << Describe(s);
  // It can signal what it found, by meaning.
  restarted->Signal(h, AttemptSignal::kNotice);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(WaitFor([&] {
      return Observed(plan, h, i) == std::vector<std::string>{"started", "notice"};
    })) << "instance "
        << i << ": " << ::testing::PrintToString(Observed(plan, h, i));
  }
  restarted->Signal(h, AttemptSignal::kKill);
  EXPECT_TRUE(WaitFor([&] {
    s = PollOne(*restarted, h);
    return s.phase == Phase::kEnded;
  })) << Describe(s);
}

TEST_P(LauncherConformanceTest, AGarbageHandleIsEndedNeverACrash) {
  std::vector<AttemptHandle> garbage = {
      {""},
      {"local:"},
      {"local:4194304/1"},  // beyond the kernel's largest pid
      {"local:12/0"},
      {"local:1/2/3"},
      {"local:" + std::string(100000, '9') + "/1"},
      {"slurm:"},
      {"slurm:abc"},
      {"slurm:-1"},
      {"slurm:99999999999999999999999"},
      {"fake:nothing"},
      {std::string("local:1\0/2", 10)},
      {std::string(1 << 16, '\xff')},
  };
  Launcher& l = engine_->launcher();
  auto states = l.Poll(garbage);
  ASSERT_EQ(states.size(), garbage.size());
  for (size_t i = 0; i < garbage.size(); ++i) {
    EXPECT_EQ(states[i].phase, Phase::kEnded)
        << "handle " << i << " (" << garbage[i].id.substr(0, 40) << "): " << Describe(states[i]);
    for (AttemptSignal sig : {AttemptSignal::kStop, AttemptSignal::kNotice, AttemptSignal::kAbort,
                              AttemptSignal::kKill}) {
      const int some[] = {0, 5, -1};
      l.Signal(garbage[i], sig);
      l.Signal(garbage[i], sig, some);
    }
    l.ReleaseAttempt(garbage[i]);
  }
}

TEST_P(LauncherConformanceTest, SweepEndsWhatIsNotKeptAndKeepsWhatIs) {
  AttemptPlan kept_plan = Plan(2);
  AttemptPlan gone_plan = Plan(1);
  AttemptHandle kept = Launch(kept_plan);
  AttemptHandle gone = Launch(gone_plan);
  ASSERT_FALSE(kept.empty());
  ASSERT_FALSE(gone.empty());
  WaitRunning(kept_plan, kept);
  WaitRunning(gone_plan, gone);
  // A restarted server keeps the attempts and jobs it still has records for.
  std::unique_ptr<Launcher> restarted = engine_->Restarted();
  const AttemptHandle keep[] = {kept};
  const std::string keep_jobs[] = {kept_plan.job_arn};
  restarted->Sweep(keep, keep_jobs);
  AttemptState s;
  EXPECT_TRUE(WaitFor([&] {
    s = PollOne(*restarted, gone);
    return s.phase == Phase::kEnded;
  })) << Describe(s);
  s = PollOne(*restarted, kept);
  EXPECT_EQ(s.phase, Phase::kRunning) << Describe(s);
  EXPECT_EQ(s.alive, (std::vector<bool>{true, true})) << Describe(s);
  // Killed, not told: the swept agent saw no signal.
  EXPECT_EQ(Observed(gone_plan, gone, 0), std::vector<std::string>{"started"});
  // The kept attempt still takes signals.
  restarted->Signal(kept, AttemptSignal::kAbort);
  EXPECT_TRUE(WaitFor([&] {
    return Observed(kept_plan, kept, 1) == std::vector<std::string>{"started", "abort"};
  })) << ::testing::PrintToString(Observed(kept_plan, kept, 1));
}

TEST_P(LauncherConformanceTest, PlaceRefusesBeyondCapacityWithAMessageAndUnplaceFreesIt) {
  Launcher& l = engine_->launcher();
  PlacementRequest one;
  one.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/conf-place";
  one.instance_type = engine_->instance_type();
  if (!engine_->bounded_capacity()) {
    one.instance_count = 2;
    Placement p = l.Place(one);
    EXPECT_TRUE(p.placed) << "an engine whose queue decides places everything";
    l.Unplace(one);
    GTEST_SKIP() << GetParam() << " always places (its queue decides): nothing to refuse";
  }
  const CapacityView before = l.Capacity(one.instance_type);
  ASSERT_GT(before.total, 0);
  EXPECT_EQ(before.in_use, 0);
  PlacementRequest all = one;
  all.instance_count = before.total;
  EXPECT_TRUE(l.CheckRunnable(all).ok());
  PlacementRequest too_many = one;
  too_many.instance_count = before.total + 1;
  Status refused = l.CheckRunnable(too_many);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find(std::to_string(before.total)), std::string::npos)
      << refused.message();

  ASSERT_TRUE(l.Place(all).placed);
  EXPECT_EQ(l.Capacity(one.instance_type).in_use, before.total);
  one.instance_count = 1;
  Placement p = l.Place(one);
  EXPECT_FALSE(p.placed);
  EXPECT_NE(p.waiting.find("Waiting for capacity"), std::string::npos) << p.waiting;
  EXPECT_NE(p.waiting.find(one.instance_type), std::string::npos) << p.waiting;
  // A refused placement holds nothing.
  EXPECT_EQ(l.Capacity(one.instance_type).in_use, before.total);

  l.Unplace(one);  // one of `all`'s
  EXPECT_EQ(l.Capacity(one.instance_type).in_use, before.total - 1);
  EXPECT_TRUE(l.Place(one).placed);
  l.Unplace(one);
  PlacementRequest rest = one;
  rest.instance_count = before.total - 1;
  l.Unplace(rest);
  EXPECT_EQ(l.Capacity(one.instance_type).in_use, 0);

  // Adopted attempts (a restart) hold capacity even past the total.
  l.Adopt(too_many);
  EXPECT_EQ(l.Capacity(one.instance_type).in_use, before.total + 1);
  EXPECT_FALSE(l.Place(one).placed);
  l.Unplace(too_many);
  EXPECT_EQ(l.Capacity(one.instance_type).in_use, 0);
}

// An impossible plan is refused by LaunchAttempt or fails in Poll; it never runs.
TEST_P(LauncherConformanceTest, AnImpossiblePlanFailsCleanly) {
  if (!engine_->validates_plans()) GTEST_SKIP() << GetParam() << " takes any plan";
  Launcher& l = engine_->launcher();
  auto expect_fails = [&](const AttemptPlan& plan, const std::string& what) {
    arns_.push_back(plan.job_arn);
    auto handle = l.LaunchAttempt(plan);
    if (!handle.ok()) {
      EXPECT_FALSE(handle.status().message().empty()) << what;
      return;
    }
    launched_.push_back(*handle);
    AttemptState s;
    EXPECT_TRUE(WaitFor([&] {
      s = PollOne(l, *handle);
      return s.phase == Phase::kFailed || s.phase == Phase::kEnded;
    })) << what
        << ": " << Describe(s);
    if (s.phase == Phase::kFailed) EXPECT_FALSE(s.reason.empty()) << what;
  };
  AttemptPlan none = Plan(1);
  none.instances.clear();
  expect_fails(none, "no instances");

  AttemptPlan missing = Plan(2);
  missing.instances[1].instance_dir = engine_->work_dir() + "/nowhere/algo-2";
  expect_fails(missing, "an instance directory that does not exist");
  // All or none: the instance that could have started did not.
  EXPECT_TRUE(Observed(missing, AttemptHandle{}, 0).empty())
      << ::testing::PrintToString(Observed(missing, AttemptHandle{}, 0));

  AttemptPlan mismatched = Plan(2);
  mismatched.network.count = 3;
  expect_fails(mismatched, "a network of another size than the attempt");
}

INSTANTIATE_TEST_SUITE_P(Launchers, LauncherConformanceTest, ::testing::ValuesIn(EngineNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ty::launch
