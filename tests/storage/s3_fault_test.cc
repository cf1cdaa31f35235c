// S3ObjectStore under the faults a real S3 connection shows, injected by FaultProxy in front of
// s3rver: connections dropped mid-part and mid-response, 503 SlowDown, retries running out, a
// wrong key id, a missing bucket, an endpoint nobody listens on. The rule throughout: retried
// when retrying can help, reported clearly when not, and never a partial object or a partial
// local file.
//
// s3rver implements neither ListMultipartUploads nor AbortMultipartUpload (it answers 405), so
// "no multipart upload left open" is checked on the proxy's request log: every
// CreateMultipartUpload of a failed upload is followed by an AbortMultipartUpload request.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/fs.h"
#include "storage/fault_proxy.h"
#include "storage/s3_client.h"
#include "storage/s3_object_store.h"
#include "storage/storage_test_util.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using testing::FaultKind;
using testing::FaultProxy;
using testing::FaultRule;
using ty::testing::RawHttp;
using ty::testing::S3rver;
using ty::testing::TempDir;

constexpr uint64_t kPart = 5ull << 20;  // S3's smallest part

std::string Pattern(size_t n, uint32_t seed) {
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

// Retries with a short backoff so the tests stay quick (the backoff itself is S3Client's).
S3ClientOptions FastRetries() {
  S3ClientOptions o;
  o.base_backoff = std::chrono::milliseconds(5);
  o.max_backoff = std::chrono::milliseconds(50);
  return o;
}

class S3FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TY_S3RVER_OR_SKIP(s3rver);
    s3rver_ = s3rver;
    bucket_ = S3rver::UniqueBucketName("fault");
    ASSERT_TRUE(s3rver_->CreateBucket(bucket_).ok());
    Result<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(s3rver_->port());
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
    settings_ = S3rver::SettingsFor(proxy_->endpoint());
    settings_.multipart_threshold = kPart;
    settings_.part_size = kPart;
    settings_.max_concurrency = 4;
    settings_.max_attempts = 3;
    store_ = std::make_unique<S3ObjectStore>(settings_, FastRetries());
  }

  std::string Uri(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }
  std::string LocalFile(const std::string& name, const std::string& data) {
    std::string path = local_.Sub(name);
    EXPECT_TRUE(WriteFileAtomic(path, data).ok());
    return path;
  }
  // The object as s3rver has it, read around the proxy; nullopt when absent.
  std::optional<std::string> Peek(const std::string& key) {
    Result<ty::testing::RawHttpResponse> r =
        RawHttp(s3rver_->port(), "GET", "/" + bucket_ + "/" + key);
    if (!r.ok() || r->status != 200) return std::nullopt;
    return r->body;
  }
  // Every multipart upload this test started was completed or aborted: the count of
  // CreateMultipartUpload requests ("POST ...?uploads") equals that of CompleteMultipartUpload
  // ("POST ...?uploadId=") plus AbortMultipartUpload ("DELETE ...?uploadId=") requests that
  // reached s3rver.
  void ExpectNoUploadLeftOpen(int completed) {
    int created = 0;
    int completes = 0;
    int aborts = 0;
    for (const auto& r : proxy_->Requests()) {
      if (r.status == 0 || r.status == 503) continue;  // never reached s3rver as a whole
      bool uploads = r.target.find("?uploads") != std::string::npos ||
                     r.target.find("&uploads") != std::string::npos;
      bool upload_id = r.target.find("uploadId=") != std::string::npos;
      if (r.method == "POST" && uploads) ++created;
      if (r.method == "POST" && upload_id) completes += r.status == 200;
      if (r.method == "DELETE" && upload_id) ++aborts;
    }
    EXPECT_EQ(completes, completed);
    EXPECT_EQ(created, completes + aborts) << "a multipart upload was left open";
  }

  S3rver* s3rver_ = nullptr;
  std::string bucket_;
  std::unique_ptr<FaultProxy> proxy_;
  S3Settings settings_;
  std::unique_ptr<S3ObjectStore> store_;
  TempDir local_{"ty-s3fault-"};
};

TEST_F(S3FaultTest, MultipartUploadWithAPartDroppedMidBodyCompletesByteExact) {
  std::string data = Pattern(3 * kPart - 12345, 1);  // three parts, the last one short
  proxy_->AddRule({FaultKind::kDropRequestBody, "PUT", "partNumber=2", 1 << 20, 0, 1});
  Status s = store_->UploadFile(LocalFile("big", data), Uri("ckpt/big.bin"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Peek("ckpt/big.bin") == data) << "object differs from the file";
  EXPECT_EQ(proxy_->CountRequests("PUT", "partNumber=2"), 2);  // dropped once, then stored
  EXPECT_EQ(proxy_->CountRequests("PUT", "partNumber=1"), 1);
  ExpectNoUploadLeftOpen(/*completed=*/1);
}

TEST_F(S3FaultTest, SinglePutDroppedMidBodyIsRetried) {
  std::string data = Pattern(200000, 2);
  proxy_->AddRule({FaultKind::kDropRequestBody, "PUT", "/small.bin", 50000, 0, 1});
  Status s = store_->UploadFile(LocalFile("small", data), Uri("small.bin"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Peek("small.bin") == data);
  EXPECT_EQ(proxy_->CountRequests("PUT", "/small.bin"), 2);
}

TEST_F(S3FaultTest, SlowDownIsRetriedAndTheObjectIsRight) {
  std::string data = Pattern(1000, 3);
  proxy_->AddRule({FaultKind::kSlowDown, "PUT", "/throttled.bin", 0, 0, 2});
  Status s = store_->UploadFile(LocalFile("t", data), Uri("throttled.bin"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Peek("throttled.bin") == data);
  EXPECT_EQ(proxy_->CountRequests("PUT", "/throttled.bin"), 3);
  EXPECT_GE(store_->client().stats().retries, 2u);

  // Reads and listings are retried the same way.
  proxy_->AddRule({FaultKind::kSlowDown, "GET", "", 0, 0, 2});
  Result<std::vector<ObjectInfo>> listed = store_->List(Uri(""));
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "throttled.bin");
}

TEST_F(S3FaultTest, SlowDownUntilAttemptsRunOutFailsClearlyAndStoresNothing) {
  proxy_->AddRule({FaultKind::kSlowDown, "PUT", "/never.bin", 0, 0, -1});
  Status s = store_->UploadFile(LocalFile("n", "data"), Uri("never.bin"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("SlowDown"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(Uri("never.bin")), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("3 attempts"), std::string::npos) << s.message();
  EXPECT_EQ(proxy_->CountRequests("PUT", "/never.bin"), settings_.max_attempts);
  EXPECT_EQ(Peek("never.bin"), std::nullopt);
}

TEST_F(S3FaultTest, MultipartUploadThatRunsOutOfAttemptsIsAbortedAndInvisible) {
  std::string data = Pattern(3 * kPart, 4);
  // Part 2 fails every time (dropped mid-body, then throttled); the others succeed.
  proxy_->AddRule({FaultKind::kDropRequestBody, "PUT", "partNumber=2", 4096, 0, 1});
  proxy_->AddRule({FaultKind::kSlowDown, "PUT", "partNumber=2", 0, 0, -1});
  Status s = store_->UploadFile(LocalFile("big", data), Uri("doomed/big.bin"));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("doomed/big.bin"), std::string::npos) << s.message();
  EXPECT_EQ(proxy_->CountRequests("PUT", "partNumber=2"), settings_.max_attempts);
  EXPECT_EQ(proxy_->CountRequests("POST", "uploadId="), 0);  // never completed
  EXPECT_GE(proxy_->CountRequests("DELETE", "uploadId="), 1);
  ExpectNoUploadLeftOpen(/*completed=*/0);
  EXPECT_EQ(Peek("doomed/big.bin"), std::nullopt);
  Result<std::vector<ObjectInfo>> listed = store_->List(Uri("doomed"));
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(S3FaultTest, UploadFileIfRefusedAfterTheLastPartAbortsTheUpload) {
  std::string data = Pattern(2 * kPart + 1, 5);
  Status s = store_->UploadFileIf(LocalFile("big", data), Uri("ck/ckpt.pt"), [] { return false; });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(proxy_->CountRequests("PUT", "partNumber="), 3);  // every part was stored first
  ExpectNoUploadLeftOpen(/*completed=*/0);
  EXPECT_EQ(Peek("ck/ckpt.pt"), std::nullopt);
}

TEST_F(S3FaultTest, DownloadCutShortIsRetriedWithoutAPartialFile) {
  std::string data = Pattern(300000, 6);
  ASSERT_EQ(RawHttp(s3rver_->port(), "PUT", "/" + bucket_ + "/m/model.bin", data)->status, 200);
  proxy_->AddRule({FaultKind::kDropResponseBody, "GET", "/m/model.bin", 100000, 0, 1});
  std::string dest = local_.Sub("out/model.bin");
  Status s = store_->DownloadFile(Uri("m/model.bin"), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(*ReadFile(dest) == data);
  EXPECT_EQ(proxy_->CountRequests("GET", "/m/model.bin"), 2);
  EXPECT_EQ(testing::AllFilesUnder(local_.Sub("out")), (std::set<std::string>{"model.bin"}));
}

TEST_F(S3FaultTest, RangedDownloadOfABigObjectSurvivesACutRange) {
  std::string data = Pattern(3 * kPart + 7, 7);
  ASSERT_TRUE(store_->UploadFile(LocalFile("big", data), Uri("big/blob")).ok());
  proxy_->ClearLog();
  proxy_->AddRule({FaultKind::kDropResponseBody, "GET", "/big/blob", 1 << 20, 1, 1});
  std::string dest = local_.Sub("restore/blob");
  Status s = store_->DownloadFile(Uri("big/blob"), dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(*ReadFile(dest) == data) << "restored file differs";
  EXPECT_EQ(testing::AllFilesUnder(local_.Sub("restore")), (std::set<std::string>{"blob"}));
}

TEST_F(S3FaultTest, DownloadThatKeepsBreakingLeavesNoFileAndKeepsTheOldOne) {
  std::string data = Pattern(300000, 8);
  ASSERT_EQ(RawHttp(s3rver_->port(), "PUT", "/" + bucket_ + "/m/model.bin", data)->status, 200);
  proxy_->AddRule({FaultKind::kDropResponseBody, "GET", "/m/model.bin", 1000, 0, -1});

  std::string fresh = local_.Sub("fresh/model.bin");
  Status s = store_->DownloadFile(Uri("m/model.bin"), fresh);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("m/model.bin"), std::string::npos) << s.message();
  EXPECT_FALSE(PathExists(fresh));
  if (PathExists(local_.Sub("fresh"))) {
    EXPECT_TRUE(testing::AllFilesUnder(local_.Sub("fresh")).empty());
  }

  std::string existing = local_.Sub("old/model.bin");
  ASSERT_TRUE(MakeDirs(local_.Sub("old")).ok());
  ASSERT_TRUE(WriteFileAtomic(existing, "previous model").ok());
  EXPECT_FALSE(store_->DownloadFile(Uri("m/model.bin"), existing).ok());
  EXPECT_EQ(*ReadFile(existing), "previous model");
  EXPECT_EQ(testing::AllFilesUnder(local_.Sub("old")), (std::set<std::string>{"model.bin"}));

  // A whole channel (DownloadPrefix) fails the same way: nothing half-written is left.
  std::string channel = local_.Sub("channel");
  EXPECT_FALSE(store_->DownloadPrefix(Uri("m"), channel).ok());
  EXPECT_FALSE(PathExists(channel + "/model.bin"));
}

// ---------------------------------------------------------------------------------------------
// Errors that retrying cannot fix: reported at once, clearly.

TEST_F(S3FaultTest, MissingBucketIsNotFoundNamingTheBucket) {
  S3ObjectStore direct(s3rver_->settings(), FastRetries());
  const std::string uri = "s3://no-such-bucket-" + std::to_string(::getpid()) + "/data";
  Result<std::vector<ObjectInfo>> listed = direct.List(uri);
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kNotFound) << listed.status().ToString();
  EXPECT_NE(listed.status().message().find("no-such-bucket-"), std::string::npos);
  EXPECT_NE(listed.status().message().find("NoSuchBucket"), std::string::npos);

  Status up = direct.UploadFile(LocalFile("x", "x"), uri + "/x");
  EXPECT_EQ(up.code(), StatusCode::kNotFound) << up.ToString();
  EXPECT_NE(up.message().find("no-such-bucket-"), std::string::npos) << up.message();
  Status down = direct.DownloadPrefix(uri, local_.Sub("d"));
  EXPECT_EQ(down.code(), StatusCode::kNotFound) << down.ToString();
  EXPECT_NE(down.message().find("no-such-bucket-"), std::string::npos) << down.message();
}

TEST_F(S3FaultTest, UnknownAccessKeyIsPermissionDeniedNamingTheCredentialsSource) {
  // s3rver checks the access key id (not the signature; see tests/e2e/test_s3_auth.py).
  S3Settings wrong = s3rver_->settings();
  wrong.credentials.access_key_id = "NOTS3RVER";
  wrong.credentials_source = "the test's settings";
  S3ObjectStore direct(wrong, FastRetries());
  Result<std::vector<ObjectInfo>> listed = direct.List(Uri(""));
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kPermissionDenied) << listed.status().ToString();
  EXPECT_NE(listed.status().message().find("InvalidAccessKeyId"), std::string::npos)
      << listed.status().message();
  EXPECT_NE(listed.status().message().find("the test's settings"), std::string::npos)
      << listed.status().message();
  EXPECT_EQ(direct.client().stats().retries, 0u);  // a 403 is not retried
}

TEST_F(S3FaultTest, UnreachableEndpointIsUnavailableAfterRetries) {
  // A port that was just free: nothing listens there.
  uint16_t dead_port = 0;
  {
    Result<std::unique_ptr<FaultProxy>> p = FaultProxy::Start(s3rver_->port());
    ASSERT_TRUE(p.ok());
    dead_port = static_cast<uint16_t>((*p)->port());
  }
  S3Settings dead = S3rver::SettingsFor("http://127.0.0.1:" + std::to_string(dead_port));
  dead.max_attempts = 2;
  S3ObjectStore direct(dead, FastRetries());
  auto start = std::chrono::steady_clock::now();
  Result<std::vector<ObjectInfo>> listed = direct.List("s3://b/k");
  EXPECT_EQ(listed.status().code(), StatusCode::kUnavailable) << listed.status().ToString();
  EXPECT_NE(listed.status().message().find("127.0.0.1:" + std::to_string(dead_port)),
            std::string::npos)
      << listed.status().message();
  EXPECT_EQ(direct.client().stats().requests, 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace ty::storage
