// FaultProxy (fault_proxy.h) in front of a real s3rver: it forwards, logs, and injects each of
// its faults. A fault that is silently not injected would make s3_fault_test.cc vacuous.
#include "storage/fault_proxy.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "testing/s3rver.h"

namespace ty::storage {
namespace {

using testing::FaultKind;
using testing::FaultProxy;
using ty::testing::RawHttp;
using ty::testing::S3rver;

class FaultProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TY_S3RVER_OR_SKIP(s3rver);
    s3rver_ = s3rver;
    bucket_ = S3rver::UniqueBucketName("proxy");
    ASSERT_TRUE(s3rver_->CreateBucket(bucket_).ok());
    Result<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(s3rver_->port());
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
  }

  S3rver* s3rver_ = nullptr;
  std::string bucket_;
  std::unique_ptr<FaultProxy> proxy_;
};

TEST_F(FaultProxyTest, ForwardsAndLogsRequests) {
  Result<ty::testing::RawHttpResponse> put =
      RawHttp(proxy_->port(), "PUT", "/" + bucket_ + "/k?x=1", "hello");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->status, 200);
  Result<ty::testing::RawHttpResponse> get = RawHttp(proxy_->port(), "GET", "/" + bucket_ + "/k");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->body, "hello");
  auto log = proxy_->Requests();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].method, "PUT");
  EXPECT_EQ(log[0].target, "/" + bucket_ + "/k?x=1");
  EXPECT_EQ(log[0].body_bytes, 5u);
  EXPECT_EQ(log[0].status, 200);
  EXPECT_FALSE(log[0].faulted);
}

TEST_F(FaultProxyTest, InjectsEachFault) {
  proxy_->AddRule({FaultKind::kSlowDown, "PUT", "/slow", 0, 1, 1});  // the 2nd matching PUT
  proxy_->AddRule({FaultKind::kDropRequestBody, "PUT", "/dropreq", 3, 0, 1});
  proxy_->AddRule({FaultKind::kDropResponseBody, "GET", "/dropresp", 4, 0, 1});

  EXPECT_EQ(RawHttp(proxy_->port(), "PUT", "/" + bucket_ + "/slow", "a")->status, 200);
  Result<ty::testing::RawHttpResponse> slow =
      RawHttp(proxy_->port(), "PUT", "/" + bucket_ + "/slow", "b");
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(slow->status, 503);
  EXPECT_NE(slow->body.find("<Code>SlowDown</Code>"), std::string::npos);
  EXPECT_EQ(RawHttp(proxy_->port(), "PUT", "/" + bucket_ + "/slow", "c")->status, 200);

  // Dropped mid-body: no response at all, and s3rver never got the whole object. (Real S3
  // discards a PUT whose body ends short; s3rver sometimes keeps the bytes that arrived, so
  // "never stored" would be a race: what must hold is that the 10 bytes never all got through.)
  Result<ty::testing::RawHttpResponse> dropped =
      RawHttp(proxy_->port(), "PUT", "/" + bucket_ + "/dropreq", "0123456789");
  EXPECT_FALSE(dropped.ok());
  Result<ty::testing::RawHttpResponse> stored =
      RawHttp(s3rver_->port(), "GET", "/" + bucket_ + "/dropreq");
  ASSERT_TRUE(stored.ok());
  if (stored->status == 200) {
    EXPECT_LE(stored->body.size(), 3u) << stored->body;
  } else {
    EXPECT_EQ(stored->status, 404);
  }

  ASSERT_EQ(RawHttp(s3rver_->port(), "PUT", "/" + bucket_ + "/dropresp", "0123456789")->status,
            200);
  // Cut after 4 body bytes: the head promises 10, the connection ends after 4.
  Result<ty::testing::RawHttpResponse> cut =
      RawHttp(proxy_->port(), "GET", "/" + bucket_ + "/dropresp");
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->body, "0123");
  EXPECT_NE(cut->head.find("Content-Length: 10"), std::string::npos);
  EXPECT_EQ(RawHttp(proxy_->port(), "GET", "/" + bucket_ + "/dropresp")->body, "0123456789");

  EXPECT_EQ(proxy_->CountRequests("PUT", "/slow"), 3);
  int faulted = 0;
  for (const auto& r : proxy_->Requests()) faulted += r.faulted;
  EXPECT_EQ(faulted, 3);
}

}  // namespace
}  // namespace ty::storage
