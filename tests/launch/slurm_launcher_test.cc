#include "launch/slurm_launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/fs.h"
#include "common/json.h"
#include "launch/slurm_allocation.h"
#include "testing/temp_dir.h"

namespace ty::launch {
namespace {

using testing::TempDir;

SlurmLauncherOptions Options() {
  SlurmLauncherOptions o;
  o.spot_partition = "spot";
  o.on_demand_partition = "ondemand";
  o.server_url = "http://10.0.0.1:8080";
  o.agent_binary = "/opt/ty/bin/trainyard";
  o.job_name_prefix = "ty-abcd-";
  return o;
}

AttemptPlan Plan(const std::string& attempt_dir, int count, bool spot) {
  AttemptPlan p;
  p.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job";
  p.attempt = 2;
  p.spot = spot;
  p.instance_type = "ml.m5.large";
  p.network.count = count;
  for (int i = 1; i <= count; ++i) {
    model::InstanceConfig c;
    c.job_name = "my-job";
    c.job_arn = p.job_arn;
    c.host_index = i;
    c.num_cpus = 2;
    c.instance_dir = JoinPath(attempt_dir, "algo-" + std::to_string(i));
    for (int h = 1; h <= count; ++h) c.hosts.push_back("algo-" + std::to_string(h));
    c.server_url_file = "/data/server.url";
    c.token = "t";
    p.instances.push_back(c);
  }
  return p;
}

TEST(SlurmJobName, SanitisedAndBounded) {
  EXPECT_EQ(SlurmJobName("ty-ab-", "my-job", 3), "ty-ab-my-job-3");
  EXPECT_EQ(SlurmJobName("ty-ab-", "a b;c$(x)", 1), "ty-ab-a-b-c--x--1");
  EXPECT_EQ(SlurmJobName("p-", std::string(300, 'x'), 12).size(), 128u);
  EXPECT_EQ(SlurmJobName("p-", std::string(300, 'x'), 12).substr(125), "-12");
}

TEST(SlurmBatchScript, RunsOneAgentPerNodeThroughSrun) {
  std::string s =
      SlurmBatchScript("/opt/ty/bin/trainyard", "/data/jobs/a b/attempt-1", 2, "arn:x\nrm -rf /");
  EXPECT_EQ(s.rfind("#!/bin/sh\n", 0), 0u);
  // The ARN is only a comment, on one line.
  EXPECT_NE(s.find("# Trainyard attempt of arn:x rm -rf /"), std::string::npos);
  EXPECT_EQ(s.find("\nrm -rf"), std::string::npos);
  EXPECT_NE(s.find("exec srun --ntasks-per-node=1 --cpus-per-task=2"), std::string::npos);
  EXPECT_NE(s.find("i=$((SLURM_NODEID+1))"), std::string::npos);
  EXPECT_NE(s.find("\"$1/algo-$i.instance.json\""), std::string::npos);
  EXPECT_NE(s.find("'/opt/ty/bin/trainyard' '/data/jobs/a b/attempt-1'"), std::string::npos);
  // A quote in a path cannot break out.
  std::string q = SlurmBatchScript("/bin/it's", "/d", 1, "");
  EXPECT_NE(q.find("'/bin/it'\\''s'"), std::string::npos);
}

TEST(SlurmSbatchArgs, PartitionResourcesAndNoRequeue) {
  TempDir dir("ty_slurm_args_");
  SlurmLauncherOptions o = Options();
  auto args = SlurmSbatchArgs(o, Plan(dir.path(), 2, true), dir.path());
  auto has = [&](const std::string& a) {
    return std::find(args.begin(), args.end(), a) != args.end();
  };
  EXPECT_TRUE(has("--no-requeue"));
  EXPECT_TRUE(has("--ntasks-per-node=1"));
  EXPECT_TRUE(has("--cpus-per-task=2"));  // the instance type's vCPUs by default
  EXPECT_FALSE(std::any_of(args.begin(), args.end(),
                           [](const std::string& a) { return a.rfind("--mem", 0) == 0; }));
  auto after = [&](const std::string& flag) {
    auto it = std::find(args.begin(), args.end(), flag);
    return it == args.end() || it + 1 == args.end() ? std::string() : *(it + 1);
  };
  EXPECT_EQ(after("-N"), "2");
  EXPECT_EQ(after("-p"), "spot");
  EXPECT_EQ(after("-J"), "ty-abcd-my-job-2");
  EXPECT_EQ(after("-o"), dir.path() + "/slurm-%j.out");

  o.instance_types["ml.m5.large"] = {1, 900, "gpu:1", "fast", ""};
  o.extra_sbatch_args = {"--account=ml"};
  args = SlurmSbatchArgs(o, Plan(dir.path(), 1, false), dir.path());
  EXPECT_EQ(after("-p"), "ondemand");
  EXPECT_TRUE(has("--cpus-per-task=1"));
  EXPECT_TRUE(has("--mem=900"));
  EXPECT_TRUE(has("--gres=gpu:1"));
  EXPECT_TRUE(has("--constraint=fast"));
  EXPECT_EQ(args.back(), "--account=ml");
  o.instance_types["ml.m5.large"].partition = "big";
  args = SlurmSbatchArgs(o, Plan(dir.path(), 1, true), dir.path());
  EXPECT_EQ(after("-p"), "big");
}

TEST(StateOfRow, Table) {
  using P = AttemptState::Phase;
  struct Case {
    const char* state;
    const char* reason;
    int restarts;
    P phase;
    bool preempted;
  } cases[] = {
      {"PENDING", "Resources", 0, P::kPending, false},
      {"PENDING", "BeginTime", 1, P::kEnded, true},  // requeued after having run
      {"REQUEUED", "None", 1, P::kEnded, true},
      {"REQUEUE_HOLD", "None", 0, P::kEnded, true},
      {"RUNNING", "None", 0, P::kRunning, false},
      {"COMPLETING", "None", 0, P::kRunning, false},
      {"CONFIGURING", "None", 0, P::kRunning, false},
      {"PREEMPTED", "None", 0, P::kEnded, true},
      {"COMPLETED", "None", 0, P::kEnded, false},
      {"FAILED", "NonZeroExitCode", 0, P::kEnded, false},
      {"CANCELLED", "None", 0, P::kEnded, false},
      {"TIMEOUT", "None", 0, P::kEnded, false},
      {"NODE_FAIL", "None", 0, P::kEnded, false},
      {"WEIRD_NEW_STATE", "None", 0, P::kUnknown, false},
  };
  for (const auto& c : cases) {
    SqueueRow row;
    row.job_id = 9;
    row.state = c.state;
    row.reason = c.reason;
    row.restarts = c.restarts;
    AttemptState s = StateOfRow(row, 2);
    EXPECT_EQ(s.phase, c.phase) << c.state << " " << c.restarts;
    EXPECT_EQ(s.preempted, c.preempted) << c.state;
    if (c.phase == P::kRunning) {
      EXPECT_EQ(s.alive, (std::vector<bool>{true, true}));
    }
  }
  SqueueRow pending{9, "PENDING", "Priority", 0, 1, "", "n"};
  EXPECT_EQ(StateOfRow(pending, 1).reason, "Priority");
  SqueueRow failed{9, "FAILED", "NonZeroExitCode", 0, 1, "", "n"};
  EXPECT_EQ(StateOfRow(failed, 1).reason, "Slurm job 9 FAILED (NonZeroExitCode)");
  EXPECT_FALSE(StateOfRow(failed, 1).preempted);
  // Preempted, but its agents were done within the GraceTime: Slurm says COMPLETED.
  SqueueRow quick{9, "COMPLETED", "None", 0, 1, "2026-12-07T23:32:36", "n"};
  EXPECT_EQ(StateOfRow(quick, 1).phase, AttemptState::Phase::kEnded);
  EXPECT_TRUE(StateOfRow(quick, 1).preempted);
}

TEST(SlurmJobIdOf, ParsesOnlyOwnHandles) {
  EXPECT_EQ(SlurmJobIdOf({"slurm:123"}), 123);
  EXPECT_EQ(SlurmJobIdOf({"local:123"}), 0);
  EXPECT_EQ(SlurmJobIdOf({"slurm:"}), 0);
  EXPECT_EQ(SlurmJobIdOf({"slurm:12a"}), 0);
  EXPECT_EQ(SlurmJobIdOf({"slurm:99999999999999999999"}), 0);
}

TEST(ValidateSlurmOptions, NamesTheKeyAtFault) {
  EXPECT_TRUE(ValidateSlurmOptions(Options()).ok());
  auto o = Options();
  o.spot_partition = "";
  EXPECT_NE(ValidateSlurmOptions(o).message().find("spot_partition"), std::string::npos);
  o = Options();
  o.on_demand_partition = "";
  EXPECT_NE(ValidateSlurmOptions(o).message().find("on_demand_partition"), std::string::npos);
  o = Options();
  o.server_url = "10.0.0.1:8080";
  EXPECT_NE(ValidateSlurmOptions(o).message().find("server_url"), std::string::npos);
  o = Options();
  o.extra_sbatch_args = {"script.sh"};
  EXPECT_NE(ValidateSlurmOptions(o).message().find("sbatch_args"), std::string::npos);
}

TEST(SlurmAllocation, EnvParsing) {
  auto e = ParseSlurmEnv(
      {{"SLURM_JOB_ID", "17"}, {"SLURM_NODEID", "1"}, {"SLURM_JOB_NODELIST", "n[1-2]"}});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->job_id, 17);
  EXPECT_EQ(e->node_id, 1);
  EXPECT_EQ(e->nodelist, "n[1-2]");
  EXPECT_FALSE(ParseSlurmEnv({}).ok());
  EXPECT_FALSE(
      ParseSlurmEnv({{"SLURM_JOB_ID", "x"}, {"SLURM_NODEID", "0"}, {"SLURM_JOB_NODELIST", "n1"}})
          .ok());
  EXPECT_FALSE(
      ParseSlurmEnv({{"SLURM_JOB_ID", "1"}, {"SLURM_NODEID", "-1"}, {"SLURM_JOB_NODELIST", "n1"}})
          .ok());
  EXPECT_FALSE(
      ParseSlurmEnv(
          {{"SLURM_JOB_ID", "1"}, {"SLURM_NODEID", "0"}, {"SLURM_JOB_NODELIST", "n1;reboot"}})
          .ok());
}

TEST(SlurmAllocation, NodeAddresses) {
  std::vector<std::map<std::string, std::string>> records = {
      {{"NodeName", "n2"}, {"NodeAddr", "10.0.0.3"}},
      {{"NodeName", "n1"}, {"NodeAddr", "10.0.0.2"}},
      {{"NodeName", "n3"}},
  };
  auto a = NodeAddresses({"n1", "n2", "n3"}, records);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (std::vector<std::string>{"10.0.0.2", "10.0.0.3", "n3"}));
  EXPECT_FALSE(NodeAddresses({"n4"}, records).ok());
  EXPECT_FALSE(NodeAddresses({"x"}, {{{"NodeName", "x"}, {"NodeAddr", "a b"}}}).ok());
}

TEST(SlurmAllocation, NetworkMapsAlgoToNodes) {
  SlurmAllocation a;
  a.job_id = 12345;
  a.node_id = 1;
  a.nodes = {"n1", "n2"};
  a.addresses = {"10.0.0.2", "10.0.0.3"};
  auto net = AllocationNetwork(a);
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  EXPECT_EQ(net->address, "10.0.0.3");
  EXPECT_TRUE(net->netns.empty());
  ASSERT_EQ(net->hosts.size(), 2u);
  EXPECT_EQ(net->hosts[0], (std::pair<std::string, std::string>{"algo-1", "10.0.0.2"}));
  EXPECT_EQ(net->hosts[1], (std::pair<std::string, std::string>{"algo-2", "10.0.0.3"}));
  EXPECT_EQ(net->master_port, 20000 + 2345);
  a.node_id = 2;
  EXPECT_FALSE(AllocationNetwork(a).ok());
  a.node_id = 0;
  a.addresses = {"10.0.0.2"};
  EXPECT_FALSE(AllocationNetwork(a).ok());
  a.addresses = {"127.0.0.1", "127.0.0.1"};
  auto lo = AllocationNetwork(a);
  ASSERT_TRUE(lo.ok());
  EXPECT_EQ(lo->interface, "lo");
}

// The launcher against fake Slurm tools in bin_dir.
class SlurmLauncherFakeTest : public ::testing::Test {
 protected:
  void Tool(const std::string& name, const std::string& body) {
    ASSERT_TRUE(WriteFileAtomic(bin_.path() + "/" + name, "#!/bin/sh\n" + body, 0755).ok());
  }
  SlurmLauncher Make() {
    SlurmLauncherOptions o = Options();
    o.client.bin_dir = bin_.path();
    return SlurmLauncher(o);
  }
  std::string Log() {
    auto t = ReadFile(bin_.path() + "/log");
    return t.ok() ? *t : "";
  }
  TempDir bin_{"ty_slurm_bin_"};
  TempDir data_{"ty_slurm_data_"};
};

TEST_F(SlurmLauncherFakeTest, LaunchWritesInstanceFilesAndSubmits) {
  Tool("sbatch", "echo \"sbatch $*\" >> \"$(dirname \"$0\")/log\"; echo 4242\n");
  SlurmLauncher l = Make();
  AttemptPlan plan = Plan(data_.path(), 2, true);
  for (auto& c : plan.instances) ASSERT_TRUE(MakeDirs(c.instance_dir).ok());
  auto h = l.LaunchAttempt(plan);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->id, "slurm:4242");
  for (int i = 1; i <= 2; ++i) {
    auto text = ReadFile(data_.path() + "/algo-" + std::to_string(i) + ".instance.json");
    ASSERT_TRUE(text.ok());
    auto c = model::InstanceConfigFromJson(*ParseJson(*text));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->server_url, "http://10.0.0.1:8080");
    EXPECT_TRUE(c->sigterm_means_notice);
    EXPECT_TRUE(c->slurm_network);
    EXPECT_TRUE(c->engine_signals_every_process);
    EXPECT_EQ(c->host_index, i);
  }
  EXPECT_TRUE(PathExists(data_.path() + "/slurm-batch.sh"));
  EXPECT_NE(Log().find("-N 2"), std::string::npos);
  EXPECT_NE(Log().find(data_.path() + "/slurm-batch.sh"), std::string::npos);
}

TEST_F(SlurmLauncherFakeTest, OnDemandInstancesDoNotTakeSigtermAsNotice) {
  Tool("sbatch", "echo 5\n");
  SlurmLauncher l = Make();
  AttemptPlan plan = Plan(data_.path(), 1, false);
  ASSERT_TRUE(l.LaunchAttempt(plan).ok());
  auto c =
      model::InstanceConfigFromJson(*ParseJson(*ReadFile(data_.path() + "/algo-1.instance.json")));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->sigterm_means_notice);
  EXPECT_FALSE(c->slurm_network);  // one instance shares its node's network
}

TEST_F(SlurmLauncherFakeTest, RefusedSubmissionIsAnErrorWithSlurmsWords) {
  Tool("sbatch",
       "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2;"
       " exit 1\n");
  SlurmLauncher l = Make();
  auto h = l.LaunchAttempt(Plan(data_.path(), 1, true));
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(h.status().message().find("Invalid partition name specified"), std::string::npos);
}

TEST_F(SlurmLauncherFakeTest, IsolationIsRefused) {
  SlurmLauncher l = Make();
  AttemptPlan plan = Plan(data_.path(), 1, false);
  plan.network.isolated = true;
  auto h = l.LaunchAttempt(plan);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kFailedPrecondition);
  PlacementRequest r;
  r.instance_type = "ml.m5.large";
  r.network_isolation = true;
  EXPECT_EQ(l.CheckRunnable(r).code(), StatusCode::kInvalidArgument);
}

TEST_F(SlurmLauncherFakeTest, CheckRunnableCountsPartitionNodes) {
  Tool("scontrol",
       "echo 'PartitionName=spot Nodes=n[1-2] TotalNodes=2 PreemptMode=REQUEUE'\n"
       "echo 'PartitionName=ondemand Nodes=n[1-2] TotalNodes=2'\n");
  SlurmLauncher l = Make();
  PlacementRequest r;
  r.instance_type = "ml.m5.large";
  r.spot = true;
  r.instance_count = 2;
  EXPECT_TRUE(l.CheckRunnable(r).ok());
  r.instance_count = 3;
  Status s = l.CheckRunnable(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("2 nodes of Slurm partition spot"), std::string::npos);
}

TEST_F(SlurmLauncherFakeTest, PollIsOneSqueueForAllHandles) {
  Tool("sbatch", "echo 10\n");
  Tool("squeue",
       "echo \"squeue $*\" >> \"$(dirname \"$0\")/log\"\n"
       "echo '10|PENDING|Resources|0|1|N/A|ty-abcd-a-1|'\n"
       "echo '11|RUNNING|None|0|2|N/A|ty-abcd-b-1|'\n"
       "echo '12|PENDING|BeginTime|1|1|N/A|ty-abcd-c-1|'\n");
  SlurmLauncher l = Make();
  ASSERT_TRUE(l.LaunchAttempt(Plan(data_.path(), 1, true)).ok());
  std::vector<AttemptHandle> hs = {
      {"slurm:10"}, {"slurm:11"}, {"slurm:12"}, {"slurm:13"}, {"bogus"}};
  auto states = l.Poll(hs);
  ASSERT_EQ(states.size(), 5u);
  EXPECT_EQ(states[0].phase, AttemptState::Phase::kPending);
  EXPECT_EQ(states[0].reason, "Resources");
  EXPECT_EQ(states[1].phase, AttemptState::Phase::kRunning);
  EXPECT_EQ(states[1].alive.size(), 2u);  // adopted: sized from squeue's node count
  EXPECT_EQ(states[2].phase, AttemptState::Phase::kEnded);
  EXPECT_TRUE(states[2].preempted);
  EXPECT_EQ(states[3].phase, AttemptState::Phase::kEnded);  // unknown to Slurm
  EXPECT_EQ(states[4].phase, AttemptState::Phase::kEnded);
  std::string log = Log();
  EXPECT_EQ(log.find("squeue"), log.rfind("squeue"));  // exactly one call
  EXPECT_NE(log.find("-j 10,11,12,13"), std::string::npos);
}

TEST_F(SlurmLauncherFakeTest, PollWhenSlurmIsDownIsUnknown) {
  Tool("squeue", "echo 'squeue: error: Unable to contact slurm controller' >&2; exit 1\n");
  SlurmLauncher l = Make();
  std::vector<AttemptHandle> hs = {{"slurm:10"}};
  auto states = l.Poll(hs);
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].phase, AttemptState::Phase::kUnknown);
  EXPECT_NE(states[0].reason.find("Unable to contact slurm controller"), std::string::npos);
}

TEST_F(SlurmLauncherFakeTest, SignalsAsScancel) {
  Tool("scancel", "echo \"scancel $*\" >> \"$(dirname \"$0\")/log\"\n");
  Tool("sbatch", "echo 10\n");
  SlurmLauncher l = Make();
  ASSERT_TRUE(l.LaunchAttempt(Plan(data_.path(), 1, true)).ok());
  AttemptHandle h{"slurm:10"};
  l.Signal(h, AttemptSignal::kNotice);
  l.Signal(h, AttemptSignal::kStop);
  l.Signal(h, AttemptSignal::kAbort);
  l.Signal(h, AttemptSignal::kKill);
  l.ReleaseAttempt(h);
  // A stop or abort first takes a still-queued job out of the queue (MaxWait while pending).
  EXPECT_EQ(Log(), std::string("scancel --signal=TERM 10\n") + "scancel --state=PENDING 10\n" +
                       "scancel --signal=" + std::to_string(SIGWINCH) + " 10\n" +
                       "scancel --state=PENDING 10\n" +
                       "scancel --signal=" + std::to_string(SIGURG) + " 10\n" +
                       "scancel --signal=KILL --full 10\n"
                       "scancel 10\n"
                       "scancel 10\n");
}

TEST_F(SlurmLauncherFakeTest, CancelThatFailedIsRetriedOnceSlurmAnswers) {
  // scancel fails while a marker file exists (slurmctld down), and so does squeue.
  Tool("scancel",
       "[ -e \"$(dirname \"$0\")/down\" ] && { echo 'Unable to contact slurm controller' >&2; "
       "exit 1; }\necho \"scancel $*\" >> \"$(dirname \"$0\")/log\"\n");
  Tool("squeue",
       "[ -e \"$(dirname \"$0\")/down\" ] && { echo 'Unable to contact slurm controller' >&2; "
       "exit 1; }\necho '10|RUNNING|None|0|1|N/A|ty-abcd-a-1|'\n");
  Tool("sbatch", "echo 10\n");
  SlurmLauncher l = Make();
  ASSERT_TRUE(l.LaunchAttempt(Plan(data_.path(), 1, true)).ok());
  AttemptHandle h{"slurm:10"};
  ASSERT_TRUE(WriteFileAtomic(bin_.path() + "/down", "", 0644).ok());
  l.Signal(h, AttemptSignal::kKill);
  l.ReleaseAttempt(h);
  std::vector<AttemptHandle> none;
  (void)l.Poll(none);
  EXPECT_EQ(Log(), "");  // nothing reached Slurm, and Poll did not retry while it was down
  ASSERT_EQ(::unlink((bin_.path() + "/down").c_str()), 0);
  (void)l.Poll(none);
  EXPECT_EQ(Log(), "scancel 10\n");
  (void)l.Poll(none);
  EXPECT_EQ(Log(), "scancel 10\n");  // once cancelled, forgotten
}

TEST_F(SlurmLauncherFakeTest, SweepCancelsOnlyThisServersUnkeptJobs) {
  Tool("squeue",
       "echo '20|RUNNING|None|0|1|N/A|ty-abcd-a-1|'\n"
       "echo '21|PENDING|Priority|0|1|N/A|ty-abcd-b-1|'\n"
       "echo '22|RUNNING|None|0|1|N/A|ty-other-c-1|'\n"
       "echo '23|COMPLETED|None|0|1|N/A|ty-abcd-d-1|'\n"
       "echo '24|PENDING|BeginTime|2|1|N/A|ty-abcd-e-1|'\n");
  Tool("scancel", "echo \"scancel $*\" >> \"$(dirname \"$0\")/log\"\n");
  SlurmLauncher l = Make();
  std::vector<AttemptHandle> keep = {{"slurm:20"}};
  l.Sweep(keep, {});
  EXPECT_EQ(Log(), "scancel 21\nscancel 24\n");
}

}  // namespace
}  // namespace ty::launch
