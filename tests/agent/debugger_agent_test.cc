// The agent's side of the debugger: config files, PYTHONPATH, staging, the profiler's system
// metrics files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/container_env.h"
#include "agent/staging.h"
#include "agent/system_metrics.h"
#include "common/fs.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

model::JobSpec DebugSpec() {
  model::JobSpec spec;
  spec.name = "job";
  model::DebugHookSpec h;
  h.s3_output_path = "s3://bucket/dbg";
  h.hook_parameters = {{"save_interval", "10"}};
  h.collections = {{"gradients", {}}, {"relu_output", {{"include_regex", ".*relu_output"}}}};
  spec.debug_hook = h;
  spec.tensorboard = model::TensorBoardSpec{"s3://bucket/tb", "/opt/ml/output/tensorboard"};
  spec.profiler = model::ProfilerSpec{"s3://bucket/out", 200, false};
  return spec;
}

TEST(DebuggerConfigTest, HookConfigAsSageMakerWritesIt) {
  json j = json::parse(DebugHookConfigJson(DebugSpec(), "/opt/ml/output/tensors"));
  json want = {{"S3OutputPath", "s3://bucket/dbg"},
               {"LocalPath", "/opt/ml/output/tensors"},
               {"HookParameters", {{"save_interval", "10"}}},
               {"CollectionConfigurations",
                {{{"CollectionName", "gradients"}},
                 {{"CollectionName", "relu_output"},
                  {"CollectionParameters", {{"include_regex", ".*relu_output"}}}}}}};
  EXPECT_EQ(j, want);
}

TEST(DebuggerConfigTest, TensorBoardAndProfilerConfigs) {
  EXPECT_EQ(json::parse(TensorBoardConfigJson(DebugSpec(), "/x/tb")),
            json({{"LocalPath", "/x/tb"}, {"S3OutputPath", "s3://bucket/tb"}}));
  json p = json::parse(ProfilerConfigJson(DebugSpec()));
  EXPECT_EQ(p["ProfilingIntervalInMilliseconds"], 200);
  EXPECT_EQ(p["ProfilingParameters"], json::object());  // smdebug's framework profiler stays off
  EXPECT_EQ(p["DisableProfiler"], false);
}

TEST(DebuggerConfigTest, PythonDirIsAppendedToPythonPathForTheBuiltInRuntime) {
  model::InstanceConfig c;
  c.job_name = "job";
  c.hosts = {"algo-1"};
  c.python_dir = "/srv/trainyard/python";
  c.image.runtime = model::ImageEntry::Runtime::kPythonFramework;
  auto sandboxed = BuildContainerEnv(c, "/opt/ml", "/root");
  EXPECT_EQ(sandboxed["PYTHONPATH"], "/opt/ml/code:/opt/trainyard/python");
  auto bare = BuildContainerEnv(c, "/data/tree", "/root");
  EXPECT_EQ(bare["PYTHONPATH"], "/data/tree/code:/srv/trainyard/python");
  c.spec.environment = {{"PYTHONPATH", "/mine"}};
  EXPECT_EQ(BuildContainerEnv(c, "/opt/ml", "/root")["PYTHONPATH"], "/mine:/opt/trainyard/python");
  c.image.runtime = model::ImageEntry::Runtime::kCommand;
  c.spec.environment.clear();
  EXPECT_EQ(BuildContainerEnv(c, "/opt/ml", "/root").count("PYTHONPATH"), 0u);
}

TEST(DebuggerStagingTest, ConfigFilesAndDirectories) {
  testing::TempDir tmp("ty_debugger_staging_");
  model::InstanceConfig c;
  c.job_name = "job";
  c.hosts = {"algo-1"};
  c.instance_dir = tmp.path() + "/algo-1";
  c.spec = DebugSpec();
  c.spec.debug_hook->local_path = "/opt/ml/tensors";
  c.python_dir = tmp.path();
  c.image.runtime = model::ImageEntry::Runtime::kPythonFramework;
  InstanceView view;
  view.instance_dir = c.instance_dir;
  view.sandboxed = true;
  ASSERT_TRUE(StageInstance(c, &view).ok());
  auto hook = ReadFile(c.instance_dir + "/input/config/debughookconfig.json");
  ASSERT_TRUE(hook.ok());
  EXPECT_EQ(json::parse(*hook)["LocalPath"], "/opt/ml/tensors");
  EXPECT_TRUE(fs::is_directory(c.instance_dir + "/tensors"));
  EXPECT_TRUE(fs::is_directory(c.instance_dir + "/output/tensorboard"));
  EXPECT_TRUE(PathExists(c.instance_dir + "/input/config/tensorboardoutputconfig.json"));
  EXPECT_TRUE(PathExists(c.instance_dir + "/input/config/profilerconfig.json"));
  EXPECT_TRUE(fs::is_directory(c.instance_dir + ".profiler/system"));
  ASSERT_EQ(view.ro_binds.size(), 1u);
  EXPECT_EQ(view.ro_binds[0].second, kSandboxPythonDir);
  EXPECT_EQ(view.HostPath("/opt/trainyard/python/x.py"), tmp.path() + "/x.py");

  // Without the sandbox the files name host paths.
  InstanceView bare;
  bare.instance_dir = c.instance_dir;
  ASSERT_TRUE(StageInstance(c, &bare).ok());
  hook = ReadFile(c.instance_dir + "/input/config/debughookconfig.json");
  EXPECT_EQ(json::parse(*hook)["LocalPath"], c.instance_dir + "/tensors");
  EXPECT_TRUE(bare.ro_binds.empty());

  c.spec.debug_hook->local_path = "/etc";
  EXPECT_FALSE(StageInstance(c, &bare).ok());
}

TEST(SystemMetricsTest, ProcStatAndFileNames) {
  auto cpus = ParseProcStat(
      "cpu  100 0 50 800 50 0 0 0 0 0\n"
      "cpu0 60 0 20 400 20 0 0 0 0 0\n"
      "cpu1 40 0 30 400 30 0 0 0\n"
      "intr 1 2 3\n");
  ASSERT_EQ(cpus.size(), 3u);
  EXPECT_EQ(cpus["total"].busy, 150u);
  EXPECT_EQ(cpus["total"].iowait, 50u);
  EXPECT_EQ(cpus["total"].total, 1000u);
  EXPECT_EQ(cpus["cpu1"].total, 500u);
  EXPECT_EQ(SystemMetricsFile(1591160699 - 59, "algo-1"),
            "system/incremental/2020060305/1591160640.algo-1.json");
  json e = json::parse(SystemEventLine("cpu", "cpu0", "CPUUtilization", 12.5, "algo-1", 1.5));
  EXPECT_EQ(e, json({{"Type", "cpu"},
                     {"Name", "cpu0"},
                     {"Dimension", "CPUUtilization"},
                     {"Value", 12.5},
                     {"NodeId", "algo-1"},
                     {"Timestamp", 1.5}}));
}

// A fake /proc whose counters advance by hand: the writer's events are the deltas, in files
// rotated by the (fake) minute and moved into place whole.
TEST(SystemMetricsTest, WriterRotatesAndPublishesWholeFiles) {
  testing::TempDir tmp("ty_system_metrics_");
  const std::string proc = tmp.path() + "/proc";
  ASSERT_TRUE(MakeDirs(proc + "/net").ok());
  ASSERT_TRUE(MakeDirs(tmp.path() + "/sys/block/vda").ok());
  auto write_proc = [&](int tick) {
    ASSERT_TRUE(WriteFileAtomic(proc + "/stat", "cpu  " + std::to_string(10 * tick) + " 0 0 " +
                                                    std::to_string(30 * tick) + " 0 0 0 0\n" +
                                                    "cpu0 " + std::to_string(10 * tick) + " 0 0 " +
                                                    std::to_string(10 * tick) + " 0 0 0 0\n")
                    .ok());
    ASSERT_TRUE(WriteFileAtomic(proc + "/diskstats", "253 0 vda 1 0 " + std::to_string(8 * tick) +
                                                         " 0 1 0 " + std::to_string(16 * tick) +
                                                         " 0 0 0 0\n   7 0 loop0 1 0 99 0 1 0 "
                                                         "99 0 0 0 0\n")
                    .ok());
    ASSERT_TRUE(WriteFileAtomic(proc + "/net/dev",
                                "Inter-|   Receive\n face |bytes\n    lo: 5 0 0 0 0 0 0 0 5 0\n"
                                "  eth0: " +
                                    std::to_string(100 * tick) + " 0 0 0 0 0 0 0 " +
                                    std::to_string(50 * tick) + " 0 0 0 0 0 0 0\n")
                    .ok());
  };
  testing::FakeClock clock(FromEpochMillis(1591160640'000));  // a minute boundary
  SystemMetricsOptions o;
  o.dir = tmp.path() + "/out";
  o.staging_dir = tmp.path() + "/staging";
  o.node_id = "algo-2";
  o.proc_root = proc;
  o.clock = &clock;
  o.sampler.root_pid = ::getpid();
  ASSERT_TRUE(MakeDirs(o.staging_dir).ok());
  SystemMetricsWriter w(o);
  write_proc(0);
  w.SampleOnce();  // baseline
  write_proc(1);
  clock.Advance(std::chrono::seconds(30));
  w.SampleOnce();
  const std::string first = o.dir + "/system/incremental/2020060305/1591160640.algo-2.json";
  EXPECT_FALSE(PathExists(first));  // its minute is not over
  write_proc(2);
  clock.Advance(std::chrono::seconds(31));
  w.SampleOnce();  // the next minute: the first file is moved into place
  ASSERT_TRUE(PathExists(first));
  w.Stop();
  const std::string second = o.dir + "/system/incremental/2020060305/1591160700.algo-2.json";
  ASSERT_TRUE(PathExists(second));

  auto text = ReadFile(first);
  ASSERT_TRUE(text.ok());
  std::map<std::string, double> got;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    json e = json::parse(line);
    EXPECT_EQ(e["NodeId"], "algo-2");
    // The baseline (at the minute's start) has no rates yet, only levels such as memory.
    const double ts = e["Timestamp"].get<double>();
    EXPECT_TRUE(ts == 1591160640.0 || ts == 1591160670.0) << line;
    if (e["Type"] == "cpu") {
      EXPECT_EQ(ts, 1591160670.0) << line;
    }
    got[e["Type"].get<std::string>() + "/" + e["Name"].get<std::string>() + "/" +
        e["Dimension"].get<std::string>()] = e["Value"].get<double>();
  }
  EXPECT_DOUBLE_EQ(got.at("cpu/cpu0/CPUUtilization"), 50.0);
  EXPECT_DOUBLE_EQ(got.at("cpu/total/CPUUtilization"), 25.0);
  EXPECT_DOUBLE_EQ(got.at("cpu/total/I/OWaitPercentage"), 0.0);
  EXPECT_TRUE(got.count("i/o/vda/ReadBytesPerSecond"));
  EXPECT_FALSE(got.count("i/o/loop0/ReadBytesPerSecond"));
  EXPECT_TRUE(got.count("network/eth0/ReceiveBytesPerSecond"));
  EXPECT_FALSE(got.count("network/lo/ReceiveBytesPerSecond"));
  EXPECT_TRUE(got.count("memory/total/MemoryUsedPercent"));
  EXPECT_FALSE(got.count("gpu/total/GPUUtilization"));  // no GPU here: no GPU events
  EXPECT_TRUE(fs::is_empty(o.staging_dir));
}

}  // namespace
}  // namespace ty::agent
