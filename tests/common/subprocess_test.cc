#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty {
namespace {

SpawnOptions Sh(const std::string& script) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.env = {{"PATH", "/usr/bin:/bin"}};
  return o;
}

// Reads fd until EOF (fd is non-blocking; waits with poll).
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 5000);
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, n);
    } else if (n == 0) {
      return out;
    } else if (errno != EAGAIN && errno != EINTR) {
      return out;
    }
  }
}

TEST(SubprocessTest, ReturnsExitCode) {
  auto p = Subprocess::Spawn(Sh("exit 3"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto code = (*p)->Wait();
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 3);
  EXPECT_EQ(*(*p)->Wait(), 3);  // idempotent
}

TEST(SubprocessTest, SignalExitIs128PlusSignal) {
  auto p = Subprocess::Spawn(Sh("kill -TERM $$; sleep 5"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*(*p)->Wait(), 128 + SIGTERM);
}

TEST(SubprocessTest, MissingExecutableIsReportedBySpawn) {
  SpawnOptions o;
  o.argv = {"no-such-program-xyz", "a"};
  o.env = {{"PATH", "/usr/bin:/bin"}};
  auto p = Subprocess::Spawn(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "cannot execute 'no-such-program-xyz': No such file or directory");

  o.argv = {"/nonexistent/prog"};
  p = Subprocess::Spawn(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "cannot execute '/nonexistent/prog': No such file or directory");
}

TEST(SubprocessTest, NonExecutableFileIsPermissionDenied) {
  testing::TempDir dir("ty_subprocess_");
  std::string file = dir.Sub("data.txt");
  ASSERT_TRUE(WriteFileAtomic(file, "not a program\n", 0644).ok());
  SpawnOptions o;
  o.argv = {file};
  auto p = Subprocess::Spawn(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "cannot execute '" + file + "': Permission denied");
}

TEST(SubprocessTest, CapturesStdoutAndStderrSeparately) {
  auto o = Sh("echo out1; echo err1 >&2; echo out2; printf tail");
  auto p = Subprocess::Spawn(o);
  ASSERT_TRUE(p.ok());
  std::string out = ReadAll((*p)->stdout_fd());
  std::string err = ReadAll((*p)->stderr_fd());
  EXPECT_EQ(out, "out1\nout2\ntail");
  EXPECT_EQ(err, "err1\n");
  EXPECT_EQ(*(*p)->Wait(), 0);
}

TEST(SubprocessTest, EnvironmentIsExactlyTheGivenOne) {
  auto o = Sh("env | sort");
  o.env["FOO"] = "bar baz";
  setenv("TY_SHOULD_NOT_LEAK", "1", 1);
  auto p = Subprocess::Spawn(o);
  ASSERT_TRUE(p.ok());
  std::string out = ReadAll((*p)->stdout_fd());
  EXPECT_NE(out.find("FOO=bar baz\n"), std::string::npos);
  EXPECT_EQ(out.find("TY_SHOULD_NOT_LEAK"), std::string::npos);
  EXPECT_EQ(*(*p)->Wait(), 0);
}

TEST(SubprocessTest, RunsInCwdAndRedirectsToFile) {
  testing::TempDir tmp("ty_subprocess_");
  const std::string& dir = tmp.path();
  auto o = Sh("pwd; echo err >&2");
  o.cwd = dir;
  o.capture_output = false;
  o.stdout_file = dir + "/out.log";
  auto p = Subprocess::Spawn(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->stdout_fd(), -1);
  EXPECT_EQ(*(*p)->Wait(), 0);
  EXPECT_EQ(*ReadFile(dir + "/out.log"), dir + "\nerr\n");

  o.cwd = dir + "/missing";
  auto bad = Subprocess::Spawn(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot change directory"), std::string::npos);
}

TEST(SubprocessTest, GroupKillReachesGrandchildren) {
  auto p = Subprocess::Spawn(Sh("sleep 100 & echo $!; wait"));
  ASSERT_TRUE(p.ok());
  // Read the grandchild's pid line.
  std::string line;
  char c;
  while (line.find('\n') == std::string::npos) {
    pollfd pf{(*p)->stdout_fd(), POLLIN, 0};
    ::poll(&pf, 1, 5000);
    if (::read((*p)->stdout_fd(), &c, 1) == 1) line += c;
  }
  pid_t grandchild = std::atoi(line.c_str());
  int64_t ticks = ProcessStartTicks(grandchild);
  ASSERT_GT(ticks, 0);
  EXPECT_TRUE(ProcessAlive(grandchild, ticks));
  ASSERT_TRUE((*p)->SignalGroup(SIGKILL).ok());
  EXPECT_EQ(*(*p)->Wait(), 128 + SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (ProcessAlive(grandchild, ticks) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(ProcessAlive(grandchild, ticks));
}

TEST(SubprocessTest, DestructorKillsRunningGroup) {
  pid_t pid;
  int64_t ticks;
  {
    auto p = Subprocess::Spawn(Sh("sleep 100"));
    ASSERT_TRUE(p.ok());
    pid = (*p)->pid();
    ticks = ProcessStartTicks(pid);
    EXPECT_FALSE((*p)->TryWait().has_value());
  }
  EXPECT_FALSE(ProcessAlive(pid, ticks));
}

TEST(SubprocessTest, ProcessAliveRejectsOtherStartTime) {
  EXPECT_TRUE(ProcessAlive(::getpid(), ProcessStartTicks(::getpid())));
  EXPECT_FALSE(ProcessAlive(::getpid(), ProcessStartTicks(::getpid()) + 1));
  EXPECT_EQ(ProcessStartTicks(0x7ffffff0), 0);
  EXPECT_FALSE(ProcessAlive(0x7ffffff0, 0));
}

TEST(SubprocessTest, MissingNetworkNamespaceIsReportedBySpawn) {
  SpawnOptions o = Sh("true");
  o.netns_path = "/run/netns/ty-no-such-namespace";
  auto p = Subprocess::Spawn(o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(
      p.status().message().find("cannot open network namespace /run/netns/ty-no-such-namespace"),
      std::string::npos)
      << p.status().ToString();
}

TEST(SubprocessTest, EntersTheNetworkNamespaceGiven) {
  // This process's own namespace: the child must see the same one (and entering needs root).
  if (::geteuid() != 0) GTEST_SKIP() << "setns(2) needs CAP_SYS_ADMIN";
  SpawnOptions o = Sh("readlink /proc/self/ns/net");
  o.netns_path = "/proc/self/ns/net";
  auto p = Subprocess::Spawn(o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::string out = ReadAll((*p)->stdout_fd());
  EXPECT_EQ(*(*p)->Wait(), 0);
  char self[128] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", self, sizeof(self) - 1), 0);
  EXPECT_EQ(out, std::string(self) + "\n");
}

}  // namespace
}  // namespace ty
