#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "api/api_error.h"
#include "common/fs.h"
#include "services/sagemaker/training_job_request.h"
#include "testing/temp_dir.h"

namespace ty::services {
using api::ApiError;
using api::RedactServerError;
using api::ToApiError;

namespace {

std::string ReadAll(std::FILE* f) {
  std::rewind(f);
  std::string out;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  return out;
}

TEST(RedactServerErrorTest, ServerErrorsHideTheirDetailButLogIt) {
  const std::string sql_detail =
      "INSERT INTO log_events (job_id, stream) VALUES (?, ?): database or disk is full "
      "(/root/.trainyard/trainyard.db)";
  struct Row {
    Status status;
    std::string type;
    int http;
  };
  for (const Row& row : {Row{IoError(sql_detail), "InternalFailure", 500},
                         Row{Internal(sql_detail), "InternalFailure", 500},
                         Row{Unavailable(sql_detail), "ServiceUnavailable", 503}}) {
    std::FILE* log = std::tmpfile();
    ASSERT_NE(log, nullptr);
    ApiError e = RedactServerError(ToApiError(row.status), "req-123", log);
    EXPECT_EQ(e.type, row.type);
    EXPECT_EQ(e.http_status, row.http);
    EXPECT_EQ(e.message.find("INSERT"), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find("/root"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("req-123"), std::string::npos) << e.message;
    std::string logged = ReadAll(log);
    EXPECT_NE(logged.find("req-123"), std::string::npos) << logged;
    EXPECT_NE(logged.find(sql_detail), std::string::npos) << logged;
    std::fclose(log);
  }
}

TEST(RedactServerErrorTest, ClientErrorsKeepTheirMessage) {
  ApiError e = RedactServerError(ToApiError(InvalidArgument("bad name")), "r", nullptr);
  EXPECT_EQ(e.type, "ValidationException");
  EXPECT_EQ(e.message, "bad name");
}

TEST(RequestPolicyTest, AccountsWithTheirOwnRootsAreHeldToThem) {
  testing::TempDir dir("ty_api_policy_test_");
  ASSERT_TRUE(MakeDirs(dir.Sub("a")).ok());
  ASSERT_TRUE(MakeDirs(dir.Sub("b")).ok());
  std::string a = *RealPath(dir.Sub("a")), b = *RealPath(dir.Sub("b"));
  RequestPolicy policy;
  policy.file_roots = {a, b};
  policy.account_file_roots["222222222222"] = {b};
  // An account without its own roots gets the server's.
  EXPECT_TRUE(CheckUri("S3OutputPath", "file://" + a, policy.ForAccount("111111111111")).ok());
  // Account B may not point at A's data; the refusal names the URI.
  Status s =
      CheckUri("S3Uri of channel 'train'", "file://" + a + "/x", policy.ForAccount("222222222222"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'file://" + a + "/x'"), std::string::npos) << s.message();
  EXPECT_TRUE(
      CheckUri("S3OutputPath", "file://" + b + "/out", policy.ForAccount("222222222222")).ok());
}

}  // namespace
}  // namespace ty::services
