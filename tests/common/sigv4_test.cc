#include "common/sigv4.h"

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace ty {
namespace {

TimePoint At(const std::string& amz_date) {
  TimePoint t;
  EXPECT_TRUE(ParseAmzDate(amz_date, &t)) << amz_date;
  return t;
}

TEST(SigV4Test, SigningKeyMatchesAwsDocumentationExample) {
  // "Examples of how to derive a signing key for Signature Version 4" (AWS General Reference).
  EXPECT_EQ(HexEncode(SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                 "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Test, GetVanillaFromAwsTestSuite) {
  HttpRequestParts req{"GET", "/", "", {{"Host", "example.amazonaws.com"}}, ""};
  SignRequest(&req, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""}, "us-east-1",
              "service", At("20150830T123600Z"));
  const std::string* auth = FindHeader(req, "authorization");
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(*auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  ASSERT_NE(FindHeader(req, "X-AMZ-DATE"), nullptr);
  EXPECT_EQ(*FindHeader(req, "X-AMZ-DATE"), "20150830T123600Z");
}

TEST(SigV4Test, TrimAllCollapsesAndTrims) {
  EXPECT_EQ(TrimAll("  a   b\t c  "), "a b c");
  EXPECT_EQ(TrimAll(""), "");
  EXPECT_EQ(TrimAll("   "), "");
  EXPECT_EQ(TrimAll("x"), "x");
}

TEST(SigV4Test, CanonicalRequestLayout) {
  HttpRequestParts req{"POST",
                       "",
                       "b=2&a=1&a=0",
                       {{"Host", "h:1"},
                        {"X-Amz-Target", " SageMaker.X "},
                        {"x-amz-meta", "v1"},
                        {"X-AMZ-META", "v2"},
                        {"User-Agent", "not signed"}},
                       "{}"};
  EXPECT_EQ(CanonicalRequest(req, {"x-amz-target", "host", "x-amz-meta", "host"}),
            "POST\n/\na=0&a=1&b=2\n"
            "host:h:1\nx-amz-meta:v1,v2\nx-amz-target:SageMaker.X\n\n"
            "host;x-amz-meta;x-amz-target\n" +
                Sha256Hex("{}"));
  EXPECT_EQ(SignedHeadersString({"b", "a", "b"}), "a;b");
  EXPECT_EQ(CredentialScope("20240312", "us-east-1", "sagemaker"),
            "20240312/us-east-1/sagemaker/aws4_request");
}

TEST(SigV4Test, StringToSignLayout) {
  EXPECT_EQ(StringToSign("20240312T141610Z", "scope", "cr"),
            "AWS4-HMAC-SHA256\n20240312T141610Z\nscope\n" + Sha256Hex("cr"));
}

TEST(SigV4Test, SignRequestReplacesOldAuthAndAddsSessionToken) {
  HttpRequestParts req{"POST",
                       "/",
                       "",
                       {{"host", "localhost"},
                        {"Authorization", "stale"},
                        {"x-amz-date", "19990101T000000Z"},
                        {"Content-Type", "application/x-amz-json-1.1"},
                        {"Content-Length", "2"}},
                       "{}"};
  SignRequest(&req, {"AKID", "secret", "tok"}, "us-east-1", "sagemaker", At("20240312T141610Z"));
  int auth_count = 0;
  for (const auto& [k, v] : req.headers)
    auth_count += (k == "Authorization" || k == "authorization");
  EXPECT_EQ(auth_count, 1);
  EXPECT_EQ(*FindHeader(req, "x-amz-date"), "20240312T141610Z");
  EXPECT_EQ(*FindHeader(req, "x-amz-security-token"), "tok");
  const std::string& auth = *FindHeader(req, "authorization");
  EXPECT_NE(auth.find("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "),
            std::string::npos)
      << auth;
  EXPECT_NE(auth.find("Credential=AKID/20240312/us-east-1/sagemaker/aws4_request, "),
            std::string::npos);
}

TEST(SigV4Test, SignatureChangesWithBody) {
  HttpRequestParts a{"POST", "/", "", {{"Host", "h"}}, "{\"a\":1}"};
  HttpRequestParts b = a;
  b.body = "{\"a\":2}";
  const TimePoint now = At("20240312T141610Z");
  SignRequest(&a, {"AKID", "s", ""}, "r", "sagemaker", now);
  SignRequest(&b, {"AKID", "s", ""}, "r", "sagemaker", now);
  EXPECT_NE(*FindHeader(a, "authorization"), *FindHeader(b, "authorization"));
}

}  // namespace
}  // namespace ty
