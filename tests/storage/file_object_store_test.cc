#include "storage/file_object_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
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

// The rest of the ObjectStore contract is checked in object_store_conformance_test.cc, for this
// store and the S3 one alike; what is here is particular to files: roots, temp files, symlinks,
// directories.

TEST_F(FileObjectStoreTest, DownloadPrefixOfAnEmptyDirectoryIsNotFound) {
  ASSERT_TRUE(MakeDirs(root_ + "/empty").ok());
  EXPECT_EQ(store_->DownloadPrefix(Uri("empty"), tmp_.path() + "/c2").code(),
            StatusCode::kNotFound);
}

TEST_F(FileObjectStoreTest, DownloadRefusesSourcesOutsideRoots) {
  ASSERT_TRUE(WriteFileAtomic(tmp_.path() + "/secret", "s").ok());
  EXPECT_EQ(
      store_->DownloadPrefix(FileUriFromPath(tmp_.path() + "/secret"), tmp_.path() + "/c").code(),
      StatusCode::kInvalidArgument);
  // A symlink inside the tree pointing outside the roots is refused, not followed.
  ASSERT_EQ(::symlink((tmp_.path() + "/secret").c_str(), (root_ + "/train/leak").c_str()), 0);
  Status s = store_->DownloadPrefix(Uri("train"), tmp_.path() + "/c3");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(PathExists(tmp_.path() + "/c3/leak"));
}

TEST_F(FileObjectStoreTest, DownloadFileRefusesSourcesOutsideRootsAndDirectoryDestinations) {
  std::string dest = tmp_.path() + "/local/x";
  EXPECT_EQ(store_->DownloadFile(FileUriFromPath(tmp_.path() + "/elsewhere"), dest).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->DownloadFile(Uri("train/a.csv"), tmp_.path() + "/local/").code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(dest));
}

TEST_F(FileObjectStoreTest, DeleteObjectsRemovesExactlyTheKeys) {
  ASSERT_TRUE(WriteFileAtomic(root_ + "/train/nested/c.bin", "c").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/train2", "sibling").ok());
  // Missing keys and a key naming a directory are not errors; the directory stays.
  Status s = store_->DeleteObjects(Uri("train"),
                                   {"a.csv", "nested/b.bin", "gone", "nested", "no/such/dir"});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(FilesUnder(root_), (std::set<std::string>{"train/nested/c.bin", "train2"}));
  // A trailing slash on the base means the same.
  ASSERT_TRUE(store_->DeleteObjects(Uri("train/"), {"nested/c.bin"}).ok());
  EXPECT_EQ(FilesUnder(root_), (std::set<std::string>{"train2"}));
}

TEST_F(FileObjectStoreTest, DeleteObjectsRefusesBadKeysAndEscapes) {
  ASSERT_TRUE(WriteFileAtomic(tmp_.path() + "/outside", "o").ok());
  for (const char* key : {"", "/abs", "../outside", "a/./b", "a//b", "nested/"}) {
    EXPECT_EQ(store_->DeleteObjects(Uri("train"), {"a.csv", key}).code(),
              StatusCode::kInvalidArgument)
        << key;
  }
  EXPECT_TRUE(PathExists(root_ + "/train/a.csv"));  // checked before anything is deleted
  // A symlinked directory inside the tree cannot lead the delete outside the roots.
  ASSERT_EQ(::symlink(tmp_.path().c_str(), (root_ + "/train/up").c_str()), 0);
  EXPECT_EQ(store_->DeleteObjects(Uri("train"), {"up/outside"}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(PathExists(tmp_.path() + "/outside"));
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

TEST_F(FileObjectStoreTest, UploadFileRefusesDestinationsOutsideRootsOrNamingADirectory) {
  ASSERT_TRUE(MakeDirs(root_ + "/out").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/out/x", "old").ok());
  EXPECT_EQ(
      store_->UploadFile(tmp_.path() + "/missing", FileUriFromPath(tmp_.path() + "/y")).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->UploadFile(root_ + "/out/x", Uri("out/dir/")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(FilesUnder(root_ + "/out"), (std::set<std::string>{"x"}));
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

TEST_F(FileObjectStoreTest, UploadFileIfIsAskedWhileTheCopySitsInTheTempFile) {
  std::string local = tmp_.path() + "/ckpt.pt";
  ASSERT_TRUE(WriteFileAtomic(local, "new weights").ok());
  ASSERT_TRUE(MakeDirs(root_ + "/ck").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/ck/ckpt.pt", "old").ok());

  std::string seen_in_temp;
  Status refused = store_->UploadFileIf(local, Uri("ck/ckpt.pt"), [&] {
    std::string temp = TempFileOf(root_ + "/ck/ckpt.pt");
    if (!temp.empty()) seen_in_temp = *ReadFile(temp);
    return false;
  });
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_NE(refused.message().find("changed while it was uploaded"), std::string::npos);
  EXPECT_EQ(seen_in_temp, "new weights");
  EXPECT_EQ(FilesUnder(root_ + "/ck"), (std::set<std::string>{"ckpt.pt"}));  // no temp left
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

TEST_F(FileObjectStoreTest, DeleteRefusesAnAllowedRoot) {
  EXPECT_EQ(store_->Delete(FileUriFromPath(root_)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Delete(FileUriFromPath(tmp_.path())).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(PathExists(root_ + "/train/a.csv"));
}

TEST_F(FileObjectStoreTest, ResolveLocalPath) {
  Result<std::string> p = store_->ResolveLocalPath(Uri("train"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, *RealPath(root_ + "/train"));
  EXPECT_EQ(store_->ResolveLocalPath(Uri("nope")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ResolveLocalPath("file:///etc").status().code(), StatusCode::kInvalidArgument);
}

TEST(MakeObjectStoreTest, FileGivesStoreAndS3NeedsObjectStores) {
  TempDir tmp("ty-fos-");
  Result<std::unique_ptr<ObjectStore>> file = MakeObjectStore("file://" + tmp.path(), {tmp.path()});
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE((*file)->ResolveLocalPath("file://" + tmp.path()).ok());

  Result<std::unique_ptr<ObjectStore>> s3 = MakeObjectStore("s3://bucket/key", {tmp.path()});
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s3.status().message(), "s3:// URIs need S3 settings (use ObjectStores)");

  EXPECT_EQ(MakeObjectStore("ftp://x/y", {}).status().code(), StatusCode::kInvalidArgument);
  FileObjectStore store({tmp.path()});
  EXPECT_EQ(store.List("s3://bucket/key").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ty::storage
