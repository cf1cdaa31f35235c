#include "agent/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/agent.h"
#include "common/fs.h"
#include "common/subprocess.h"

namespace ty::agent {
namespace {

bool Contains(const std::vector<std::string>& v, const std::vector<std::string>& seq) {
  return std::search(v.begin(), v.end(), seq.begin(), seq.end()) != v.end();
}

size_t IndexOf(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

SandboxArgs BaseArgs() {
  SandboxArgs a;
  a.bwrap_path = "/usr/bin/bwrap";
  a.hostname = "algo-2";
  a.instance_dir_fd = 7;
  a.ro_bind_fds = {{8, "/opt/ml/input/data/train"}, {9, "/etc/hosts"}};
  a.seccomp_fd = 10;
  a.hidden_dirs = {"/srv/trainyard", "/tmp/data", "/root"};
  a.hidden_files = {"/etc/trainyard/credentials"};
  a.cwd = "/opt/ml/code";
  a.command = {"python3", "train.py", "--"};
  return a;
}

TEST(SandboxArgvTest, UserNamespaceDropsEverything) {
  auto argv = SandboxArgv(BaseArgs());
  EXPECT_EQ(argv[0], "/usr/bin/bwrap");
  EXPECT_TRUE(Contains(argv, {"--unshare-user", "--uid", "0", "--gid", "0", "--disable-userns"}));
  EXPECT_TRUE(Contains(argv, {"--cap-drop", "ALL"}));
  EXPECT_TRUE(Contains(argv, {"--hostname", "algo-2"}));
  EXPECT_TRUE(Contains(argv, {"--bind-fd", "7", "/opt/ml"}));
  EXPECT_TRUE(Contains(argv, {"--ro-bind-fd", "8", "/opt/ml/input/data/train"}));
  EXPECT_TRUE(Contains(argv, {"--ro-bind-fd", "9", "/etc/hosts"}));
  EXPECT_TRUE(Contains(argv, {"--seccomp", "10"}));
  EXPECT_TRUE(Contains(argv, {"--chdir", "/opt/ml/code", "--", "python3", "train.py", "--"}));
  // The command comes last, untouched, after the one "--" that ends bwrap's options.
  EXPECT_EQ(IndexOf(argv, "--"), argv.size() - 4);
  // No bind by path: an unprivileged bwrap could not walk the server's directories.
  EXPECT_FALSE(Contains(argv, {"--bind"}));
}

TEST(SandboxArgvTest, HidesServerPathsBeforeBindingTheTree) {
  auto argv = SandboxArgv(BaseArgs());
  EXPECT_TRUE(Contains(argv, {"--tmpfs", "/srv/trainyard"}));
  EXPECT_TRUE(Contains(argv, {"--tmpfs", "/root"}));
  EXPECT_TRUE(Contains(argv, {"--ro-bind", "/dev/null", "/etc/trainyard/credentials"}));
  // /tmp is an empty tmpfs already.
  EXPECT_FALSE(Contains(argv, {"--tmpfs", "/tmp/data"}));
  // A file in a hidden directory is not named again.
  SandboxArgs nested = BaseArgs();
  nested.hidden_files = {"/srv/trainyard/credentials"};
  EXPECT_FALSE(Contains(SandboxArgv(nested), {"/srv/trainyard/credentials"}));
  // Hides come after the root bind (they cover it) and before /opt/ml and the channels.
  EXPECT_LT(IndexOf(argv, "/srv/trainyard"), IndexOf(argv, "--bind-fd"));
  EXPECT_GT(IndexOf(argv, "/srv/trainyard"), IndexOf(argv, "--ro-bind"));
}

TEST(SandboxArgvTest, WithoutUserNamespaceStillDropsCapabilities) {
  SandboxArgs a = BaseArgs();
  a.user_namespace = false;
  a.seccomp_fd = -1;
  auto argv = SandboxArgv(a);
  EXPECT_FALSE(Contains(argv, {"--unshare-user"}));
  EXPECT_FALSE(Contains(argv, {"--disable-userns"}));
  EXPECT_FALSE(Contains(argv, {"--seccomp"}));
  EXPECT_TRUE(Contains(argv, {"--cap-drop", "ALL"}));
}

TEST(SandboxArgvTest, LegacyArgvIsTheOldOne) {
  auto argv = LegacySandboxArgv("/usr/bin/bwrap", "algo-1", "/d/algo-1", "/opt/ml/code", {"true"});
  EXPECT_TRUE(Contains(argv, {"--bind", "/d/algo-1", "/opt/ml"}));
  EXPECT_FALSE(Contains(argv, {"--cap-drop"}));
  EXPECT_EQ(argv.back(), "true");
}

TEST(SeccompRulesTest, CoversTheEscapeFamilies) {
  std::set<std::string> names;
  for (const auto& r : SeccompRules()) names.insert(r.syscall);
  for (const char* must : {"mount",
                           "umount2",
                           "pivot_root",
                           "move_mount",
                           "fsopen",
                           "fsmount",
                           "open_tree",
                           "mount_setattr",
                           "ptrace",
                           "process_vm_readv",
                           "process_vm_writev",
                           "kexec_load",
                           "init_module",
                           "finit_module",
                           "delete_module",
                           "bpf",
                           "perf_event_open",
                           "keyctl",
                           "add_key",
                           "request_key",
                           "swapon",
                           "reboot",
                           "open_by_handle_at",
                           "unshare",
                           "setns",
                           "clone",
                           "clone3"}) {
    EXPECT_TRUE(names.count(must)) << must;
  }
  // clone is refused only with namespace flags: one rule per flag, each masked.
  int clone_rules = 0;
  for (const auto& r : SeccompRules()) {
    if (std::string(r.syscall) == "clone") {
      ++clone_rules;
      EXPECT_NE(r.flags_mask, 0u);
      EXPECT_EQ(r.arg, 0u);
      EXPECT_EQ(r.flags_mask & (CLONE_VM | CLONE_THREAD | CLONE_FILES | 0xff), 0u);
    }
  }
  EXPECT_EQ(clone_rules, 7);
}

// Loads the exported filter in a forked child and runs `body` there; returns its exit code.
template <typename F>
int InFilteredChild(F body) {
  auto fd = SeccompFilterFd();
  EXPECT_TRUE(fd.ok()) << fd.status().ToString();
  if (!fd.ok()) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<sock_filter> prog(4096);
    ssize_t n = ::read(fd->get(), prog.data(), prog.size() * sizeof(sock_filter));
    if (n <= 0) ::_exit(100);
    sock_fprog fprog{static_cast<unsigned short>(n / sizeof(sock_filter)), prog.data()};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(101);
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) ::_exit(102);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST(SeccompFilterTest, RefusesEscapesAndAllowsOrdinaryWork) {
  // Each check returns its own code so a failure names the call that got through.
  int rc = InFilteredChild([] {
    if (::unshare(CLONE_NEWUSER) == 0 || errno != EPERM) return 1;
    if (::unshare(CLONE_NEWNS) == 0 || errno != EPERM) return 2;
    if (::mount("none", "/tmp", "tmpfs", 0, nullptr) == 0 || errno != EPERM) return 3;
    if (::umount2("/tmp", MNT_DETACH) == 0 || errno != EPERM) return 4;
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0 || errno != EPERM) return 5;
    if (::syscall(SYS_clone3, nullptr, 0) == 0 || errno != ENOSYS) return 6;
    if (::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr) == 0 ||
        errno != EPERM) {
      return 7;
    }
    // Ordinary work still runs: fork (clone without namespace flags) and a thread (clone3
    // falls back to clone).
    pid_t child = ::fork();
    if (child < 0) return 8;
    if (child == 0) ::_exit(0);
    int st = 0;
    if (::waitpid(child, &st, 0) != child || !WIFEXITED(st)) return 9;
    bool ran = false;
    std::thread t([&ran] { ran = true; });
    t.join();
    if (!ran) return 10;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(SandboxHiddenPathsTest, HidesServerFilesButNeverTheSystem) {
  struct Case {
    std::vector<std::string> roots;
    std::string path;
    bool hidden;
  };
  const std::vector<Case> cases = {
      {{}, "/srv/ty-data", true},  // the data dir
      {{}, "/root", true},
      {{"/srv/datasets"}, "/srv/datasets", true},
      {{"/"}, "/", false},  // would hide the system
      {{"/usr"}, "/usr", false},
      {{"/usr/share/datasets"}, "/usr/share/datasets", true},
      {{"/tmp/x"}, "/tmp/x", false},  // /tmp is a private tmpfs anyway
      {{"/opt/data"}, "/opt/data", false},
      {{"relative"}, "relative", false},
  };
  for (const auto& c : cases) {
    auto hidden = SandboxHiddenPaths("/srv/ty-data", "/srv/ty-data/credentials", c.roots);
    bool found = std::find(hidden.begin(), hidden.end(), c.path) != hidden.end();
    EXPECT_EQ(found, c.hidden) << c.path;
  }
  auto hidden = SandboxHiddenPaths("/srv/ty-data", "", {"/srv/ty-data", "/srv/ty-data"});
  EXPECT_EQ(std::count(hidden.begin(), hidden.end(), "/srv/ty-data"), 1);
}

class SandboxFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ty-sandbox-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)RemoveAll(dir_); }
  std::string dir_;
};

TEST_F(SandboxFilesTest, JobFilesAreReadWithoutFollowingSymlinks) {
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir_, "secret"), "the server's key").ok());
  ASSERT_EQ(::symlink(JoinPath(dir_, "secret").c_str(), JoinPath(dir_, "failure").c_str()), 0);
  EXPECT_EQ(ReadJobFile(JoinPath(dir_, "failure"), 1024).status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir_, "plain"), "0123456789").ok());
  auto text = ReadJobFile(JoinPath(dir_, "plain"), 4);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "0123");
  EXPECT_EQ(ReadJobFile(JoinPath(dir_, "missing"), 4).status().code(), StatusCode::kNotFound);
}

TEST_F(SandboxFilesTest, ASymlinkedTreeIsRefused) {
  ASSERT_TRUE(MakeDirs(JoinPath(dir_, "output/data")).ok());
  EXPECT_TRUE(CheckRealDirectory(JoinPath(dir_, "output/data")).ok());
  EXPECT_TRUE(CheckRealDirectory(JoinPath(dir_, "model")).ok());  // missing: created later
  ASSERT_EQ(::symlink("/etc", JoinPath(dir_, "model").c_str()), 0);
  EXPECT_EQ(CheckRealDirectory(JoinPath(dir_, "model")).code(), StatusCode::kInvalidArgument);
}

TEST_F(SandboxFilesTest, ChownTreeAndReadability) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string tree = JoinPath(dir_, "t");
  ASSERT_TRUE(MakeDirs(JoinPath(tree, "a/b"), 0700).ok());
  ASSERT_TRUE(WriteFileAtomic(JoinPath(tree, "a/b/f"), "x", 0600).ok());
  ASSERT_EQ(::symlink("/etc/passwd", JoinPath(tree, "link").c_str()), 0);
  EXPECT_FALSE(TreeReadableByOthers(tree));
  ASSERT_TRUE(MakeTreeReadable(tree).ok());
  EXPECT_FALSE(TreeReadableByOthers(tree));  // its parent (mkdtemp's) is 0700
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  EXPECT_TRUE(TreeReadableByOthers(tree));
  ASSERT_TRUE(ChownTree(tree, 65534, 65534).ok());
  struct stat st;
  ASSERT_EQ(::stat(JoinPath(tree, "a/b/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  // The symlink itself changed owner, not what it points to.
  ASSERT_EQ(::stat("/etc/passwd", &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

// The real thing: bubblewrap started by PrepareSandbox's spawn, as the unprivileged uid.
TEST_F(SandboxFilesTest, RootInsideIsNobodyOutside) {
  if (::geteuid() != 0 || !UserNamespaceSandboxWorks("/usr/bin/bwrap", 65534, 65534)) {
    GTEST_SKIP() << "needs root, bubblewrap and user namespaces";
  }
  std::string tree = JoinPath(dir_, "algo-1");
  ASSERT_TRUE(MakeDirs(JoinPath(tree, "model")).ok());
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);  // the data dir: root only
  ASSERT_TRUE(GrantSearchToAncestors(tree, 65534).ok());
  struct stat dst;
  ASSERT_EQ(::stat(dir_.c_str(), &dst), 0);
  EXPECT_EQ(dst.st_mode & 07, 0u);  // others still cannot search it: the ACL names the uid
  ASSERT_TRUE(ChownTree(JoinPath(tree, "model"), 65534, 65534).ok());
  model::SandboxConfig config;
  config.hidden_paths = {"/root"};
  auto prepared = PrepareSandbox(
      config, "/usr/bin/bwrap", "algo-1", tree, {}, "/opt/ml",
      {"/bin/sh", "-c",
       "id -u; echo w > /opt/ml/model/out; mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED;"
       " ls /root | wc -l; (echo x > /opt/ml/top) 2>/dev/null && echo TOP"});
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  SpawnOptions so = prepared->spawn;
  so.env = {{"PATH", "/usr/bin:/bin"}};
  so.capture_output = false;
  so.stdout_file = JoinPath(dir_, "out.log");
  auto p = Subprocess::Spawn(so);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto code = (*p)->Wait();
  ASSERT_TRUE(code.ok());
  auto log = ReadFile(JoinPath(dir_, "out.log"));
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(*log, "0\n0\n") << *log;  // uid 0 inside; /root empty; no mount, no write at top
  struct stat st;
  ASSERT_EQ(::stat(JoinPath(tree, "model/out").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_FALSE(PathExists(JoinPath(tree, "top")));
}

// The fallback where user namespaces are off: host root, but no capability, no_new_privs and
// the seccomp filter still refuse the mount family and keep the host read-only.
TEST_F(SandboxFilesTest, RootWithoutUserNamespaceStillCannotMount) {
  if (::geteuid() != 0 || !BubblewrapWorks("/usr/bin/bwrap")) {
    GTEST_SKIP() << "needs root and bubblewrap";
  }
  std::string tree = JoinPath(dir_, "algo-1");
  ASSERT_TRUE(MakeDirs(JoinPath(tree, "model")).ok());
  model::SandboxConfig config;
  config.user_namespace = false;
  auto prepared = PrepareSandbox(
      config, "/usr/bin/bwrap", "algo-1", tree, {}, "/opt/ml",
      {"/bin/sh", "-c",
       "id -u; (mount -t tmpfs none /mnt) 2>/dev/null && echo MOUNTED;"
       " (umount /tmp) 2>/dev/null && echo UNMOUNTED; (echo x > /etc/escape) 2>/dev/null &&"
       " echo WROTE; grep CapEff /proc/self/status; echo m > /opt/ml/model/out"});
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_FALSE(prepared->spawn.uid.has_value());
  SpawnOptions so = prepared->spawn;
  so.env = {{"PATH", "/usr/bin:/bin"}};
  so.capture_output = false;
  so.stdout_file = JoinPath(dir_, "out.log");
  auto p = Subprocess::Spawn(so);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE((*p)->Wait().ok());
  auto log = ReadFile(JoinPath(dir_, "out.log"));
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(*log, "0\nCapEff:\t0000000000000000\n") << *log;
  struct stat st;
  ASSERT_EQ(::stat(JoinPath(tree, "model/out").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

}  // namespace
}  // namespace ty::agent
