#include "storage/uri.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using ty::testing::TempDir;

struct ParseCase {
  std::string uri;
  bool ok = false;
  std::string scheme = "";
  std::string bucket = "";
  std::string key = "";
  std::string path = "";
};

TEST(ParseStorageUriTest, Table) {
  const ParseCase cases[] = {
      {"file:///data/train", true, "file", "", "", "/data/train"},
      {"file:///data/train/", true, "file", "", "", "/data/train/"},
      {"file://localhost/data/x", true, "file", "", "", "/data/x"},
      {"FILE:///a", true, "file", "", "", "/a"},
      {"file:///a%20b/c%2Fd", true, "file", "", "", "/a b/c/d"},
      {"file:///", true, "file", "", "", "/"},
      {"file://otherhost/data", false},
      {"file://data/train", false},  // "data" is a host: a relative path in disguise
      {"file:data/train", false},
      {"file:/data/train", false},
      {"file://", false},
      {"file:///a%00b", false},
      {"file:///a%zz", false},
      {"file:///a%4", false},
      {"s3://bucket/prefix/key.csv", true, "s3", "bucket", "prefix/key.csv", ""},
      {"s3://bucket", true, "s3", "bucket", "", ""},
      {"s3://bucket/", true, "s3", "bucket", "", ""},
      {"s3:///key", false},
      {"s3:bucket", false},
      {"http://example.com/x", false},
      {"/abs/path", false},
      {"", false},
  };
  for (const ParseCase& c : cases) {
    SCOPED_TRACE(c.uri);
    Result<StorageUri> r = ParseStorageUri(c.uri);
    ASSERT_EQ(r.ok(), c.ok) << r.status().ToString();
    if (!c.ok) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      continue;
    }
    EXPECT_EQ(r->scheme, c.scheme);
    EXPECT_EQ(r->bucket, c.bucket);
    EXPECT_EQ(r->key, c.key);
    EXPECT_EQ(r->path, c.path);
  }
}

TEST(FileUriFromPathTest, RoundTripsThroughParse) {
  for (std::string path : {"/plain/path", "/with space/and%percent", "/q?#hash/ü"}) {
    std::string uri = FileUriFromPath(path);
    Result<StorageUri> r = ParseStorageUri(uri);
    ASSERT_TRUE(r.ok()) << uri;
    EXPECT_EQ(r->path, path);
  }
  EXPECT_EQ(FileUriFromPath("/a b"), "file:///a%20b");
}

class CheckWithinRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() + "/root";
    outside_ = tmp_.path() + "/outside";
    ASSERT_TRUE(MakeDirs(root_ + "/sub").ok());
    ASSERT_TRUE(MakeDirs(outside_).ok());
    ASSERT_TRUE(WriteFileAtomic(outside_ + "/secret", "s").ok());
  }
  TempDir tmp_{"ty-uri-"};
  std::string root_;
  std::string outside_;
};

TEST_F(CheckWithinRootsTest, InsideIsAllowed) {
  EXPECT_TRUE(CheckWithinRoots(root_, {root_}).ok());
  EXPECT_TRUE(CheckWithinRoots(root_ + "/sub", {root_}).ok());
  EXPECT_TRUE(CheckWithinRoots(root_ + "/sub/../sub/./x", {root_}).ok());
}

TEST_F(CheckWithinRootsTest, NonExistentLeafInsideIsAllowed) {
  Result<std::string> r = ResolveWithinRoots(root_ + "/sub/new/deeper/file.bin", {root_});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, *RealPath(root_) + "/sub/new/deeper/file.bin");
}

TEST_F(CheckWithinRootsTest, DotDotEscapeIsRefused) {
  Status s = CheckWithinRoots(root_ + "/sub/../../outside/secret", {root_});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is outside the allowed file roots (" + root_ + ")"),
            std::string::npos)
      << s.message();
  // Escaping through a not-yet-existing part is refused too.
  EXPECT_FALSE(CheckWithinRoots(root_ + "/new/../../outside", {root_}).ok());
  // A sibling whose name shares the root's prefix is not inside it.
  ASSERT_TRUE(MakeDirs(root_ + "2").ok());
  EXPECT_FALSE(CheckWithinRoots(root_ + "2/x", {root_}).ok());
}

TEST_F(CheckWithinRootsTest, SymlinkToOutsideIsRefused) {
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/link").c_str()), 0);
  EXPECT_FALSE(CheckWithinRoots(root_ + "/link", {root_}).ok());
  EXPECT_FALSE(CheckWithinRoots(root_ + "/link/secret", {root_}).ok());
  EXPECT_FALSE(CheckWithinRoots(root_ + "/link/not-yet", {root_}).ok());
  // A dangling symlink is judged by where a write through it would land.
  ASSERT_EQ(::symlink((outside_ + "/new").c_str(), (root_ + "/dangling").c_str()), 0);
  EXPECT_FALSE(CheckWithinRoots(root_ + "/dangling", {root_}).ok());
  // ".." after a symlink applies to the symlink's target, as the kernel does it.
  ASSERT_EQ(::symlink((outside_ + "/").c_str(), (root_ + "/sub/up").c_str()), 0);
  EXPECT_FALSE(CheckWithinRoots(root_ + "/sub/up/../outside", {root_}).ok());
}

TEST_F(CheckWithinRootsTest, SymlinkInsideIsAllowedAndResolved) {
  ASSERT_EQ(::symlink("sub", (root_ + "/alias").c_str()), 0);
  Result<std::string> r = ResolveWithinRoots(root_ + "/alias/f", {root_});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, *RealPath(root_) + "/sub/f");
  // A root given through a symlink is canonicalised too.
  ASSERT_EQ(::symlink(root_.c_str(), (tmp_.path() + "/rootlink").c_str()), 0);
  EXPECT_TRUE(CheckWithinRoots(root_ + "/sub", {tmp_.path() + "/rootlink"}).ok());
}

TEST_F(CheckWithinRootsTest, SecondRootAndRelativePaths) {
  EXPECT_TRUE(CheckWithinRoots(outside_ + "/secret", {root_, outside_}).ok());
  EXPECT_FALSE(CheckWithinRoots(outside_ + "/secret", {}).ok());
  EXPECT_EQ(CheckWithinRoots("relative/path", {root_}).code(), StatusCode::kInvalidArgument);
}

TEST_F(CheckWithinRootsTest, SymlinkLoopIsRefused) {
  ASSERT_EQ(::symlink("b", (root_ + "/a").c_str()), 0);
  ASSERT_EQ(::symlink("a", (root_ + "/b").c_str()), 0);
  EXPECT_EQ(CheckWithinRoots(root_ + "/a/x", {root_}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ty::storage
