// ApiRouter with the server's codecs (CBOR, JSON, query, in the server's order), fake services
// on the real CloudWatch and Logs models, and requests signed for real (common/sigv4
// SignRequest): routing by target prefix, path and scope, and every way a request can fail.
#include "api/router.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <zlib.h>
#include <nlohmann/json.hpp>

#include "api/cbor.h"
#include "api/cbor_codec.h"
#include "api/content_encoding.h"
#include "api/credentials.h"
#include "api/json_codec.h"
#include "api/query_codec.h"
#include "api/sigv4_verifier.h"
#include "testing/fake_clock.h"

namespace ty::api {
namespace {

using nlohmann::json;

constexpr const char* kKey = "AKIAROUTERTEST000001";
constexpr const char* kSecret = "router-test-secret-router-test-secret-00";

std::string ReadFixture(const std::string& relative) {
  std::ifstream in(std::string(TY_TEST_FIXTURES_DIR) + "/" + relative, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FakeService final : public Service {
 public:
  using Handler = std::function<ServiceOutcome(const Operation&, const json&)>;
  FakeService(std::shared_ptr<const ServiceModel> model, Handler handler)
      : model_(std::move(model)), handler_(std::move(handler)) {}
  const ServiceModel& model() const override { return *model_; }
  ServiceOutcome Call(const CallContext& ctx, const Operation& op, const json& input) override {
    calls.push_back(op.name);
    last_input = input;
    last_account = ctx.caller.account_id;
    return handler_(op, input);
  }
  std::vector<std::string> calls;
  json last_input;
  std::string last_account;

 private:
  std::shared_ptr<const ServiceModel> model_;
  Handler handler_;
};

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    store_.Add(AccessKey{kKey, kSecret, "111122223333"});
    verifier_ = std::make_unique<SigV4Verifier>(&store_, "us-east-1");
    RouterOptions options;
    options.max_body_bytes = 4096;
    router_ = std::make_unique<ApiRouter>(options, verifier_.get(), &clock_);
    router_->AddCodec(std::make_unique<CborCodec>());
    router_->AddCodec(std::make_unique<JsonCodec>());
    router_->AddCodec(std::make_unique<QueryCodec>());
    // The full CloudWatch model (with alarms), as the codec vectors use it.
    auto cloudwatch_model = ServiceModel::Load(ReadFixture("codecs/cloudwatch-model.json"));
    EXPECT_TRUE(cloudwatch_model.ok());
    cloudwatch_ = std::make_shared<FakeService>(
        std::move(cloudwatch_model).value(), [this](const Operation& op, const json&) {
          if (throw_) throw std::runtime_error("secret /var/lib/path in the message");
          if (op.name == "DescribeAlarms") {
            return ServiceOutcome(json{{"MetricAlarms", json::array()}});
          }
          if (op.name == "DeleteAlarms") {
            return ServiceOutcome(ApiError{"ResourceNotFound", "alarm a does not exist", 404});
          }
          return ServiceOutcome(json{{"Metrics", json::array({{{"MetricName", "m"}}})}});
        });
    logs_ = std::make_shared<FakeService>(
        ServiceModel::Embedded("logs"), [](const Operation&, const json&) {
          return ServiceOutcome(json{{"logGroups", json::array()}});
        });
    router_->AddService(cloudwatch_);
    router_->AddService(logs_);
  }

  HttpRequestParts Signed(HttpRequestParts req, const std::string& scope) {
    req.headers.emplace_back("Host", "localhost:8080");
    SignRequest(&req, AwsCredentials{kKey, kSecret, ""}, "us-east-1", scope, clock_.Now());
    return req;
  }

  static HttpRequestParts Json(const std::string& target, const std::string& body) {
    HttpRequestParts req;
    req.method = "POST";
    req.path = "/";
    req.headers = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
    req.body = body;
    return req;
  }
  static HttpRequestParts Form(const std::string& body) {
    HttpRequestParts req;
    req.method = "POST";
    req.path = "/";
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    req.body = body;
    return req;
  }
  static HttpRequestParts Cbor(const std::string& op, const std::string& body) {
    HttpRequestParts req;
    req.method = "POST";
    req.path = "/service/GraniteServiceVersion20100801/operation/" + op;
    req.headers = {{"Smithy-Protocol", "rpc-v2-cbor"}, {"Content-Type", "application/cbor"}};
    req.body = body;
    return req;
  }

  static std::string Header(const WireResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }
  static json JsonBody(const WireResponse& r) { return json::parse(r.body, nullptr, false); }
  // The CBOR error's __type (the second text of {"__type": .., "message": ..}).
  static std::string CborType(const WireResponse& r) {
    CborItem item;
    if (!ReadCbor(r.body, {}, &item).empty() || item.items.size() < 2) return "";
    return item.items[1].s;
  }

  ty::testing::FakeClock clock_{FromEpochMillis(1767225600000)};
  CredentialStore store_;
  std::unique_ptr<SigV4Verifier> verifier_;
  std::unique_ptr<ApiRouter> router_;
  std::shared_ptr<FakeService> cloudwatch_;
  std::shared_ptr<FakeService> logs_;
  bool throw_ = false;
};

TEST_F(RouterTest, JsonIsRoutedByItsTargetPrefix) {
  WireResponse r =
      router_->Handle(Signed(Json("Logs_20140328.DescribeLogGroups", R"({"limit": 5})"), "logs"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(JsonBody(r), json::parse(R"({"logGroups": []})"));
  EXPECT_EQ(logs_->calls, std::vector<std::string>{"DescribeLogGroups"});
  EXPECT_EQ(logs_->last_input, json::parse(R"({"limit": 5})"));
  EXPECT_EQ(logs_->last_account, "111122223333");
  EXPECT_FALSE(Header(r, "x-amzn-RequestId").empty());
}

TEST_F(RouterTest, QueryIsRoutedByTheCredentialScope) {
  WireResponse r = router_->Handle(
      Signed(Form("Action=ListMetrics&Version=2010-08-01&Namespace=ns"), "monitoring"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/xml");
  EXPECT_NE(r.body.find("<ListMetricsResult><Metrics><member><MetricName>m</MetricName>"
                        "</member></Metrics></ListMetricsResult>"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("<RequestId>" + Header(r, "x-amzn-RequestId") + "</RequestId>"),
            std::string::npos);
  EXPECT_EQ(cloudwatch_->last_input, json::parse(R"({"Namespace": "ns"})"));
}

TEST_F(RouterTest, CborIsRoutedByThePathsService) {
  WireResponse r = router_->Handle(Signed(Cbor("DescribeAlarms", "\xa0"), "monitoring"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/cbor");
  EXPECT_EQ(Header(r, "Smithy-Protocol"), "rpc-v2-cbor");
  EXPECT_EQ(cloudwatch_->calls, std::vector<std::string>{"DescribeAlarms"});
}

TEST_F(RouterTest, AScopeForAnotherServiceIsInvalidSignature) {
  // JSON to Logs signed for CloudWatch.
  WireResponse r =
      router_->Handle(Signed(Json("Logs_20140328.DescribeLogGroups", "{}"), "monitoring"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(JsonBody(r)["__type"], "InvalidSignatureException");
  // Query signed for logs, which speaks no query.
  r = router_->Handle(Signed(Form("Action=ListMetrics&Version=2010-08-01"), "logs"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("<Code>InvalidSignatureException</Code>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Credential should be scoped to correct service"), std::string::npos);
  // CBOR to CloudWatch signed for sagemaker.
  r = router_->Handle(Signed(Cbor("DescribeAlarms", "\xa0"), "sagemaker"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(CborType(r), "com.amazonaws.cloudwatch#InvalidSignatureException");
  EXPECT_TRUE(cloudwatch_->calls.empty());
  EXPECT_TRUE(logs_->calls.empty());
}

TEST_F(RouterTest, AWrongSignatureIsRefusedBeforeDecoding) {
  HttpRequestParts req = Signed(Form("Action=ListMetrics&Version=2010-08-01"), "monitoring");
  req.body = "Action=DescribeAlarms&Version=2010-08-01";
  WireResponse r = router_->Handle(req);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("<Code>InvalidSignatureException</Code>"), std::string::npos) << r.body;
  EXPECT_TRUE(cloudwatch_->calls.empty());
}

TEST_F(RouterTest, UnknownOperationsGetTheProtocolsError) {
  WireResponse r = router_->Handle(Signed(Json("Logs_20140328.Nope", "{}"), "logs"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(JsonBody(r)["__type"], "UnknownOperationException");
  r = router_->Handle(Signed(Form("Action=Nope&Version=2010-08-01"), "monitoring"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("<Code>InvalidAction</Code>"), std::string::npos) << r.body;
  r = router_->Handle(Signed(Cbor("Nope", ""), "monitoring"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(CborType(r), "com.amazonaws.cloudwatch#UnknownOperationException");
  // A target prefix no service has.
  r = router_->Handle(Signed(Json("AWSEvents.PutRule", "{}"), "events"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(JsonBody(r)["__type"], "UnknownOperationException");
  EXPECT_TRUE(cloudwatch_->calls.empty());
}

TEST_F(RouterTest, ARequestInNoProtocolGetsAnAwsJsonErrorThoughCborIsFirst) {
  HttpRequestParts req;
  req.method = "GET";
  req.path = "/nothing";
  WireResponse r = router_->Handle(req);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/x-amz-json-1.1");
  EXPECT_EQ(JsonBody(r)["__type"], "UnknownOperationException");
  WireResponse rendered = router_->RenderError(req, {"SerializationException", "bad head", 400});
  EXPECT_EQ(JsonBody(rendered)["__type"], "SerializationException");
}

TEST_F(RouterTest, AnOversizedBodyIsRefusedInTheRequestsProtocol) {
  std::string big = "Action=ListMetrics&Version=2010-08-01&Namespace=" + std::string(5000, 'n');
  WireResponse r = router_->Handle(Signed(Form(big), "monitoring"));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("<Code>SerializationException</Code>"), std::string::npos) << r.body;
  EXPECT_TRUE(cloudwatch_->calls.empty());
}

TEST_F(RouterTest, InvalidInputIsAValidationErrorBeforeTheService) {
  // ListMetrics' Namespace has a max length of 255 and a pattern.
  WireResponse r = router_->Handle(
      Signed(Form("Action=ListMetrics&Version=2010-08-01&Namespace=" + std::string(300, 'n')),
             "monitoring"));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(cloudwatch_->calls.empty());
  // Malformed CBOR.
  r = router_->Handle(Signed(Cbor("ListMetrics", "\xa1\x61"), "monitoring"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(CborType(r), "com.amazonaws.cloudwatch#SerializationException");
  EXPECT_TRUE(cloudwatch_->calls.empty());
}

TEST_F(RouterTest, ConstraintViolationsTakeTheErrorTheOperationModels) {
  // CloudWatch models MissingParameter and InvalidParameterValue, not ValidationException.
  WireResponse r = router_->Handle(
      Signed(Form("Action=GetMetricStatistics&Version=2010-08-01&MetricName=m&Period=60&"
                  "StartTime=2026-01-01T00%3A00%3A00Z&EndTime=2026-01-01T01%3A00%3A00Z"),
             "monitoring"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("<Code>MissingParameter</Code>"), std::string::npos) << r.body;
  r = router_->Handle(
      Signed(Form("Action=ListMetrics&Version=2010-08-01&Namespace=" + std::string(300, 'n')),
             "monitoring"));
  EXPECT_NE(r.body.find("<Code>InvalidParameterValue</Code>"), std::string::npos) << r.body;
  // PutMetricAlarm models neither: the query services' common ValidationError.
  r = router_->Handle(Signed(Form("Action=PutMetricAlarm&Version=2010-08-01&AlarmName=a&"
                                  "EvaluationPeriods=1&ComparisonOperator=Sideways"),
                             "monitoring"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("<Code>ValidationError</Code>"), std::string::npos) << r.body;
  // Logs models InvalidParameterException.
  r = router_->Handle(
      Signed(Json("Logs_20140328.DescribeLogGroups", R"({"limit": 5000})"), "logs"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("InvalidParameterException"), std::string::npos) << r.body;
  EXPECT_TRUE(cloudwatch_->calls.empty());
}

TEST_F(RouterTest, ModeledErrorsKeepTheirQueryCodeAndStatus) {
  WireResponse r = router_->Handle(
      Signed(Form("Action=DeleteAlarms&Version=2010-08-01&AlarmNames.member.1=a"), "monitoring"));
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("<Type>Sender</Type><Code>ResourceNotFound</Code>"), std::string::npos)
      << r.body;
  r = router_->Handle(Signed(Cbor("DeleteAlarms",
                                  "\xa1\x6a"
                                  "AlarmNames\x81\x61"
                                  "a"),
                             "monitoring"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Header(r, "x-amzn-query-error"), "ResourceNotFound;Sender");
}

TEST_F(RouterTest, AThrowingServiceIsAnInternalFailureWithTheMessageRedacted) {
  throw_ = true;
  WireResponse r =
      router_->Handle(Signed(Form("Action=ListMetrics&Version=2010-08-01"), "monitoring"));
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("<Type>Receiver</Type><Code>InternalFailure</Code>"), std::string::npos)
      << r.body;
  EXPECT_EQ(r.body.find("/var/lib/path"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(Header(r, "x-amzn-RequestId")), std::string::npos);
  // The router keeps serving.
  throw_ = false;
  r = router_->Handle(Signed(Form("Action=ListMetrics&Version=2010-08-01"), "monitoring"));
  EXPECT_EQ(r.status, 200);
}

// gzip as botocore and the JS SDK send it (a gzip wrapper around deflate).
std::string Gzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST_F(RouterTest, AGzippedBodyIsVerifiedAsSentAndDecodedInflated) {
  HttpRequestParts req = Json("Logs_20140328.DescribeLogGroups", R"({"limit": 7})");
  req.body = Gzip(req.body);
  req.headers.emplace_back("Content-Encoding", "gzip");
  WireResponse r = router_->Handle(Signed(req, "logs"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(logs_->last_input, json::parse(R"({"limit": 7})"));
}

TEST_F(RouterTest, BadGzipBodiesAndUnknownEncodingsAreTheProtocolsError) {
  std::string good = Gzip(R"({"limit": 7})");
  std::string bomb = Gzip(std::string(100000, ' '));  // 100 kB of spaces: past the 4 KiB limit
  for (const auto& [body, encoding, status] :
       std::vector<std::tuple<std::string, std::string, int>>{
           {"not gzip at all", "gzip", 400},
           {good.substr(0, good.size() - 6), "gzip", 400},  // truncated
           {good + "x", "gzip", 400},                       // bytes after the stream
           {"", "gzip", 400},
           {bomb, "gzip", 400},
           {R"({"limit": 7})", "br", 415}}) {
    HttpRequestParts req = Json("Logs_20140328.DescribeLogGroups", body);
    req.headers.emplace_back("Content-Encoding", encoding);
    WireResponse r = router_->Handle(Signed(req, "logs"));
    EXPECT_EQ(r.status, status) << encoding << " " << body.size() << ": " << r.body;
    EXPECT_EQ(JsonBody(r).value("__type", ""), "SerializationException") << r.body;
  }
  EXPECT_TRUE(logs_->calls.empty());
}

TEST(InflateGzipTest, RoundTripsAndBoundsTheOutput) {
  std::string text(50000, 'a');
  std::string out, why;
  ASSERT_TRUE(InflateGzip(Gzip(text), text.size(), &out, &why)) << why;
  EXPECT_EQ(out, text);
  EXPECT_FALSE(InflateGzip(Gzip(text), text.size() - 1, &out, &why));
  EXPECT_NE(why.find("limit"), std::string::npos) << why;
}

}  // namespace
}  // namespace ty::api
