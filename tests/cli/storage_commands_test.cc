// `trainyard storage ...` run in-process against file:// stores in temp dirs (the s3:// path is
// exercised end to end against s3rver by the e2e tests and the benchmark).
#include "cli/storage_commands.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "common/fs.h"
#include "storage/uri.h"
#include "testing/temp_dir.h"

namespace ty::cli {
namespace {

using ty::testing::TempDir;

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

Outcome Trainyard(std::vector<std::string> args) {
  args.insert(args.begin(), "trainyard");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  Outcome o;
  o.code = Run(static_cast<int>(argv.size()), argv.data(), out, err);
  o.out = out.str();
  o.err = err.str();
  return o;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class StorageCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    local_ = tmp_.Sub("local");
    store_dir_ = tmp_.Sub("store/prefix");
    uri_ = storage::FileUriFromPath(store_dir_);
    ASSERT_TRUE(MakeDirs(local_ + "/sub").ok());
    ASSERT_TRUE(WriteFileAtomic(local_ + "/a.txt", "alpha").ok());
    ASSERT_TRUE(WriteFileAtomic(local_ + "/sub/b.txt", "bravo!").ok());
  }

  TempDir tmp_{"ty-storage-cli-"};
  std::string local_, store_dir_, uri_;
};

TEST_F(StorageCommandsTest, SyncUploadsPrintsLikeAwsAndTheSecondRunIsANoOp) {
  Outcome o = Trainyard({"storage", "sync", local_, uri_});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "upload: " + local_ + "/a.txt to " + uri_ + "/a.txt\n")) << o.out;
  EXPECT_TRUE(Contains(o.out, "upload: " + local_ + "/sub/b.txt to " + uri_ + "/sub/b.txt\n"));
  EXPECT_TRUE(Contains(o.out, "sync: 2 files uploaded (11 B), 0 deleted, 0 unchanged in "))
      << o.out;
  EXPECT_EQ(*ReadFile(store_dir_ + "/sub/b.txt"), "bravo!");

  o = Trainyard({"storage", "sync", local_, uri_});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "sync: 0 files uploaded (0 B), 0 deleted, 2 unchanged in ")) << o.out;
  EXPECT_FALSE(Contains(o.out, "upload:"));
}

TEST_F(StorageCommandsTest, SyncDeleteDryrunAndQuiet) {
  ASSERT_EQ(Trainyard({"storage", "sync", local_, uri_, "--quiet"}).out, "");
  ASSERT_EQ(::unlink((local_ + "/a.txt").c_str()), 0);

  Outcome o = Trainyard({"storage", "sync", local_, uri_, "--delete", "--dryrun"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "(dryrun) delete: " + uri_ + "/a.txt\n")) << o.out;
  EXPECT_TRUE(PathExists(store_dir_ + "/a.txt"));

  o = Trainyard({"storage", "sync", local_, uri_});  // no --delete: it stays
  EXPECT_TRUE(PathExists(store_dir_ + "/a.txt"));
  // Global flags may come after the subcommand, as with the AWS CLI.
  o = Trainyard({"storage", "sync", local_, uri_, "--delete", "--profile", "nobody-uses-this"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "delete: " + uri_ + "/a.txt\n")) << o.out;
  EXPECT_FALSE(PathExists(store_dir_ + "/a.txt"));
}

TEST_F(StorageCommandsTest, SyncDownloadsFromAFileUriIntoARelativeLookingPath) {
  ASSERT_EQ(Trainyard({"storage", "sync", local_, uri_}).code, 0);
  std::string copy = tmp_.Sub("copy");
  Outcome o = Trainyard({"storage", "sync", uri_, copy});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "download: " + uri_ + "/sub/b.txt to " + copy + "/sub/b.txt\n"));
  EXPECT_EQ(*ReadFile(copy + "/a.txt"), "alpha");
  o = Trainyard({"storage", "sync", uri_, copy});
  EXPECT_TRUE(Contains(o.out, "sync: 0 files downloaded (0 B), 0 deleted, 2 unchanged")) << o.out;
}

TEST_F(StorageCommandsTest, SyncErrorsArePlainWordsWithExitCodes) {
  Outcome o = Trainyard({"storage", "sync", local_, tmp_.Sub("other")});
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(Contains(o.err, "one side must be an s3:// or file:// URI")) << o.err;

  o = Trainyard({"storage", "sync", "s3://a/x", "s3://b/y"});
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(Contains(o.err, "not supported")) << o.err;

  o = Trainyard({"storage", "sync", tmp_.Sub("missing"), uri_});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "trainyard storage sync: The local directory " + tmp_.Sub("missing") +
                       " does not exist\n");

  o = Trainyard({"storage", "sync", local_, "ftp://host/x"});
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(Contains(o.err, "trainyard storage sync: ")) << o.err;

  // One file that cannot land (a file stands where its directory would go) fails; the others
  // still go, and the exit code says so.
  ASSERT_TRUE(MakeDirs(store_dir_).ok());
  ASSERT_TRUE(WriteFileAtomic(store_dir_ + "/sub", "in the way").ok());
  o = Trainyard({"storage", "sync", local_, uri_});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(
      Contains(o.err, "upload failed: " + local_ + "/sub/b.txt to " + uri_ + "/sub/b.txt: "))
      << o.err;
  EXPECT_TRUE(Contains(o.err, "trainyard storage sync: 1 of 2 files failed: upload ")) << o.err;
  EXPECT_TRUE(Contains(o.out, "sync: 1 file uploaded (5 B), 0 deleted, 0 unchanged, 1 failed"))
      << o.out;
  EXPECT_EQ(*ReadFile(store_dir_ + "/a.txt"), "alpha");
}

TEST_F(StorageCommandsTest, LsShowsOneLevelOrEverything) {
  ASSERT_EQ(Trainyard({"storage", "sync", local_, uri_}).code, 0);
  Outcome o = Trainyard({"storage", "ls", uri_});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "                           PRE sub/\n")) << o.out;
  EXPECT_TRUE(Contains(o.out, "          5 a.txt\n")) << o.out;
  EXPECT_FALSE(Contains(o.out, "b.txt"));

  o = Trainyard({"storage", "ls", uri_, "--recursive"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "          6 sub/b.txt\n")) << o.out;
  EXPECT_FALSE(Contains(o.out, "PRE"));

  o = Trainyard({"storage", "ls", uri_ + "/nothing-here"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(Trainyard({"storage", "ls", local_}).code, 2);
}

TEST_F(StorageCommandsTest, CpCopiesOneFileEitherWay) {
  Outcome o = Trainyard({"storage", "cp", local_ + "/a.txt", uri_ + "/in/"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "upload: " + local_ + "/a.txt to " + uri_ + "/in/a.txt\n");
  EXPECT_EQ(*ReadFile(store_dir_ + "/in/a.txt"), "alpha");

  std::string dir = tmp_.Sub("down");
  ASSERT_TRUE(MakeDirs(dir).ok());
  o = Trainyard({"storage", "cp", uri_ + "/in/a.txt", dir});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "download: " + uri_ + "/in/a.txt to " + dir + "/a.txt\n");
  EXPECT_EQ(*ReadFile(dir + "/a.txt"), "alpha");

  o = Trainyard({"storage", "cp", uri_ + "/in/missing", dir + "/x"});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.err, "download failed: " + uri_ + "/in/missing to " + dir + "/x: "))
      << o.err;
  EXPECT_EQ(Trainyard({"storage", "cp", local_, uri_ + "/d/"}).code, 2);  // a directory
}

TEST_F(StorageCommandsTest, MbWantsAnS3BucketUri) {
  Outcome o = Trainyard({"storage", "mb", uri_});
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(Contains(o.err, "expected s3://BUCKET")) << o.err;
  EXPECT_EQ(Trainyard({"storage", "mb", "s3://bucket/key"}).code, 2);
}

}  // namespace
}  // namespace ty::cli
