// What S3ObjectStore does beyond the shared ObjectStore suite (object_store_conformance_test.cc):
// folder markers, keys that would escape the destination, how big files are split, and which
// bytes UploadFileIf stores. Runs against the shared s3rver.
#include "storage/s3_object_store.h"

#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "common/fs.h"
#include "storage/canned_http_server.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class S3ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TY_S3RVER_OR_SKIP(server);
    bucket_ = ty::testing::S3rver::UniqueBucketName("store");
    ASSERT_TRUE(server->CreateBucket(bucket_).ok());
    settings_ = server->settings();
    settings_.multipart_threshold = 5 * kMiB;
    settings_.part_size = 5 * kMiB;
    settings_.max_concurrency = 4;
    store_ = std::make_unique<S3ObjectStore>(settings_);
  }

  std::string Uri(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }
  void Put(const std::string& key, const std::string& data) {
    ASSERT_TRUE(store_->client().PutObject(bucket_, key, S3Body::Memory(data)).ok()) << key;
  }
  std::set<std::string> Keys() {
    std::set<std::string> out;
    Result<std::vector<S3ListEntry>> all = store_->client().ListAllObjects(bucket_, "");
    EXPECT_TRUE(all.ok());
    if (all.ok()) {
      for (const auto& e : *all) out.insert(e.key);
    }
    return out;
  }
  static std::set<std::string> FilesUnder(const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
      if (e.is_regular_file()) out.insert(std::filesystem::relative(e.path(), dir).string());
    }
    return out;
  }
  static std::string Pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u) >> 13);
    return s;
  }

  std::string bucket_;
  S3Settings settings_;
  std::unique_ptr<S3ObjectStore> store_;
  ty::testing::TempDir tmp_{"ty_s3store_"};
};

TEST_F(S3ObjectStoreTest, FolderMarkersAreNotObjectsButDeleteRemovesThem) {
  Put("data/", "");
  Put("data/sub/", "");
  Put("data/sub/x.csv", "1,2");
  Put("data2/y", "sibling");
  Result<std::vector<ObjectInfo>> listed = store_->List(Uri("data"));
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "sub/x.csv");
  EXPECT_EQ((*listed)[0].size, 3u);
  EXPECT_TRUE(IsPlainMd5Etag((*listed)[0].etag));

  ASSERT_TRUE(store_->DownloadPrefix(Uri("data/"), tmp_.Sub("d")).ok());
  EXPECT_EQ(FilesUnder(tmp_.Sub("d")), (std::set<std::string>{"sub/x.csv"}));

  ASSERT_TRUE(store_->Delete(Uri("data")).ok());
  EXPECT_EQ(Keys(), (std::set<std::string>{"data2/y"}));
}

TEST_F(S3ObjectStoreTest, NothingThereIsAwsNotFoundMessage) {
  Put("present", "p");
  Status s = store_->DownloadPrefix(Uri("absent"), tmp_.Sub("d"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "No S3 objects found under S3 URL " + Uri("absent"));
  EXPECT_EQ(store_->DownloadFile(Uri("absent"), tmp_.Sub("f")).code(), StatusCode::kNotFound);
  EXPECT_FALSE(PathExists(tmp_.Sub("f")));
  EXPECT_EQ(FilesUnder(tmp_.path()), std::set<std::string>{});  // no temp file left either
}

TEST_F(S3ObjectStoreTest, BigFilesMoveInPartsAndRoundTripExactly) {
  const std::string data = Pattern(12 * kMiB + 7);
  ASSERT_TRUE(WriteFileAtomic(tmp_.Sub("big.bin"), data).ok());
  S3ClientStats before = store_->client().stats();
  ASSERT_TRUE(store_->UploadFile(tmp_.Sub("big.bin"), Uri("m/big.bin")).ok());
  S3ClientStats after = store_->client().stats();
  // CreateMultipartUpload, three 5 MiB parts, CompleteMultipartUpload.
  EXPECT_EQ(after.requests - before.requests, 5u);
  EXPECT_GE(after.bytes_sent - before.bytes_sent, data.size());  // + the XML bodies

  before = after;
  ASSERT_TRUE(store_->DownloadPrefix(Uri("m"), tmp_.Sub("restored")).ok());
  after = store_->client().stats();
  EXPECT_TRUE(*ReadFile(tmp_.Sub("restored/big.bin")) == data);
  // Two listing requests, three ranged GETs.
  EXPECT_EQ(after.requests - before.requests, 5u);

  before = after;
  ASSERT_TRUE(store_->DownloadFile(Uri("m/big.bin"), tmp_.Sub("one/copy.bin")).ok());
  after = store_->client().stats();
  EXPECT_TRUE(*ReadFile(tmp_.Sub("one/copy.bin")) == data);
  // The first GET asks for multipart_threshold bytes; the other 7 MiB + 7 come as two ranges.
  EXPECT_EQ(after.requests - before.requests, 3u);
  EXPECT_EQ(FilesUnder(tmp_.Sub("one")), (std::set<std::string>{"copy.bin"}));
}

TEST_F(S3ObjectStoreTest, UploadFileIfStoresExactlyTheBytesThatWereValidated) {
  const std::string path = tmp_.Sub("ckpt.pt");
  ASSERT_TRUE(WriteFileAtomic(path, "version 1").ok());
  // The file changes after the check: what is stored is what was read before it.
  Status s = store_->UploadFileIf(path, Uri("ck/ckpt.pt"), [&] {
    EXPECT_TRUE(WriteFileAtomic(path, "version 2, longer").ok());
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  Result<std::string> stored = store_->client().GetObjectToString(bucket_, "ck/ckpt.pt");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, "version 1");
}

TEST_F(S3ObjectStoreTest, UploadDirectoryOfManySmallFilesAndDeleteObjects) {
  std::set<std::string> expected;
  for (int i = 0; i < 150; ++i) {
    std::string rel = "d" + std::to_string(i % 7) + "/f" + std::to_string(i);
    ASSERT_TRUE(MakeDirs(tmp_.Sub("src/d" + std::to_string(i % 7))).ok());
    ASSERT_TRUE(WriteFileAtomic(tmp_.Sub("src/" + rel), rel).ok());
    expected.insert(rel);
  }
  ASSERT_TRUE(store_->UploadDirectory(tmp_.Sub("src"), Uri("tree/")).ok());
  Result<std::vector<ObjectInfo>> listed = store_->List(Uri("tree/"));
  ASSERT_TRUE(listed.ok());
  std::set<std::string> keys;
  for (const auto& o : *listed) keys.insert(o.key);
  EXPECT_EQ(keys, expected);
  // Requests in flight are bounded by max_concurrency, and so are the connections they need.
  EXPECT_LE(store_->client().stats().connections,
            static_cast<uint64_t>(settings_.max_concurrency) + 1);

  std::vector<std::string> doomed(expected.begin(), expected.end());
  doomed.resize(100);
  ASSERT_TRUE(store_->DeleteObjects(Uri("tree"), doomed).ok());
  listed = store_->List(Uri("tree"));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 50u);
}

TEST_F(S3ObjectStoreTest, UrisNamingNoObjectAreRefused) {
  ASSERT_TRUE(WriteFileAtomic(tmp_.Sub("f"), "x").ok());
  EXPECT_EQ(store_->UploadFile(tmp_.Sub("f"), "s3://" + bucket_).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->UploadFile(tmp_.Sub("f"), Uri("dir/")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->DownloadFile(Uri("dir/"), tmp_.Sub("g")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List("file:///tmp").status().code(), StatusCode::kInvalidArgument);
}

// s3rver cannot hold such keys (it stores keys as paths), so a canned listing offers them.
TEST(S3ObjectStoreCannedTest, KeysThatWouldEscapeTheDestinationAreRefusedBeforeAnyDownload) {
  const std::string listing =
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key>evil/a.txt</Key><Size>1</Size></Contents>"
      "<Contents><Key>evil/../../escaped.txt</Key><Size>1</Size></Contents>"
      "</ListBucketResult>";
  // The same listing answers both the probe for the object "evil" and the "evil/" listing.
  testing::CannedServer server({testing::CannedServer::Response(200, "OK", listing)});
  S3Settings s;
  s.endpoint = server.endpoint();
  s.credentials = {"AK", "SK", ""};
  S3ObjectStore store(s);
  ty::testing::TempDir tmp;
  Status st = store.DownloadPrefix("s3://b/evil", tmp.Sub("dest/inner"));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("'evil/../../escaped.txt'"), std::string::npos) << st.message();
  EXPECT_EQ(server.heads().size(), 2u);  // the two listings; not one GET
  EXPECT_FALSE(PathExists(tmp.Sub("dest")));
}

}  // namespace
}  // namespace ty::storage
