#include "agent/resource_limits.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// ---------------------------------------------------------------------------------------------
// Fake cgroup trees. mkdir in a temp dir makes an empty directory where the kernel would fill in
// the control files, so each test lays out the files the kernel would have made, including those
// of the instance cgroup the code under test "creates" (mkdir of an existing dir is a reuse).

void Put(const std::string& path, const std::string& contents = "") {
  ASSERT_TRUE(MakeDirs(std::filesystem::path(path).parent_path().string()).ok()) << path;
  std::ofstream(path, std::ios::trunc) << contents;
}

std::string Get(const std::string& path) {
  Result<std::string> r = ReadFile(path);
  return r.ok() ? *r : "<missing>";
}

class FakeCgroupTest : public ::testing::Test {
 protected:
  FakeCgroupTest() {
    roots_.fs = tmp_.Sub("cg");
    roots_.self_cgroup = tmp_.Sub("self_cgroup");
  }

  // cgroup v2: the process sits in /user.slice; the top offers `controllers`.
  void MakeV2(const std::string& controllers = "cpuset cpu io memory pids",
              const std::string& top_enabled = "") {
    Put(fs("cgroup.controllers"), controllers + "\n");
    Put(fs("cgroup.subtree_control"), top_enabled);
    Put(fs("cgroup.procs"));
    Put(fs("user.slice/cgroup.procs"));
    Put(roots_.self_cgroup, "0::/user.slice\n");
  }
  void MakeV2Parent(const std::string& controllers = "cpu memory") {
    Put(fs("trainyard/cgroup.controllers"), controllers + "\n");
    Put(fs("trainyard/cgroup.subtree_control"));
  }
  void MakeV2Instance(const std::string& name, bool swap = true) {
    for (const char* f : {"cgroup.procs", "cpu.max", "memory.max"}) {
      Put(fs("trainyard/" + name + "/" + f));
    }
    if (swap) Put(fs("trainyard/" + name + "/memory.swap.max"));
  }

  // cgroup v1: cpu and cpuacct co-mounted, the process in /outer of the memory hierarchy.
  void MakeV1(const std::string& memory_cgroup = "/outer") {
    Put(fs("cpu/cgroup.procs"));
    Put(fs("cpu/cpu.cfs_quota_us"), "-1");
    Put(fs("memory/cgroup.procs"));
    Put(fs("memory/memory.limit_in_bytes"));
    Put(fs("memory/outer/cgroup.procs"));
    Put(roots_.self_cgroup,
        "9:pids:/\n5:memory:" + memory_cgroup + "\n3:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n");
  }
  void MakeV1Instance(const std::string& cpu_dir, const std::string& memory_dir,
                      bool memsw = true) {
    for (const char* f : {"cgroup.procs", "cpu.cfs_period_us", "cpu.cfs_quota_us"}) {
      Put(fs(cpu_dir + "/" + f));
    }
    for (const char* f : {"cgroup.procs", "memory.limit_in_bytes"}) {
      Put(fs(memory_dir + "/" + f));
    }
    if (memsw) Put(fs(memory_dir + "/memory.memsw.limit_in_bytes"));
  }

  std::string fs(const std::string& rel) const { return roots_.fs + "/" + rel; }

  ty::testing::TempDir tmp_{"ty_resource_limits_"};
  CgroupRoots roots_;
};

TEST_F(FakeCgroupTest, V2EnablesControllersWritesLimitsThenMovesTheCaller) {
  MakeV2();
  MakeV2Parent();
  MakeV2Instance("job-1-algo-1-1");

  LimitsOutcome out = ApplyInstanceLimits("job-1-algo-1-1", {0.5, 100 * kMiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.message, "trainyard: instance limits: 0.5 CPUs, 100 MiB memory (cgroup v2 " +
                             fs("trainyard/job-1-algo-1-1") + ")");
  EXPECT_EQ(out.cgroup_dirs, std::vector<std::string>{fs("trainyard/job-1-algo-1-1")});
  EXPECT_EQ(Get(fs("cgroup.subtree_control")), "+cpu +memory");
  EXPECT_EQ(Get(fs("trainyard/cgroup.subtree_control")), "+cpu +memory");
  EXPECT_EQ(Get(fs("trainyard/job-1-algo-1-1/cpu.max")), "50000 100000");
  EXPECT_EQ(Get(fs("trainyard/job-1-algo-1-1/memory.max")), "104857600");
  EXPECT_EQ(Get(fs("trainyard/job-1-algo-1-1/memory.swap.max")), "0");
  EXPECT_EQ(Get(fs("trainyard/job-1-algo-1-1/cgroup.procs")), "0");  // "0": the writer itself

  ReleaseInstanceLimits("job-1-algo-1-1", roots_);
  EXPECT_EQ(Get(fs("user.slice/cgroup.procs")), "0");  // back where it started
}

TEST_F(FakeCgroupTest, V2LeavesControllersThatAreOnAlone) {
  MakeV2("cpu memory", "cpu memory");
  MakeV2Parent();
  Put(fs("trainyard/cgroup.subtree_control"), "cpu memory");
  MakeV2Instance("j");

  LimitsOutcome out = ApplyInstanceLimits("j", {4, 16 * kGiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(Get(fs("cgroup.subtree_control")), "cpu memory");
  EXPECT_EQ(Get(fs("trainyard/cgroup.subtree_control")), "cpu memory");
  EXPECT_EQ(Get(fs("trainyard/j/cpu.max")), "400000 100000");
  EXPECT_EQ(Get(fs("trainyard/j/memory.max")), std::to_string(16 * kGiB));
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, V2MissingControllerIsNotEnforcedAndCreatesNothing) {
  MakeV2("cpu pids");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB}, roots_);

  EXPECT_FALSE(out.enforced);
  EXPECT_EQ(out.message.rfind("trainyard: instance limits not enforced: ", 0), 0u) << out.message;
  EXPECT_NE(out.message.find("'memory' is not available"), std::string::npos) << out.message;
  EXPECT_TRUE(out.cgroup_dirs.empty());
  EXPECT_FALSE(PathExists(fs("trainyard")));
  EXPECT_EQ(Get(fs("cgroup.subtree_control")), "");
}

TEST_F(FakeCgroupTest, V2CpuOnlyNeedsNoMemoryController) {
  MakeV2("cpu pids");
  MakeV2Parent("cpu");
  Put(fs("trainyard/j/cgroup.procs"));
  Put(fs("trainyard/j/cpu.max"));

  LimitsOutcome out = ApplyInstanceLimits("j", {2, 0}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(Get(fs("cgroup.subtree_control")), "+cpu");
  EXPECT_EQ(Get(fs("trainyard/j/cpu.max")), "200000 100000");
  EXPECT_FALSE(PathExists(fs("trainyard/j/memory.max")));
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, V2ReusedCgroupLosesAnEarlierLimit) {
  MakeV2();
  MakeV2Parent();
  MakeV2Instance("j");
  Put(fs("trainyard/j/memory.max"), "1048576");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, 0}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(Get(fs("trainyard/j/memory.max")), "max");
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, V2WithoutSwapAccountingIsStillEnforced) {
  MakeV2();
  MakeV2Parent();
  MakeV2Instance("j", /*swap=*/false);

  LimitsOutcome out = ApplyInstanceLimits("j", {0, 512 * kMiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.message.find("512 MiB memory (cgroup v2"), 28u) << out.message;
  EXPECT_FALSE(PathExists(fs("trainyard/j/memory.swap.max")));
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, ApplyToProcessMovesThatProcessAndNotTheCaller) {
  MakeV2();
  MakeV2Parent();
  MakeV2Instance("j");

  LimitsOutcome out = ApplyInstanceLimitsToProcess(4242, "j", {1, kGiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(Get(fs("trainyard/j/cgroup.procs")), "4242");
  ReleaseInstanceLimits("j", roots_);
  EXPECT_EQ(Get(fs("user.slice/cgroup.procs")), "");  // the caller was never moved
  EXPECT_FALSE(ApplyInstanceLimitsToProcess(0, "j", {1, kGiB}, roots_).enforced);
}

TEST_F(FakeCgroupTest, V1LimitsEachHierarchyUnderTheCallersCgroup) {
  MakeV1();
  MakeV1Instance("cpu/trainyard/j", "memory/outer/trainyard/j");

  LimitsOutcome out = ApplyInstanceLimits("j", {1.5, 2 * kGiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.message, "trainyard: instance limits: 1.5 CPUs, 2 GiB memory (cgroup v1 " +
                             fs("cpu/trainyard/j") + ", " + fs("memory/outer/trainyard/j") + ")");
  EXPECT_EQ(Get(fs("cpu/trainyard/j/cpu.cfs_period_us")), "100000");
  EXPECT_EQ(Get(fs("cpu/trainyard/j/cpu.cfs_quota_us")), "150000");
  EXPECT_EQ(Get(fs("memory/outer/trainyard/j/memory.limit_in_bytes")), "2147483648");
  EXPECT_EQ(Get(fs("memory/outer/trainyard/j/memory.memsw.limit_in_bytes")), "2147483648");
  EXPECT_EQ(Get(fs("cpu/trainyard/j/cgroup.procs")), "0");
  EXPECT_EQ(Get(fs("memory/outer/trainyard/j/cgroup.procs")), "0");

  ReleaseInstanceLimits("j", roots_);
  EXPECT_EQ(Get(fs("cpu/cgroup.procs")), "0");
  EXPECT_EQ(Get(fs("memory/outer/cgroup.procs")), "0");
}

TEST_F(FakeCgroupTest, V1MemoryOnlyLeavesTheCpuHierarchyAlone) {
  MakeV1();
  MakeV1Instance("cpu/trainyard/j", "memory/outer/trainyard/j", /*memsw=*/false);
  std::filesystem::remove_all(fs("cpu/trainyard"));

  LimitsOutcome out = ApplyInstanceLimits("j", {0, kGiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.cgroup_dirs, std::vector<std::string>{fs("memory/outer/trainyard/j")});
  EXPECT_FALSE(PathExists(fs("cpu/trainyard")));
  EXPECT_EQ(Get(fs("memory/outer/trainyard/j/memory.limit_in_bytes")), "1073741824");
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, V1LimitThatCannotBeWrittenMovesNothing) {
  MakeV1();
  MakeV1Instance("cpu/trainyard/j", "memory/outer/trainyard/j");
  std::filesystem::remove(fs("memory/outer/trainyard/j/memory.limit_in_bytes"));

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB}, roots_);

  EXPECT_FALSE(out.enforced);
  EXPECT_NE(out.message.find("memory.limit_in_bytes"), std::string::npos) << out.message;
  EXPECT_EQ(Get(fs("cpu/trainyard/j/cgroup.procs")), "");
  EXPECT_EQ(Get(fs("memory/outer/trainyard/j/cgroup.procs")), "");
}

TEST_F(FakeCgroupTest, V1ContainerViewNestsUnderTheTop) {
  // /proc/self/cgroup shows the host's path, but only the container's subtree is mounted.
  MakeV1("/docker/abc");
  MakeV1Instance("cpu/trainyard/j", "memory/trainyard/j");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.cgroup_dirs[1], fs("memory/trainyard/j"));
  ReleaseInstanceLimits("j", roots_);
  EXPECT_EQ(Get(fs("memory/cgroup.procs")), "0");
}

TEST_F(FakeCgroupTest, V1ProcessInsideAnInstanceGetsASibling) {
  MakeV1("/outer/trainyard/old");
  Put(fs("memory/outer/trainyard/old/cgroup.procs"));
  MakeV1Instance("cpu/trainyard/j", "memory/outer/trainyard/j");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.cgroup_dirs[1], fs("memory/outer/trainyard/j"));
  ReleaseInstanceLimits("j", roots_);
  EXPECT_EQ(Get(fs("memory/outer/trainyard/old/cgroup.procs")), "0");
}

TEST_F(FakeCgroupTest, NotEnforcedWithAReason) {
  struct Case {
    const char* what;
    InstanceLimits limits;
    bool make_v1;
    const char* reason;
  };
  const Case cases[] = {
      {"no cgroup fs", {1, kGiB}, false, "no cgroup v2 ("},
      {"nothing to limit", {0, 0}, true, "sets no CPU, memory or process figure"},
      {"no pids hierarchy", {0, 0, 64}, true, "no cgroup v1 pids hierarchy"},
      {"negative cpus", {-1, 0}, true, "invalid CPU count"},
      {"nan cpus", {std::nan(""), kGiB}, true, "invalid CPU count"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ty::testing::TempDir tmp;
    roots_.fs = tmp.Sub("cg");
    roots_.self_cgroup = tmp.Sub("self_cgroup");
    if (c.make_v1) MakeV1();
    LimitsOutcome out = ApplyInstanceLimits("j", c.limits, roots_);
    EXPECT_FALSE(out.enforced);
    EXPECT_EQ(out.message.rfind("trainyard: instance limits not enforced: ", 0), 0u) << out.message;
    EXPECT_NE(out.message.find(c.reason), std::string::npos) << out.message;
  }
}

TEST_F(FakeCgroupTest, SweepRemovesEmptyCgroupsNotKept) {
  MakeV1();
  for (const char* d : {"cpu/trainyard/old", "cpu/trainyard/live", "cpu/trainyard/busy",
                        "memory/outer/trainyard/old", "memory/outer/trainyard/other"}) {
    ASSERT_TRUE(MakeDirs(fs(d)).ok());
  }
  // A non-empty directory refuses rmdir, as a cgroup that holds a process does.
  Put(fs("cpu/trainyard/busy/cgroup.procs"), "77\n");
  Put(fs("cpu/trainyard/stray-file"));

  std::vector<std::string> removed = SweepInstanceCgroups({"live"}, roots_);

  EXPECT_EQ(removed, (std::vector<std::string>{"old", "other"}));
  EXPECT_FALSE(PathExists(fs("cpu/trainyard/old")));
  EXPECT_FALSE(PathExists(fs("memory/outer/trainyard/other")));
  EXPECT_TRUE(PathExists(fs("cpu/trainyard/live")));
  EXPECT_TRUE(PathExists(fs("cpu/trainyard/busy")));
}

TEST_F(FakeCgroupTest, V2ProcessLimitEnablesPidsAndWritesPidsMax) {
  MakeV2();
  MakeV2Parent("cpu memory pids");
  MakeV2Instance("j");
  Put(fs("trainyard/j/pids.max"), "max");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB, 256}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.message,
            "trainyard: instance limits: 1 CPU, 1 GiB memory, 256 processes "
            "(cgroup v2 " +
                fs("trainyard/j") + ")");
  EXPECT_EQ(Get(fs("cgroup.subtree_control")), "+cpu +memory +pids");
  EXPECT_EQ(Get(fs("trainyard/cgroup.subtree_control")), "+cpu +memory +pids");
  EXPECT_EQ(Get(fs("trainyard/j/pids.max")), "256");
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, V2ReusedCgroupLosesAnEarlierProcessLimit) {
  MakeV2();
  MakeV2Parent();
  MakeV2Instance("j");
  Put(fs("trainyard/j/pids.max"), "64");

  ASSERT_TRUE(ApplyInstanceLimits("j", {1, kGiB}, roots_).enforced);

  EXPECT_EQ(Get(fs("trainyard/j/pids.max")), "max");
  ReleaseInstanceLimits("j", roots_);
}

TEST_F(FakeCgroupTest, V2WithoutThePidsControllerIsNotEnforced) {
  MakeV2("cpu memory");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB, 256}, roots_);

  EXPECT_FALSE(out.enforced);
  EXPECT_NE(out.message.find("controller 'pids' is not available"), std::string::npos)
      << out.message;
  EXPECT_FALSE(PathExists(fs("trainyard/j")));
}

TEST_F(FakeCgroupTest, V1ProcessLimitGoesInThePidsHierarchy) {
  MakeV1();
  MakeV1Instance("cpu/trainyard/j", "memory/outer/trainyard/j");
  Put(fs("pids/cgroup.procs"));
  Put(fs("pids/trainyard/j/cgroup.procs"));
  Put(fs("pids/trainyard/j/pids.max"), "max");

  LimitsOutcome out = ApplyInstanceLimits("j", {1, kGiB, 100}, roots_);

  ASSERT_TRUE(out.enforced) << out.message;
  EXPECT_EQ(out.cgroup_dirs,
            (std::vector<std::string>{fs("cpu/trainyard/j"), fs("memory/outer/trainyard/j"),
                                      fs("pids/trainyard/j")}));
  EXPECT_EQ(Get(fs("pids/trainyard/j/pids.max")), "100");
  EXPECT_EQ(Get(fs("pids/trainyard/j/cgroup.procs")), "0");

  ReleaseInstanceLimits("j", roots_);
  EXPECT_EQ(Get(fs("pids/cgroup.procs")), "0");
}

TEST_F(FakeCgroupTest, SweepCoversThePidsHierarchy) {
  MakeV1();
  Put(fs("pids/cgroup.procs"));
  ASSERT_TRUE(MakeDirs(fs("pids/trainyard/old")).ok());

  EXPECT_EQ(SweepInstanceCgroups({}, roots_), std::vector<std::string>{"old"});
  EXPECT_FALSE(PathExists(fs("pids/trainyard")));
}

TEST_F(FakeCgroupTest, CountOomKillsReadsV1AndV2Counters) {
  Put(fs("v2/memory.events"), "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n");
  Put(fs("v1cpu/cpu.cfs_quota_us"), "100000");
  Put(fs("v1mem/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  Put(fs("old/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\n");  // before 4.13

  EXPECT_EQ(CountOomKills({fs("v2")}), 2u);
  EXPECT_EQ(CountOomKills({fs("v1cpu"), fs("v1mem"), fs("pids")}), 1u);
  EXPECT_EQ(CountOomKills({fs("old")}), 0u);
  EXPECT_EQ(CountOomKills({}), 0u);
}

TEST_F(FakeCgroupTest, SweepWithoutCgroupsRemovesNothing) {
  EXPECT_TRUE(SweepInstanceCgroups({}, roots_).empty());
}

TEST(SanitizeCgroupNameTest, Table) {
  struct Case {
    std::string in, want;
  };
  const Case cases[] = {
      {"job-1-algo-1-1", "job-1-algo-1-1"},
      {"a/b", "a_b"},
      {"..", "_."},
      {".hidden", "_hidden"},
      {"", "_"},
      {"x y\nz", "x_y_z"},
      {std::string(300, 'a'), std::string(200, 'a')},
  };
  for (const Case& c : cases) EXPECT_EQ(SanitizeCgroupName(c.in), c.want) << c.in;
}

TEST(DescribeLimitsTest, Table) {
  struct Case {
    InstanceLimits limits;
    std::string want;
  };
  const Case cases[] = {
      {{4, 16 * kGiB}, "4 CPUs, 16 GiB memory"},
      {{0.5, 100 * kMiB}, "0.5 CPUs, 100 MiB memory"},
      {{1, 0}, "1 CPU"},
      {{0, 1536 * kMiB}, "1.5 GiB memory"},
      {{0, 4096}, "4096 bytes memory"},
      {{0, 0}, ""},
      {{2, 4 * kGiB, 4096}, "2 CPUs, 4 GiB memory, 4096 processes"},
      {{0, 0, 64}, "64 processes"},
  };
  for (const Case& c : cases) EXPECT_EQ(DescribeLimits(c.limits), c.want);
}

TEST(OutOfMemoryReasonTest, NamesTheLimitAndTheType) {
  EXPECT_EQ(OutOfMemoryReason(2 * kGiB, "ml.m5.large", 137),
            "OutOfMemoryError: Please use an instance type with more memory, or reduce the size of "
            "job data processed on an instance. (memory limit 2 GiB of ml.m5.large; the training "
            "process exited with code 137)");
  EXPECT_NE(OutOfMemoryReason(256 * kMiB, "", 1).find("(memory limit 256 MiB; the training"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The real cgroups of this machine, where they are writable.

// Why the real cgroups cannot be used here, or "" when they can.
std::string WhyRealCgroupsUnusable() {
  if (::geteuid() != 0) return "not root";
  auto writable = [](const std::string& path) -> std::string {
    if (::access(path.c_str(), W_OK) == 0) return "";
    return path + ": " + std::strerror(errno);
  };
  if (PathExists("/sys/fs/cgroup/cgroup.controllers")) {
    Result<std::string> offered = ReadFile("/sys/fs/cgroup/cgroup.controllers");
    if (!offered.ok() || offered->find("cpu") == std::string::npos ||
        offered->find("memory") == std::string::npos) {
      return "cgroup v2 without the cpu and memory controllers";
    }
    return writable("/sys/fs/cgroup/cgroup.procs");
  }
  if (!PathExists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")) return "no cgroup v1 cpu bandwidth";
  if (!PathExists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) return "no cgroup v1 memory";
  std::string why = writable("/sys/fs/cgroup/cpu/cgroup.procs");
  return why.empty() ? writable("/sys/fs/cgroup/memory/cgroup.procs") : why;
}

// A forked child that waits until Go() and then runs `body`, or exits at once when the pipe is
// closed without Go(). Only async-signal-safe calls run in it: the test binary may hold other
// threads at fork time, whose locks the child would inherit held.
class Child {
 public:
  explicit Child(void (*body)()) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      // Without exec, O_CLOEXEC closes nothing: drop every inherited descriptor but the read end,
      // or a sibling forked later would hold this child's write end and keep it from seeing EOF.
      if (fds[0] > 3) ::close_range(3, fds[0] - 1, 0);
      ::close_range(fds[0] + 1, ~0U, 0);
      char c;
      if (::read(fds[0], &c, 1) == 1) body();
      ::_exit(0);
    }
    ::close(fds[0]);
    go_ = fds[1];
  }
  ~Child() {
    if (go_ >= 0) ::close(go_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void Go() {
    if (::write(go_, "g", 1) != 1) ADD_FAILURE() << "cannot start child";
    ::close(go_);
    go_ = -1;
  }
  void Stop() {
    ::close(go_);
    go_ = -1;
  }
  int Wait(struct rusage* usage = nullptr) {
    int status = 0;
    struct rusage ignored;
    ::wait4(pid_, &status, 0, usage != nullptr ? usage : &ignored);
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool reaped_ = false;
};

double Seconds(const timespec& t) { return static_cast<double>(t.tv_sec) + t.tv_nsec / 1e9; }

void BurnCpuForTwoSeconds() {
  timespec start, now;
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  volatile uint64_t sink = 0;
  do {
    for (int i = 0; i < 100000; ++i) sink = sink + i;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
  } while (Seconds(now) - Seconds(start) < 2.0);
}

void TouchThreeHundredMiB() {
  constexpr size_t kBytes = 300 * kMiB;
  void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) ::_exit(3);
  auto* bytes = static_cast<volatile char*>(p);
  for (size_t i = 0; i < kBytes; i += 4096) bytes[i] = 1;
}

// Forks 64 children that wait to be killed: exits 42 when a fork fails with EAGAIN (the pids
// limit), 43 on another failure, 0 when all 64 started.
void ForkSixtyFour() {
  for (int i = 0; i < 64; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      for (;;) ::pause();
    }
    if (pid < 0) ::_exit(errno == EAGAIN ? 42 : 43);
  }
  ::_exit(0);
}

// "key value" lines (cpu.stat, memory.events, memory.oom_control): the value of `key`, or -1.
long long StatValue(const std::string& path, const std::string& key) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return -1;
  std::istringstream in(*text);
  std::string k;
  long long v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return -1;
}

bool IsV2(const std::string& dir) { return PathExists(dir + "/cgroup.type"); }

class RealCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = WhyRealCgroupsUnusable();
    if (!why.empty()) GTEST_SKIP() << "real cgroups not writable here: " << why;
    // A parent of this test's own, so nothing here touches the production "trainyard" parent or
    // races another test process, and TearDown can remove it.
    roots_.parent = "trainyard-test-" + std::to_string(::getpid());
  }
  void TearDown() override {
    for (const std::string& d : dirs_) ::rmdir(d.c_str());
    for (const std::string& d : dirs_) {
      ::rmdir(std::filesystem::path(d).parent_path().c_str());
    }
  }
  // Keeps the outcome's directories for TearDown, should the test fail before releasing them.
  LimitsOutcome Remember(LimitsOutcome out) {
    dirs_.insert(dirs_.end(), out.cgroup_dirs.begin(), out.cgroup_dirs.end());
    std::cout << "  " << out.message << "\n";
    return out;
  }

  CgroupRoots roots_;
  std::vector<std::string> dirs_;
};

TEST_F(RealCgroupTest, CpuQuotaHoldsABurningChildToHalfACore) {
  Child child(BurnCpuForTwoSeconds);
  LimitsOutcome out =
      Remember(ApplyInstanceLimitsToProcess(child.pid(), "rl-cpu", {0.5, 0}, roots_));
  child.Go();
  struct rusage usage;
  int status = child.Wait(&usage);
  ASSERT_TRUE(out.enforced) << out.message;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  double cpu = Seconds({usage.ru_utime.tv_sec, usage.ru_utime.tv_usec * 1000}) +
               Seconds({usage.ru_stime.tv_sec, usage.ru_stime.tv_usec * 1000});
  const std::string& dir = out.cgroup_dirs[0];
  long long throttled = StatValue(dir + "/cpu.stat", "nr_throttled");
  // The cgroup's own count of the CPU time it used, where it keeps one: v2 cpu.stat, or v1
  // cpuacct when co-mounted with cpu (a separate cpuacct hierarchy does not see this cgroup).
  double group_cpu = -1;
  if (IsV2(dir)) {
    group_cpu = static_cast<double>(StatValue(dir + "/cpu.stat", "usage_usec")) / 1e6;
  } else if (PathExists(dir + "/cpuacct.usage")) {
    group_cpu = std::stod(Get(dir + "/cpuacct.usage")) / 1e9;
  }
  std::cout << "  2 s of wall clock at 0.5 CPUs: child used " << cpu << " s of CPU, cgroup "
            << group_cpu << " s, throttled in " << throttled << " periods\n";
  // Unlimited, the child would use ~2 s; how much less than 1 s it gets depends on the load of
  // the machine, so only the ceiling is checked, and that the quota was what held it back.
  EXPECT_LT(cpu, 1.6);
  EXPECT_GT(throttled, 0);
  if (group_cpu >= 0) {
    EXPECT_LT(group_cpu, 1.6);
  }

  ReleaseInstanceLimits("rl-cpu", roots_);
  EXPECT_FALSE(PathExists(dir));
}

TEST_F(RealCgroupTest, MemoryLimitOomKillsAnOverAllocatingChild) {
  Child child(TouchThreeHundredMiB);
  LimitsOutcome out =
      Remember(ApplyInstanceLimitsToProcess(child.pid(), "rl-oom", {0, 100 * kMiB}, roots_));
  child.Go();
  int status = child.Wait();
  ASSERT_TRUE(out.enforced) << out.message;

  const std::string& dir = out.cgroup_dirs[0];
  long long kills = IsV2(dir) ? StatValue(dir + "/memory.events", "oom_kill")
                              : StatValue(dir + "/memory.oom_control", "oom_kill");
  std::cout << "  300 MiB touched under a 100 MiB limit: wait status " << status
            << (WIFSIGNALED(status) ? std::string(" (signal ") + strsignal(WTERMSIG(status)) + ")"
                                    : std::string())
            << ", oom_kill " << kills << "\n";
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  if (kills >= 0) {
    EXPECT_GE(kills, 1);
    EXPECT_EQ(CountOomKills(out.cgroup_dirs), static_cast<uint64_t>(kills));
  }

  ReleaseInstanceLimits("rl-oom", roots_);
  EXPECT_FALSE(PathExists(dir));
}

TEST_F(RealCgroupTest, ProcessLimitFailsForksPastItAndReleaseEndsTheRest) {
  if (!PathExists("/sys/fs/cgroup/cgroup.controllers") &&
      ::access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) != 0) {
    GTEST_SKIP() << "no writable cgroup v1 pids hierarchy";
  }
  Child bomb(ForkSixtyFour);
  LimitsOutcome out =
      Remember(ApplyInstanceLimitsToProcess(bomb.pid(), "rl-pids", {0, 0, 16}, roots_));
  ASSERT_TRUE(out.enforced) << out.message;
  bomb.Go();
  int status = bomb.Wait();

  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 42);  // fork failed with EAGAIN
  // The 15 children it did start (16 with it) are still in the cgroup until released.
  const std::string& dir = out.cgroup_dirs.back();
  EXPECT_EQ(Get(dir + "/pids.max"), "16\n");
  ReleaseInstanceLimits("rl-pids", roots_);
  for (const std::string& d : out.cgroup_dirs) EXPECT_FALSE(PathExists(d)) << d;
}

TEST_F(RealCgroupTest, ApplyMovesTheCallerAndReleaseMovesItBack) {
  std::string before = Get("/proc/self/cgroup");
  LimitsOutcome out = Remember(ApplyInstanceLimits("rl-self", {1, kGiB}, roots_));
  ASSERT_TRUE(out.enforced) << out.message;
  std::string inside = Get("/proc/self/cgroup");

  ReleaseInstanceLimits("rl-self", roots_);

  EXPECT_NE(inside.find("/" + roots_.parent + "/rl-self"), std::string::npos) << inside;
  EXPECT_EQ(Get("/proc/self/cgroup"), before);
  for (const std::string& d : out.cgroup_dirs) {
    EXPECT_FALSE(PathExists(d)) << d;
    // The parent held no other instance, so it went too.
    EXPECT_FALSE(PathExists(std::filesystem::path(d).parent_path())) << d;
  }
}

TEST_F(RealCgroupTest, ReleaseEndsStraysAndRemovesTheCgroup) {
  Child stray(BurnCpuForTwoSeconds);  // never told to go: blocks until killed
  LimitsOutcome out =
      Remember(ApplyInstanceLimitsToProcess(stray.pid(), "rl-stray", {1, kGiB}, roots_));
  ASSERT_TRUE(out.enforced) << out.message;

  ReleaseInstanceLimits("rl-stray", roots_);

  int status = stray.Wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  for (const std::string& d : out.cgroup_dirs) EXPECT_FALSE(PathExists(d)) << d;
}

TEST_F(RealCgroupTest, SweepRemovesEmptyCgroupsNotKept) {
  Child gone(BurnCpuForTwoSeconds), kept(BurnCpuForTwoSeconds), busy(BurnCpuForTwoSeconds);
  LimitsOutcome a =
      Remember(ApplyInstanceLimitsToProcess(gone.pid(), "rl-gone", {1, kGiB}, roots_));
  LimitsOutcome b =
      Remember(ApplyInstanceLimitsToProcess(kept.pid(), "rl-kept", {1, kGiB}, roots_));
  LimitsOutcome c =
      Remember(ApplyInstanceLimitsToProcess(busy.pid(), "rl-busy", {1, kGiB}, roots_));
  ASSERT_TRUE(a.enforced && b.enforced && c.enforced) << a.message;
  gone.Stop();
  kept.Stop();
  ASSERT_TRUE(WIFEXITED(gone.Wait()));
  ASSERT_TRUE(WIFEXITED(kept.Wait()));

  std::vector<std::string> removed = SweepInstanceCgroups({"rl-kept"}, roots_);

  EXPECT_EQ(removed, std::vector<std::string>{"rl-gone"});
  for (const std::string& d : a.cgroup_dirs) EXPECT_FALSE(PathExists(d)) << d;
  for (const std::string& d : b.cgroup_dirs) EXPECT_TRUE(PathExists(d)) << d;
  for (const std::string& d : c.cgroup_dirs) EXPECT_TRUE(PathExists(d)) << d;  // holds `busy`

  busy.Stop();
  ASSERT_TRUE(WIFEXITED(busy.Wait()));
  EXPECT_EQ(SweepInstanceCgroups({}, roots_), (std::vector<std::string>{"rl-busy", "rl-kept"}));
  for (const std::string& d : c.cgroup_dirs) {
    EXPECT_FALSE(PathExists(std::filesystem::path(d).parent_path())) << d;
  }
}

}  // namespace
}  // namespace ty::agent
