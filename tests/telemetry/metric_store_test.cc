// MetricStore: tiers and rollups, retention sweeps, statistics and percentiles, series listing
// and account isolation, on a real SQLite file in a temp dir.
#include "telemetry/metric_store.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace ty::telemetry {
namespace {

constexpr int64_t kNow = 1'700'000'040'000;  // a whole minute since the epoch
constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 3'600'000;

class MetricStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open({}); }
  void Open(MetricStoreOptions o) {
    store_.reset();
    auto s = MetricStore::Open(dir_.path(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  static MetricKey Key(const std::string& account = "111111111111",
                       const std::string& name = "CPUUtilization") {
    return {account, "/aws/sagemaker/TrainingJobs", name, {{"Host", "job/algo-1"}}};
  }
  static PutPoint Point(int64_t t, double v, const MetricKey& key = Key()) {
    PutPoint p;
    p.key = key;
    p.unit = "Percent";
    p.timestamp_ms = t;
    p.sum = p.min = p.max = v;
    return p;
  }
  int64_t Id(const MetricKey& key = Key()) {
    auto s = store_->Find(key);
    EXPECT_TRUE(s.ok() && *s);
    return s.ok() && *s ? (*s)->id : 0;
  }

  testing::TempDir dir_{"ty-metric-store-"};
  std::unique_ptr<MetricStore> store_;
};

TEST_F(MetricStoreTest, RawPointsGiveStatisticsPerPeriod) {
  std::vector<PutPoint> pts;
  for (int i = 0; i < 120; ++i) pts.push_back(Point(kNow - 2 * kMin + i * 1000, i));
  ASSERT_TRUE(store_->Put(pts, kNow).ok());
  auto b = store_->Aggregate(Id(), kNow - 2 * kMin, kNow, 60, false, kNow);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].start_ms, kNow - 2 * kMin);
  EXPECT_EQ((*b)[0].count, 60);
  EXPECT_EQ((*b)[0].sum, 59 * 60 / 2);
  EXPECT_EQ((*b)[0].min, 0);
  EXPECT_EQ((*b)[0].max, 59);
  EXPECT_EQ((*b)[1].min, 60);
  EXPECT_EQ((*b)[1].max, 119);
  // Period 1 reads raw points: one bucket per point.
  auto fine = store_->Aggregate(Id(), kNow - 2 * kMin, kNow, 1, false, kNow);
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->size(), 120u);
  EXPECT_EQ((*fine)[5].sum, 5);
}

TEST_F(MetricStoreTest, PercentilesAreExactFromRawPointsAndAbsentBeyondThem) {
  std::vector<PutPoint> pts;
  for (int i = 1; i <= 100; ++i) pts.push_back(Point(kNow - kMin + (i % 60) * 1000, i));
  ASSERT_TRUE(store_->Put(pts, kNow).ok());
  auto b = store_->Aggregate(Id(), kNow - kMin, kNow, 60, /*with_values=*/true, kNow);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  ASSERT_TRUE((*b)[0].values_complete);
  ASSERT_EQ((*b)[0].values.size(), 100u);
  EXPECT_EQ((*b)[0].values.front().first, 1);
  EXPECT_EQ((*b)[0].values.back().first, 100);
  // Four hours later the raw points have aged out: the rollups still answer, percentiles not.
  const int64_t later = kNow + 4 * kHour;
  auto old = store_->Aggregate(Id(), kNow - kMin, kNow, 60, true, later);
  ASSERT_TRUE(old.ok());
  ASSERT_EQ(old->size(), 1u);
  EXPECT_FALSE((*old)[0].values_complete);
  EXPECT_EQ((*old)[0].count, 100);
  EXPECT_EQ((*old)[0].max, 100);
}

TEST_F(MetricStoreTest, RollupsAnswerForWholeMinutesAndHoursAndMatchRaw) {
  std::vector<PutPoint> pts;
  for (int i = 0; i < 7200; ++i) pts.push_back(Point(kNow - 2 * kHour + i * 1000, i % 100));
  ASSERT_TRUE(store_->Put(pts, kNow).ok());
  auto counts = store_->CountRows();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->raw, 7200);
  EXPECT_EQ(counts->minute, 120);
  EXPECT_GE(counts->hour, 2);
  EXPECT_LE(counts->hour, 3);
  // Period 60 reads the minute rollups; the same sums as raw points at Period 1 folded by hand.
  auto minutes = store_->Aggregate(Id(), kNow - 2 * kHour, kNow, 60, false, kNow);
  auto seconds = store_->Aggregate(Id(), kNow - 2 * kHour, kNow, 1, false, kNow);
  ASSERT_TRUE(minutes.ok() && seconds.ok());
  ASSERT_EQ(minutes->size(), 120u);
  double sum = 0;
  for (int i = 0; i < 60; ++i) sum += (*seconds)[static_cast<size_t>(i)].sum;
  EXPECT_EQ((*minutes)[0].sum, sum);
  EXPECT_EQ((*minutes)[0].count, 60);
}

TEST_F(MetricStoreTest, StatisticSetsAndCountedValuesAddUp) {
  PutPoint set = Point(kNow - 30'000, 0);
  set.count = 4;
  set.sum = 10;
  set.min = 1;
  set.max = 4;
  PutPoint counted = Point(kNow - 20'000, 5);
  counted.count = 3;
  counted.sum = 15;
  ASSERT_TRUE(store_->Put({set, counted}, kNow).ok());
  auto b = store_->Aggregate(Id(), kNow - kMin, kNow, 60, true, kNow);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].count, 7);
  EXPECT_EQ((*b)[0].sum, 25);
  EXPECT_EQ((*b)[0].min, 1);
  EXPECT_EQ((*b)[0].max, 5);
  // The set counts as its average (2.5, weight 4), the counted value as 5 (weight 3).
  ASSERT_EQ((*b)[0].values.size(), 2u);
  EXPECT_EQ((*b)[0].values[0], (std::pair<double, double>{2.5, 4}));
  EXPECT_EQ((*b)[0].values[1], (std::pair<double, double>{5, 3}));
}

TEST_F(MetricStoreTest, SweepDropsEachTierAtItsRetentionAndEmptiedSeries) {
  MetricStoreOptions o;
  o.raw_retention_ms = kHour;
  o.minute_retention_ms = 2 * kHour;
  o.hour_retention_ms = 4 * kHour;
  Open(o);
  std::vector<PutPoint> pts;
  for (int i = 0; i < 600; ++i) pts.push_back(Point(kNow - 10 * kMin + i * 1000, 1));
  ASSERT_TRUE(store_->Put(pts, kNow).ok());
  auto before = *store_->CountRows();
  EXPECT_EQ(before.raw, 600);
  EXPECT_EQ(before.minute, 10);
  ASSERT_TRUE(store_->Sweep(kNow).ok());
  EXPECT_EQ(store_->CountRows()->raw, 600);  // nothing aged yet

  ASSERT_TRUE(store_->Sweep(kNow + 90 * kMin).ok());
  auto c = *store_->CountRows();
  EXPECT_EQ(c.raw, 0);
  EXPECT_EQ(c.minute, 10);
  ASSERT_TRUE(store_->Sweep(kNow + 3 * kHour).ok());
  c = *store_->CountRows();
  EXPECT_EQ(c.minute, 0);
  EXPECT_GT(c.hour, 0);
  EXPECT_EQ(c.series, 1);
  ASSERT_TRUE(store_->Sweep(kNow + 6 * kHour).ok());
  c = *store_->CountRows();
  EXPECT_EQ(c.hour, 0);
  EXPECT_EQ(c.series, 0);
  // Points older than a tier's retention are not written to it at all.
  ASSERT_TRUE(store_->Put({Point(kNow - 90 * kMin, 1)}, kNow).ok());
  c = *store_->CountRows();
  EXPECT_EQ(c.raw, 0);
  EXPECT_EQ(c.minute, 1);
}

TEST_F(MetricStoreTest, SeriesAreKeyedByAccountAndDimensionSetInAnyOrder) {
  MetricKey a = Key();
  a.dimensions = {{"B", "2"}, {"A", "1"}};
  MetricKey same = Key();
  same.dimensions = {{"A", "1"}, {"B", "2"}};
  ASSERT_TRUE(store_->Put({Point(kNow - 1000, 1, a), Point(kNow - 500, 2, same)}, kNow).ok());
  EXPECT_EQ(store_->CountRows()->series, 1);
  MetricKey other = same;
  other.account = "222222222222";
  auto none = store_->Find(other);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);

  ListQuery q;
  q.account = "111111111111";
  q.dimensions = {{"A", std::nullopt}};
  EXPECT_EQ(store_->List(q)->size(), 1u);
  q.dimensions = {{"A", std::string("9")}};
  EXPECT_EQ(store_->List(q)->size(), 0u);
  q.dimensions = {};
  q.account = "222222222222";
  EXPECT_EQ(store_->List(q)->size(), 0u);
}

TEST_F(MetricStoreTest, AnAccountsSeriesAreBounded) {
  MetricStoreOptions o;
  o.max_series_per_account = 2;
  Open(o);
  ASSERT_TRUE(
      store_->Put({Point(kNow, 1, Key("1", "a")), Point(kNow, 1, Key("1", "b"))}, kNow).ok());
  EXPECT_EQ(store_->Put({Point(kNow, 1, Key("1", "c"))}, kNow).code(),
            StatusCode::kResourceExhausted);
  EXPECT_TRUE(store_->Put({Point(kNow, 1, Key("1", "a"))}, kNow).ok());  // an existing one
  EXPECT_TRUE(store_->Put({Point(kNow, 1, Key("2", "c"))}, kNow).ok());  // another account
}

TEST_F(MetricStoreTest, PointsSurviveReopening) {
  ASSERT_TRUE(store_->Put({Point(kNow - 1000, 3)}, kNow).ok());
  Open({});
  ASSERT_TRUE(store_->Put({Point(kNow - 1000, 4)}, kNow).ok());  // same time: both kept
  auto b = store_->Aggregate(Id(), kNow - kMin, kNow, 60, true, kNow);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].count, 2);
  EXPECT_EQ((*b)[0].values.size(), 2u);
}

}  // namespace
}  // namespace ty::telemetry
