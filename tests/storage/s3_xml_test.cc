// The bounds of the S3 XML parser (storage/s3_xml.h): depth, size, DTDs and entities. The
// documents S3 really sends are covered against s3rver in s3_client_test.cc.
#include "storage/s3_xml.h"

#include <gtest/gtest.h>

#include <string>

namespace ty::storage {
namespace {

std::string Nested(int depth) {
  std::string open, close;
  for (int i = 0; i < depth; ++i) {
    open += "<a>";
    close = "</a>" + close;
  }
  return open + close;
}

std::string ErrorInside(int depth) {
  // <Error> at the root with its message `depth` elements deep in total.
  std::string inner = Nested(depth - 2);
  return "<Error><Code>Slow" + inner + "</Code><Message>m</Message></Error>";
}

TEST(S3Xml, ReadsAnErrorDocument) {
  S3ErrorBody e;
  ASSERT_TRUE(
      ParseS3Error("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                   "<Message>a &amp; b</Message></Error>",
                   &e));
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "a & b");
}

TEST(S3Xml, DepthAtTheLimitIsRead) {
  S3ErrorBody e;
  EXPECT_TRUE(ParseS3Error(ErrorInside(kMaxS3XmlDepth), &e));
  EXPECT_EQ(e.message, "m");
}

TEST(S3Xml, DepthPastTheLimitIsRefusedWhileParsing) {
  S3ErrorBody e;
  EXPECT_FALSE(ParseS3Error(ErrorInside(kMaxS3XmlDepth + 1), &e));
  // Far beyond libxml2's own limit (256) and unclosed: refused at level 33, never built.
  EXPECT_FALSE(ParseS3Error("<Error>" + std::string(1000000, '<'), &e));
  std::string deep = "<ListBucketResult>";
  for (int i = 0; i < 100000; ++i) deep += "<Contents>";
  EXPECT_FALSE(ParseListObjectsV2(deep).ok());
}

TEST(S3Xml, OversizedBodyIsRefused) {
  std::string big =
      "<Error><Code>C</Code><Message>" + std::string(kMaxS3XmlBytes, 'x') + "</Message></Error>";
  S3ErrorBody e;
  EXPECT_FALSE(ParseS3Error(big, &e));
}

TEST(S3Xml, DoctypeIsRefused) {
  S3ErrorBody e;
  EXPECT_FALSE(ParseS3Error("<!DOCTYPE Error><Error><Code>C</Code></Error>", &e));
}

TEST(S3Xml, ExternalEntityIsNeverRead) {
  S3ErrorBody e;
  EXPECT_FALSE(
      ParseS3Error("<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY x SYSTEM "
                   "\"file:///etc/passwd\">]><Error><Code>&x;</Code></Error>",
                   &e));
  EXPECT_EQ(e.code.find("root"), std::string::npos);
}

TEST(S3Xml, BillionLaughsIsRefused) {
  std::string doc = "<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY l0 \"ha\">";
  for (int i = 1; i < 10; ++i) {
    doc += "<!ENTITY l" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j) doc += "&l" + std::to_string(i - 1) + ";";
    doc += "\">";
  }
  doc += "]><Error><Code>&l9;</Code></Error>";
  S3ErrorBody e;
  EXPECT_FALSE(ParseS3Error(doc, &e));
  EXPECT_TRUE(e.code.empty());
}

TEST(S3Xml, UndeclaredEntityIsMalformed) {
  EXPECT_FALSE(ParseInitiateMultipartUpload("<R><UploadId>&x;</UploadId></R>").ok());
}

}  // namespace
}  // namespace ty::storage
