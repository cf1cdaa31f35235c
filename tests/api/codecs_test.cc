// The protocol codecs against botocore. Requests: tools/codec_vectors.py had botocore 1.29 and
// 1.43 serialize requests of every shape kind in each protocol (fixtures/codecs/requests-*.json);
// every one must decode to the document botocore was given. Responses: the documents and errors
// of fixtures/codecs/response_documents.json are encoded by each codec and must equal the
// checked-in fixtures/codecs/responses.json, which tests/e2e/test_codecs.py parses back with
// botocore's own parsers (regenerate it with TY_UPDATE_CODEC_GOLDEN=1 after a deliberate
// change, and run that e2e test).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "api/cbor.h"
#include "api/cbor_codec.h"
#include "api/json_codec.h"
#include "api/query_codec.h"
#include "api/rest_json_codec.h"
#include "api/validator.h"
#include "api/wire_format.h"
#include "common/crypto.h"

namespace ty::api {
namespace {

using nlohmann::json;

const std::string kFixtures = std::string(TY_TEST_FIXTURES_DIR) + "/codecs/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<const ServiceModel> ModelNamed(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const ServiceModel>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  std::shared_ptr<const ServiceModel> model;
  // CloudWatch comes from a fixture: the vectors cover the alarm operations, which the embedded
  // model leaves out until the alarms land.
  if (name == "logs") {
    model = ServiceModel::Embedded(name);
  } else {
    auto loaded = ServiceModel::Load(ReadFile(kFixtures + name + "-model.json"));
    EXPECT_TRUE(loaded.ok()) << name << ": " << loaded.status().message();
    if (loaded.ok()) model = std::move(loaded).value();
  }
  cache[name] = model;
  return model;
}

const ProtocolCodec& CodecNamed(const std::string& protocol) {
  static const JsonCodec kJson;
  static const QueryCodec kQuery;
  static const CborCodec kCbor;
  static const RestJsonCodec kRest({"lambda", "kitchen"});
  if (protocol == "query") return kQuery;
  if (protocol == "smithy-rpc-v2-cbor") return kCbor;
  if (protocol == "rest-json") return kRest;
  return kJson;
}

std::string B64Decode(const std::string& s) {
  std::string raw;
  EXPECT_TRUE(Base64Decode(s, &raw));
  return raw;
}

HttpRequestParts RequestOf(const json& r, const ServiceModel& model) {
  HttpRequestParts req;
  req.method = r["method"];
  req.path = r["path"];
  req.query = r["query"];
  for (const auto& [k, v] : r["headers"].items()) req.headers.emplace_back(k, v);
  req.body = B64Decode(r["body_b64"]);
  // The vectors are not signed; rest-json and query are recognized and routed by the scope.
  req.headers.emplace_back("Authorization",
                           "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/" +
                               model.metadata().SigningName() +
                               "/aws4_request, SignedHeaders=host, Signature=00");
  return req;
}

// JSON equality where numbers compare by value (1 == 1.0), as botocore's documents do.
bool SameDocument(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      if (!b.contains(k) || !SameDocument(v, b[k])) return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!SameDocument(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

void CheckVectors(const std::string& file, size_t min_vectors) {
  json root = json::parse(ReadFile(kFixtures + file), nullptr, false);
  ASSERT_FALSE(root.is_discarded()) << file;
  const json& vectors = root["vectors"];
  ASSERT_GE(vectors.size(), min_vectors);
  std::map<std::string, int> per_protocol;
  for (const json& v : vectors) {
    const std::string name = v["name"];
    SCOPED_TRACE(file + ": " + name);
    auto model = ModelNamed(v["model"]);
    ASSERT_NE(model, nullptr);
    const ProtocolCodec& codec = CodecNamed(v["protocol"]);
    HttpRequestParts req = RequestOf(v["request"], *model);
    EXPECT_TRUE(codec.Recognizes(req));
    // The codecs before this one in the server's order must not claim it.
    for (const char* other : {"smithy-rpc-v2-cbor", "json", "query"}) {
      if (other == v["protocol"]) break;
      EXPECT_FALSE(CodecNamed(other).Recognizes(req)) << other;
    }
    std::string addressed = codec.AddressedService(req);
    if (codec.protocol() == WireProtocol::kJson || codec.protocol() == WireProtocol::kRpcV2Cbor) {
      EXPECT_EQ(addressed, model->metadata().target_prefix);
    } else {
      EXPECT_EQ(addressed, "");
    }
    auto decoded = codec.Decode(req, *model);
    if (auto* err = std::get_if<ApiError>(&decoded)) {
      ADD_FAILURE() << err->type << ": " << err->message;
      continue;
    }
    const DecodedCall& call = std::get<DecodedCall>(decoded);
    EXPECT_EQ(call.operation, v["operation"]);
    EXPECT_TRUE(SameDocument(call.input, v["expected"]))
        << "decoded:  " << call.input.dump() << "\nexpected: " << v["expected"].dump();
    if (auto err = ValidateRequest(*model, call.operation, call.input)) {
      ADD_FAILURE() << "validation: " << err->type << ": " << err->message;
    }
    ++per_protocol[v["protocol"]];
  }
  EXPECT_GT(per_protocol["query"], 0);
  EXPECT_GT(per_protocol["json"], 0);
  EXPECT_GT(per_protocol["rest-json"], 0);
}

TEST(CodecVectorsTest, Botocore129RequestsDecodeToTheirDocuments) {
  CheckVectors("requests-botocore-1.29.json", 25);
}

TEST(CodecVectorsTest, Botocore143RequestsDecodeToTheirDocuments) {
  CheckVectors("requests-botocore-1.43.json", 40);
}

json HeadersJson(const WireResponse& r) {
  json h = json::array();
  for (const auto& [k, v] : r.headers) h.push_back({k, v});
  return h;
}

TEST(CodecResponsesTest, EncodersWriteTheCheckedInResponses) {
  json docs = json::parse(ReadFile(kFixtures + "response_documents.json"), nullptr, false);
  ASSERT_FALSE(docs.is_discarded());
  json out = {{"responses", json::array()}, {"errors", json::array()}};
  const std::string request_id = "00000000-0000-4000-8000-000000000000";
  for (const json& d : docs["responses"]) {
    auto model = ModelNamed(d["model"]);
    ASSERT_NE(model, nullptr);
    const Operation* op = model->FindOperation(d["operation"].get<std::string>());
    ASSERT_NE(op, nullptr) << d["operation"];
    for (const std::string protocol : d["protocols"]) {
      WireResponse r = CodecNamed(protocol).Encode(*model, *op, d["document"], request_id);
      out["responses"].push_back({{"name", d["model"].get<std::string>() + "/" + protocol + "/" +
                                               d["operation"].get<std::string>()},
                                  {"protocol", protocol},
                                  {"model", d["model"]},
                                  {"operation", d["operation"]},
                                  {"status", r.status},
                                  {"content_type", r.content_type},
                                  {"headers", HeadersJson(r)},
                                  {"body_b64", Base64Encode(r.body)},
                                  {"expected", d["document"]}});
    }
  }
  for (const json& e : docs["errors"]) {
    std::shared_ptr<const ServiceModel> model;
    if (!e["model"].is_null()) model = ModelNamed(e["model"]);
    ApiError error{e["error"]["type"], e["error"]["message"], e["error"]["status"]};
    for (const std::string protocol : e["protocols"]) {
      WireResponse r = CodecNamed(protocol).EncodeError(model.get(), error, request_id);
      EXPECT_EQ(r.status, error.http_status);
      json entry = e;
      entry.erase("protocols");
      entry["name"] = (e["model"].is_null() ? std::string("none") : e["model"].get<std::string>()) +
                      "/" + protocol + "/" + error.type;
      entry["protocol"] = protocol;
      entry["status"] = r.status;
      entry["content_type"] = r.content_type;
      entry["headers"] = HeadersJson(r);
      entry["body_b64"] = Base64Encode(r.body);
      out["errors"].push_back(entry);
    }
  }
  const std::string golden_path = kFixtures + "responses.json";
  const std::string text = out.dump(1) + "\n";
  if (const char* update = std::getenv("TY_UPDATE_CODEC_GOLDEN"); update && *update == '1') {
    std::ofstream(golden_path, std::ios::binary) << text;
    GTEST_SKIP() << "wrote " << golden_path;
  }
  json golden = json::parse(ReadFile(golden_path), nullptr, false);
  ASSERT_FALSE(golden.is_discarded()) << golden_path;
  for (const char* kind : {"responses", "errors"}) {
    ASSERT_EQ(golden[kind].size(), out[kind].size()) << kind;
    for (size_t i = 0; i < out[kind].size(); ++i) {
      EXPECT_EQ(golden[kind][i], out[kind][i])
          << out[kind][i]["name"] << " changed; if deliberately, rerun with "
          << "TY_UPDATE_CODEC_GOLDEN=1 and run tests/e2e/test_codecs.py";
    }
  }
}

// --- CBOR ------------------------------------------------------------------------------------

std::string Hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

const Shape& SyntheticShape(const std::string& name) {
  const Shape* s = ModelNamed("synthetic")->FindShape(name);
  EXPECT_NE(s, nullptr) << name;
  return *s;
}

TEST(CborTest, ReadsEveryIntegerWidthAndFloatWidth) {
  struct Case {
    const char* hex;
    CborItem::Kind kind;
    double value;
  };
  const Case cases[] = {
      {"17", CborItem::Kind::kUnsigned, 23},
      {"1818", CborItem::Kind::kUnsigned, 24},
      {"190100", CborItem::Kind::kUnsigned, 256},
      {"1a00010000", CborItem::Kind::kUnsigned, 65536},
      {"1b0000000100000000", CborItem::Kind::kUnsigned, 4294967296.0},
      {"20", CborItem::Kind::kNegative, 0},        // -1
      {"3903e7", CborItem::Kind::kNegative, 999},  // -1000
      {"f93c00", CborItem::Kind::kFloat, 1.0},     // half
      {"f9c400", CborItem::Kind::kFloat, -4.0},
      {"f90001", CborItem::Kind::kFloat, 5.960464477539063e-8},  // smallest subnormal half
      {"fa47c35000", CborItem::Kind::kFloat, 100000.0},          // single
      {"fb3ff199999999999a", CborItem::Kind::kFloat, 1.1},       // double
  };
  for (const Case& c : cases) {
    CborItem item;
    ASSERT_EQ(ReadCbor(Hex(c.hex), {}, &item), "") << c.hex;
    EXPECT_EQ(item.kind, c.kind) << c.hex;
    if (c.kind == CborItem::Kind::kFloat) {
      EXPECT_EQ(item.d, c.value) << c.hex;
    } else {
      EXPECT_EQ(static_cast<double>(item.u), c.value) << c.hex;
    }
  }
  CborItem inf;
  ASSERT_EQ(ReadCbor(Hex("f97c00"), {}, &inf), "");
  EXPECT_TRUE(std::isinf(inf.d));
}

TEST(CborTest, IndefiniteLengthsAndTimestampsDecodeByTheModel) {
  // {_ "Tags": [_ "a", (_ "b", "c")], "When": 1(1.5 as half), "Data": (_ h'00', h'ff'),
  //  "Count": 1(...) is not a timestamp member, so "Big": -2^40, "Flag": null (dropped)}
  std::string body = Hex("bf");
  body += Hex("64") + "Tags" + Hex("9f") + Hex("61") + "a" + Hex("7f") + Hex("61") + "b" +
          Hex("61") + "c" + Hex("ff") + Hex("ff");
  body += Hex("64") + "When" + Hex("c1f93e00");
  body += Hex("64") + "Data" +
          Hex("5f4100"
              "41ff"
              "ff");
  body += Hex("63") + "Big" + Hex("3b000000ffffffffff");
  body += Hex("64") + "Flag" + Hex("f6");
  body += Hex("66") + "__type" + Hex("61") + "x";
  body += Hex("ff");
  json doc;
  ASSERT_EQ(CborToDocument(body, SyntheticShape("PutThingsInput"), &doc), "");
  EXPECT_EQ(doc, json::parse(R"({"Tags": ["a", "bc"], "When": 1.5, "Data": "AP8=",
                                 "Big": -1099511627776})"));
}

TEST(CborTest, TimestampsAcceptIntegerFloatAndHalfUnderTagOne) {
  for (const char* hex : {"c11a6955b900", "c1fb41da556e40000000", "c1fa4ed2ab72"}) {
    std::string body = Hex("a1") + Hex("64") + "When" + Hex(hex);
    json doc;
    ASSERT_EQ(CborToDocument(body, SyntheticShape("PutThingsInput"), &doc), "") << hex;
    EXPECT_NEAR(doc["When"].get<double>(), 1767225600.0, 200.0) << hex;
  }
  json doc;
  std::string tag2 = Hex("a1") + Hex("64") + "When" + Hex("c2") + Hex("01");
  EXPECT_NE(CborToDocument(tag2, SyntheticShape("PutThingsInput"), &doc), "");
}

TEST(CborTest, MalformedInputIsRefusedWithWhereItWentWrong) {
  const char* bad[] = {
      "",                    // nothing
      "a1",                  // map missing its pair
      "a16154",              // key without a value
      "7a7fffffff",          // a 2 GB string in 5 bytes
      "9b00000000ffffffff",  // an array of 2^32 elements
      "bb00000000ffffffff",  // a map of 2^32 pairs
      "a0a0",                // trailing item
      "1c",                  // reserved additional information
      "ff",                  // break outside anything
      "5f61ff",              // a text chunk inside a byte string
      "1f",                  // indefinite integer
      "c1",                  // tag without its item
      "fb3ff0",              // truncated double
  };
  for (const char* hex : bad) {
    CborItem item;
    EXPECT_NE(ReadCbor(Hex(hex), {}, &item), "") << hex;
  }
  // 65 nested arrays: one past the depth bound.
  std::string deep(65, static_cast<char>(0x81));
  deep.push_back(0x00);
  CborItem item;
  std::string err = ReadCbor(deep, {}, &item);
  EXPECT_NE(err.find("nesting deeper than 64"), std::string::npos) << err;
  std::string ok(63, static_cast<char>(0x81));
  ok.push_back(0x00);
  EXPECT_EQ(ReadCbor(ok, {}, &item), "");
  CborReadLimits few;
  few.max_items = 3;
  EXPECT_NE(ReadCbor(Hex("8401020304"), few, &item), "");
}

TEST(CborTest, WrongTypesForTheModelAreSerializationErrors) {
  json doc;
  // "Count" (integer) as text, "Tags" (list) as a map, a non-text map key.
  EXPECT_NE(CborToDocument(Hex("a1") + Hex("65") + "Count" + Hex("6131"),
                           SyntheticShape("PutThingsInput"), &doc),
            "");
  EXPECT_NE(CborToDocument(Hex("a1") + Hex("64") + "Tags" + Hex("a0"),
                           SyntheticShape("PutThingsInput"), &doc),
            "");
  EXPECT_NE(CborToDocument(Hex("a10101"), SyntheticShape("PutThingsInput"), &doc), "");
  EXPECT_NE(CborToDocument(Hex("80"), SyntheticShape("PutThingsInput"), &doc), "");
}

TEST(CborTest, WriterPicksTheShortestHeads) {
  CborWriter w;
  w.Integer(0);
  w.Integer(23);
  w.Integer(24);
  w.Integer(255);
  w.Integer(256);
  w.Integer(65536);
  w.Integer(4294967296LL);
  w.Integer(-1);
  w.Integer(-25);
  EXPECT_EQ(HexEncode(w.bytes()),
            "0017181818ff1901001a000100001b00000001000000002038"
            "18");
}

TEST(CborCodecTest, RoutesByThePathsServiceAndRefusesXAmzTarget) {
  CborCodec codec;
  auto model = ModelNamed("cloudwatch");
  HttpRequestParts req;
  req.method = "POST";
  req.path =
      "/service/com.amazonaws.cloudwatch%23GraniteServiceVersion20100801/operation/ListMetrics";
  req.headers = {{"Smithy-Protocol", "rpc-v2-cbor"}, {"Content-Type", "application/cbor"}};
  req.body = Hex("a0");
  ASSERT_TRUE(codec.Recognizes(req));
  EXPECT_EQ(codec.AddressedService(req), "GraniteServiceVersion20100801");
  req.path =
      "/prefix/service/com.amazonaws.cloudwatch.GraniteServiceVersion20100801/operation/"
      "ListMetrics";
  EXPECT_EQ(codec.AddressedService(req), "GraniteServiceVersion20100801");
  EXPECT_TRUE(std::holds_alternative<DecodedCall>(codec.Decode(req, *model)));

  req.headers.emplace_back("X-Amz-Target", "GraniteServiceVersion20100801.ListMetrics");
  auto refused = codec.Decode(req, *model);
  ASSERT_TRUE(std::holds_alternative<ApiError>(refused));
  EXPECT_EQ(std::get<ApiError>(refused).type, "SerializationException");

  HttpRequestParts no_header = req;
  no_header.headers = {};
  EXPECT_FALSE(codec.Recognizes(no_header));

  req.headers.pop_back();
  req.path = "/service/GraniteServiceVersion20100801/operation/NoSuchOp";
  auto unknown = codec.Decode(req, *model);
  ASSERT_TRUE(std::holds_alternative<ApiError>(unknown));
  EXPECT_EQ(std::get<ApiError>(unknown).type, "UnknownOperationException");
}

TEST(CborCodecTest, ErrorsCarryTheAbsoluteShapeIdAndTheQueryCode) {
  CborCodec codec;
  auto model = ModelNamed("cloudwatch");
  WireResponse r =
      codec.EncodeError(model.get(), {"InvalidParameterValueException", "bad period", 400}, "rid");
  EXPECT_EQ(r.status, 400);
  CborItem item;
  ASSERT_EQ(ReadCbor(r.body, {}, &item), "");
  ASSERT_EQ(item.kind, CborItem::Kind::kMap);
  ASSERT_EQ(item.items.size(), 4u);
  EXPECT_EQ(item.items[1].s, "com.amazonaws.cloudwatch#InvalidParameterValueException");
  EXPECT_EQ(item.items[3].s, "bad period");
  bool query_error = false;
  for (const auto& [k, v] : r.headers) {
    EXPECT_NE(k, "X-Amzn-ErrorType");
    if (k == "x-amzn-query-error") query_error = v == "InvalidParameterValue;Sender";
  }
  EXPECT_TRUE(query_error);
  // No output shape: no body and no Content-Type.
  WireResponse put =
      codec.Encode(*model, *model->FindOperation("PutMetricData"), json::object(), "rid");
  EXPECT_EQ(put.body, "");
  EXPECT_EQ(put.content_type, "");
}

// --- query ------------------------------------------------------------------------------------

HttpRequestParts Form(const std::string& body) {
  HttpRequestParts req;
  req.method = "POST";
  req.path = "/";
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = body;
  return req;
}

ApiError QueryError(const std::string& body) {
  auto decoded = QueryCodec().Decode(Form(body), *ModelNamed("cloudwatch"));
  EXPECT_TRUE(std::holds_alternative<ApiError>(decoded)) << body;
  return std::holds_alternative<ApiError>(decoded) ? std::get<ApiError>(decoded) : ApiError{};
}

TEST(QueryCodecTest, ActionAndVersionErrorsAreTheQueryProtocols) {
  EXPECT_EQ(QueryError("Action=Nope&Version=2010-08-01").type, "InvalidAction");
  EXPECT_EQ(QueryError("Version=2010-08-01").type, "MissingAction");
  EXPECT_EQ(QueryError("Action=ListMetrics&Version=2099-01-01").type, "NoSuchVersion");
  EXPECT_EQ(QueryError("Action=ListMetrics&Version=2010-08-01&Namespace=%zz").type,
            "MalformedQueryString");
  EXPECT_EQ(QueryError("Action=GetMetricData&Version=2010-08-01&MaxDatapoints=ten").type,
            "InvalidParameterValue");
  EXPECT_EQ(QueryError("Action=PutMetricAlarm&Version=2010-08-01&ActionsEnabled=yes").type,
            "InvalidParameterValue");
  std::string many = "Action=ListMetrics";
  for (int i = 0; i < 20001; ++i) many += "&k" + std::to_string(i) + "=v";
  EXPECT_EQ(QueryError(many).type, "MalformedQueryString");
  EXPECT_EQ(QueryError("Action=ListMetrics&" + std::string(2000, 'k') + "=v").type,
            "MalformedQueryString");
}

TEST(QueryCodecTest, GetWithActionInTheQueryStringIsRecognized) {
  HttpRequestParts req;
  req.method = "GET";
  req.path = "/";
  req.query = "Action=ListMetrics&Version=2010-08-01&Namespace=ns";
  QueryCodec codec;
  ASSERT_TRUE(codec.Recognizes(req));
  auto decoded = codec.Decode(req, *ModelNamed("cloudwatch"));
  ASSERT_TRUE(std::holds_alternative<DecodedCall>(decoded));
  EXPECT_EQ(std::get<DecodedCall>(decoded).input, json::parse(R"({"Namespace": "ns"})"));
  HttpRequestParts json_req;
  json_req.method = "POST";
  json_req.headers = {{"Content-Type", "application/x-amz-json-1.1"}};
  EXPECT_FALSE(codec.Recognizes(json_req));
}

TEST(QueryCodecTest, KeysDeeperThanTheBoundAreRefused) {
  // NestedLists.member.1.member.1 is as deep as the model goes; a recursive walk is bounded
  // by the keys present, and by a depth cap on top.
  json doc;
  std::vector<std::pair<std::string, std::string>> params = {{"NestedLists.member.1.member.1", "a"},
                                                             {"Unknown.member.1", "ignored"}};
  ASSERT_EQ(QueryParamsToDocument(params, SyntheticShape("PutThingsInput"), &doc), "");
  EXPECT_EQ(doc, json::parse(R"({"NestedLists": [["a"]]})"));
  params = {{"Items.member.1.Meta.entry.1.value", "v"}};
  EXPECT_NE(QueryParamsToDocument(params, SyntheticShape("PutThingsInput"), &doc), "");
}

TEST(QueryCodecTest, ErrorsUseTheModelsCodeAndEscapeTheMessage) {
  WireResponse r =
      QueryCodec().EncodeError(ModelNamed("cloudwatch").get(),
                               {"InvalidParameterValueException", "a <b> & c", 400}, "rid-1");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "text/xml");
  EXPECT_NE(r.body.find("<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"
                        "<Error><Type>Sender</Type><Code>InvalidParameterValue</Code>"
                        "<Message>a &lt;b&gt; &amp; c</Message></Error><RequestId>rid-1"
                        "</RequestId></ErrorResponse>"),
            std::string::npos)
      << r.body;
  WireResponse fault = QueryCodec().EncodeError(ModelNamed("cloudwatch").get(),
                                                {"InternalServiceFault", "x", 500}, "rid-1");
  EXPECT_NE(fault.body.find("<Type>Receiver</Type><Code>InternalServiceError</Code>"),
            std::string::npos)
      << fault.body;
}

TEST(QueryCodecTest, OutputWithoutAShapeHasNoResultElement) {
  auto model = ModelNamed("cloudwatch");
  WireResponse r =
      QueryCodec().Encode(*model, *model->FindOperation("PutMetricData"), json::object(), "r");
  EXPECT_NE(r.body.find("<PutMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/"
                        "2010-08-01/\"><ResponseMetadata><RequestId>r</RequestId>"
                        "</ResponseMetadata></PutMetricDataResponse>"),
            std::string::npos)
      << r.body;
}

// --- rest-json --------------------------------------------------------------------------------

TEST(RestJsonCodecTest, RoutesPreferLiteralSegmentsAndMatchGreedyLabels) {
  auto lambda = ModelNamed("lambda");
  std::vector<std::pair<std::string, std::string>> labels;
  const Operation* op =
      MatchRestRoute(*lambda, "GET", "/2015-03-31/functions/gov/configuration", "", &labels);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->name, "GetFunctionConfiguration");
  op = MatchRestRoute(*lambda, "GET", "/2015-03-31/functions/gov", "", &labels);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->name, "GetFunction");
  EXPECT_EQ(labels, (std::vector<std::pair<std::string, std::string>>{{"FunctionName", "gov"}}));
  EXPECT_EQ(MatchRestRoute(*lambda, "PATCH", "/2015-03-31/functions/gov", "", &labels), nullptr);
  EXPECT_EQ(MatchRestRoute(*lambda, "GET", "/2015-03-31/nothing", "", &labels), nullptr);

  auto kitchen = ModelNamed("synthetic");
  op = MatchRestRoute(*kitchen, "GET", "/2024-01-01/things/t/parts/a/b%2Fc/d", "detail&x=1",
                      &labels);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->name, "GetThing");
  EXPECT_EQ(labels, (std::vector<std::pair<std::string, std::string>>{{"ThingName", "t"},
                                                                      {"Path", "a/b/c/d"}}));
  // The literal query part is required.
  EXPECT_EQ(MatchRestRoute(*kitchen, "GET", "/2024-01-01/things/t/parts/a", "x=1", &labels),
            nullptr);
}

TEST(RestJsonCodecTest, RecognizesOnlyItsScopeServices) {
  RestJsonCodec codec({"lambda"});
  HttpRequestParts req;
  req.method = "GET";
  req.path = "/2015-03-31/functions";
  req.headers = {{"Authorization",
                  "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/lambda/aws4_request, "
                  "SignedHeaders=host, Signature=00"}};
  EXPECT_TRUE(codec.Recognizes(req));
  req.headers[0].second =
      "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
      "SignedHeaders=host, Signature=00";
  EXPECT_FALSE(codec.Recognizes(req));
  req.headers.clear();
  EXPECT_FALSE(codec.Recognizes(req));
}

TEST(RestJsonCodecTest, BadLabelsAndBodiesAreSerializationErrors) {
  auto kitchen = ModelNamed("synthetic");
  RestJsonCodec codec({"kitchen"});
  HttpRequestParts req;
  req.method = "GET";
  req.path = "/2024-01-01/things/t/parts/p";
  req.query = "detail&limit=ten";
  auto decoded = codec.Decode(req, *kitchen);
  ASSERT_TRUE(std::holds_alternative<ApiError>(decoded));
  EXPECT_EQ(std::get<ApiError>(decoded).type, "SerializationException");
  req.method = "POST";
  req.path = "/2024-01-01/things/t";
  req.query = "";
  req.body = "{not json";
  decoded = codec.Decode(req, *kitchen);
  ASSERT_TRUE(std::holds_alternative<ApiError>(decoded));
  EXPECT_EQ(std::get<ApiError>(decoded).type, "SerializationException");
  req.body = std::string(200, '[') + std::string(200, ']');
  decoded = codec.Decode(req, *kitchen);
  ASSERT_TRUE(std::holds_alternative<ApiError>(decoded));
}

// Regression: DeleteFunction answered 204 with "{}", which clients read as the start of the
// next response (botocore then retried the delete and got ResourceNotFoundException).
TEST(RestJsonCodecTest, A204HasNoBody) {
  auto lambda = ModelNamed("lambda");
  RestJsonCodec codec({"lambda"});
  const Operation* op = lambda->FindOperation("DeleteFunction");
  ASSERT_NE(op, nullptr);
  WireResponse r = codec.Encode(*lambda, *op, nlohmann::json{{"StatusCode", 204}}, "rid");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.body, "");
  r = codec.Encode(*lambda, *op, nlohmann::json::object(), "rid");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
}

// --- wire formats -----------------------------------------------------------------------------

TEST(WireFormatTest, IsoTimestampsWithOffsetsAndFractions) {
  int64_t s = 0;
  int64_t us = 0;
  ASSERT_TRUE(ParseIsoTimestamp("2026-01-01T00:00:00Z", &s, &us));
  EXPECT_EQ(s, 1767225600);
  EXPECT_EQ(us, 0);
  ASSERT_TRUE(ParseIsoTimestamp("2026-01-01T01:30:00.123456789+01:30", &s, &us));
  EXPECT_EQ(s, 1767225600);
  EXPECT_EQ(us, 123456);
  ASSERT_TRUE(ParseIsoTimestamp("1969-12-31T23:59:59.5Z", &s, &us));
  EXPECT_EQ(s, -1);
  EXPECT_EQ(us, 500000);
  for (const char* bad : {"2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01",
                          "2026-01-01T00:00:00.Z", "2026-01-01T24:00:00Z", "x"}) {
    EXPECT_FALSE(ParseIsoTimestamp(bad, &s, &us)) << bad;
  }
  EXPECT_EQ(FormatIsoMillis(1767225600.25), "2026-01-01T00:00:00.250Z");
  EXPECT_EQ(FormatIsoMillis(-0.5), "1969-12-31T23:59:59.500Z");
  EXPECT_EQ(FormatRfc822(1767225600), "Thu, 01 Jan 2026 00:00:00 GMT");
  ASSERT_TRUE(ParseRfc822("Thu, 01 Jan 2026 00:00:00 GMT", &s));
  EXPECT_EQ(s, 1767225600);
}

TEST(WireFormatTest, XmlEscapeKeepsTheDocumentWellFormed) {
  EXPECT_EQ(XmlEscape("a<b>&\"'\r\n\t"), "a&lt;b&gt;&amp;&quot;&apos;&#13;\n\t");
  EXPECT_EQ(XmlEscape("ü€𝄞"), "ü€𝄞");
  // A stray continuation byte, a truncated sequence, an overlong '/', a surrogate, NUL.
  EXPECT_EQ(XmlEscape("\x80"), "\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("a\xE2\x82"), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(WireFormatTest, Base64AndDoublesRoundTrip) {
  for (std::string raw : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                          std::string("\x00\xff\xfe", 3)}) {
    std::string back;
    ASSERT_TRUE(Base64Decode(Base64Encode(raw), &back));
    EXPECT_EQ(back, raw);
  }
  std::string out;
  EXPECT_FALSE(Base64Decode("a=b=", &out));
  EXPECT_FALSE(Base64Decode("a*==", &out));
  for (double d : {0.1, 1e-300, -2.5e300, 123456.789, 5e-324, 1.0 / 3}) {
    double back = 0;
    ASSERT_TRUE(ParseDouble(FormatDouble(d), &back));
    EXPECT_EQ(back, d) << FormatDouble(d);
  }
  EXPECT_EQ(FormatDouble(0.1), "0.1");
}

}  // namespace
}  // namespace ty::api
