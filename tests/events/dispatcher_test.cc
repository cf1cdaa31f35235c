#include "events/dispatcher.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <mutex>

#include "common/json.h"
#include "events/job_event.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace ty::events {
namespace {

using control::Delivery;
using control::DeliveryResult;
using nlohmann::json;

constexpr char kAccount[] = "111111111111";
constexpr char kOther[] = "222222222222";

// Records every delivery; answers from a per-target script (Delivered once it runs out).
class FakeDeliverer final : public control::Deliverer {
 public:
  DeliveryResult Deliver(const Delivery& d) override {
    std::lock_guard lock(mu_);
    attempts.push_back(d);
    auto& script = scripts[d.target_arn];
    if (script.empty()) {
      delivered.push_back(d);
      return DeliveryResult::Delivered();
    }
    DeliveryResult r = script.front();
    script.pop_front();
    if (r.ok()) delivered.push_back(d);
    return r;
  }
  std::mutex mu_;
  std::map<std::string, std::deque<DeliveryResult>> scripts;
  std::vector<Delivery> attempts;
  std::vector<Delivery> delivered;
};

std::string LogArn(const std::string& account, const std::string& name) {
  return "arn:aws:logs:us-east-1:" + account + ":log-group:" + name;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    options_.max_retries = 3;
    options_.backoff_initial = std::chrono::milliseconds(1000);
    options_.backoff_max = std::chrono::milliseconds(4000);
    options_.max_event_age = std::chrono::milliseconds(3600 * 1000);
    Restart();
  }

  // A new dispatcher over the same store, as after a server restart.
  void Restart() {
    dispatcher_.reset();
    dispatcher_ = std::make_unique<EventDispatcher>(options_, store_.get(), &deliverer_, &clock_);
    ASSERT_TRUE(dispatcher_->LoadPending().ok());
  }

  int64_t Rule(const std::string& account, const std::string& name, const std::string& pattern,
               std::vector<json> targets, const std::string& state = "ENABLED") {
    store::RuleRow row;
    row.account = account;
    row.name = name;
    row.event_pattern = pattern;
    row.state = state;
    EXPECT_TRUE(store_->PutRule(&row, ToEpochMillis(clock_.Now())).ok());
    std::vector<store::TargetRow> rows;
    for (const auto& t : targets) rows.push_back({row.id, t["Id"], t["Arn"], t.dump()});
    EXPECT_TRUE(store_->PutTargets(row.id, rows).ok());
    return row.id;
  }

  // A job event of `job` (ordering key: its ARN) in `account`, with `status` in detail.
  void JobEvent(const std::string& account, const std::string& job, const std::string& status) {
    json e = EventEnvelope("id-" + job + "-" + status, kTrainingJobStateChange, kSageMakerSource,
                           account, "us-east-1", clock_.Now(), {job},
                           {{"TrainingJobStatus", status}, {"TrainingJobName", job}});
    ASSERT_TRUE(
        store_->AppendOutbox({{0, account, job, e.dump(), ToEpochMillis(clock_.Now())}}).ok());
  }
  void CustomEvent(const std::string& account, const std::string& source, int n) {
    json e = EventEnvelope("custom-" + std::to_string(n), "thing", source, account, "us-east-1",
                           clock_.Now(), {}, {{"n", n}});
    ASSERT_TRUE(
        store_->AppendOutbox({{0, account, "", e.dump(), ToEpochMillis(clock_.Now())}}).ok());
  }

  std::vector<std::string> DeliveredStatuses(const std::string& target) {
    std::vector<std::string> out;
    for (const auto& d : deliverer_.delivered) {
      if (d.target_arn != target) continue;
      auto j = ParseJson(d.payload);
      out.push_back(j.ok() ? (*j)["detail"].value("TrainingJobStatus", "?") : "?");
    }
    return out;
  }

  void Advance(int64_t ms) { clock_.Advance(std::chrono::milliseconds(ms)); }

  testing::TempDir dir_{"ty_dispatcher_"};
  testing::FakeClock clock_;
  FakeDeliverer deliverer_;
  DispatcherOptions options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<EventDispatcher> dispatcher_;
};

const char kSageMakerPattern[] = R"({"source":["aws.sagemaker"]})";

TEST_F(DispatcherTest, RoutesMatchingEventsToEachTargetOfEnabledRulesOfTheAccount) {
  const std::string a = LogArn(kAccount, "a"), b = LogArn(kAccount, "b");
  Rule(kAccount, "sm", kSageMakerPattern, {{{"Id", "1"}, {"Arn", a}}, {{"Id", "2"}, {"Arn", b}}});
  Rule(kAccount, "other-source", R"({"source":["my.app"]})",
       {{{"Id", "1"}, {"Arn", LogArn(kAccount, "c")}}});
  Rule(kAccount, "off", kSageMakerPattern, {{{"Id", "1"}, {"Arn", LogArn(kAccount, "d")}}},
       "DISABLED");
  Rule(kOther, "theirs", kSageMakerPattern, {{{"Id", "1"}, {"Arn", LogArn(kOther, "e")}}});
  JobEvent(kAccount, "job1", "InProgress");

  auto routed = dispatcher_->RouteOnce();
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ(*routed, 1);
  EXPECT_TRUE(store_->ReadOutbox(0, 10)->empty());  // routed events leave the outbox
  EXPECT_EQ(dispatcher_->pending(), 2u);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 2);
  ASSERT_EQ(deliverer_.delivered.size(), 2u);
  std::set<std::string> targets;
  for (const auto& d : deliverer_.delivered) {
    targets.insert(d.target_arn);
    EXPECT_EQ(d.account, kAccount);
    EXPECT_EQ(d.principal, "events.amazonaws.com");
    EXPECT_EQ(d.source_arn, "arn:aws:events:us-east-1:111111111111:rule/sm");
    EXPECT_EQ((*ParseJson(d.payload))["detail"]["TrainingJobName"], "job1");
  }
  EXPECT_EQ(targets, (std::set<std::string>{a, b}));
  EXPECT_EQ(dispatcher_->pending(), 0u);
  EXPECT_TRUE(store_->PendingDeliveries()->empty());
}

TEST_F(DispatcherTest, RetriesWithExponentialBackoffThenDelivers) {
  const std::string a = LogArn(kAccount, "a");
  Rule(kAccount, "sm", kSageMakerPattern, {{{"Id", "1"}, {"Arn", a}}});
  deliverer_.scripts[a] = {DeliveryResult::Retry("busy"), DeliveryResult::Retry("busy")};
  JobEvent(kAccount, "job1", "InProgress");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());

  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);  // attempt 1 fails: next in 1 s
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);
  Advance(999);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);
  Advance(1);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);  // attempt 2 fails: next in 2 s
  Advance(1999);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);
  auto pending = store_->PendingDeliveries();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].attempts, 2);
  EXPECT_EQ((*pending)[0].last_error, "busy");
  Advance(1);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);  // attempt 3 succeeds
  EXPECT_EQ(deliverer_.attempts.size(), 3u);
  EXPECT_EQ(deliverer_.delivered.size(), 1u);
  EXPECT_TRUE(store_->PendingDeliveries()->empty());
  EXPECT_TRUE(store_->DeadLetters(kAccount, 0, 10)->empty());
}

TEST_F(DispatcherTest, BackoffIsCappedAndExhaustedRetriesBecomeADeadLetter) {
  const std::string a = LogArn(kAccount, "a");
  Rule(kAccount, "sm", kSageMakerPattern, {{{"Id", "1"}, {"Arn", a}}});
  deliverer_.scripts[a] = std::deque<DeliveryResult>(10, DeliveryResult::Retry("down"));
  JobEvent(kAccount, "job1", "InProgress");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  // max_retries 3: attempts at 0, +1 s, +2 s, +4 s (cap 4 s), then dead.
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);
  Advance(1000);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);
  Advance(2000);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);
  Advance(3999);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);
  Advance(1);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);
  Advance(100000);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);
  EXPECT_EQ(deliverer_.attempts.size(), 4u);
  EXPECT_EQ(dispatcher_->pending(), 0u);
  auto dead = store_->DeadLetters(kAccount, 0, 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].attempts, 4);
  EXPECT_EQ((*dead)[0].target_arn, a);
  EXPECT_EQ((*dead)[0].event_id, "id-job1-InProgress");
  EXPECT_NE((*dead)[0].last_error.find("down (gave up after 4 attempts)"), std::string::npos)
      << (*dead)[0].last_error;
  EXPECT_TRUE(store_->DeadLetters(kOther, 0, 10)->empty());  // another account sees none
}

TEST_F(DispatcherTest, AFailedDeliveryIsADeadLetterAtOnce) {
  const std::string gone = LogArn(kAccount, "gone");
  Rule(kAccount, "sm", kSageMakerPattern, {{{"Id", "1"}, {"Arn", gone}}});
  deliverer_.scripts[gone] = {DeliveryResult::Failed("log group gone does not exist")};
  JobEvent(kAccount, "job1", "InProgress");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);
  Advance(60000);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);
  auto dead = store_->DeadLetters(kAccount, 0, 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].attempts, 1);
  EXPECT_EQ((*dead)[0].last_error, "log group gone does not exist");
}

TEST_F(DispatcherTest, RetriesRunOutByAgeToo) {
  const std::string a = LogArn(kAccount, "a");
  Rule(kAccount, "sm", kSageMakerPattern,
       {{{"Id", "1"},
         {"Arn", a},
         {"RetryPolicy", {{"MaximumRetryAttempts", 100}, {"MaximumEventAgeInSeconds", 60}}}}});
  deliverer_.scripts[a] = std::deque<DeliveryResult>(100, DeliveryResult::Retry("down"));
  JobEvent(kAccount, "job1", "InProgress");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  int attempts = 0;
  for (int i = 0; i < 100 && dispatcher_->pending() > 0; ++i) {
    attempts += dispatcher_->DeliverDueOnce();
    Advance(4000);
  }
  EXPECT_EQ(dispatcher_->pending(), 0u);
  // 0, 1, 3, 7, then every 4 s until 60 s: far fewer than the 101 attempts allowed.
  EXPECT_LT(attempts, 20);
  auto dead = store_->DeadLetters(kAccount, 0, 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_NE((*dead)[0].last_error.find("older than 60 s"), std::string::npos);
}

TEST_F(DispatcherTest, AJobsEventsReachATargetInOrderWhileOthersProceed) {
  const std::string a = LogArn(kAccount, "a");
  Rule(kAccount, "sm", kSageMakerPattern, {{{"Id", "1"}, {"Arn", a}}});
  // The first delivery to `a` is refused once: job1's later events wait behind it, job2's not.
  deliverer_.scripts[a] = {DeliveryResult::Retry("busy")};
  JobEvent(kAccount, "job1", "InProgress");
  JobEvent(kAccount, "job1", "Stopping");
  JobEvent(kAccount, "job2", "InProgress");
  JobEvent(kAccount, "job1", "Stopped");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 2);  // job1's head (refused) and job2's
  EXPECT_EQ(DeliveredStatuses(a), (std::vector<std::string>{"InProgress"}));
  EXPECT_EQ(deliverer_.delivered[0].payload.find("job2") != std::string::npos, true);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);  // job1's Stopping does not overtake
  Advance(1000);
  for (int i = 0; i < 5; ++i) dispatcher_->DeliverDueOnce();
  std::vector<std::string> job1;
  for (const auto& d : deliverer_.delivered) {
    if (d.payload.find("\"job1\"") != std::string::npos) {
      job1.push_back((*ParseJson(d.payload))["detail"]["TrainingJobStatus"]);
    }
  }
  EXPECT_EQ(job1, (std::vector<std::string>{"InProgress", "Stopping", "Stopped"}));
}

TEST_F(DispatcherTest, PendingDeliveriesAndUnroutedEventsSurviveARestart) {
  const std::string a = LogArn(kAccount, "a");
  Rule(kAccount, "sm", kSageMakerPattern, {{{"Id", "1"}, {"Arn", a}}});
  deliverer_.scripts[a] = {DeliveryResult::Retry("busy")};
  JobEvent(kAccount, "job1", "InProgress");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1);  // refused: pending, with its attempt recorded
  JobEvent(kAccount, "job1", "Completed");      // written, not yet routed
  // The server dies here. A new one loads the pending delivery and routes the outbox.
  Restart();
  EXPECT_EQ(dispatcher_->pending(), 1u);
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  EXPECT_EQ(dispatcher_->pending(), 2u);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 0);  // the retry keeps its backoff across restarts
  Advance(1000);
  dispatcher_->DeliverDueOnce();
  dispatcher_->DeliverDueOnce();
  EXPECT_EQ(DeliveredStatuses(a), (std::vector<std::string>{"InProgress", "Completed"}));
  EXPECT_TRUE(store_->PendingDeliveries()->empty());
}

TEST_F(DispatcherTest, ABurstOfUnorderedEventsIsAllDelivered) {
  const std::string a = LogArn(kAccount, "a");
  Rule(kAccount, "mine", R"({"source":["my.app"]})", {{{"Id", "1"}, {"Arn", a}}});
  for (int i = 0; i < 1000; ++i) CustomEvent(kAccount, "my.app", i);
  auto routed = dispatcher_->RouteOnce();
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ(*routed, 1000);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 1000);  // no ordering key: no lane waits for another
  std::set<int> seen;
  for (const auto& d : deliverer_.delivered) {
    seen.insert((*ParseJson(d.payload))["detail"]["n"].get<int>());
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST_F(DispatcherTest, TargetsGetTheirInputInputPathOrTransformedInput) {
  Rule(kAccount, "sm", kSageMakerPattern,
       {{{"Id", "const"}, {"Arn", LogArn(kAccount, "const")}, {"Input", R"({"fixed":true})"}},
        {{"Id", "path"}, {"Arn", LogArn(kAccount, "path")}, {"InputPath", "$.detail"}},
        {{"Id", "tr"},
         {"Arn", LogArn(kAccount, "tr")},
         {"InputTransformer",
          {{"InputPathsMap", {{"s", "$.detail.TrainingJobStatus"}}},
           {"InputTemplate", R"({"status": <s>})"}}}}});
  JobEvent(kAccount, "job1", "Failed");
  ASSERT_TRUE(dispatcher_->RouteOnce().ok());
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 3);
  std::map<std::string, json> got;
  for (const auto& d : deliverer_.delivered) got[d.target_arn] = *ParseJson(d.payload);
  EXPECT_EQ(got[LogArn(kAccount, "const")], (json{{"fixed", true}}));
  EXPECT_EQ(got[LogArn(kAccount, "path")]["TrainingJobStatus"], "Failed");
  EXPECT_EQ(got[LogArn(kAccount, "tr")], (json{{"status", "Failed"}}));
}

TEST_F(DispatcherTest, ScheduledRulesFireScheduledEventsOnTheClock) {
  store::RuleRow row;
  row.account = kAccount;
  row.name = "every5";
  row.schedule = "rate(5 minutes)";
  ASSERT_TRUE(store_->PutRule(&row, ToEpochMillis(clock_.Now())).ok());
  const std::string a = LogArn(kAccount, "a");
  ASSERT_TRUE(
      store_->PutTargets(row.id, {{row.id, "1", a, json{{"Id", "1"}, {"Arn", a}}.dump()}}).ok());
  EXPECT_EQ(*dispatcher_->FireSchedulesOnce(), 0);
  Advance(5 * 60 * 1000 - 1);
  EXPECT_EQ(*dispatcher_->FireSchedulesOnce(), 0);
  Advance(1);
  EXPECT_EQ(*dispatcher_->FireSchedulesOnce(), 1);
  EXPECT_EQ(*dispatcher_->FireSchedulesOnce(), 0);  // once per period
  // Three periods missed (a server down): one firing, then the grid goes on.
  Advance(3 * 5 * 60 * 1000);
  EXPECT_EQ(*dispatcher_->FireSchedulesOnce(), 1);
  EXPECT_EQ(*dispatcher_->FireSchedulesOnce(), 0);
  EXPECT_EQ(dispatcher_->DeliverDueOnce(), 2);
  ASSERT_EQ(deliverer_.delivered.size(), 2u);
  json e = *ParseJson(deliverer_.delivered[0].payload);
  EXPECT_EQ(e["detail-type"], "Scheduled Event");
  EXPECT_EQ(e["source"], "aws.events");
  EXPECT_EQ(e["account"], kAccount);
  EXPECT_EQ(e["resources"], (json{"arn:aws:events:us-east-1:111111111111:rule/every5"}));
  EXPECT_EQ(e["detail"], json::object());
}

}  // namespace
}  // namespace ty::events
