#include "services/logs/filter_pattern.h"

#include <gtest/gtest.h>

#include <string>

namespace ty::services {
namespace {

struct Case {
  const char* pattern;
  const char* message;
  bool matches;
};

TEST(FilterPatternTest, Table) {
  const Case cases[] = {
      {"", "anything", true},
      {"   ", "anything", true},
      {"ERROR", "an ERROR here", true},
      {"ERROR", "an error here", false},  // case-sensitive
      {"ERROR disk", "ERROR: disk full", true},
      {"ERROR disk", "ERROR: memory", false},  // all terms must occur
      {"\"disk full\"", "ERROR: disk full", true},
      {"\"disk full\"", "full disk", false},
      {"?ERROR ?WARN", "WARN: low", true},
      {"?ERROR ?WARN", "INFO: ok", false},
      {"ERROR -retrying", "ERROR: failed", true},
      {"ERROR -retrying", "ERROR: retrying", false},
      {"-DEBUG", "INFO x", true},
      {"%Err[0-9]+%", "code Err42", true},
      {"%Err[0-9]+%", "code Err", false},
      {"{ $.level = \"ERROR\" }", R"({"level":"ERROR","n":3})", true},
      {"{ $.level = \"ERROR\" }", R"({"level":"INFO"})", false},
      {"{ $.level = ERR* }", R"({"level":"ERROR"})", true},
      {"{ $.level != \"ERROR\" }", R"({"level":"INFO"})", true},
      {"{ $.n > 5 }", R"({"n": 7.5})", true},
      {"{ $.n > 5 }", R"({"n": 5})", false},
      {"{ $.n >= 5 }", R"({"n": 5})", true},
      {"{ $.n < 5 }", R"({"n": "4"})", false},  // a string is no number
      {"{ $.a.b[1].c = 2 }", R"({"a":{"b":[{},{"c":2}]}})", true},
      {"{ $.n > 5 && $.level = \"ERROR\" }", R"({"n":9,"level":"INFO"})", false},
      {"{ $.n > 5 || $.level = \"ERROR\" }", R"({"n":1,"level":"ERROR"})", true},
      {"{ ($.n > 5 || $.m > 5) && $.ok IS TRUE }", R"({"m":9,"ok":true})", true},
      {"{ ($.n > 5 || $.m > 5) && $.ok IS TRUE }", R"({"m":9,"ok":false})", false},
      {"{ $.x IS NULL }", R"({"x":null})", true},
      {"{ $.x NOT EXISTS }", R"({"y":1})", true},
      {"{ $.x NOT EXISTS }", R"({"x":1})", false},
      {"{ $.n > 5 }", "n is 7, not JSON", false},
      {"{ $.n > 5 }", R"({"n": 7)", false},  // malformed JSON never matches
      {"[ip, user, status = 404, size]", "10.0.0.1 bob 404 512", true},
      {"[ip, user, status = 404, size]", "10.0.0.1 bob 200 512", false},
      {"[ip, user, status = 4*, size > 100]", "10.0.0.1 bob 403 512", true},
      {"[ip, user, status = 4*, size > 100]", "10.0.0.1 bob 403 50", false},
      {"[ip, user, status, size]", "10.0.0.1 bob 403", false},  // field count differs
      {"[ip, ..., size > 100]", "10.0.0.1 a b c 512", true},
      {"[ts, msg = \"disk full\"]", "12:00 \"disk full\"", true},
      {"[w1 = ERROR, ...]", "ERROR x y", true},
  };
  for (const Case& c : cases) {
    auto p = FilterPattern::Compile(c.pattern);
    ASSERT_TRUE(p.ok()) << c.pattern << ": " << p.status().ToString();
    EXPECT_EQ((*p)->Matches(c.message), c.matches)
        << "pattern " << c.pattern << " on " << c.message;
  }
}

TEST(FilterPatternTest, MalformedPatternsAreRefused) {
  for (const char* bad : {"\"unterminated", "{ $.a = }", "{ level = 1 }", "{ $.a = 1",
                          "[a, ..., b, ...]", "[a, b", "%a%b% %c% %d%", "%(%", "{ $.a ~ 1 }"}) {
    auto p = FilterPattern::Compile(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_FALSE(FilterPattern::Compile(std::string(1025, 'a')).ok());
  EXPECT_TRUE(FilterPattern::Compile(std::string(1024, 'a')).ok());
}

TEST(FilterPatternTest, DeeplyNestedJsonDoesNotMatchOrCrash) {
  auto p = FilterPattern::Compile("{ $.a = 1 }");
  ASSERT_TRUE(p.ok());
  std::string deep = "{\"a\":1,\"b\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE((*p)->Matches(deep));
}

}  // namespace
}  // namespace ty::services
