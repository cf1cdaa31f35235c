#include "api/sigv4_verifier.h"

#include <gtest/gtest.h>

#include <strings.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/sigv4.h"

namespace ty::api {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

struct Vector {
  std::string name;
  HttpRequestParts unsigned_request;  // with Host, before signing
  HttpRequestParts signed_request;    // as botocore sent it
  AwsCredentials creds;
  std::string region;
  std::string authorization;
  TimePoint time;
};

std::vector<Vector> LoadVectors() {
  std::ifstream in(std::string(TY_TEST_FIXTURES_DIR) + "/sigv4_vectors.json");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  std::vector<Vector> out;
  if (doc.is_discarded()) return out;
  for (const auto& v : doc["vectors"]) {
    Vector vec;
    vec.name = v["name"];
    HttpRequestParts base;
    base.method = v["method"];
    base.path = v["path"];
    base.query = v["query"];
    base.body = v["body"];
    vec.signed_request = base;
    base.headers.emplace_back("Host", v["host"].get<std::string>());
    for (const auto& h : v["headers"]) base.headers.emplace_back(h[0], h[1]);
    vec.unsigned_request = base;
    for (const auto& h : v["signed_headers"]) vec.signed_request.headers.emplace_back(h[0], h[1]);
    vec.creds = {v["credentials"]["access_key_id"], v["credentials"]["secret_access_key"],
                 v["credentials"]["session_token"]};
    vec.region = v["region"];
    vec.authorization = v["authorization"];
    vec.time = std::chrono::system_clock::time_point(seconds(v["epoch_seconds"].get<int64_t>()));
    out.push_back(std::move(vec));
  }
  return out;
}

void SetHeader(HttpRequestParts* req, const std::string& name, const std::string& value) {
  for (auto& [k, v] : req->headers) {
    if (k.size() == name.size() && strcasecmp(k.c_str(), name.c_str()) == 0) {
      v = value;
      return;
    }
  }
  req->headers.emplace_back(name, value);
}

void RemoveHeader(HttpRequestParts* req, const std::string& name) {
  std::erase_if(req->headers,
                [&](const auto& h) { return strcasecmp(h.first.c_str(), name.c_str()) == 0; });
}

class SigV4VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vectors_ = LoadVectors();
    ASSERT_EQ(vectors_.size(), 5u) << "fixture " TY_TEST_FIXTURES_DIR "/sigv4_vectors.json";
    for (const Vector& v : vectors_) {
      store_.Add({v.creds.access_key_id, v.creds.secret_access_key, "123456789012",
                  v.creds.session_token});
    }
  }

  // The first vector: DescribeTrainingJob in us-east-1.
  const Vector& Describe() const { return vectors_[0]; }

  std::variant<Caller, ApiError> VerifyIn(const std::string& region, const HttpRequestParts& req,
                                          TimePoint now) const {
    SigV4Verifier verifier(&store_, region);
    return verifier.Verify(req, now);
  }

  std::string ErrorType(const std::variant<Caller, ApiError>& r) const {
    if (std::holds_alternative<Caller>(r)) return "OK";
    EXPECT_EQ(std::get<ApiError>(r).http_status, 400);
    return std::get<ApiError>(r).type;
  }
  std::string ErrorMessage(const std::variant<Caller, ApiError>& r) const {
    return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r).message : "OK";
  }

  std::vector<Vector> vectors_;
  CredentialStore store_;
};

TEST_F(SigV4VerifierTest, SignRequestMatchesBotocoreByteForByte) {
  for (const Vector& v : vectors_) {
    HttpRequestParts req = v.unsigned_request;
    SignRequest(&req, v.creds, v.region, "sagemaker", v.time);
    const std::string* auth = FindHeader(req, "Authorization");
    ASSERT_NE(auth, nullptr) << v.name;
    EXPECT_EQ(*auth, v.authorization) << v.name;
  }
}

TEST_F(SigV4VerifierTest, AcceptsEveryBotocoreSignedRequest) {
  for (const Vector& v : vectors_) {
    auto r = VerifyIn(v.region, v.signed_request, v.time);
    ASSERT_EQ(ErrorType(r), "OK") << v.name << ": " << ErrorMessage(r);
    EXPECT_EQ(std::get<Caller>(r).access_key_id, v.creds.access_key_id);
    EXPECT_EQ(std::get<Caller>(r).account_id, "123456789012");
  }
}

TEST_F(SigV4VerifierTest, AcceptsWithinSkewAndLowercaseHeaderNames) {
  HttpRequestParts req = Describe().signed_request;
  for (auto& [k, v] : req.headers) {
    for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  EXPECT_EQ(ErrorType(VerifyIn("us-east-1", req, Describe().time + minutes(5))), "OK");
  EXPECT_EQ(ErrorType(VerifyIn("us-east-1", req, Describe().time - minutes(5))), "OK");
}

TEST_F(SigV4VerifierTest, OurSignedRequestVerifiesRepeatedly) {
  // Also exercises the signing-key cache from several threads.
  HttpRequestParts req = Describe().unsigned_request;
  SignRequest(&req, Describe().creds, "us-east-1", "sagemaker", Describe().time);
  SigV4Verifier verifier(&store_, "us-east-1");
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        ok += std::holds_alternative<Caller>(verifier.Verify(req, Describe().time));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 800);
}

struct Case {
  const char* name;
  std::function<void(HttpRequestParts*)> mutate;
  std::string region = "us-east-1";
  seconds offset{0};
  std::string want_type;
  std::string want_message;  // exact when non-empty
};

TEST_F(SigV4VerifierTest, RejectionsTable) {
  const std::string kMismatch =
      "The request signature we calculated does not match the signature you provided. Check "
      "your AWS Secret Access Key and signing method. Consult the service documentation for "
      "details.";
  auto replace_auth = [](std::string from, std::string to) {
    return [from, to](HttpRequestParts* r) {
      std::string a = *FindHeader(*r, "authorization");
      a.replace(a.find(from), from.size(), to);
      SetHeader(r, "Authorization", a);
    };
  };
  auto resign_with = [this](AwsCredentials creds, std::string region, std::string service) {
    return [=, this](HttpRequestParts* r) {
      *r = Describe().unsigned_request;
      SignRequest(r, creds, region, service, Describe().time);
    };
  };
  AwsCredentials creds = Describe().creds;
  AwsCredentials wrong_secret = creds;
  wrong_secret.secret_access_key = "not-the-secret";
  AwsCredentials unknown = creds;
  unknown.access_key_id = "AKIAUNKNOWNUNKNOWN00";

  std::vector<Case> cases = {
      {"tampered_body", [](auto* r) { r->body = "{\"TrainingJobName\": \"other\"}"; }, "us-east-1",
       seconds(0), "InvalidSignatureException", kMismatch},
      {"tampered_target",
       [](auto* r) { SetHeader(r, "X-Amz-Target", "SageMaker.DeleteTrainingJob"); }, "us-east-1",
       seconds(0), "InvalidSignatureException", kMismatch},
      {"tampered_content_type", [](auto* r) { SetHeader(r, "content-type", "text/plain"); },
       "us-east-1", seconds(0), "InvalidSignatureException", kMismatch},
      {"tampered_host", [](auto* r) { SetHeader(r, "Host", "evil:8080"); }, "us-east-1", seconds(0),
       "InvalidSignatureException", kMismatch},
      {"tampered_signature", replace_auth("Signature=e", "Signature=f"), "us-east-1", seconds(0),
       "InvalidSignatureException", kMismatch},
      {"wrong_secret", resign_with(wrong_secret, "us-east-1", "sagemaker"), "us-east-1", seconds(0),
       "InvalidSignatureException", kMismatch},
      {"unknown_key", resign_with(unknown, "us-east-1", "sagemaker"), "us-east-1", seconds(0),
       "UnrecognizedClientException", "The security token included in the request is invalid."},
      {"wrong_service", resign_with(creds, "us-east-1", "s3"), "us-east-1", seconds(0),
       "InvalidSignatureException",
       "Credential should be scoped to correct service: 'sagemaker'. "},
      {"wrong_region", [](auto*) {}, "eu-west-1", seconds(0), "InvalidSignatureException",
       "Credential should be scoped to a valid region. "},
      {"expired_6min", [](auto*) {}, "us-east-1", seconds(360), "InvalidSignatureException",
       "Signature expired: 20240312T141610Z is now earlier than 20240312T141710Z "
       "(20240312T142210Z - 5 min.)"},
      {"future_6min", [](auto*) {}, "us-east-1", seconds(-360), "InvalidSignatureException",
       "Signature not yet current: 20240312T141610Z is still later than 20240312T141510Z "
       "(20240312T141010Z + 5 min.)"},
      {"missing_authorization", [](auto* r) { RemoveHeader(r, "authorization"); }, "us-east-1",
       seconds(0), "MissingAuthenticationTokenException",
       "Request is missing Authentication Token"},
      {"presigned_query",
       [](auto* r) {
         RemoveHeader(r, "authorization");
         r->query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00";
       },
       "us-east-1", seconds(0), "IncompleteSignatureException", ""},
      {"missing_signature", replace_auth(", Signature=", ", Sig="), "us-east-1", seconds(0),
       "IncompleteSignatureException", ""},
      {"wrong_algorithm", replace_auth("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "us-east-1",
       seconds(0), "IncompleteSignatureException", ""},
      {"missing_equal_sign", replace_auth("SignedHeaders=", "SignedHeaders"), "us-east-1",
       seconds(0), "IncompleteSignatureException", ""},
      {"bad_scope_shape", replace_auth("/aws4_request", ""), "us-east-1", seconds(0),
       "IncompleteSignatureException",
       "Authorization header: Credential must have exactly 5 slash-delimited elements, e.g. "
       "keyid/date/region/service/term, got 'AKIAIOSFODNN7EXAMPLE/20240312/us-east-1/"
       "sagemaker'"},
      {"missing_amz_date", [](auto* r) { RemoveHeader(r, "x-amz-date"); }, "us-east-1", seconds(0),
       "IncompleteSignatureException", ""},
      {"malformed_amz_date", [](auto* r) { SetHeader(r, "X-Amz-Date", "2024-03-12T14:16:10Z"); },
       "us-east-1", seconds(0), "IncompleteSignatureException", ""},
      {"scope_date_mismatch", [](auto* r) { SetHeader(r, "X-Amz-Date", "20240313T000000Z"); },
       "us-east-1", seconds(0), "InvalidSignatureException",
       "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
       "HTTP: '20240312' != '20240313', from '20240313T000000Z'."},
      {"host_not_signed", replace_auth("content-type;host;", "content-type;"), "us-east-1",
       seconds(0), "IncompleteSignatureException", ""},
      {"unsigned_session_token", [](auto* r) { SetHeader(r, "X-Amz-Security-Token", "t"); },
       "us-east-1", seconds(0), "IncompleteSignatureException", ""},
  };
  for (const Case& c : cases) {
    HttpRequestParts req = Describe().signed_request;
    c.mutate(&req);
    auto r = VerifyIn(c.region, req, Describe().time + c.offset);
    EXPECT_EQ(ErrorType(r), c.want_type) << c.name << ": " << ErrorMessage(r);
    if (!c.want_message.empty()) {
      EXPECT_EQ(ErrorMessage(r), c.want_message) << c.name;
    }
  }
}

// Issue 10 (F9): a bogus X-Amz-Security-Token used to be accepted as long as it was signed.
TEST_F(SigV4VerifierTest, BogusSecurityTokenOnLongTermKeyIsRefused) {
  HttpRequestParts req = Describe().unsigned_request;
  AwsCredentials with_token = Describe().creds;
  with_token.session_token = "bogus";
  SignRequest(&req, with_token, "us-east-1", "sagemaker", Describe().time);
  auto r = VerifyIn("us-east-1", req, Describe().time);
  EXPECT_EQ(ErrorType(r), "UnrecognizedClientException");
  EXPECT_EQ(ErrorMessage(r), "The security token included in the request is invalid.");
}

TEST_F(SigV4VerifierTest, ConfiguredSessionTokenMustMatch) {
  const Vector* session = nullptr;
  for (const Vector& v : vectors_) {
    if (!v.creds.session_token.empty()) session = &v;
  }
  ASSERT_NE(session, nullptr);
  struct Case {
    const char* name;
    std::string token;  // empty: no X-Amz-Security-Token at all
    const char* want;
  };
  const Case cases[] = {
      {"same", session->creds.session_token, "OK"},
      {"other", "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==x",
       "UnrecognizedClientException"},
      {"missing", "", "UnrecognizedClientException"},
  };
  for (const Case& c : cases) {
    HttpRequestParts req = session->unsigned_request;
    AwsCredentials creds = session->creds;
    creds.session_token = c.token;
    SignRequest(&req, creds, session->region, "sagemaker", session->time);
    auto r = VerifyIn(session->region, req, session->time);
    EXPECT_EQ(ErrorType(r), c.want) << c.name << ": " << ErrorMessage(r);
  }
}

TEST_F(SigV4VerifierTest, IncompleteMessagesNameWhatIsMissing) {
  HttpRequestParts req = Describe().signed_request;
  SetHeader(&req, "Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/x");
  RemoveHeader(&req, "X-Amz-Date");
  auto r = VerifyIn("us-east-1", req, Describe().time);
  EXPECT_EQ(ErrorMessage(r),
            "Authorization header requires 'Signature' parameter. Authorization header requires "
            "'SignedHeaders' parameter. Authorization header requires existence of either a "
            "'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 "
            "Credential=AKIAIOSFODNN7EXAMPLE/x");
}

}  // namespace
}  // namespace ty::api
