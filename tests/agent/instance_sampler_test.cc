// InstanceSampler: CPU and memory from a fake cgroup directory, CPU from a fake /proc tree,
// disk from a real file system, and the path without NVML (no GPU values, one notice).
#include "agent/instance_sampler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

using Clock = std::chrono::steady_clock;

TEST(InstanceSamplerTest, CpuIsUsageDeltaOverWallTimeFromTheCgroup) {
  testing::TempDir dir("ty-sampler-");
  const std::string cg = dir.path();
  ASSERT_TRUE(WriteFileAtomic(cg + "/cpu.stat", "usage_usec 5000000\nuser_usec 1\n").ok());
  ASSERT_TRUE(WriteFileAtomic(cg + "/memory.current", "1073741824\n").ok());
  ASSERT_TRUE(WriteFileAtomic(cg + "/memory.stat", "anon 1\ninactive_file 536870912\n").ok());
  SamplerOptions o;
  o.cgroup_dirs = {cg};
  o.memory_limit_bytes = 2ull << 30;
  o.volume_path = cg;
  o.nvml_library = "libtrainyard-no-such-nvml.so.1";
  InstanceSampler s(o);
  const auto t0 = Clock::now();
  auto first = s.Sample(1000, t0);
  EXPECT_FALSE(first.cpu);  // the baseline
  ASSERT_TRUE(first.memory);
  EXPECT_DOUBLE_EQ(*first.memory, 25.0);  // (1 GiB - 0.5 GiB cache) of 2 GiB
  ASSERT_TRUE(first.disk);
  EXPECT_GT(*first.disk, 0);
  EXPECT_LE(*first.disk, 100);
  // 1.5 CPU-seconds in one second: 150 (the sum over cores, as SageMaker reports it).
  ASSERT_TRUE(WriteFileAtomic(cg + "/cpu.stat", "usage_usec 6500000\n").ok());
  auto busy = s.Sample(2000, t0 + std::chrono::seconds(1));
  ASSERT_TRUE(busy.cpu);
  EXPECT_NEAR(*busy.cpu, 150.0, 1e-6);
  auto idle = s.Sample(3000, t0 + std::chrono::seconds(2));
  ASSERT_TRUE(idle.cpu);
  EXPECT_NEAR(*idle.cpu, 0.0, 1e-6);
}

TEST(InstanceSamplerTest, V1CgroupCountersAreReadToo) {
  testing::TempDir dir("ty-sampler-");
  const std::string cg = dir.path();
  ASSERT_TRUE(WriteFileAtomic(cg + "/cpuacct.usage", "1000000000\n").ok());
  ASSERT_TRUE(WriteFileAtomic(cg + "/memory.usage_in_bytes", "100\n").ok());
  SamplerOptions o;
  o.cgroup_dirs = {cg};
  o.memory_limit_bytes = 1000;
  o.nvml_library = "libtrainyard-no-such-nvml.so.1";
  InstanceSampler s(o);
  const auto t0 = Clock::now();
  (void)s.Sample(0, t0);
  ASSERT_TRUE(WriteFileAtomic(cg + "/cpuacct.usage", "1500000000\n").ok());
  auto x = s.Sample(2000, t0 + std::chrono::seconds(2));
  ASSERT_TRUE(x.cpu);
  EXPECT_NEAR(*x.cpu, 25.0, 1e-6);
  ASSERT_TRUE(x.memory);
  EXPECT_DOUBLE_EQ(*x.memory, 10.0);
  EXPECT_FALSE(x.disk);  // no volume path
}

TEST(InstanceSamplerTest, WithoutACgroupTheProcessTreeIsMeasured) {
  testing::TempDir dir("ty-sampler-");
  const std::string proc = dir.path();
  const long hz = ::sysconf(_SC_CLK_TCK);
  // pid 10 (the agent) has a child 11 (the trainer, its name with a space and a paren), which
  // has a child 12; pid 20 is not in the tree.
  auto stat = [&](int pid, int ppid, long utime, long cutime) {
    std::string line = std::to_string(pid) + " (python (x) y) S " + std::to_string(ppid) +
                       " 1 1 0 -1 0 0 0 0 0 " + std::to_string(utime) + " 0 " +
                       std::to_string(cutime) + " 0 20 0 1 0 100 0 0\n";
    ASSERT_TRUE(MakeDirs(proc + "/" + std::to_string(pid)).ok());
    ASSERT_TRUE(WriteFileAtomic(proc + "/" + std::to_string(pid) + "/stat", line).ok());
    ASSERT_TRUE(
        WriteFileAtomic(proc + "/" + std::to_string(pid) + "/statm", "1000 256 0 0 0 0 0\n").ok());
  };
  stat(10, 1, 0, 0);
  stat(11, 10, 0, 0);
  stat(12, 11, 0, 0);
  stat(20, 1, 0, 0);
  ASSERT_TRUE(WriteFileAtomic(proc + "/meminfo", "MemTotal:       1000 kB\nMemFree: 1 kB\n").ok());
  SamplerOptions o;
  o.root_pid = 10;
  o.proc_root = proc;
  o.nvml_library = "libtrainyard-no-such-nvml.so.1";
  InstanceSampler s(o);
  const auto t0 = Clock::now();
  (void)s.Sample(0, t0);
  stat(11, 10, hz, 0);           // one CPU-second
  stat(12, 11, hz / 2, hz / 2);  // and one more (half its own, half a reaped child's)
  stat(20, 1, 100 * hz, 0);      // not ours
  auto x = s.Sample(1000, t0 + std::chrono::seconds(1));
  ASSERT_TRUE(x.cpu);
  EXPECT_NEAR(*x.cpu, 200.0, 1.0);
  ASSERT_TRUE(x.memory);
  // 3 processes x 256 resident pages over 1000 kB of host memory, capped at 100.
  EXPECT_DOUBLE_EQ(*x.memory, 100.0);
}

TEST(InstanceSamplerTest, WithoutNvmlThereAreNoGpuValuesAndOneNotice) {
  SamplerOptions o;
  o.root_pid = ::getpid();
  o.gpus = 4;
  o.nvml_library = "libtrainyard-no-such-nvml.so.1";
  InstanceSampler s(o);
  EXPECT_FALSE(s.has_gpu_metrics());
  EXPECT_NE(s.notice().find("no GPU metrics"), std::string::npos) << s.notice();
  EXPECT_EQ(s.notice().find('\n'), std::string::npos);
  auto x = s.Sample(0, Clock::now());
  EXPECT_FALSE(x.gpu);
  EXPECT_FALSE(x.gpu_memory);
  EXPECT_TRUE(x.memory);  // this process's tree, of the host's memory
}

}  // namespace
}  // namespace ty::agent
