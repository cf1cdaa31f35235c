#include "services/logs/logs_service.h"

#include <gtest/gtest.h>

#include <string>

#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::services {
namespace {

using nlohmann::json;

constexpr const char* kA = "111111111111";
constexpr const char* kB = "222222222222";

class LogsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(tmp_.Sub("data"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    LogsOptions opts;
    opts.filter_scan_budget = 1000;
    service_ = std::make_unique<LogsService>(opts, store_.get(), &clock_);
  }

  api::ServiceOutcome Run(const std::string& account, const std::string& op, const json& in) {
    const api::Operation* operation = service_->model().FindOperation(op);
    EXPECT_NE(operation, nullptr) << op;
    api::CallContext ctx;
    ctx.caller.account_id = account;
    return service_->Call(ctx, *operation, in);
  }
  // The output document; fails the test on an error.
  json Ok(const std::string& account, const std::string& op, const json& in) {
    auto out = Run(account, op, in);
    if (auto* e = std::get_if<api::ApiError>(&out)) {
      ADD_FAILURE() << op << ": " << e->type << ": " << e->message;
      return json();
    }
    if (auto* raw = std::get_if<api::RawJson>(&out)) {
      json parsed = json::parse(raw->text, nullptr, /*allow_exceptions=*/false);
      EXPECT_FALSE(parsed.is_discarded()) << raw->text;
      return parsed;
    }
    return std::get<json>(out);
  }
  // The error's type ("" when the call succeeded).
  std::string Err(const std::string& account, const std::string& op, const json& in) {
    auto out = Run(account, op, in);
    auto* e = std::get_if<api::ApiError>(&out);
    return e == nullptr ? "" : e->type;
  }
  int64_t Now() { return ToEpochMillis(clock_.Now()); }
  // A group "g" with stream "s" holding messages m0..m<n-1>, one ms apart.
  void MakeStream(const std::string& account, int n, const std::string& stream = "s") {
    auto out = Run(account, "CreateLogGroup", {{"logGroupName", "g"}});
    (void)out;
    Ok(account, "CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", stream}});
    if (n == 0) return;
    json events = json::array();
    for (int i = 0; i < n; ++i) {
      events.push_back({{"timestamp", Now() - 1000 + i}, {"message", "m" + std::to_string(i)}});
    }
    Ok(account, "PutLogEvents",
       {{"logGroupName", "g"}, {"logStreamName", stream}, {"logEvents", events}});
  }
  static std::string Messages(const json& out) {
    std::string s;
    for (const auto& e : out["events"]) s += e["message"].get<std::string>() + ",";
    return s;
  }
  json Get(const std::string& account, json extra, const std::string& stream = "s") {
    json in = {{"logGroupName", "g"}, {"logStreamName", stream}};
    for (auto& [k, v] : extra.items()) in[k] = v;
    return Ok(account, "GetLogEvents", in);
  }

  testing::TempDir tmp_{"ty_logs_service_"};
  testing::FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<LogsService> service_;
};

TEST_F(LogsServiceTest, ForwardTokensReadToTheEndAndThenRepeat) {
  MakeStream(kA, 5);
  json p1 = Get(kA, {{"startFromHead", true}, {"limit", 2}});
  EXPECT_EQ(Messages(p1), "m0,m1,");
  json p2 = Get(kA, {{"startFromHead", true}, {"limit", 2}, {"nextToken", p1["nextForwardToken"]}});
  EXPECT_EQ(Messages(p2), "m2,m3,");
  json p3 = Get(kA, {{"startFromHead", true}, {"limit", 2}, {"nextToken", p2["nextForwardToken"]}});
  EXPECT_EQ(Messages(p3), "m4,");
  json end = Get(kA, {{"startFromHead", true}, {"nextToken", p3["nextForwardToken"]}});
  EXPECT_TRUE(end["events"].empty());
  EXPECT_EQ(end["nextForwardToken"], p3["nextForwardToken"]);  // the same token at the end
  EXPECT_TRUE(end.contains("nextBackwardToken"));
  // Events appended later come after the token the end returned.
  Ok(kA, "PutLogEvents",
     {{"logGroupName", "g"},
      {"logStreamName", "s"},
      {"logEvents", {{{"timestamp", Now()}, {"message", "late"}}}}});
  json more = Get(kA, {{"startFromHead", true}, {"nextToken", end["nextForwardToken"]}});
  EXPECT_EQ(Messages(more), "late,");
}

TEST_F(LogsServiceTest, DefaultReadsTheLastPageAndBackwardTokensGoBack) {
  MakeStream(kA, 5);
  json last = Get(kA, {{"limit", 2}});  // startFromHead defaults to false
  EXPECT_EQ(Messages(last), "m3,m4,");
  json back = Get(kA, {{"limit", 2}, {"nextToken", last["nextBackwardToken"]}});
  EXPECT_EQ(Messages(back), "m1,m2,");
  json back2 = Get(kA, {{"limit", 2}, {"nextToken", back["nextBackwardToken"]}});
  EXPECT_EQ(Messages(back2), "m0,");
  json start = Get(kA, {{"limit", 2}, {"nextToken", back2["nextBackwardToken"]}});
  EXPECT_TRUE(start["events"].empty());
  EXPECT_EQ(start["nextBackwardToken"], back2["nextBackwardToken"]);
  // Forward from a backward page continues after it.
  json fwd = Get(kA, {{"startFromHead", true}, {"nextToken", back["nextForwardToken"]}});
  EXPECT_EQ(Messages(fwd), "m3,m4,");
}

TEST_F(LogsServiceTest, EmptyStreamGivesTokensThatLaterYieldEvents) {
  MakeStream(kA, 0);
  for (bool head : {true, false}) {
    json empty = Get(kA, {{"startFromHead", head}});
    EXPECT_TRUE(empty["events"].empty());
    ASSERT_TRUE(empty["nextForwardToken"].is_string());
    ASSERT_TRUE(empty["nextBackwardToken"].is_string());
    json again = Get(kA, {{"startFromHead", true}, {"nextToken", empty["nextForwardToken"]}});
    EXPECT_EQ(again["nextForwardToken"], empty["nextForwardToken"]);
  }
  json before = Get(kA, {});
  Ok(kA, "PutLogEvents",
     {{"logGroupName", "g"},
      {"logStreamName", "s"},
      {"logEvents", {{{"timestamp", Now()}, {"message", "first"}}}}});
  EXPECT_EQ(Messages(Get(kA, {{"startFromHead", true}, {"nextToken", before["nextForwardToken"]}})),
            "first,");
}

TEST_F(LogsServiceTest, TimeWindowIsInclusiveExclusiveAndTokensIgnoreIt) {
  MakeStream(kA, 6);
  const int64_t t0 = Now() - 1000;
  json w = Get(kA, {{"startFromHead", true}, {"startTime", t0 + 1}, {"endTime", t0 + 4}});
  EXPECT_EQ(Messages(w), "m1,m2,m3,");
  // The SDK passes startTime with its token: the token's cursor and the window both apply.
  json p1 = Get(kA, {{"startFromHead", true}, {"limit", 2}, {"startTime", t0}});
  json p2 = Get(kA, {{"startFromHead", true},
                     {"limit", 2},
                     {"startTime", t0 + 1},
                     {"nextToken", p1["nextForwardToken"]}});
  EXPECT_EQ(Messages(p2), "m2,m3,");
}

TEST_F(LogsServiceTest, TokensOfAnotherStreamOrAccountAndGarbageAreRefused) {
  MakeStream(kA, 3);
  MakeStream(kA, 3, "other");
  MakeStream(kB, 3);
  json a = Get(kA, {{"startFromHead", true}});
  json other = Get(kA, {{"startFromHead", true}}, "other");
  json b = Get(kB, {{"startFromHead", true}});
  auto get = [&](const std::string& account, const json& token) {
    return Err(account, "GetLogEvents",
               {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", token}});
  };
  EXPECT_EQ(get(kA, other["nextForwardToken"]), "InvalidParameterException");
  EXPECT_EQ(get(kA, b["nextForwardToken"]), "InvalidParameterException");
  EXPECT_EQ(get(kB, a["nextBackwardToken"]), "InvalidParameterException");
  for (const char* bad :
       {"x", "f/", "f/1", "f/1/2/3", "f/abc/1", "f/1/-1", "q/1/1", "f/99999999999999999999999/1"}) {
    EXPECT_EQ(get(kA, bad), "InvalidParameterException") << bad;
  }
  EXPECT_EQ(get(kA, std::string(5000, 'f')), "InvalidParameterException");
  EXPECT_EQ(get(kA, a["nextForwardToken"]), "");
}

TEST_F(LogsServiceTest, AccountsSeeOnlyTheirOwnGroups) {
  MakeStream(kA, 2);
  EXPECT_TRUE(Ok(kB, "DescribeLogGroups", json::object())["logGroups"].empty());
  EXPECT_EQ(Ok(kA, "DescribeLogGroups", json::object())["logGroups"].size(), 1u);
  for (const char* op : {"DescribeLogStreams", "FilterLogEvents"}) {
    EXPECT_EQ(Err(kB, op, {{"logGroupName", "g"}}), "ResourceNotFoundException") << op;
  }
  EXPECT_EQ(Err(kB, "GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}}),
            "ResourceNotFoundException");
  EXPECT_EQ(Err(kB, "DeleteLogGroup", {{"logGroupName", "g"}}), "ResourceNotFoundException");
  // An ARN naming A's group, used by B, names nothing B has.
  std::string arn = std::string("arn:aws:logs:us-east-1:") + kA + ":log-group:g:*";
  EXPECT_EQ(Err(kB, "DescribeLogStreams", {{"logGroupIdentifier", arn}}),
            "ResourceNotFoundException");
  EXPECT_EQ(Ok(kA, "DescribeLogStreams", {{"logGroupIdentifier", arn}})["logStreams"].size(), 1u);
  // B may have a group of the same name, its own.
  Ok(kB, "CreateLogGroup", {{"logGroupName", "g"}});
  EXPECT_EQ(Err(kB, "CreateLogGroup", {{"logGroupName", "g"}}), "ResourceAlreadyExistsException");
  EXPECT_TRUE(Ok(kB, "DescribeLogStreams", {{"logGroupName", "g"}})["logStreams"].empty());
}

TEST_F(LogsServiceTest, DescribeLogStreamsPagesAndOrders) {
  MakeStream(kA, 1, "c");
  MakeStream(kA, 0, "a");
  MakeStream(kA, 0, "b");
  MakeStream(kA, 0, "d");
  json p1 = Ok(kA, "DescribeLogStreams", {{"logGroupName", "g"}, {"limit", 2}});
  ASSERT_EQ(p1["logStreams"].size(), 2u);
  EXPECT_EQ(p1["logStreams"][0]["logStreamName"], "a");
  ASSERT_TRUE(p1.contains("nextToken"));
  json p2 = Ok(kA, "DescribeLogStreams",
               {{"logGroupName", "g"}, {"limit", 2}, {"nextToken", p1["nextToken"]}});
  ASSERT_EQ(p2["logStreams"].size(), 2u);
  EXPECT_EQ(p2["logStreams"][1]["logStreamName"], "d");
  EXPECT_FALSE(p2.contains("nextToken"));  // the last page has none (the SDK loops otherwise)
  json c = p2["logStreams"][0];
  EXPECT_EQ(c["logStreamName"], "c");
  EXPECT_TRUE(c.contains("firstEventTimestamp"));
  EXPECT_TRUE(c.contains("lastEventTimestamp"));
  EXPECT_TRUE(c.contains("lastIngestionTime"));
  EXPECT_EQ(c["storedBytes"], 2);
  EXPECT_EQ(c["arn"], std::string("arn:aws:logs:us-east-1:") + kA + ":log-group:g:log-stream:c");
  json latest =
      Ok(kA, "DescribeLogStreams",
         {{"logGroupName", "g"}, {"orderBy", "LastEventTime"}, {"descending", true}, {"limit", 1}});
  EXPECT_EQ(latest["logStreams"][0]["logStreamName"], "c");
  // A name-ordered token is not a time-ordered one.
  EXPECT_EQ(
      Err(kA, "DescribeLogStreams",
          {{"logGroupName", "g"}, {"orderBy", "LastEventTime"}, {"nextToken", p1["nextToken"]}}),
      "InvalidParameterException");
  EXPECT_EQ(
      Err(kA, "DescribeLogStreams",
          {{"logGroupName", "g"}, {"orderBy", "LastEventTime"}, {"logStreamNamePrefix", "a"}}),
      "InvalidParameterException");
  json prefixed =
      Ok(kA, "DescribeLogStreams", {{"logGroupName", "g"}, {"logStreamNamePrefix", "b"}});
  ASSERT_EQ(prefixed["logStreams"].size(), 1u);
  EXPECT_FALSE(prefixed.contains("nextToken"));
}

TEST_F(LogsServiceTest, PutLogEventsBatchRules) {
  MakeStream(kA, 0);
  auto put = [&](const json& events) {
    return Run(kA, "PutLogEvents",
               {{"logGroupName", "g"},
                {"logStreamName", "s"},
                {"logEvents", events},
                {"sequenceToken", "ignored"}});
  };
  auto unordered =
      put({{{"timestamp", Now()}, {"message", "b"}}, {{"timestamp", Now() - 1}, {"message", "a"}}});
  ASSERT_TRUE(std::holds_alternative<api::ApiError>(unordered));
  EXPECT_EQ(std::get<api::ApiError>(unordered).type, "InvalidParameterException");
  json big = json::array();
  for (int i = 0; i < 5; ++i)
    big.push_back({{"timestamp", Now()}, {"message", std::string(250000, 'x')}});
  ASSERT_TRUE(std::holds_alternative<api::ApiError>(put(big)));
  const int64_t day = 24LL * 3600 * 1000, hour = 3600 * 1000;
  auto old = put({{{"timestamp", Now() - 14 * day - hour}, {"message", "old"}},
                  {{"timestamp", Now() - 14 * day + hour}, {"message", "ok1"}}});
  ASSERT_TRUE(std::holds_alternative<json>(old));
  EXPECT_EQ(std::get<json>(old)["rejectedLogEventsInfo"]["tooOldLogEventEndIndex"], 1);
  EXPECT_FALSE(std::get<json>(old)["rejectedLogEventsInfo"].contains("tooNewLogEventStartIndex"));
  auto future = put({{{"timestamp", Now()}, {"message", "ok2"}},
                     {{"timestamp", Now() + 3 * hour}, {"message", "future"}}});
  ASSERT_TRUE(std::holds_alternative<json>(future));
  EXPECT_EQ(std::get<json>(future)["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"], 1);
  EXPECT_EQ(Messages(Get(kA, {{"startFromHead", true}})), "ok1,ok2,");
  auto span = put({{{"timestamp", Now() - 2 * day}, {"message", "a"}},
                   {{"timestamp", Now()}, {"message", "b"}}});
  ASSERT_TRUE(std::holds_alternative<api::ApiError>(span));
  EXPECT_EQ(std::get<api::ApiError>(span).type, "InvalidParameterException");
  auto clean = put({{{"timestamp", Now()}, {"message", "c"}}});
  ASSERT_TRUE(std::holds_alternative<json>(clean));
  EXPECT_FALSE(std::get<json>(clean).contains("rejectedLogEventsInfo"));
  EXPECT_EQ(Err(kA, "PutLogEvents",
                {{"logGroupName", "g"},
                 {"logStreamName", "nope"},
                 {"logEvents", {{{"timestamp", Now()}, {"message", "x"}}}}}),
            "ResourceNotFoundException");
}

TEST_F(LogsServiceTest, FilterLogEventsPatternsStreamsAndPages) {
  MakeStream(kA, 0, "s1");
  MakeStream(kA, 0, "s2");
  auto put = [&](const std::string& stream, std::vector<std::pair<int64_t, std::string>> lines) {
    json events = json::array();
    for (auto& [dt, m] : lines) events.push_back({{"timestamp", Now() + dt}, {"message", m}});
    Ok(kA, "PutLogEvents",
       {{"logGroupName", "g"}, {"logStreamName", stream}, {"logEvents", events}});
  };
  put("s1", {{1, "ERROR one"}, {3, "INFO two"}, {5, "ERROR three"}});
  put("s2", {{2, "ERROR four"}, {4, "{\"n\": 9}"}});
  json all = Ok(kA, "FilterLogEvents", {{"logGroupName", "g"}});
  EXPECT_EQ(Messages(all), "ERROR one,ERROR four,INFO two,{\"n\": 9},ERROR three,");
  EXPECT_FALSE(all.contains("nextToken"));
  EXPECT_EQ(all["events"][1]["logStreamName"], "s2");
  EXPECT_TRUE(all["events"][0]["eventId"].is_string());
  EXPECT_TRUE(all["events"][0].contains("ingestionTime"));
  json errors = Ok(kA, "FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "ERROR"}});
  EXPECT_EQ(Messages(errors), "ERROR one,ERROR four,ERROR three,");
  json in_s1 = Ok(kA, "FilterLogEvents",
                  {{"logGroupName", "g"}, {"filterPattern", "ERROR"}, {"logStreamNames", {"s1"}}});
  EXPECT_EQ(Messages(in_s1), "ERROR one,ERROR three,");
  json by_prefix =
      Ok(kA, "FilterLogEvents",
         {{"logGroupName", "g"}, {"filterPattern", "{ $.n > 5 }"}, {"logStreamNamePrefix", "s"}});
  EXPECT_EQ(Messages(by_prefix), "{\"n\": 9},");
  EXPECT_EQ(Err(kA, "FilterLogEvents",
                {{"logGroupName", "g"}, {"logStreamNames", {"s1"}}, {"logStreamNamePrefix", "s"}}),
            "InvalidParameterException");
  EXPECT_EQ(Err(kA, "FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "{ $.n > }"}}),
            "InvalidParameterException");
  // Pages of 2 over 3 matches: a token after the first, none after the last.
  json p1 =
      Ok(kA, "FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "ERROR"}, {"limit", 2}});
  EXPECT_EQ(Messages(p1), "ERROR one,ERROR four,");
  ASSERT_TRUE(p1.contains("nextToken"));
  json p2 = Ok(kA, "FilterLogEvents",
               {{"logGroupName", "g"},
                {"filterPattern", "ERROR"},
                {"limit", 2},
                {"nextToken", p1["nextToken"]}});
  EXPECT_EQ(Messages(p2), "ERROR three,");
  EXPECT_FALSE(p2.contains("nextToken"));
  // Exactly `limit` matches left: no token either.
  json exact =
      Ok(kA, "FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "ERROR"}, {"limit", 3}});
  EXPECT_FALSE(exact.contains("nextToken"));
  // A token of another group is refused.
  Ok(kA, "CreateLogGroup", {{"logGroupName", "h"}});
  EXPECT_EQ(Err(kA, "FilterLogEvents", {{"logGroupName", "h"}, {"nextToken", p1["nextToken"]}}),
            "InvalidParameterException");
}

TEST_F(LogsServiceTest, FilterScanBudgetEndsAPageWithAToken) {
  MakeStream(kA, 0);
  json events = json::array();
  for (int i = 0; i < 2500; ++i) events.push_back({{"timestamp", Now()}, {"message", "noise"}});
  events.push_back({{"timestamp", Now()}, {"message", "needle"}});
  Ok(kA, "PutLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"logEvents", events}});
  json in = {{"logGroupName", "g"}, {"filterPattern", "needle"}};
  std::string found;
  int calls = 0;
  for (bool more = true; more && calls < 10; ++calls) {  // budget 1000 rows a call: 3 calls
    json out = Ok(kA, "FilterLogEvents", in);
    found += Messages(out);
    more = out.contains("nextToken");
    if (more) in["nextToken"] = out["nextToken"];
  }
  EXPECT_EQ(found, "needle,");
  EXPECT_EQ(calls, 3);
}

TEST_F(LogsServiceTest, MessagesOfAnyBytesComeBackAsValidJson) {
  MakeStream(kA, 0);
  const std::string odd = std::string("q\"b\\s\x01\t\xff\xc3\xa9\xed\xa0\x80 end", 17);
  Ok(kA, "PutLogEvents",
     {{"logGroupName", "g"},
      {"logStreamName", "s"},
      {"logEvents", {{{"timestamp", Now()}, {"message", "plain"}}}}});
  // Straight into the store: the agent's lines are bytes, not validated JSON strings.
  auto group = store_->GetLogGroup(kA, "g");
  auto stream = store_->GetLogStream(group->id, "s");
  ASSERT_TRUE(store_->PutStreamEvents(stream->id, {{Now(), odd}}, Now()).ok());
  json out = Get(kA, {{"startFromHead", true}});
  ASSERT_EQ(out["events"].size(), 2u);
  EXPECT_EQ(out["events"][1]["message"],
            "q\"b\\s\x01\t\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
}

TEST_F(LogsServiceTest, DeleteRemovesStreamsAndGroups) {
  MakeStream(kA, 2);
  Ok(kA, "DeleteLogStream", {{"logGroupName", "g"}, {"logStreamName", "s"}});
  EXPECT_EQ(Err(kA, "GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}}),
            "ResourceNotFoundException");
  EXPECT_EQ(Err(kA, "DeleteLogStream", {{"logGroupName", "g"}, {"logStreamName", "s"}}),
            "ResourceNotFoundException");
  Ok(kA, "DeleteLogGroup", {{"logGroupName", "g"}});
  EXPECT_TRUE(Ok(kA, "DescribeLogGroups", json::object())["logGroups"].empty());
  EXPECT_EQ(
      Err(kA, "DescribeLogGroups", {{"logGroupNamePrefix", "a"}, {"logGroupNamePattern", "b"}}),
      "InvalidParameterException");
}

}  // namespace
}  // namespace ty::services
