// SignS3Request and UriEncode (common/sigv4.h) against botocore. s3rver does not check
// signatures, so this is where a signing mistake shows before it reaches AWS or MinIO.
//
// The expectations are computed at test time by tools/sigv4_vectors.py with Debian's
// /usr/bin/python3 and python3-botocore (botocore's pure-Python S3SigV4Auth at a fixed time):
// real botocore S3 client calls captured just after signing, plus hand-built requests in the form
// Trainyard's client sends. Without python3-botocore the tests skip (fail when CI is set).
#include <gtest/gtest.h>
#include <strings.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/sigv4.h"
#include "common/subprocess.h"
#include "testing/s3rver.h"
#include "testing/temp_dir.h"

#ifndef TY_SOURCE_DIR
#error "TY_SOURCE_DIR (the repository root) must be defined by CMake"
#endif

namespace ty {
namespace {

using nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";

struct Vectors {
  json doc;
  std::string failure;  // why there are none
  bool skip = false;    // the failure is a missing tool, not a broken script
};

// Runs the generator once per process.
const Vectors& LoadVectors() {
  static const Vectors vectors = [] {
    Vectors v;
    if (::access(kPython, X_OK) != 0) {
      v.failure = std::string(kPython) + " is missing (apt-get install python3 python3-botocore)";
      v.skip = true;
      return v;
    }
    ty::testing::TempDir tmp("ty-sigv4-");
    std::string out = tmp.Sub("vectors.json");
    std::string log = tmp.Sub("log");
    SpawnOptions spawn;
    spawn.argv = {kPython, std::string(TY_SOURCE_DIR) + "/tools/sigv4_vectors.py", out};
    spawn.env["PATH"] = "/usr/bin:/bin";
    spawn.env["HOME"] = tmp.path();
    spawn.capture_output = false;
    spawn.stdout_file = log;
    Result<std::unique_ptr<Subprocess>> child = Subprocess::Spawn(spawn);
    if (!child.ok()) {
      v.failure = child.status().ToString();
      return v;
    }
    Result<int> code = (*child)->Wait();
    Result<std::string> log_text = ReadFile(log);
    std::string output = log_text.ok() ? *log_text : "";
    if (!code.ok() || *code != 0) {
      v.failure = "tools/sigv4_vectors.py failed:\n" + output;
      v.skip = output.find("No module named 'botocore'") != std::string::npos;
      if (v.skip)
        v.failure = "python3-botocore is not installed (apt-get install python3-botocore)";
      return v;
    }
    Result<std::string> text = ReadFile(out);
    if (!text.ok()) {
      v.failure = text.status().ToString();
      return v;
    }
    v.doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (v.doc.is_discarded() || !v.doc.contains("cases")) v.failure = "unreadable vectors JSON";
    return v;
  }();
  return vectors;
}

#define TY_VECTORS_OR_SKIP(var)                                                        \
  const Vectors& var = LoadVectors();                                                  \
  do {                                                                                 \
    if (!var.failure.empty()) {                                                        \
      if (var.skip && !::ty::testing::S3rver::Required()) GTEST_SKIP() << var.failure; \
      FAIL() << var.failure;                                                           \
    }                                                                                  \
  } while (0)

std::string HexDecode(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

TimePoint FixedNow(const json& doc) {
  return std::chrono::system_clock::from_time_t(doc.at("now_epoch_seconds").get<time_t>());
}

AwsCredentials CredsOf(const json& c) {
  return AwsCredentials{c.at("access_key_id").get<std::string>(),
                        c.at("secret_access_key").get<std::string>(),
                        c.at("session_token").get<std::string>()};
}

// The case's request as botocore signed it; the signer adds X-Amz-Date, X-Amz-Security-Token
// and Authorization. Host goes first, as an HTTP client sends it.
HttpRequestParts RequestOf(const json& c) {
  HttpRequestParts req;
  req.method = c.at("method").get<std::string>();
  req.path = c.at("path").get<std::string>();
  req.query = c.at("query").get<std::string>();
  req.headers.emplace_back("Host", c.at("host").get<std::string>());
  for (const json& h : c.at("headers")) {
    req.headers.emplace_back(h.at(0).get<std::string>(), h.at(1).get<std::string>());
  }
  return req;
}

std::string Header(const HttpRequestParts& req, const std::string& name) {
  const std::string* v = FindHeader(req, name);
  return v == nullptr ? "" : *v;
}

std::string Describe(const json& c) {
  return c.at("name").get<std::string>() + "\n  botocore canonical request:\n" +
         c.at("expected").at("canonical_request").get<std::string>() +
         "\n  botocore string to sign:\n" +
         c.at("expected").at("string_to_sign").get<std::string>();
}

TEST(S3SigV4BotocoreTest, TheGeneratorProducedEveryCase) {
  TY_VECTORS_OR_SKIP(v);
  std::set<std::string> names;
  for (const json& c : v.doc.at("cases")) names.insert(c.at("name").get<std::string>());
  EXPECT_GE(names.size(), 20u);
  for (const char* must :
       {"put key with spaces", "put key with plus equals ampersand", "get unicode key",
        "get key with tilde", "head key with percent", "list continuation token", "upload part",
        "put with session token", "put unsigned payload", "uploads= as trainyard sends it"}) {
    EXPECT_TRUE(names.count(must)) << must;
  }
}

// The request exactly as botocore had it when it signed: the content hash is in the
// X-Amz-Content-SHA256 header (as Trainyard's client sends it for file bodies), and the headers
// botocore never signs (User-Agent, Expect) are present and must be left out.
TEST(S3SigV4BotocoreTest, SignaturesMatchBotocore) {
  TY_VECTORS_OR_SKIP(v);
  for (const json& c : v.doc.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    HttpRequestParts req = RequestOf(c);
    SignS3Request(&req, CredsOf(c), c.at("region").get<std::string>(), FixedNow(v.doc));
    const json& want = c.at("expected");
    EXPECT_EQ(Header(req, "Authorization"), want.at("authorization").get<std::string>())
        << Describe(c);
    EXPECT_EQ(Header(req, "X-Amz-Date"), want.at("x_amz_date").get<std::string>());
    EXPECT_EQ(Header(req, "X-Amz-Security-Token"),
              want.at("x_amz_security_token").get<std::string>());
    EXPECT_EQ(Header(req, "X-Amz-Content-SHA256"),
              want.at("x_amz_content_sha256").get<std::string>());
  }
}

// Without an X-Amz-Content-SHA256 header the signer hashes the body itself and adds the header.
TEST(S3SigV4BotocoreTest, PayloadHashOfTheBodyWhenTheHeaderIsAbsent) {
  TY_VECTORS_OR_SKIP(v);
  int checked = 0;
  for (const json& c : v.doc.at("cases")) {
    const json& want = c.at("expected");
    if (want.at("x_amz_content_sha256").get<std::string>() == "UNSIGNED-PAYLOAD") continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    HttpRequestParts req = RequestOf(c);
    std::erase_if(req.headers, [](const auto& h) {
      return ::strcasecmp(h.first.c_str(), "x-amz-content-sha256") == 0;
    });
    req.body = HexDecode(c.at("body_hex").get<std::string>());
    SignS3Request(&req, CredsOf(c), c.at("region").get<std::string>(), FixedNow(v.doc));
    EXPECT_EQ(Header(req, "X-Amz-Content-SHA256"),
              want.at("x_amz_content_sha256").get<std::string>());
    EXPECT_EQ(Header(req, "Authorization"), want.at("authorization").get<std::string>())
        << Describe(c);
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

// Signing twice (a retry) replaces the old date, token and Authorization instead of adding more.
TEST(S3SigV4BotocoreTest, ResigningARetriedRequestGivesTheSameHeaders) {
  TY_VECTORS_OR_SKIP(v);
  for (const json& c : v.doc.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    HttpRequestParts req = RequestOf(c);
    AwsCredentials creds = CredsOf(c);
    std::string region = c.at("region").get<std::string>();
    SignS3Request(&req, creds, region, FixedNow(v.doc) - std::chrono::hours(30));
    SignS3Request(&req, creds, region, FixedNow(v.doc));
    EXPECT_EQ(Header(req, "Authorization"),
              c.at("expected").at("authorization").get<std::string>());
    int auth_headers = 0;
    for (const auto& [k, val] : req.headers) auth_headers += (k == "Authorization");
    EXPECT_EQ(auth_headers, 1);
  }
}

// Paths: botocore encodes a key once, keeping '/' and '~' (percent_encode(key, safe='/~')).
TEST(S3SigV4BotocoreTest, KeysEncodeLikeBotocore) {
  TY_VECTORS_OR_SKIP(v);
  int checked = 0;
  for (const json& c : v.doc.at("cases")) {
    if (!c.contains("key")) continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    std::string key = c.at("key").get<std::string>();
    std::string want_path = "/" + UriEncode(key, /*keep_slash=*/true);
    if (c.at("addressing").get<std::string>() == "path") {
      want_path = "/" + c.at("bucket").get<std::string>() + want_path;
    }
    EXPECT_EQ(want_path, c.at("path").get<std::string>()) << key;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

// Query values: every byte outside the unreserved set is encoded, '/' included.
TEST(S3SigV4BotocoreTest, QueryValuesEncodeLikeBotocore) {
  TY_VECTORS_OR_SKIP(v);
  int checked = 0;
  for (const json& c : v.doc.at("cases")) {
    if (!c.contains("query_params")) continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    std::set<std::string> pairs;
    std::string query = c.at("query").get<std::string>();
    for (size_t start = 0; start <= query.size();) {
      size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      pairs.insert(query.substr(start, end - start));
      start = end + 1;
    }
    for (const json& p : c.at("query_params")) {
      std::string pair = p.at(0).get<std::string>() + "=" +
                         UriEncode(p.at(1).get<std::string>(), /*keep_slash=*/false);
      EXPECT_TRUE(pairs.count(pair)) << pair << " not in " << query;
      ++checked;
    }
  }
  EXPECT_GE(checked, 8);
}

TEST(S3SigV4Test, UriEncodeTable) {
  struct Case {
    std::string in;
    bool keep_slash;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"", true, ""},
      {"AZaz09-._~", false, "AZaz09-._~"},
      {"a b/c", true, "a%20b/c"},
      {"a b/c", false, "a%20b%2Fc"},
      {"+=&?#%", true, "%2B%3D%26%3F%23%25"},
      {"\xc3\xa9\xe2\x98\x83", true, "%C3%A9%E2%98%83"},
      {std::string("\0\x7f\xff", 3), true, "%00%7F%FF"},
      {"already%20encoded", true, "already%2520encoded"},
  };
  for (const Case& c : cases) EXPECT_EQ(UriEncode(c.in, c.keep_slash), c.out) << c.in;
}

}  // namespace
}  // namespace ty
