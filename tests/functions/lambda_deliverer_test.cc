#include "functions/lambda_deliverer.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace ty::functions {
namespace {

TEST(WildcardMatchTest, Table) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  } cases[] = {
      {"arn:aws:events:*:111111111111:rule/*", "arn:aws:events:us-east-1:111111111111:rule/r",
       true},
      {"arn:aws:events:*:111111111111:rule/*", "arn:aws:events:us-east-1:222222222222:rule/r",
       false},
      {"a?c", "abc", true},
      {"a?c", "ac", false},
      {"*", "", true},
      {"", "", true},
      {"abc", "abcd", false},
      {"*b*b*b*", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(WildcardMatch(c.pattern, c.text), c.match) << c.pattern << " ~ " << c.text;
  }
}

TEST(PolicyAllowsTest, NoPolicyTrustsTheAccountAndStatementsMustMatch) {
  FunctionConfig fn;
  EXPECT_TRUE(PolicyAllows(fn, "events.amazonaws.com", "arn:aws:events:r:1:rule/x", "1"));
  fn.policy.push_back({"a", "lambda:InvokeFunction", "events.amazonaws.com",
                       "arn:aws:events:us-east-1:111111111111:rule/gov-*", ""});
  fn.policy.push_back({"b", "lambda:InvokeFunction", "sns.amazonaws.com", "", "111111111111"});
  fn.policy.push_back(
      {"c", "lambda:GetFunction", "lambda.alarms.cloudwatch.amazonaws.com", "", ""});
  struct Case {
    const char* principal;
    const char* source;
    const char* account;
    bool allowed;
  } cases[] = {
      {"events.amazonaws.com", "arn:aws:events:us-east-1:111111111111:rule/gov-tags",
       "111111111111", true},
      {"events.amazonaws.com", "arn:aws:events:us-east-1:111111111111:rule/other", "111111111111",
       false},
      {"sns.amazonaws.com", "arn:aws:sns:us-east-1:111111111111:t", "111111111111", true},
      {"sns.amazonaws.com", "arn:aws:sns:us-east-1:111111111111:t", "222222222222", false},
      {"lambda.alarms.cloudwatch.amazonaws.com", "arn:aws:cloudwatch:x", "111111111111", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(PolicyAllows(fn, c.principal, c.source, c.account), c.allowed)
        << c.principal << " " << c.source;
  }
}

TEST(LambdaDelivererTest, MissingOrForeignFunctionsFail) {
  testing::TempDir tmp;
  auto store = FunctionStore::Open(tmp.path());
  ASSERT_TRUE(store.ok());
  // No function is ever invoked here, so the runtime is never asked to start a worker.
  LambdaDeliverer d(store->get(), nullptr);
  control::Delivery del;
  del.account = "111111111111";
  del.principal = "events.amazonaws.com";
  del.target_arn = "arn:aws:lambda:us-east-1:111111111111:function:nope";
  EXPECT_EQ(d.Deliver(del).kind, control::DeliveryResult::Kind::kFailed);
  del.target_arn = "arn:aws:lambda:us-east-1:222222222222:function:nope";
  EXPECT_EQ(d.Deliver(del).kind, control::DeliveryResult::Kind::kFailed);
  del.target_arn = "arn:aws:sns:us-east-1:111111111111:topic";
  EXPECT_EQ(d.Deliver(del).kind, control::DeliveryResult::Kind::kFailed);
}

}  // namespace
}  // namespace ty::functions
