#include "agent/agent.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "agent/staging.h"
#include "agent_test_util.h"
#include "common/fs.h"
#include "storage/archive.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

using model::AgentReport;
using testing::FakeControlPlane;
using ty::testing::TempDir;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub("url"), cp_.url()).ok());
    ASSERT_TRUE(MakeDirs(dir_.Sub("data/train")).ok());
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub("data/train/a.csv"), "1,2,3\n").ok());
    config_.job_name = "job-1";
    config_.job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1";
    config_.region = "us-east-1";
    config_.account = "123456789012";
    config_.host_index = 1;
    config_.hosts = {"algo-1"};
    config_.instance_dir = dir_.Sub("inst/algo-1");
    config_.log_stream = "job-1/algo-1-1700000000";
    config_.server_url_file = dir_.Sub("url");
    config_.token = "tok";
    config_.stop_grace_seconds = 5;
    // These tests check the training output line by line: no instance sampling (and no line
    // saying there is no NVML) unless a test asks for it.
    config_.metrics_interval_ms = 0;
    config_.file_roots = {dir_.path()};
    config_.image.command = {"/bin/sh"};
    config_.spec.name = "job-1";
    config_.spec.instance_type = "ml.m5.large";
    config_.spec.output_path = "file://" + dir_.Sub("out");
    config_.spec.hyperparameters = {{"epochs", "3"}};
    config_.spec.channels = {
        {"train", "file://" + dir_.Sub("data/train"), "", "File", "FullyReplicated", "None", ""}};
  }

  void UseScript(const std::string& script) {
    config_.spec.container_entrypoint = {"/bin/sh", "-c"};
    config_.spec.container_arguments = {script};
  }

  int RunAgentInProcess(Agent* agent = nullptr) {
    AgentOptions opts;
    opts.exit_retry_budget = std::chrono::seconds(10);
    if (agent != nullptr) return agent->Run();
    Agent a(config_, diag_, opts);
    return a.Run();
  }

  const AgentReport* ExitReport() {
    reports_ = cp_.reports();
    for (const auto& r : reports_) {
      if (r.type == AgentReport::Type::kExit) return &r;
    }
    return nullptr;
  }

  std::vector<std::string> Phases() {
    std::vector<std::string> out;
    for (const auto& r : cp_.reports()) {
      if (r.type == AgentReport::Type::kPhase) out.push_back(model::Name(r.phase));
    }
    return out;
  }

  // Waits until a report carries the log line `text` or 10 s pass; false on timeout.
  bool WaitForLogLine(const std::string& text) {
    return cp_.WaitFor([&](const std::vector<AgentReport>& rs) {
      for (const auto& r : rs)
        for (const auto& l : r.lines)
          if (l.message == text) return true;
      return false;
    });
  }

  // Runs an agent in-process and, once its script logs "ready", calls `on_ready` with it from a
  // second thread (as the control plane would). Returns what Run() returned.
  int RunAgentAndOnReady(const std::function<void(Agent&)>& on_ready) {
    AgentOptions opts;
    opts.exit_retry_budget = std::chrono::seconds(10);
    Agent agent(config_, diag_, opts);
    std::thread actor([&] {
      WaitForLogLine("ready");
      on_ready(agent);
    });
    int exit_code = agent.Run();
    actor.join();
    return exit_code;
  }

  bool Sandboxed() { return BubblewrapWorks("/usr/bin/bwrap"); }

  TempDir dir_{"ty_agent_test_"};
  FakeControlPlane cp_;
  model::InstanceConfig config_;
  std::ostringstream diag_;
  std::vector<AgentReport> reports_;
};

TEST_F(AgentTest, CompletedJobReportsPhasesLogsAndUploadsModel) {
  UseScript(
      "echo first; echo second >&2; echo third; cat \"$SM_CHANNEL_TRAIN/a.csv\"; "
      "echo \"$SM_HP_EPOCHS\"; echo trained > \"$SM_MODEL_DIR/model.txt\"; "
      "echo extra > \"$SM_OUTPUT_DATA_DIR/metrics.txt\"");
  EXPECT_EQ(RunAgentInProcess(), 0) << diag_.str();
  const AgentReport* exit = ExitReport();
  ASSERT_NE(exit, nullptr);
  EXPECT_EQ(exit->outcome, AgentReport::Outcome::kCompleted) << exit->failure_reason;
  EXPECT_EQ(exit->model_artifacts, "file://" + dir_.Sub("out/job-1/output/model.tar.gz"));
  EXPECT_TRUE(exit->artifacts_uploaded);
  EXPECT_EQ(Phases(), (std::vector<std::string>{"Downloading", "Training", "Uploading"}));
  std::vector<std::string> lines = cp_.LogLines();
  // The agent's notice of how the process is isolated (or that it is not).
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front().rfind("trainyard: ", 0), 0u) << lines.front();
  lines.erase(lines.begin());
  // stdout and stderr are separate pipes: order holds within each stream.
  auto second = std::find(lines.begin(), lines.end(), "second");
  ASSERT_NE(second, lines.end());
  lines.erase(second);
  EXPECT_EQ(lines, (std::vector<std::string>{"first", "third", "1,2,3", "3"}));
  // seq increases across all reports; the exit report is last.
  for (size_t i = 1; i < reports_.size(); ++i) EXPECT_GT(reports_[i].seq, reports_[i - 1].seq);
  EXPECT_EQ(reports_.back().type, AgentReport::Type::kExit);
  EXPECT_EQ(reports_[0].job_arn, config_.job_arn);

  ASSERT_TRUE(
      storage::UnpackArchive(dir_.Sub("out/job-1/output/model.tar.gz"), dir_.Sub("x")).ok());
  EXPECT_EQ(*ReadFile(dir_.Sub("x/model.txt")), "trained\n");
  ASSERT_TRUE(
      storage::UnpackArchive(dir_.Sub("out/job-1/output/output.tar.gz"), dir_.Sub("y")).ok());
  EXPECT_EQ(*ReadFile(dir_.Sub("y/metrics.txt")), "extra\n");
}

TEST_F(AgentTest, UncompressedOutputIsUploadedAsFiles) {
  config_.spec.compress_output = false;
  UseScript("echo m > \"$SM_MODEL_DIR/m.bin\"");
  EXPECT_EQ(RunAgentInProcess(), 0) << diag_.str();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->model_artifacts, "file://" + dir_.Sub("out/job-1/output/model/"));
  EXPECT_EQ(*ReadFile(dir_.Sub("out/job-1/output/model/m.bin")), "m\n");
}

TEST_F(AgentTest, FailureFileBecomesAlgorithmError) {
  UseScript("echo 'boom: bad data' > \"$SM_OUTPUT_DIR/failure\"; exit 3");
  EXPECT_EQ(RunAgentInProcess(), 0);
  const AgentReport* exit = ExitReport();
  ASSERT_NE(exit, nullptr);
  EXPECT_EQ(exit->outcome, AgentReport::Outcome::kFailed);
  EXPECT_EQ(exit->failure_reason, "AlgorithmError: boom: bad data\n");
  EXPECT_EQ(Phases(), (std::vector<std::string>{"Downloading", "Training"}));
}

TEST_F(AgentTest, NonZeroExitWithoutFailureFile) {
  UseScript("exit 7");
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->failure_reason, "AlgorithmError: Exit Code: 7");
}

TEST_F(AgentTest, MissingExecutableIsClientError) {
  config_.spec.container_entrypoint = {"no-such-trainer"};
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kFailed);
  EXPECT_EQ(ExitReport()->failure_reason,
            "ClientError: cannot execute 'no-such-trainer': No such file or directory");
}

TEST_F(AgentTest, EmptyChannelIsClientError) {
  ASSERT_TRUE(MakeDirs(dir_.Sub("data/empty")).ok());
  config_.spec.channels.push_back(
      {"empty", "file://" + dir_.Sub("data/empty"), "", "File", "FullyReplicated", "None", ""});
  UseScript("true");
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kFailed);
  EXPECT_EQ(ExitReport()->failure_reason.rfind(
                "ClientError: No S3 objects found under S3 URL \"file://", 0),
            0u)
      << ExitReport()->failure_reason;
  EXPECT_EQ(Phases(), (std::vector<std::string>{"Downloading"}));
}

TEST_F(AgentTest, ManifestFileChannelGetsExactlyTheListedObjects) {
  ASSERT_TRUE(MakeDirs(dir_.Sub("data/pool/sub")).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("data/pool/one.csv"), "1\n").ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("data/pool/sub/two.csv"), "22\n").ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("data/pool/unlisted.csv"), "x\n").ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("data/train.manifest"),
                              "[{\"prefix\": \"file://" + dir_.Sub("data/pool/") +
                                  "\"}, \"one.csv\", \"sub/two.csv\"]")
                  .ok());
  model::Channel ch{
      "m", "file://" + dir_.Sub("data/train.manifest"), "", "File", "FullyReplicated", "None", ""};
  ch.data_type = "ManifestFile";
  config_.spec.channels = {ch};
  config_.isolation = "none";
  UseScript("cd \"$SM_CHANNEL_M\" && find . -type f | sort | tr '\\n' ' ' && cat sub/two.csv");
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kCompleted)
      << ExitReport()->failure_reason;
  EXPECT_TRUE(WaitForLogLine("./one.csv ./sub/two.csv 22"));
}

TEST_F(AgentTest, ManifestErrorsAreClientErrors) {
  struct Case {
    std::string manifest;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"{\"prefix\": 1}", "is not a manifest"},
      {"[{\"prefix\": \"file://" + dir_.Sub("data/train/") + "\"}, \"../a.csv\"]",
       "climbs out of the channel"},
      {"[{\"prefix\": \"file://" + dir_.Sub("data/train/") + "\"}, \"absent.csv\"]",
       "an object listed in the manifest"},
      {"[{\"prefix\": \"file://" + dir_.Sub("data/train/") + "\"}]", "No S3 objects found"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].manifest);
    cp_.Clear();
    std::string path = dir_.Sub("data/bad" + std::to_string(i) + ".manifest");
    ASSERT_TRUE(WriteFileAtomic(path, cases[i].manifest).ok());
    model::Channel ch{"m", "file://" + path, "", "File", "FullyReplicated", "None", ""};
    ch.data_type = "ManifestFile";
    config_.spec.channels = {ch};
    UseScript("true");
    RunAgentInProcess();
    ASSERT_NE(ExitReport(), nullptr);
    EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kFailed);
    EXPECT_EQ(ExitReport()->failure_reason.rfind("ClientError: ", 0), 0u)
        << ExitReport()->failure_reason;
    EXPECT_NE(ExitReport()->failure_reason.find(cases[i].error), std::string::npos)
        << ExitReport()->failure_reason;
  }
}

TEST(ShardKeysTest, DisjointCoveringBalancedAndDeterministic) {
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) keys.push_back("part-" + std::to_string(9 - i));
  std::vector<std::string> all;
  for (int host = 1; host <= 3; ++host) {
    std::vector<std::string> mine = ShardKeys(keys, host, 3);
    EXPECT_GE(mine.size(), 3u);
    EXPECT_LE(mine.size(), 4u);
    EXPECT_EQ(mine, ShardKeys(keys, host, 3));  // the same answer every time
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(all, sorted);                              // disjoint and covering
  EXPECT_EQ(ShardKeys(keys, 1, 3).front(), "part-0");  // dealt in key order, not listing order
  EXPECT_EQ(ShardKeys(keys, 1, 1), sorted);
  EXPECT_TRUE(ShardKeys({"only"}, 2, 2).empty());  // objects are never split
}

TEST_F(AgentTest, ChannelOutsideFileRootsIsClientError) {
  config_.spec.channels[0].uri = "file:///etc";
  UseScript("true");
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->failure_reason.rfind("ClientError: ", 0), 0u)
      << ExitReport()->failure_reason;
}

TEST_F(AgentTest, BadChannelNameIsRefused) {
  config_.spec.channels[0].name = "../escape";
  UseScript("true");
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->failure_reason, "ClientError: invalid channel name '../escape'");
}

TEST_F(AgentTest, StopRequestStopsAndUploads) {
  UseScript(
      "trap 'echo saved > \"$SM_MODEL_DIR/partial.txt\"; exit 0' TERM; echo ready; "
      "while :; do sleep 0.05; done");
  EXPECT_EQ(RunAgentAndOnReady([](Agent& agent) { agent.RequestStop(); }), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kStopped);
  EXPECT_TRUE(ExitReport()->artifacts_uploaded);
  ASSERT_TRUE(
      storage::UnpackArchive(dir_.Sub("out/job-1/output/model.tar.gz"), dir_.Sub("x")).ok());
  EXPECT_EQ(*ReadFile(dir_.Sub("x/partial.txt")), "saved\n");
}

TEST_F(AgentTest, SigtermToAgentProcessStopsTheJob) {
  UseScript(
      "trap 'echo saved > \"$SM_MODEL_DIR/partial.txt\"; exit 0' TERM; echo ready; "
      "while :; do sleep 0.05; done");
  std::string config_path = dir_.Sub("instance.json");
  ASSERT_TRUE(WriteFileAtomic(config_path, model::InstanceConfigToJson(config_).dump()).ok());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::ostringstream err;
    ::_exit(RunAgent(config_path, err));
  }
  EXPECT_TRUE(WaitForLogLine("ready"));
  ::kill(child, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kStopped);
  ASSERT_TRUE(
      storage::UnpackArchive(dir_.Sub("out/job-1/output/model.tar.gz"), dir_.Sub("x")).ok());
  EXPECT_EQ(*ReadFile(dir_.Sub("x/partial.txt")), "saved\n");
}

TEST_F(AgentTest, InterruptionNoticeSyncsCheckpointsAndUploadsNoArtifacts) {
  ASSERT_TRUE(MakeDirs(dir_.Sub("ckpt")).ok());
  config_.spec.checkpoint_uri = "file://" + dir_.Sub("ckpt") + "/";
  config_.notice_seconds = 4;
  // The script saves a last checkpoint on SIGTERM, as spot-aware scripts do.
  UseScript(
      "ck=\"$(dirname \"$SM_MODEL_DIR\")/checkpoints\"; "
      "trap 'echo last > \"$ck/last.ckpt\"; echo model > \"$SM_MODEL_DIR/m.txt\"; exit 0' TERM; "
      "echo first > \"$ck/first.ckpt\"; echo ready; while :; do sleep 0.05; done");
  EXPECT_EQ(RunAgentAndOnReady([](Agent& agent) { agent.RequestInterrupt(); }), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kInterrupted);
  EXPECT_FALSE(ExitReport()->artifacts_uploaded);
  EXPECT_FALSE(PathExists(dir_.Sub("out/job-1/output/model.tar.gz")));
  // Both checkpoints reached the URI: the one written while training and the
  // one the SIGTERM handler wrote during the notice.
  EXPECT_EQ(*ReadFile(dir_.Sub("ckpt/first.ckpt")), "first\n");
  EXPECT_EQ(*ReadFile(dir_.Sub("ckpt/last.ckpt")), "last\n");
  bool synced = false;
  for (const auto& r : cp_.reports()) {
    if (r.type == AgentReport::Type::kCheckpoint && r.files_uploaded > 0) synced = true;
  }
  EXPECT_TRUE(synced) << "no checkpoint report";
}

TEST_F(AgentTest, InterruptionKillsAScriptThatIgnoresTheNotice) {
  config_.notice_seconds = 2;
  UseScript("trap '' TERM; echo ready; while :; do sleep 0.05; done");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RunAgentAndOnReady([](Agent& agent) { agent.RequestInterrupt(); }), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kInterrupted);
  // Killed within the notice, keeping part of it for the final sync.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(AgentTest, StopAfterTheNoticeUploadsArtifactsAsAStop) {
  config_.notice_seconds = 30;
  UseScript(
      "trap 'sleep 0.3; echo saved > \"$SM_MODEL_DIR/partial.txt\"; exit 0' TERM; echo ready; "
      "while :; do sleep 0.05; done");
  EXPECT_EQ(RunAgentAndOnReady([](Agent& agent) {
              agent.RequestInterrupt();
              agent.RequestStop();
            }),
            0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kStopped);
  EXPECT_TRUE(ExitReport()->artifacts_uploaded);
}

TEST_F(AgentTest, StagesConfigFilesAndCheckpoints) {
  ASSERT_TRUE(MakeDirs(dir_.Sub("ckpt")).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("ckpt/step-1.pt"), "w1").ok());
  config_.spec.checkpoint_uri = "file://" + dir_.Sub("ckpt");
  UseScript(
      "cat \"$SM_INPUT_CONFIG_DIR/checkpointconfig.json\"; echo; "
      "ls \"$(dirname \"$SM_MODEL_DIR\")/checkpoints\"; echo w2 > \"$(dirname "
      "\"$SM_MODEL_DIR\")/checkpoints/step-2.pt\"");
  EXPECT_EQ(RunAgentInProcess(), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kCompleted)
      << ExitReport()->failure_reason;
  std::vector<std::string> lines = cp_.LogLines();
  std::string ml = Sandboxed() ? "/opt/ml" : config_.instance_dir;
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "{\"LocalPath\":\"" + ml + "/checkpoints\",\"S3Uri\":\"file://" +
                          dir_.Sub("ckpt") + "\"}"),
            lines.end());
  EXPECT_NE(std::find(lines.begin(), lines.end(), "step-1.pt"), lines.end());
  // The final sync uploaded the new checkpoint.
  EXPECT_EQ(*ReadFile(dir_.Sub("ckpt/step-2.pt")), "w2\n");
  auto hps = ReadFile(config_.instance_dir + "/input/config/hyperparameters.json");
  ASSERT_TRUE(hps.ok());
  EXPECT_EQ(*hps, "{\"epochs\":\"3\"}");
}

TEST_F(AgentTest, SandboxedScriptReadsOptMlDirectly) {
  if (!Sandboxed()) GTEST_SKIP() << "bubblewrap not available";
  UseScript(
      "cat /opt/ml/input/config/hyperparameters.json; echo; hostname; "
      "cat /opt/ml/input/data/train/a.csv; (echo x > /opt/ml/input/data/train/new) 2>/dev/null "
      "|| echo read-only");
  EXPECT_EQ(RunAgentInProcess(), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kCompleted)
      << ExitReport()->failure_reason;
  std::vector<std::string> lines = cp_.LogLines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front().rfind("trainyard: ", 0), 0u) << lines.front();  // how it is isolated
  lines.erase(lines.begin());
  EXPECT_EQ(lines,
            (std::vector<std::string>{"{\"epochs\":\"3\"}", "algo-1", "1,2,3", "read-only"}));
}

TEST_F(AgentTest, PythonFrameworkRunsProgramWithToolkitArgs) {
  if (!PathExists("/usr/bin/python3")) GTEST_SKIP() << "no python3";
  ASSERT_TRUE(MakeDirs(dir_.Sub("src")).ok());
  ASSERT_TRUE(
      WriteFileAtomic(dir_.Sub("src/train.py"),
                      "import json, os, sys\n"
                      "print(sys.argv[1:])\n"
                      "print(os.environ['SM_HPS'])\n"
                      "print(os.getcwd() == os.environ['SM_MODULE_DIR'] or os.getcwd())\n"
                      "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('ok')\n")
          .ok());
  config_.image.runtime = model::ImageEntry::Runtime::kPythonFramework;
  config_.image.command.clear();
  config_.spec.hyperparameters = {
      {"sagemaker_program", "\"train.py\""},
      {"sagemaker_submit_directory", "\"file://" + dir_.Sub("src") + "\""},
      {"epochs", "3"},
      {"lr", "0.5"},
      {"verbose", "true"}};
  EXPECT_EQ(RunAgentInProcess(), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kCompleted)
      << ExitReport()->failure_reason;
  std::vector<std::string> lines = cp_.LogLines();
  ASSERT_FALSE(lines.empty());
  lines.erase(lines.begin());  // the notice of how the process is isolated
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[0], "['--epochs', '3', '--lr', '0.5', '--verbose', 'True']");
  EXPECT_EQ(lines[1], "{\"epochs\":3,\"lr\":0.5,\"verbose\":true}");
  EXPECT_TRUE(PathExists(config_.instance_dir + "/output/success"));
}

TEST_F(AgentTest, PythonFrameworkFailureWritesExecuteUserScriptError) {
  if (!PathExists("/usr/bin/python3")) GTEST_SKIP() << "no python3";
  ASSERT_TRUE(MakeDirs(dir_.Sub("src")).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("src/train.py"),
                              "import sys\nsys.stderr.write('bad thing\\n')\nsys.exit(2)\n")
                  .ok());
  config_.image.runtime = model::ImageEntry::Runtime::kPythonFramework;
  config_.spec.hyperparameters = {{"sagemaker_program", "\"train.py\""},
                                  {"sagemaker_submit_directory", "\"" + dir_.Sub("src") + "\""}};
  RunAgentInProcess();
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->failure_reason,
            "AlgorithmError: ExecuteUserScriptError:\nExitCode 2\nErrorMessage \"bad thing\"\n"
            "Command \"/usr/bin/python3 train.py\"");
}

TEST_F(AgentTest, UnreadableConfigReturns2) {
  std::ostringstream err;
  EXPECT_EQ(RunAgent(dir_.Sub("missing.json"), err), 2);
  EXPECT_NE(err.str().find("missing.json"), std::string::npos);
}

TEST(MergeTreesTest, LowerNumberedTreeWinsClashesAndAllFilesArrive) {
  TempDir dir{"ty_merge_test_"};
  ASSERT_TRUE(MakeDirs(dir.Sub("a/sub")).ok());
  ASSERT_TRUE(MakeDirs(dir.Sub("b/sub")).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("a/model.pt"), "a").ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("a/sub/x.txt"), "ax").ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("b/model.pt"), "b").ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("b/sub/y.txt"), "by").ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("b/only-b.txt"), "b").ok());
  std::vector<std::string> clashes;
  ASSERT_TRUE(
      MergeTrees({dir.Sub("a"), dir.Sub("missing"), dir.Sub("b")}, dir.Sub("m"), &clashes).ok());
  EXPECT_EQ(*ReadFile(dir.Sub("m/model.pt")), "a");
  EXPECT_EQ(*ReadFile(dir.Sub("m/sub/x.txt")), "ax");
  EXPECT_EQ(*ReadFile(dir.Sub("m/sub/y.txt")), "by");
  EXPECT_EQ(*ReadFile(dir.Sub("m/only-b.txt")), "b");
  EXPECT_EQ(clashes, std::vector<std::string>{"model.pt (from " + dir.Sub("b") + ")"});
}

// Two instances of one job, run in-process side by side: algo-2 marks its tree final,
// algo-1 waits for it and uploads one model.tar.gz merged from both.
TEST_F(AgentTest, LeaderMergesEveryInstancesModelIntoOneArchive) {
  UseScript(
      "echo $SM_CURRENT_HOST > \"$SM_MODEL_DIR/$SM_CURRENT_HOST.txt\"; "
      "echo $SM_CURRENT_HOST > \"$SM_MODEL_DIR/common.txt\"; "
      "[ $SM_CURRENT_HOST = algo-1 ] || sleep 0.5");
  config_.isolation = "none";
  config_.hosts = {"algo-1", "algo-2"};
  model::InstanceConfig second = config_;
  second.host_index = 2;
  second.instance_dir = dir_.Sub("inst/algo-2");
  second.log_stream = "job-1/algo-2-1700000000";
  AgentOptions opts;
  opts.exit_retry_budget = std::chrono::seconds(10);
  std::ostringstream diag2;
  int rc2 = -1;
  std::thread other([&] {
    Agent a(second, diag2, opts);
    rc2 = a.Run();
  });
  EXPECT_EQ(RunAgentInProcess(), 0);
  other.join();
  EXPECT_EQ(rc2, 0);
  EXPECT_TRUE(PathExists(dir_.Sub("inst/algo-2.done")));
  ASSERT_TRUE(
      storage::UnpackArchive(dir_.Sub("out/job-1/output/model.tar.gz"), dir_.Sub("x")).ok());
  EXPECT_EQ(*ReadFile(dir_.Sub("x/algo-1.txt")), "algo-1\n");
  EXPECT_EQ(*ReadFile(dir_.Sub("x/algo-2.txt")), "algo-2\n");
  EXPECT_EQ(*ReadFile(dir_.Sub("x/common.txt")), "algo-1\n");
  EXPECT_TRUE(
      WaitForLogLine("trainyard: waiting for 1 other instance(s) to finish before "
                     "uploading the model"));
  bool clash_logged = false;
  for (const auto& r : cp_.reports()) {
    for (const auto& l : r.lines) {
      clash_logged = clash_logged || l.message.find("model merge: common.txt") != std::string::npos;
    }
  }
  EXPECT_TRUE(clash_logged);
  // Only algo-1 uploads; algo-2 reports completion without artifacts.
  int uploaded = 0;
  for (const auto& r : cp_.reports()) {
    if (r.type == AgentReport::Type::kExit) {
      EXPECT_EQ(r.outcome, AgentReport::Outcome::kCompleted);
      uploaded += r.artifacts_uploaded ? 1 : 0;
    }
  }
  EXPECT_EQ(uploaded, 1);
}

TEST_F(AgentTest, AbortStopsWithoutUploading) {
  UseScript("trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done");
  EXPECT_EQ(RunAgentAndOnReady([](Agent& agent) { agent.RequestAbort(); }), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kStopped);
  EXPECT_FALSE(ExitReport()->artifacts_uploaded);
  EXPECT_FALSE(PathExists(dir_.Sub("out/job-1/output/model.tar.gz")));
  EXPECT_TRUE(WaitForLogLine("trainyard: stopped: the job failed on another instance"));
}

TEST_F(AgentTest, InstanceSeesItsHostsFileAndNetworkVariables) {
  if (!Sandboxed()) GTEST_SKIP() << "bubblewrap not available";
  UseScript("cat /etc/hosts; echo iface=$SM_NETWORK_INTERFACE_NAME port=$SM_MASTER_PORT");
  config_.hosts = {"algo-1"};
  config_.network.interface = "lo";
  config_.network.address = "127.0.0.1";
  config_.network.master_port = 7788;
  config_.network.hosts = {{"algo-1", "127.0.0.1"}};
  EXPECT_EQ(RunAgentInProcess(), 0);
  EXPECT_TRUE(WaitForLogLine("127.0.0.1\talgo-1"));
  EXPECT_TRUE(WaitForLogLine("iface=lo port=7788"));
}

TEST_F(AgentTest, MultiInstanceWithoutSandboxIsClientError) {
  UseScript("true");
  config_.isolation = "none";
  config_.network.interface = "eth0";
  config_.network.address = "10.1.2.2";
  EXPECT_EQ(RunAgentInProcess(), 0);
  ASSERT_NE(ExitReport(), nullptr);
  EXPECT_EQ(ExitReport()->outcome, AgentReport::Outcome::kFailed);
  EXPECT_NE(ExitReport()->failure_reason.find("ClientError: a multi-instance job needs bubblewrap"),
            std::string::npos)
      << ExitReport()->failure_reason;
}

// With sampling on, utilisation samples ride on the log reports while the process runs, and
// a machine without NVML gets one line saying there are no GPU metrics.
TEST_F(AgentTest, SamplesTheInstanceWhileTrainingAndSaysOnceThatThereIsNoGpu) {
  config_.metrics_interval_ms = 100;
  UseScript("echo start; sleep 1; echo end");
  EXPECT_EQ(RunAgentInProcess(), 0) << diag_.str();
  int samples = 0, cpu = 0;
  for (const auto& r : cp_.reports()) {
    for (const auto& s : r.samples) {
      ++samples;
      if (s.cpu) ++cpu;
      EXPECT_FALSE(s.gpu);
      if (s.memory) EXPECT_LE(*s.memory, 100);
      ASSERT_TRUE(s.disk);
    }
  }
  EXPECT_GE(samples, 3);
  EXPECT_GE(cpu, 3);
  auto lines = cp_.LogLines();
  EXPECT_EQ(
      std::count_if(lines.begin(), lines.end(),
                    [](const std::string& l) { return l.find("trainyard: no GPU metrics") == 0; }),
      1);
}

}  // namespace
}  // namespace ty::agent
