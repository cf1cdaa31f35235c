// The ObjectStore contract (storage/object_store.h), checked the same way for every store:
// FileObjectStore on a temp directory and S3ObjectStore on a real s3rver. A behaviour that only
// one store has (file roots, temp-file names, S3 faults) is tested in that store's own file.
//
// Each backend can also reach its storage without the store under test (Seed / Peek /
// StoredKeys), so a broken upload cannot hide a broken download, and "nothing was left behind"
// is checked on what is really stored, not on what List chooses to show.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "storage/file_object_store.h"
#include "storage/object_store.h"
#include "storage/s3_object_store.h"
#include "storage/storage_test_util.h"
#include "storage/uri.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using ty::testing::S3rver;
using ty::testing::TempDir;

// ---------------------------------------------------------------------------------------------
// Backends

class Backend {
 public:
  virtual ~Backend() = default;
  virtual ObjectStore& store() = 0;
  // The URI of `key` in this test's area (a bucket or a root directory); "" is the area itself.
  // `key` is the object's name as stored (not encoded).
  virtual std::string Uri(const std::string& key) const = 0;
  // Stores an object without the store under test.
  virtual Status Seed(const std::string& key, const std::string& data) = 0;
  // The stored bytes of `key`, read without the store under test; nullopt when absent.
  virtual std::optional<std::string> Peek(const std::string& key) = 0;
  // Everything stored in the area as the backend sees it (hidden temp files, scratch objects
  // included), as keys.
  virtual std::set<std::string> StoredKeys() = 0;
  virtual bool has_etags() const = 0;
  virtual bool has_local_paths() const = 0;
};

class FileBackend : public Backend {
 public:
  FileBackend() : root_(tmp_.Sub("bucket")), store_(std::vector<std::string>{root_}) {
    (void)MakeDirs(root_);
  }
  ObjectStore& store() override { return store_; }
  std::string Uri(const std::string& key) const override {
    return FileUriFromPath(key.empty() ? root_ : root_ + "/" + key);
  }
  Status Seed(const std::string& key, const std::string& data) override {
    std::string path = root_ + "/" + key;
    TY_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/'))));
    return WriteFileAtomic(path, data);
  }
  std::optional<std::string> Peek(const std::string& key) override {
    return testing::ReadIfExists(root_ + "/" + key);
  }
  std::set<std::string> StoredKeys() override { return testing::AllFilesUnder(root_); }
  bool has_etags() const override { return false; }
  bool has_local_paths() const override { return true; }

 private:
  TempDir tmp_{"ty-conf-file-"};
  std::string root_;
  FileObjectStore store_;
};

// S3 encoding of a key for a request path: unreserved bytes and '/' stay, the rest is %XX.
std::string EncodeKey(const std::string& key) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class S3Backend : public Backend {
 public:
  // Small multipart thresholds (5 MiB is S3's smallest part) so big-file tests stay quick.
  static S3Settings TestSettings(const S3rver& s3rver) {
    S3Settings s = s3rver.settings();
    s.multipart_threshold = 5ull << 20;
    s.part_size = 5ull << 20;
    s.max_concurrency = 4;
    return s;
  }

  S3Backend(S3rver& s3rver, std::string bucket)
      : s3rver_(s3rver), bucket_(std::move(bucket)), store_(TestSettings(s3rver)) {}
  const std::string& bucket() const { return bucket_; }

  ObjectStore& store() override { return store_; }
  std::string Uri(const std::string& key) const override {
    return key.empty() ? "s3://" + bucket_ : "s3://" + bucket_ + "/" + key;
  }
  Status Seed(const std::string& key, const std::string& data) override {
    TY_ASSIGN_OR_RETURN(
        ty::testing::RawHttpResponse r,
        ty::testing::RawHttp(s3rver_.port(), "PUT", "/" + bucket_ + "/" + EncodeKey(key), data));
    if (r.status != 200) return IoError("seeding " + key + ": HTTP " + std::to_string(r.status));
    return Status::Ok();
  }
  std::optional<std::string> Peek(const std::string& key) override {
    Result<ty::testing::RawHttpResponse> r =
        ty::testing::RawHttp(s3rver_.port(), "GET", "/" + bucket_ + "/" + EncodeKey(key));
    if (!r.ok() || r->status != 200) return std::nullopt;
    return r->body;
  }
  // From s3rver's data directory: <key>._S3rver_object files. Multipart uploads in progress
  // (._S3rver_uploads) are not objects; s3rver cannot abort them, so they are not counted here
  // (s3_fault_test.cc checks that aborts are sent).
  std::set<std::string> StoredKeys() override {
    std::set<std::string> out;
    const std::string suffix = "._S3rver_object";
    for (const std::string& rel : testing::AllFilesUnder(s3rver_.data_dir() + "/" + bucket_)) {
      if (rel.rfind("._S3rver_uploads/", 0) == 0) continue;
      if (rel.size() > suffix.size() &&
          rel.compare(rel.size() - suffix.size(), suffix.size(), suffix) == 0) {
        out.insert(rel.substr(0, rel.size() - suffix.size()));
      }
    }
    return out;
  }
  bool has_etags() const override { return true; }
  bool has_local_paths() const override { return false; }

 private:
  S3rver& s3rver_;
  std::string bucket_;
  S3ObjectStore store_;
};

enum class Kind { kFile, kS3 };

std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  return info.param == Kind::kFile ? "File" : "S3";
}

// ---------------------------------------------------------------------------------------------
// Fixture

class ObjectStoreConformanceTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kFile) {
      backend_ = std::make_unique<FileBackend>();
      return;
    }
    TY_S3RVER_OR_SKIP(s3rver);
    std::string bucket = S3rver::UniqueBucketName("conf");
    ASSERT_TRUE(s3rver->CreateBucket(bucket).ok());
    backend_ = std::make_unique<S3Backend>(*s3rver, bucket);
  }

  ObjectStore& store() { return backend_->store(); }
  std::string Uri(const std::string& key) { return backend_->Uri(key); }
  void Seed(const std::string& key, const std::string& data) {
    Status s = backend_->Seed(key, data);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // A local file with `data`, under the test's scratch directory.
  std::string LocalFile(const std::string& rel, const std::string& data) {
    std::string path = local_.Sub(rel);
    EXPECT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    EXPECT_TRUE(WriteFileAtomic(path, data).ok());
    return path;
  }
  std::vector<std::string> ListedKeys(const std::string& uri) {
    Result<std::vector<ObjectInfo>> listed = store().List(uri);
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    std::vector<std::string> keys;
    if (listed.ok()) {
      for (const ObjectInfo& o : *listed) keys.push_back(o.key);
    }
    return keys;
  }

  TempDir local_{"ty-conf-local-"};
  std::unique_ptr<Backend> backend_;
};

// Bytes that are not all alike, so a misplaced or repeated chunk shows.
std::string Pattern(size_t n, uint32_t seed = 1) {
  std::string data(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    data[i] = static_cast<char>(x);
  }
  return data;
}

// Keys that need encoding in a URL, or that S3 signers get wrong.
const std::vector<std::string>& AwkwardKeys() {
  static const std::vector<std::string> keys = {
      "with space/a b.txt", "plus/a+b.txt",
      "percent/100%.txt",   "percent/%41%2F.txt",
      "query/a=b&c=d.txt",  "unicode/\xc3\xa9t\xc3\xa9/\xe2\x98\x83.txt",
      "tilde/~user.txt",    "mixed/x (1) [2] !$'*,;:@.txt",
  };
  return keys;
}

// ---------------------------------------------------------------------------------------------
// DownloadPrefix

TEST_P(ObjectStoreConformanceTest, DownloadPrefixOfATreeKeepsRelativePaths) {
  Seed("train/a.csv", "1,2,3\n");
  Seed("train/nested/b.bin", std::string("\0\1\2", 3));
  Seed("train2/not-this.csv", "sibling");
  std::string dest = local_.Sub("channel/train");
  Status s = store().DownloadPrefix(Uri("train"), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(testing::AllFilesUnder(dest), (std::set<std::string>{"a.csv", "nested/b.bin"}));
  EXPECT_EQ(*ReadFile(dest + "/a.csv"), "1,2,3\n");
  EXPECT_EQ(*ReadFile(dest + "/nested/b.bin"), std::string("\0\1\2", 3));
}

TEST_P(ObjectStoreConformanceTest, DownloadPrefixOfOneObjectUsesItsBaseName) {
  Seed("train/a.csv", "1,2,3\n");
  Seed("train/a.csv2", "sibling");
  std::string dest = local_.Sub("channel");
  Status s = store().DownloadPrefix(Uri("train/a.csv"), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(testing::AllFilesUnder(dest), (std::set<std::string>{"a.csv"}));
  EXPECT_EQ(*ReadFile(dest + "/a.csv"), "1,2,3\n");
}

TEST_P(ObjectStoreConformanceTest, DownloadPrefixOfTheWholeAreaWithEmptyPrefix) {
  Seed("top.txt", "t");
  Seed("d/e/f.txt", "f");
  std::string dest = local_.Sub("all");
  Status s = store().DownloadPrefix(Uri(""), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(testing::AllFilesUnder(dest), (std::set<std::string>{"d/e/f.txt", "top.txt"}));
  EXPECT_EQ(*ReadFile(dest + "/d/e/f.txt"), "f");
}

TEST_P(ObjectStoreConformanceTest, DownloadPrefixOfNothingIsNotFoundNamingTheUri) {
  Seed("train/a.csv", "x");
  for (const std::string& key :
       {std::string("nope"), std::string("trai"), std::string("train/a.cs")}) {
    std::string uri = Uri(key);
    Status s = store().DownloadPrefix(uri, local_.Sub("channel-" + key.substr(0, 4)));
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << key << ": " << s.ToString();
    // "No objects found under <uri>"; S3 words it as AWS does: "No S3 objects found under S3
    // URL <uri>".
    EXPECT_NE(s.message().find("objects found under"), std::string::npos) << s.message();
    EXPECT_TRUE(s.message().ends_with(" " + uri)) << s.message();
  }
}

TEST_P(ObjectStoreConformanceTest, DownloadPrefixRefusesToWriteThroughASymlinkInTheDestination) {
  Seed("train/a.csv", "a");
  Seed("train/nested/b.bin", "b");
  std::string dest = local_.Sub("channel");
  std::string elsewhere = local_.Sub("elsewhere");
  ASSERT_TRUE(MakeDirs(dest).ok());
  ASSERT_TRUE(MakeDirs(elsewhere).ok());
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dest + "/nested").c_str()), 0);
  EXPECT_EQ(store().DownloadPrefix(Uri("train"), dest).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(elsewhere + "/b.bin"));
}

TEST_P(ObjectStoreConformanceTest, AwkwardKeysRoundTripThroughEveryOperation) {
  for (size_t i = 0; i < AwkwardKeys().size(); ++i) {
    const std::string& key = AwkwardKeys()[i];
    SCOPED_TRACE(key);
    std::string data = "object " + std::to_string(i) + " " + key;
    Status up = store().UploadFile(LocalFile("src" + std::to_string(i), data), Uri("k/" + key));
    ASSERT_TRUE(up.ok()) << up.ToString();
    EXPECT_EQ(backend_->Peek("k/" + key), data);  // stored under exactly that name

    std::string one = local_.Sub("one/" + std::to_string(i));
    Status down = store().DownloadFile(Uri("k/" + key), one);
    ASSERT_TRUE(down.ok()) << down.ToString();
    EXPECT_EQ(*ReadFile(one), data);

    Result<std::vector<ObjectInfo>> listed = store().List(Uri("k/" + key));
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].key, key.substr(key.rfind('/') + 1));
    EXPECT_EQ((*listed)[0].size, data.size());
  }
  std::vector<std::string> want = AwkwardKeys();
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ListedKeys(Uri("k")), want);

  std::string tree = local_.Sub("tree");
  Status s = store().DownloadPrefix(Uri("k"), tree);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(testing::AllFilesUnder(tree), std::set<std::string>(want.begin(), want.end()));
  EXPECT_EQ(*ReadFile(tree + "/" + AwkwardKeys()[2]), "object 2 " + AwkwardKeys()[2]);

  // Deleting one awkward "directory" leaves the others.
  ASSERT_TRUE(store().Delete(Uri("k/percent")).ok());
  ASSERT_TRUE(store().DeleteObjects(Uri("k"), {AwkwardKeys()[0], AwkwardKeys()[5]}).ok());
  std::vector<std::string> rest;
  for (const std::string& k : want) {
    if (k.rfind("percent/", 0) != 0 && k != AwkwardKeys()[0] && k != AwkwardKeys()[5]) {
      rest.push_back(k);
    }
  }
  EXPECT_EQ(ListedKeys(Uri("k")), rest);
}

// ---------------------------------------------------------------------------------------------
// DownloadFile

TEST_P(ObjectStoreConformanceTest, DownloadFileCreatesParentsAndReplacesAtomically) {
  Seed("m/model.bin", "new");
  std::string dest = local_.Sub("deep/er/model.bin");
  Status s = store().DownloadFile(Uri("m/model.bin"), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(dest), "new");

  ASSERT_TRUE(WriteFileAtomic(dest, "old contents, longer than the new").ok());
  s = store().DownloadFile(Uri("m/model.bin"), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(dest), "new");
  EXPECT_EQ(testing::AllFilesUnder(local_.Sub("deep")), (std::set<std::string>{"er/model.bin"}));

  // A symlink at the destination is replaced, not written through.
  std::string target = local_.Sub("target");
  ASSERT_TRUE(WriteFileAtomic(target, "keep").ok());
  std::string link = local_.Sub("deep/link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  s = store().DownloadFile(Uri("m/model.bin"), link);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(target), "keep");
  EXPECT_EQ(*ReadFile(link), "new");
}

TEST_P(ObjectStoreConformanceTest, DownloadFileOfMissingObjectIsNotFoundAndTouchesNothing) {
  Seed("m/other.bin", "x");
  std::string dest = local_.Sub("dl/model.bin");
  ASSERT_TRUE(MakeDirs(local_.Sub("dl")).ok());
  ASSERT_TRUE(WriteFileAtomic(dest, "keep me").ok());
  for (const std::string& key :
       {std::string("m/model.bin"), std::string("m"), std::string("nope/x")}) {
    Status s = store().DownloadFile(Uri(key), dest);
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << key << ": " << s.ToString();
  }
  EXPECT_EQ(*ReadFile(dest), "keep me");
  EXPECT_EQ(testing::AllFilesUnder(local_.Sub("dl")), (std::set<std::string>{"model.bin"}));
  EXPECT_FALSE(PathExists(local_.Sub("dl2/model.bin")));
  EXPECT_EQ(store().DownloadFile(Uri("m/model.bin"), local_.Sub("dl2/model.bin")).code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(PathExists(local_.Sub("dl2/model.bin")));
}

TEST_P(ObjectStoreConformanceTest, EmptyObjectRoundTrips) {
  Status s = store().UploadFile(LocalFile("empty", ""), Uri("e/empty"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(backend_->Peek("e/empty"), "");
  s = store().DownloadFile(Uri("e/empty"), local_.Sub("back/empty"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(local_.Sub("back/empty")), "");
  Result<std::vector<ObjectInfo>> listed = store().List(Uri("e"));
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size, 0u);
}

// ---------------------------------------------------------------------------------------------
// Read (the debugger's trial reader fetches one record by offset and length)

TEST_P(ObjectStoreConformanceTest, ReadReturnsTheRangeClippedAtTheEnd) {
  const std::string data = Pattern(1000);
  Seed("r/obj", data);
  struct Case {
    uint64_t offset;
    std::optional<uint64_t> length;
    std::string want;
  };
  std::vector<Case> cases = {
      {0, std::nullopt, data},
      {10, 20, data.substr(10, 20)},
      {990, 100, data.substr(990)},
      {500, std::nullopt, data.substr(500)},
      {1000, 10, ""},
      {5000, 10, ""},
      {0, 0, ""},
  };
  for (const Case& c : cases) {
    Result<std::string> got = store().Read(Uri("r/obj"), c.offset, c.length, 1 << 20);
    ASSERT_TRUE(got.ok()) << c.offset << ": " << got.status().ToString();
    EXPECT_EQ(*got, c.want) << c.offset;
  }
  Seed("r/empty", "");
  Result<std::string> empty = store().Read(Uri("r/empty"), 0, std::nullopt, 10);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, "");
}

TEST_P(ObjectStoreConformanceTest, ReadIsBoundedAndNamesMissingObjects) {
  Seed("r/obj", Pattern(1000));
  Result<std::string> too_big = store().Read(Uri("r/obj"), 0, std::nullopt, 999);
  EXPECT_EQ(too_big.status().code(), StatusCode::kResourceExhausted) << too_big.status().ToString();
  EXPECT_EQ(store().Read(Uri("r/obj"), 0, 1000, 999).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_TRUE(store().Read(Uri("r/obj"), 1, std::nullopt, 999).ok());
  EXPECT_EQ(store().Read(Uri("r/missing"), 0, 10, 100).status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// UploadFile / UploadFileIf

TEST_P(ObjectStoreConformanceTest, UploadFileReplacesTheObjectAndCreatesParents) {
  Seed("out/job/model.tar.gz", "old");
  std::string local = LocalFile("model.tar.gz", "new contents");
  Status s = store().UploadFile(local, Uri("out/job/model.tar.gz"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(backend_->Peek("out/job/model.tar.gz"), "new contents");
  s = store().UploadFile(local, Uri("deep/er/x"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(backend_->Peek("deep/er/x"), "new contents");
  EXPECT_EQ(backend_->StoredKeys(),
            (std::set<std::string>{"deep/er/x", "out/job/model.tar.gz"}));  // no scratch left
}

TEST_P(ObjectStoreConformanceTest, UploadOfMissingLocalFileIsNotFoundAndKeepsTheObject) {
  Seed("out/x", "old");
  Status s = store().UploadFile(local_.Sub("missing"), Uri("out/x"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_EQ(backend_->Peek("out/x"), "old");
  EXPECT_EQ(backend_->StoredKeys(), (std::set<std::string>{"out/x"}));
}

TEST_P(ObjectStoreConformanceTest, UploadFileIfCommitsOnlyWhenStillValid) {
  Seed("ck/ckpt.pt", "old");
  std::string local = LocalFile("ckpt.pt", "new weights");

  int asked = 0;
  Status refused = store().UploadFileIf(local, Uri("ck/ckpt.pt"), [&] {
    ++asked;
    return false;
  });
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(backend_->Peek("ck/ckpt.pt"), "old");
  EXPECT_EQ(backend_->StoredKeys(), (std::set<std::string>{"ck/ckpt.pt"}));

  asked = 0;
  Status stored = store().UploadFileIf(local, Uri("ck/ckpt.pt"), [&] {
    ++asked;
    return true;
  });
  ASSERT_TRUE(stored.ok()) << stored.ToString();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(backend_->Peek("ck/ckpt.pt"), "new weights");
  EXPECT_EQ(backend_->StoredKeys(), (std::set<std::string>{"ck/ckpt.pt"}));
}

TEST_P(ObjectStoreConformanceTest, UploadFileIfFalseForANewObjectLeavesNothing) {
  std::string local = LocalFile("ckpt.pt", "weights");
  Status refused = store().UploadFileIf(local, Uri("fresh/ckpt.pt"), [] { return false; });
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_EQ(backend_->Peek("fresh/ckpt.pt"), std::nullopt);
  EXPECT_TRUE(ListedKeys(Uri("fresh")).empty());
  EXPECT_TRUE(backend_->StoredKeys().empty()) << *backend_->StoredKeys().begin();
}

TEST_P(ObjectStoreConformanceTest, UploadFileIfIsAskedAfterTheBytesOfABigFileAreCopied) {
  // Multipart on S3: still_valid must come after the last part, before the commit.
  std::string data = Pattern((11ull << 20) + 3);
  std::string local = LocalFile("big.ckpt", data);
  bool visible_when_asked = true;
  Status refused = store().UploadFileIf(local, Uri("big/ckpt"), [&] {
    visible_when_asked = backend_->Peek("big/ckpt").has_value();
    return false;
  });
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_FALSE(visible_when_asked);
  EXPECT_TRUE(backend_->StoredKeys().empty());

  Status stored = store().UploadFileIf(local, Uri("big/ckpt"), [&] {
    visible_when_asked = backend_->Peek("big/ckpt").has_value();
    return true;
  });
  ASSERT_TRUE(stored.ok()) << stored.ToString();
  EXPECT_FALSE(visible_when_asked);
  EXPECT_TRUE(backend_->Peek("big/ckpt") == data);
}

TEST_P(ObjectStoreConformanceTest, BigFileRoundTripsByteExact) {
  // Past the S3 backend's multipart threshold (5 MiB) with a short last part.
  std::string data = Pattern((12ull << 20) + 17, 7);
  std::string local = LocalFile("big.bin", data);
  Status s = store().UploadFile(local, Uri("big/big.bin"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(backend_->Peek("big/big.bin") == data);

  Result<std::vector<ObjectInfo>> listed = store().List(Uri("big"));
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size, data.size());

  s = store().DownloadFile(Uri("big/big.bin"), local_.Sub("restored/one.bin"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(*ReadFile(local_.Sub("restored/one.bin")) == data);
  s = store().DownloadPrefix(Uri("big"), local_.Sub("restored/tree"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(*ReadFile(local_.Sub("restored/tree/big.bin")) == data);
  EXPECT_EQ(testing::AllFilesUnder(local_.Sub("restored")),
            (std::set<std::string>{"one.bin", "tree/big.bin"}));
}

// ---------------------------------------------------------------------------------------------
// UploadDirectory and List

TEST_P(ObjectStoreConformanceTest, UploadDirectoryThenListIsSortedWithSizes) {
  std::string dir = local_.Sub("output");
  ASSERT_TRUE(MakeDirs(dir + "/data/sub").ok());
  // Byte order, as S3 lists: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' < 'a' < UTF-8.
  for (std::string rel : {"a0", "a/b", "a.b", "a-b", "data/sub/c.txt", "\xc3\xa9", "top", "Z"}) {
    std::string path = dir + "/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    ASSERT_TRUE(WriteFileAtomic(path, std::string(rel.size() + 1, 'x')).ok());
  }
  ASSERT_EQ(::symlink("top", (dir + "/alias").c_str()), 0);  // inside: followed
  ASSERT_TRUE(MakeDirs(dir + "/empty/dir").ok());            // uploads nothing
  Status s = store().UploadDirectory(dir, Uri("jobs/j1/output"));
  ASSERT_TRUE(s.ok()) << s.ToString();

  Result<std::vector<ObjectInfo>> listed = store().List(Uri("jobs/j1/output"));
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  std::vector<std::string> want = {"Z",   "a-b",     "a.b", "a/b", "a0", "alias", "data/sub/c.txt",
                                   "top", "\xc3\xa9"};
  std::vector<std::string> keys;
  for (const ObjectInfo& o : *listed) {
    keys.push_back(o.key);
    size_t want_size = (o.key == "alias" ? std::string("top").size() : o.key.size()) + 1;
    EXPECT_EQ(o.size, want_size) << o.key;
    EXPECT_LT(std::chrono::abs(std::chrono::system_clock::now() - o.mtime), std::chrono::minutes(5))
        << o.key;
    EXPECT_EQ(o.etag.empty(), !backend_->has_etags()) << o.key;
  }
  EXPECT_EQ(keys, want);
  EXPECT_EQ(backend_->Peek("jobs/j1/output/alias"), "xxxx");
}

TEST_P(ObjectStoreConformanceTest, UploadDirectoryRefusesASymlinkLeavingTheDirectory) {
  std::string dir = local_.Sub("output");
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(WriteFileAtomic(local_.Sub("secret"), "s").ok());
  ASSERT_EQ(::symlink(local_.Sub("secret").c_str(), (dir + "/leak").c_str()), 0);
  EXPECT_EQ(store().UploadDirectory(dir, Uri("jobs/j2")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(backend_->Peek("jobs/j2/leak"), std::nullopt);
}

TEST_P(ObjectStoreConformanceTest, UploadOfAnEmptyDirectoryStoresNothing) {
  ASSERT_TRUE(MakeDirs(local_.Sub("empty/sub")).ok());
  Status s = store().UploadDirectory(local_.Sub("empty"), Uri("jobs/e"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(backend_->StoredKeys().empty());
}

TEST_P(ObjectStoreConformanceTest, ListOfOneObjectOfNothingAndOfTheWholeArea) {
  Seed("train/a.csv", "1,2,3\n");
  Seed("train/a.csv.bak", "b");
  Seed("root.txt", "r");
  Result<std::vector<ObjectInfo>> one = store().List(Uri("train/a.csv"));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].key, "a.csv");
  EXPECT_EQ((*one)[0].size, 6u);

  Result<std::vector<ObjectInfo>> none = store().List(Uri("missing"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  EXPECT_TRUE(ListedKeys(Uri("trai")).empty());  // a prefix of a name is not "under" it

  EXPECT_EQ(ListedKeys(Uri("")),
            (std::vector<std::string>{"root.txt", "train/a.csv", "train/a.csv.bak"}));
}

TEST_P(ObjectStoreConformanceTest, ListFollowsPagesPastAThousandObjects) {
  // S3 returns at most 1000 keys per page; the file store has no pages but must agree.
  constexpr int kObjects = 1005;
  std::vector<std::string> want;
  for (int i = 0; i < kObjects; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "p/%05d", i);
    want.push_back(std::string(name).substr(2));
    Seed(name, std::to_string(i));
  }
  std::vector<std::string> keys = ListedKeys(Uri("p"));
  EXPECT_EQ(keys.size(), want.size());
  EXPECT_TRUE(keys == want);

  // DeleteObjects in more than one batch (S3: 1000 keys per request).
  std::vector<std::string> doomed(want.begin(), want.begin() + 1003);
  Status s = store().DeleteObjects(Uri("p"), doomed);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ListedKeys(Uri("p")), (std::vector<std::string>{"01003", "01004"}));
}

// ---------------------------------------------------------------------------------------------
// Delete / DeleteObjects

TEST_P(ObjectStoreConformanceTest, DeleteRemovesWhatIsUnderAndNeverASibling) {
  Seed("d/a/x", "1");
  Seed("d/a/y/z", "2");
  Seed("d/a2", "3");
  Seed("d/a2x/w", "4");
  Seed("d/b", "5");
  Seed("d/b2", "6");
  Seed("d/b.txt", "7");
  Status s = store().Delete(Uri("d/a"));  // a "directory"
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = store().Delete(Uri("d/b"));  // one object
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(backend_->StoredKeys(), (std::set<std::string>{"d/a2", "d/a2x/w", "d/b.txt", "d/b2"}));
  // Nothing there is not an error.
  EXPECT_TRUE(store().Delete(Uri("d/a")).ok());
  EXPECT_TRUE(store().Delete(Uri("never/was")).ok());
  EXPECT_EQ(backend_->StoredKeys().size(), 4u);
}

TEST_P(ObjectStoreConformanceTest, DeleteObjectsRemovesExactlyTheKeys) {
  Seed("base/keep.txt", "k");
  Seed("base/x/gone.txt", "g");
  Seed("base/x/gone.txt2", "k2");
  Seed("base/y/also gone+.txt", "g");
  Seed("other/x/gone.txt", "not under base");
  Status s =
      store().DeleteObjects(Uri("base"), {"x/gone.txt", "y/also gone+.txt", "missing/is/fine"});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(backend_->StoredKeys(),
            (std::set<std::string>{"base/keep.txt", "base/x/gone.txt2", "other/x/gone.txt"}));
  EXPECT_TRUE(store().DeleteObjects(Uri("base"), {}).ok());
  // A trailing slash on the base means the same.
  s = store().DeleteObjects(Uri("base") + "/", {"x/gone.txt2"});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(backend_->StoredKeys(), (std::set<std::string>{"base/keep.txt", "other/x/gone.txt"}));
}

// ---------------------------------------------------------------------------------------------
// ResolveLocalPath, concurrency

TEST_P(ObjectStoreConformanceTest, ResolveLocalPathOnlyWhereObjectsAreFiles) {
  Seed("train/a.csv", "x");
  Result<std::string> p = store().ResolveLocalPath(Uri("train"));
  if (backend_->has_local_paths()) {
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(*ReadFile(*p + "/a.csv"), "x");
    EXPECT_EQ(store().ResolveLocalPath(Uri("nope")).status().code(), StatusCode::kNotFound);
  } else {
    EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition) << p.status().ToString();
  }
}

TEST_P(ObjectStoreConformanceTest, ConcurrentCallersDoNotMixUpObjects) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string name = "t" + std::to_string(t) + "/o" + std::to_string(i);
        std::string data = Pattern(1000 + 37 * (t * kPerThread + i), t * 100 + i);
        std::string src = local_.Sub("src-" + std::to_string(t) + "-" + std::to_string(i));
        std::string back = local_.Sub("back-" + std::to_string(t) + "-" + std::to_string(i));
        if (!WriteFileAtomic(src, data).ok() || !store().UploadFile(src, Uri(name)).ok() ||
            !store().DownloadFile(Uri(name), back).ok() || *ReadFile(back) != data) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(backend_->StoredKeys().size(), static_cast<size_t>(kThreads * kPerThread));
}

INSTANTIATE_TEST_SUITE_P(Stores, ObjectStoreConformanceTest,
                         ::testing::Values(Kind::kFile, Kind::kS3), KindName);

}  // namespace
}  // namespace ty::storage
