// The EventBridge half of the Store: rules per account and bus, targets, and deliveries.
#include <gtest/gtest.h>

#include "store/store.h"
#include "testing/temp_dir.h"

namespace ty::store {
namespace {

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  RuleRow Put(const std::string& account, const std::string& name, const std::string& state) {
    RuleRow r;
    r.account = account;
    r.name = name;
    r.event_pattern = R"({"source":["x"]})";
    r.state = state;
    EXPECT_TRUE(store_->PutRule(&r, 1000).ok());
    return r;
  }
  DeliveryRow Delivery(const std::string& account) {
    DeliveryRow d;
    d.account = account;
    d.rule_arn = "arn:aws:events:us-east-1:" + account + ":rule/r";
    d.target_id = "t";
    d.target_arn = "arn:aws:logs:us-east-1:" + account + ":log-group:g";
    d.payload = "{}";
    d.max_attempts = 3;
    d.max_age_ms = 60000;
    return d;
  }
  testing::TempDir dir_{"ty_event_store_"};
  std::unique_ptr<Store> store_;
};

TEST_F(EventStoreTest, RulesArePerAccountAndUpdatesKeepIdTargetsAndCreation) {
  RuleRow a = Put("111111111111", "r", "ENABLED");
  Put("222222222222", "r", "ENABLED");
  ASSERT_TRUE(store_->PutTargets(a.id, {{a.id, "t1", "arn:aws:logs:x", "{}"}}).ok());
  RuleRow again;
  again.account = "111111111111";
  again.name = "r";
  again.event_pattern = R"({"source":["y"]})";
  ASSERT_TRUE(store_->PutRule(&again, 5000).ok());
  EXPECT_EQ(again.id, a.id);
  EXPECT_EQ(again.created_ms, 1000);
  auto got = store_->GetRule("111111111111", "default", "r");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->event_pattern, R"({"source":["y"]})");
  EXPECT_EQ(store_->ListTargets(a.id, "", 10)->size(), 1u);
  EXPECT_EQ(store_->GetRule("333333333333", "default", "r").status().code(), StatusCode::kNotFound);
  auto routed = store_->EnabledPatternRules("222222222222");
  ASSERT_EQ(routed->size(), 1u);
  EXPECT_TRUE((*routed)[0].second.empty());  // the other account's targets are not its
}

TEST_F(EventStoreTest, DeleteRuleIsRefusedWhileTargetsRemainAndIsIdempotent) {
  RuleRow r = Put("111111111111", "r", "ENABLED");
  ASSERT_TRUE(store_->PutTargets(r.id, {{r.id, "t1", "arn:aws:logs:x", "{}"}}).ok());
  EXPECT_EQ(store_->DeleteRule("111111111111", "default", "r").code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->RemoveTargets(r.id, {"t1"}).ok());
  EXPECT_TRUE(store_->DeleteRule("111111111111", "default", "r").ok());
  EXPECT_TRUE(store_->DeleteRule("111111111111", "default", "r").ok());
  EXPECT_EQ(store_->SetRuleState("111111111111", "default", "r", "DISABLED").code(),
            StatusCode::kNotFound);
}

TEST_F(EventStoreTest, ListRulesPagesByNameWithinAPrefix) {
  for (const char* n : {"b-1", "a-2", "a-1", "a-3", "c"}) Put("111111111111", n, "ENABLED");
  auto page = store_->ListRules("111111111111", "default", "a-", "", 2);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].name, "a-1");
  EXPECT_EQ((*page)[1].name, "a-2");
  page = store_->ListRules("111111111111", "default", "a-", "a-2", 2);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].name, "a-3");
}

TEST_F(EventStoreTest, RoutingAnOutboxEventStoresItsDeliveriesAndRemovesItAtOnce) {
  ASSERT_TRUE(store_->AppendOutbox({{0, "111111111111", "k", "{}", 1}}).ok());
  auto outbox = store_->ReadOutbox(0, 10);
  ASSERT_EQ(outbox->size(), 1u);
  std::vector<DeliveryRow> rows = {Delivery("111111111111"), Delivery("111111111111")};
  ASSERT_TRUE(store_->RouteOutboxEvent((*outbox)[0].seq, &rows).ok());
  EXPECT_GT(rows[1].id, rows[0].id);
  EXPECT_TRUE(store_->ReadOutbox(0, 10)->empty());
  EXPECT_EQ(store_->PendingDeliveries()->size(), 2u);
}

TEST_F(EventStoreTest, DeadLettersArePerAccountNewestFirstAndTrimmed) {
  std::vector<DeliveryRow> rows;
  for (int i = 0; i < 5; ++i) rows.push_back(Delivery("111111111111"));
  rows.push_back(Delivery("222222222222"));
  ASSERT_TRUE(store_->FireScheduledRule(0, 0, &rows).ok());
  for (const auto& d : rows) {
    ASSERT_TRUE(store_->BuryDelivery(d.id, 3, 2000, "no", /*keep=*/3).ok());
  }
  auto dead = store_->DeadLetters("111111111111", 0, 10);
  ASSERT_EQ(dead->size(), 3u);  // the newest 3 kept
  EXPECT_EQ((*dead)[0].id, rows[4].id);
  EXPECT_EQ((*dead)[2].id, rows[2].id);
  EXPECT_EQ((*dead)[0].last_error, "no");
  EXPECT_EQ(store_->DeadLetters("222222222222", 0, 10)->size(), 1u);
  auto older = store_->DeadLetters("111111111111", rows[3].id, 10);
  ASSERT_EQ(older->size(), 1u);
  EXPECT_EQ((*older)[0].id, rows[2].id);
  EXPECT_TRUE(store_->PendingDeliveries()->empty());
}

}  // namespace
}  // namespace ty::store
