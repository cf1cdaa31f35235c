#include "storage/file_object_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "common/fs.h"
#include "storage/object_store.h"
#include "storage/storage_test_util.h"
#include "storage/uri.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using ty::testing::TempDir;

std::set<std::string> FilesUnder(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_directory()) out.insert(e.path().lexically_relative(dir).string());
  }
  return out;
}

class FileObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() + "/bucket";
    ASSERT_TRUE(MakeDirs(root_ + "/train/nested").ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/train/a.csv", "1,2,3\n").ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/train/nested/b.bin", std::string("\0\1\2", 3)).ok());
    store_ = std::make_unique<FileObjectStore>(std::vector<std::string>{root_});
  }
  std::string Uri(const std::string& rel) { return FileUriFromPath(root_ + "/" + rel); }

  TempDir tmp_{"ty-fos-"};
  std::string root_;
  std::unique_ptr<FileObjectStore> store_;
};

TEST_F(FileObjectStoreTest, DownloadPrefixOfDirectoryKeepsRelativePaths) {
  std::string dest = tmp_.path() + "/channel/train";
  ASSERT_TRUE(store_->DownloadPrefix(Uri("train"), dest).ok());
  EXPECT_EQ(FilesUnder(dest), (std::set<std::string>{"a.csv", "nested/b.bin"}));
  EXPECT_EQ(*ReadFile(dest + "/a.csv"), "1,2,3\n");
  EXPECT_EQ(*ReadFile(dest + "/nested/b.bin"), std::string("\0\1\2", 3));
}

TEST_F(FileObjectStoreTest, DownloadPrefixOfSingleFileUsesItsBaseName) {
  std::string dest = tmp_.path() + "/channel";
  ASSERT_TRUE(store_->DownloadPrefix(Uri("train/a.csv"), dest).ok());
  EXPECT_EQ(FilesUnder(dest), (std::set<std::string>{"a.csv"}));
  EXPECT_EQ(*ReadFile(dest + "/a.csv"), "1,2,3\n");
}

TEST_F(FileObjectStoreTest, DownloadPrefixMissingIsNotFound) {
  std::string uri = Uri("nope");
  Status s = store_->DownloadPrefix(uri, tmp_.path() + "/channel");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "No objects found under " + uri);
  ASSERT_TRUE(MakeDirs(root_ + "/empty").ok());
  EXPECT_EQ(store_->DownloadPrefix(Uri("empty"), tmp_.path() + "/c2").code(),
            StatusCode::kNotFound);
}

TEST_F(FileObjectStoreTest, DownloadRefusesSourcesOutsideRoots) {
  ASSERT_TRUE(WriteFileAtomic(tmp_.path() + "/secret", "s").ok());
  EXPECT_EQ(store_->DownloadPrefix(FileUriFromPath(tmp_.path() + "/secret"), tmp_.path() + "/c")
                .code(),
            StatusCode::kInvalidArgument);
  // A symlink inside the tree pointing outside the roots is refused, not followed.
  ASSERT_EQ(::symlink((tmp_.path() + "/secret").c_str(), (root_ + "/train/leak").c_str()), 0);
  Status s = store_->DownloadPrefix(Uri("train"), tmp_.path() + "/c3");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(PathExists(tmp_.path() + "/c3/leak"));
}

TEST_F(FileObjectStoreTest, DownloadRefusesToWriteThroughSymlinkInDestination) {
  std::string dest = tmp_.path() + "/channel";
  std::string elsewhere = tmp_.path() + "/elsewhere";
  ASSERT_TRUE(MakeDirs(dest).ok());
  ASSERT_TRUE(MakeDirs(elsewhere).ok());
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dest + "/nested").c_str()), 0);
  EXPECT_EQ(store_->DownloadPrefix(Uri("train"), dest).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(elsewhere + "/b.bin"));
}

TEST_F(FileObjectStoreTest, UploadFileIsAtomicAndLeavesNoTempFiles) {
  std::string local = tmp_.path() + "/model.tar.gz";
  ASSERT_TRUE(WriteFileAtomic(local, "new contents").ok());
  ASSERT_TRUE(MakeDirs(root_ + "/out/job").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/out/job/model.tar.gz", "old").ok());
  ASSERT_TRUE(store_->UploadFile(local, Uri("out/job/model.tar.gz")).ok());
  EXPECT_EQ(*ReadFile(root_ + "/out/job/model.tar.gz"), "new contents");
  EXPECT_EQ(FilesUnder(root_ + "/out"), (std::set<std::string>{"job/model.tar.gz"}));
  // Parents are created.
  ASSERT_TRUE(store_->UploadFile(local, Uri("deep/er/x")).ok());
  EXPECT_EQ(*ReadFile(root_ + "/deep/er/x"), "new contents");
}

TEST_F(FileObjectStoreTest, UploadRemovesTempFilesAKilledWriterLeftBehind) {
  std::string local = tmp_.path() + "/ckpt.pt";
  ASSERT_TRUE(WriteFileAtomic(local, "whole").ok());
  ASSERT_TRUE(MakeDirs(root_ + "/ck").ok());
  const std::string stale = root_ + "/ck/.ckpt.pt.ty-tmp-AbC123";
  const std::string fresh = root_ + "/ck/.ckpt.pt.ty-tmp-XyZ789";  // another writer, now
  const std::string other = root_ + "/ck/.other.pt.ty-tmp-QqQ111";
  for (const auto& p : {stale, fresh, other}) ASSERT_TRUE(WriteFileAtomic(p, "part").ok());
  struct timespec old_times[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, stale.c_str(), old_times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, other.c_str(), old_times, 0), 0);
  ASSERT_TRUE(store_->UploadFile(local, Uri("ck/ckpt.pt")).ok());
  EXPECT_FALSE(PathExists(stale));
  EXPECT_TRUE(PathExists(fresh));
  EXPECT_TRUE(PathExists(other));  // not this object's: left to its own next upload
  EXPECT_EQ(*ReadFile(root_ + "/ck/ckpt.pt"), "whole");
}

TEST_F(FileObjectStoreTest, UploadFileFailuresLeaveDestinationUntouched) {
  ASSERT_TRUE(MakeDirs(root_ + "/out").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/out/x", "old").ok());
  Status s = store_->UploadFile(tmp_.path() + "/missing", Uri("out/x"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_EQ(*ReadFile(root_ + "/out/x"), "old");
  EXPECT_EQ(FilesUnder(root_ + "/out"), (std::set<std::string>{"x"}));
  EXPECT_EQ(store_->UploadFile(tmp_.path() + "/missing", FileUriFromPath(tmp_.path() + "/y"))
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->UploadFile(root_ + "/out/x", Uri("out/dir/")).code(),
            StatusCode::kInvalidArgument);
}

// The temp file beside `dest` of an upload in flight (empty when there is none).
std::string TempFileOf(const std::string& dest) {
  std::string dir = dest.substr(0, dest.rfind('/'));
  std::string prefix = "." + dest.substr(dest.rfind('/') + 1) + ".ty-tmp-";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return e.path().string();
  }
  return "";
}

TEST_F(FileObjectStoreTest, UploadFileIfCommitsOnlyWhenStillValid) {
  std::string local = tmp_.path() + "/ckpt.pt";
  ASSERT_TRUE(WriteFileAtomic(local, "new weights").ok());
  ASSERT_TRUE(MakeDirs(root_ + "/ck").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/ck/ckpt.pt", "old").ok());

  // Asked after the whole copy sits in the hidden temp file, before anything is visible.
  std::string seen_in_temp;
  Status refused = store_->UploadFileIf(local, Uri("ck/ckpt.pt"), [&] {
    std::string temp = TempFileOf(root_ + "/ck/ckpt.pt");
    if (!temp.empty()) seen_in_temp = *ReadFile(temp);
    return false;
  });
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_NE(refused.message().find("changed while it was uploaded"), std::string::npos);
  EXPECT_EQ(seen_in_temp, "new weights");
  EXPECT_EQ(*ReadFile(root_ + "/ck/ckpt.pt"), "old");
  EXPECT_EQ(FilesUnder(root_ + "/ck"), (std::set<std::string>{"ckpt.pt"}));  // no temp left

  int asked = 0;
  Status stored = store_->UploadFileIf(local, Uri("ck/ckpt.pt"), [&] {
    ++asked;
    return true;
  });
  ASSERT_TRUE(stored.ok()) << stored.ToString();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(*ReadFile(root_ + "/ck/ckpt.pt"), "new weights");
  EXPECT_EQ(FilesUnder(root_ + "/ck"), (std::set<std::string>{"ckpt.pt"}));
}

TEST_F(FileObjectStoreTest, StaleTempFilesAreNeverListedOrDownloaded) {
  ASSERT_TRUE(WriteFileAtomic(root_ + "/train/.a.csv.ty-tmp-Ab12Cd", "half").ok());
  Result<std::vector<ObjectInfo>> listed = store_->List(Uri("train"));
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "a.csv");
  EXPECT_EQ((*listed)[1].key, "nested/b.bin");
  std::string dest = tmp_.path() + "/channel";
  ASSERT_TRUE(store_->DownloadPrefix(Uri("train"), dest).ok());
  EXPECT_EQ(FilesUnder(dest), (std::set<std::string>{"a.csv", "nested/b.bin"}));
}

TEST_F(FileObjectStoreTest, LargeFilesRoundTripExactly) {
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::string local = tmp_.path() + "/big.bin";
  ASSERT_TRUE(WriteFileAtomic(local, data).ok());
  ASSERT_TRUE(store_->UploadFile(local, Uri("big/big.bin")).ok());
  EXPECT_EQ(*ReadFile(root_ + "/big/big.bin"), data);
  ASSERT_TRUE(store_->DownloadPrefix(Uri("big"), tmp_.path() + "/restored").ok());
  EXPECT_EQ(*ReadFile(tmp_.path() + "/restored/big.bin"), data);
}

TEST(FileObjectStoreDiskFullTest, FailedUploadLeavesNoTempFileAndKeepsTheOldObject) {
  TempDir tmp("ty-fos-");
  std::string bucket = tmp.path() + "/bucket";
  testing::TinyTmpfs tmpfs(bucket, "64k");
  if (!tmpfs.mounted()) GTEST_SKIP() << "needs root and mount(2) to make a tiny tmpfs";
  FileObjectStore store({bucket});
  std::string local = tmp.path() + "/ckpt.pt";
  ASSERT_TRUE(WriteFileAtomic(local, std::string(8 * 1024, 'o')).ok());
  ASSERT_TRUE(store.UploadFile(local, FileUriFromPath(bucket + "/ckpt.pt")).ok());

  ASSERT_TRUE(WriteFileAtomic(local, std::string(200 * 1024, 'N')).ok());
  Status s = store.UploadFile(local, FileUriFromPath(bucket + "/ckpt.pt"));
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  EXPECT_EQ(*ReadFile(bucket + "/ckpt.pt"), std::string(8 * 1024, 'o'));
  EXPECT_EQ(FilesUnder(bucket), (std::set<std::string>{"ckpt.pt"}));

  // Across file systems (tmpfs -> the temp dir's) copy_file_range gives way to read/write.
  ASSERT_TRUE(store.DownloadPrefix(FileUriFromPath(bucket), tmp.path() + "/restored").ok());
  EXPECT_EQ(*ReadFile(tmp.path() + "/restored/ckpt.pt"), std::string(8 * 1024, 'o'));
}

TEST_F(FileObjectStoreTest, UploadDirectoryAndList) {
  std::string local = tmp_.path() + "/output";
  ASSERT_TRUE(MakeDirs(local + "/data/sub").ok());
  ASSERT_TRUE(WriteFileAtomic(local + "/data/sub/c.txt", "ccc").ok());
  ASSERT_TRUE(WriteFileAtomic(local + "/top.txt", "t").ok());
  ASSERT_EQ(::symlink("top.txt", (local + "/alias.txt").c_str()), 0);
  ASSERT_TRUE(store_->UploadDirectory(local, Uri("jobs/j1/output")).ok());

  Result<std::vector<ObjectInfo>> listed = store_->List(Uri("jobs/j1/output"));
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].key, "alias.txt");
  EXPECT_EQ((*listed)[0].size, 1u);
  EXPECT_EQ((*listed)[1].key, "data/sub/c.txt");
  EXPECT_EQ((*listed)[1].size, 3u);
  EXPECT_EQ((*listed)[2].key, "top.txt");
  auto age = std::chrono::system_clock::now() - (*listed)[2].mtime;
  EXPECT_LT(std::chrono::abs(age), std::chrono::minutes(5));

  Result<std::vector<ObjectInfo>> one = store_->List(Uri("train/a.csv"));
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].key, "a.csv");
  EXPECT_EQ((*one)[0].size, 6u);

  Result<std::vector<ObjectInfo>> none = store_->List(Uri("missing"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(FileObjectStoreTest, UploadDirectoryRefusesSymlinkLeavingSource) {
  std::string local = tmp_.path() + "/output";
  ASSERT_TRUE(MakeDirs(local).ok());
  ASSERT_EQ(::symlink("/etc/hostname", (local + "/leak").c_str()), 0);
  EXPECT_EQ(store_->UploadDirectory(local, Uri("jobs/j2")).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(root_ + "/jobs/j2/leak"));
}

TEST_F(FileObjectStoreTest, DeleteRemovesTreeButNotRoot) {
  ASSERT_TRUE(store_->Delete(Uri("train/nested")).ok());
  EXPECT_FALSE(PathExists(root_ + "/train/nested"));
  EXPECT_TRUE(PathExists(root_ + "/train/a.csv"));
  EXPECT_TRUE(store_->Delete(Uri("train/nested")).ok());  // idempotent
  EXPECT_EQ(store_->Delete(FileUriFromPath(root_)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Delete(FileUriFromPath(tmp_.path())).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(PathExists(root_ + "/train/a.csv"));
}

TEST_F(FileObjectStoreTest, ResolveLocalPath) {
  Result<std::string> p = store_->ResolveLocalPath(Uri("train"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, *RealPath(root_ + "/train"));
  EXPECT_EQ(store_->ResolveLocalPath(Uri("nope")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ResolveLocalPath("file:///etc").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(MakeObjectStoreTest, FileGivesStoreAndS3IsNotSupportedYet) {
  TempDir tmp("ty-fos-");
  Result<std::unique_ptr<ObjectStore>> file = MakeObjectStore("file://" + tmp.path(), {tmp.path()});
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE((*file)->ResolveLocalPath("file://" + tmp.path()).ok());

  Result<std::unique_ptr<ObjectStore>> s3 = MakeObjectStore("s3://bucket/key", {tmp.path()});
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s3.status().message(), "s3:// URIs are not supported yet (file:// only)");

  EXPECT_EQ(MakeObjectStore("ftp://x/y", {}).status().code(), StatusCode::kInvalidArgument);
  FileObjectStore store({tmp.path()});
  EXPECT_EQ(store.List("s3://bucket/key").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ty::storage
