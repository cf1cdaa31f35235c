#include "storage/archive.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using ty::testing::TempDir;

// Runs a shell command, returning its stdout; exit status in *rc.
std::string RunShell(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *rc = ::pclose(p);
  return out;
}

std::set<std::string> Lines(const std::string& s) {
  std::set<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.insert(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::set<std::string> EntriesUnder(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    out.insert(e.path().lexically_relative(dir).string());
  }
  return out;
}

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_.path() + "/model";
    ASSERT_TRUE(MakeDirs(src_ + "/code/lib").ok());
    ASSERT_TRUE(MakeDirs(src_ + "/empty_dir").ok());
    big_ = RandomBytes(3 * 1024 * 1024 + 17);  // spans several 1 MiB buffers
    ASSERT_TRUE(WriteFileAtomic(src_ + "/model.pt", big_).ok());
    ASSERT_TRUE(WriteFileAtomic(src_ + "/empty.txt", "").ok());
    ASSERT_TRUE(WriteFileAtomic(src_ + "/code/lib/util.py", "print('hi')\n", 0755).ok());
    ASSERT_EQ(::symlink("code/lib/util.py", (src_ + "/latest").c_str()), 0);
  }

  // Writes an archive with python3's tarfile, which happily writes hostile names.
  void PythonTar(const std::string& path, const std::string& body) {
    std::string script = "import tarfile, io\nt = tarfile.open('" + path + "', 'w:gz')\n" +
                         "def f(name, data=b'x'):\n"
                         "    i = tarfile.TarInfo(name); i.size = len(data)\n"
                         "    t.addfile(i, io.BytesIO(data))\n"
                         "def l(name, target, kind=tarfile.SYMTYPE):\n"
                         "    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target\n"
                         "    t.addfile(i)\n" +
                         body + "\nt.close()\n";
    ASSERT_TRUE(WriteFileAtomic(tmp_.path() + "/mk.py", script).ok());
    int rc = 0;
    RunShell("python3 " + tmp_.path() + "/mk.py", &rc);
    ASSERT_EQ(rc, 0);
  }

  TempDir tmp_{"ty-archive-"};
  std::string src_;
  std::string big_;
};

TEST_F(ArchiveTest, PackUnpackRoundTripIsByteForByte) {
  std::string tgz = tmp_.path() + "/out/model.tar.gz";
  ASSERT_TRUE(PackDirectory(src_, tgz).ok());
  std::string dest = tmp_.path() + "/unpacked";
  Status s = UnpackArchive(tgz, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();

  EXPECT_EQ(EntriesUnder(dest), EntriesUnder(src_));
  EXPECT_EQ(*ReadFile(dest + "/model.pt"), big_);
  EXPECT_EQ(*ReadFile(dest + "/empty.txt"), "");
  EXPECT_EQ(*ReadFile(dest + "/code/lib/util.py"), "print('hi')\n");
  EXPECT_TRUE(std::filesystem::is_directory(dest + "/empty_dir"));
  ASSERT_TRUE(std::filesystem::is_symlink(dest + "/latest"));
  EXPECT_EQ(std::filesystem::read_symlink(dest + "/latest").string(), "code/lib/util.py");
  EXPECT_EQ(::access((dest + "/code/lib/util.py").c_str(), X_OK), 0);
  // No temp file is left next to the archive.
  EXPECT_EQ(EntriesUnder(tmp_.path() + "/out"), (std::set<std::string>{"model.tar.gz"}));
}

TEST_F(ArchiveTest, TarListsTopLevelNamesWithoutDotSlash) {
  std::string tgz = tmp_.path() + "/model.tar.gz";
  ASSERT_TRUE(PackDirectory(src_, tgz).ok());
  int rc = 0;
  std::string listing = RunShell("tar -tzf " + tgz, &rc);
  ASSERT_EQ(rc, 0) << listing;
  std::set<std::string> names;
  for (std::string line : Lines(listing)) {
    if (!line.empty() && line.back() == '/') line.pop_back();  // directories
    names.insert(line);
  }
  EXPECT_EQ(names, (std::set<std::string>{"code", "code/lib", "code/lib/util.py", "empty.txt",
                                          "empty_dir", "latest", "model.pt"}));
}

TEST_F(ArchiveTest, EmptyDirectoryGivesValidEmptyArchive) {
  ASSERT_TRUE(MakeDirs(tmp_.path() + "/void").ok());
  std::string tgz = tmp_.path() + "/void.tar.gz";
  ASSERT_TRUE(PackDirectory(tmp_.path() + "/void", tgz).ok());
  int rc = 0;
  std::string listing = RunShell("tar -tzf " + tgz, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(listing, "");
  ASSERT_TRUE(UnpackArchive(tgz, tmp_.path() + "/void2").ok());
  EXPECT_TRUE(EntriesUnder(tmp_.path() + "/void2").empty());
}

TEST_F(ArchiveTest, ArchiveInsideSourceDirIsNotPackedIntoItself) {
  std::string tgz = src_ + "/model.tar.gz";
  ASSERT_TRUE(PackDirectory(src_, tgz).ok());
  ASSERT_TRUE(PackDirectory(src_, tgz).ok());  // again, with the old archive present
  int rc = 0;
  std::set<std::string> names = Lines(RunShell("tar -tzf " + tgz, &rc));
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(names.count("model.tar.gz"), 0u);
  EXPECT_EQ(names.count("model.pt"), 1u);
}

TEST_F(ArchiveTest, PackRefusesMissingDirectory) {
  EXPECT_EQ(PackDirectory(tmp_.path() + "/nope", tmp_.path() + "/x.tar.gz").code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(tmp_.path() + "/x.tar.gz"));
}

TEST_F(ArchiveTest, UnpacksPlainTarAndDotSlashNames) {
  int rc = 0;
  RunShell("tar -cf " + tmp_.path() + "/plain.tar -C " + src_ + " .", &rc);
  ASSERT_EQ(rc, 0);
  std::string dest = tmp_.path() + "/plain";
  Status s = UnpackArchive(tmp_.path() + "/plain.tar", dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(dest + "/model.pt"), big_);
  EXPECT_EQ(EntriesUnder(dest), EntriesUnder(src_));
}

TEST_F(ArchiveTest, RefusesHostileArchivesAndWritesNothingOutside) {
  std::string abs_target = tmp_.path() + "/abs_evil";
  struct Case {
    std::string name;
    std::string body;
  };
  const Case cases[] = {
      {"dotdot", "f('ok.txt')\nf('../evil')"},
      {"nested_dotdot", "f('a/../../evil')"},
      {"absolute", "f('" + abs_target + "')"},
      {"symlink_absolute", "l('link', '" + tmp_.path() + "')\nf('link/evil')"},
      {"symlink_up", "l('link', '..')\nf('link/evil')"},
      {"symlink_deep_up", "l('d/link', '../..')"},
      {"symlink_back_up", "l('a', '.')\nl('b', 'a/..')"},
      {"hardlink_out", "l('h', '../evil', tarfile.LNKTYPE)"},
      {"fifo", "l('p', '', tarfile.FIFOTYPE)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string tgz = tmp_.path() + "/" + c.name + ".tar.gz";
    PythonTar(tgz, c.body);
    std::string dest = tmp_.path() + "/x/" + c.name;
    Status s = UnpackArchive(tgz, dest);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_FALSE(PathExists(tmp_.path() + "/x/evil"));
    EXPECT_FALSE(PathExists(tmp_.path() + "/evil"));
    EXPECT_FALSE(PathExists(abs_target));
  }
}

TEST_F(ArchiveTest, RefusesToWriteThroughSymlinkAlreadyInDestination) {
  std::string tgz = tmp_.path() + "/through.tar.gz";
  PythonTar(tgz, "f('link/evil')");
  std::string dest = tmp_.path() + "/through";
  std::string outside = tmp_.path() + "/outside";
  ASSERT_TRUE(MakeDirs(dest).ok());
  ASSERT_TRUE(MakeDirs(outside).ok());
  ASSERT_EQ(::symlink(outside.c_str(), (dest + "/link").c_str()), 0);
  EXPECT_FALSE(UnpackArchive(tgz, dest).ok());
  EXPECT_FALSE(PathExists(outside + "/evil"));
}

TEST_F(ArchiveTest, AcceptsSymlinksThatStayInside) {
  std::string tgz = tmp_.path() + "/ok.tar.gz";
  PythonTar(tgz, "f('d/e/file', b'data')\nl('d/e/up', '../../d/e/file')\nl('d/here', '.')");
  std::string dest = tmp_.path() + "/ok";
  Status s = UnpackArchive(tgz, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(dest + "/d/e/up"), "data");
}

TEST_F(ArchiveTest, CorruptArchiveIsAnError) {
  ASSERT_TRUE(WriteFileAtomic(tmp_.path() + "/junk.tar.gz", RandomBytes(5000)).ok());
  EXPECT_FALSE(UnpackArchive(tmp_.path() + "/junk.tar.gz", tmp_.path() + "/j").ok());
  EXPECT_FALSE(UnpackArchive(tmp_.path() + "/missing.tar.gz", tmp_.path() + "/j").ok());
}

}  // namespace
}  // namespace ty::storage
