#include "capacity/spot_market.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace ty::capacity {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

const TimePoint kEpoch = FromEpochMillis(1'700'000'000'000);

SpotMarketConfig InterruptingConfig(uint64_t seed) {
  SpotMarketConfig config;
  config.seed = seed;
  config.defaults.mean_time_between_interruptions = seconds(600);
  return config;
}

SpotMarketConfig AvailabilityConfig(uint64_t seed) {
  SpotMarketConfig config;
  config.seed = seed;
  config.defaults.mean_available = seconds(3600);
  config.defaults.mean_unavailable = seconds(600);
  return config;
}

std::string Key(int i) { return "job-" + std::to_string(i) + "/attempt-1"; }

TEST(SpotMarketTest, NoInterruptionProcessMeansNoDraw) {
  SpotMarket market({}, kEpoch);
  EXPECT_EQ(market.DrawInterruption("ml.m5.large", "job", kEpoch), std::nullopt);
}

TEST(SpotMarketTest, ModelForFallsBackToDefaults) {
  SpotMarketConfig config;
  config.defaults.price_fraction = 0.3;
  SpotModel g5;
  g5.price_fraction = 0.4;
  g5.notice = seconds(30);
  config.types["ml.g5.xlarge"] = g5;
  SpotMarket market(config, kEpoch);
  EXPECT_DOUBLE_EQ(market.ModelFor("ml.g5.xlarge").price_fraction, 0.4);
  EXPECT_EQ(market.ModelFor("ml.g5.xlarge").notice, seconds(30));
  EXPECT_DOUBLE_EQ(market.ModelFor("ml.m5.large").price_fraction, 0.3);
  EXPECT_EQ(market.ModelFor("ml.m5.large").notice, seconds(120));
}

TEST(SpotMarketTest, PerTypeInterruptionProcess) {
  SpotMarketConfig config;
  SpotModel g5;
  g5.mean_time_between_interruptions = seconds(60);
  config.types["ml.g5.xlarge"] = g5;
  SpotMarket market(config, kEpoch);
  EXPECT_EQ(market.DrawInterruption("ml.m5.large", "job", kEpoch), std::nullopt);
  std::optional<TimePoint> at = market.DrawInterruption("ml.g5.xlarge", "job", kEpoch);
  ASSERT_TRUE(at.has_value());
  EXPECT_GT(*at, kEpoch);
}

TEST(SpotMarketTest, DrawsDependOnlyOnSeedTypeAndKey) {
  SpotMarket forward(InterruptingConfig(42), kEpoch);
  SpotMarket backward(InterruptingConfig(42), kEpoch);
  std::vector<TimePoint> a;
  for (int i = 0; i < 100; ++i)
    a.push_back(*forward.DrawInterruption("ml.m5.large", Key(i), kEpoch));
  std::vector<TimePoint> b(100);
  for (int i = 99; i >= 0; --i) {
    // Unrelated calls in between must not shift the draws.
    (void)backward.DrawInterruption("ml.c5.xlarge", Key(i), kEpoch);
    (void)backward.Available("ml.m5.large", kEpoch + hours(i));
    b[i] = *backward.DrawInterruption("ml.m5.large", Key(i), kEpoch);
  }
  EXPECT_EQ(a, b);
  // The same key again gives the same draw.
  EXPECT_EQ(forward.DrawInterruption("ml.m5.large", Key(7), kEpoch), a[7]);
  // Keys differ from each other.
  std::vector<TimePoint> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
}

TEST(SpotMarketTest, DrawIsAnOffsetFromStart) {
  SpotMarket market(InterruptingConfig(42), kEpoch);
  TimePoint later = kEpoch + hours(5);
  EXPECT_EQ(*market.DrawInterruption("ml.m5.large", "k", later) - later,
            *market.DrawInterruption("ml.m5.large", "k", kEpoch) - kEpoch);
}

TEST(SpotMarketTest, SeedAndTypeChangeTheDraws) {
  SpotMarket one(InterruptingConfig(1), kEpoch);
  SpotMarket two(InterruptingConfig(2), kEpoch);
  int same_seed_diff = 0;
  int same_type_diff = 0;
  for (int i = 0; i < 100; ++i) {
    TimePoint a = *one.DrawInterruption("ml.m5.large", Key(i), kEpoch);
    if (a == *two.DrawInterruption("ml.m5.large", Key(i), kEpoch)) ++same_seed_diff;
    if (a == *one.DrawInterruption("ml.m5.xlarge", Key(i), kEpoch)) ++same_type_diff;
  }
  EXPECT_EQ(same_seed_diff, 0);
  EXPECT_EQ(same_type_diff, 0);
}

TEST(SpotMarketTest, InterruptionDrawsHaveTheConfiguredMean) {
  SpotMarket market(InterruptingConfig(7), kEpoch);
  constexpr int kDraws = 20000;
  double total_seconds = 0;
  double below_mean = 0;
  for (int i = 0; i < kDraws; ++i) {
    auto d = *market.DrawInterruption("ml.g5.xlarge", Key(i), kEpoch) - kEpoch;
    double s = std::chrono::duration<double>(d).count();
    total_seconds += s;
    if (s < 600) ++below_mean;
  }
  EXPECT_NEAR(total_seconds / kDraws, 600, 600 * 0.03);
  // Exponential, not uniform: P(X < mean) = 1 - 1/e.
  EXPECT_NEAR(below_mean / kDraws, 1 - std::exp(-1.0), 0.02);
}

TEST(SpotMarketTest, AlwaysAvailableWithoutAProcess) {
  SpotMarket market({}, kEpoch);
  for (int h = 0; h < 1000; h += 7) {
    EXPECT_TRUE(market.Available("ml.m5.large", kEpoch + hours(h)));
    EXPECT_EQ(market.UnavailableUntil("ml.m5.large", kEpoch + hours(h)), std::nullopt);
  }
}

// Samples availability every `step` over `span`.
std::vector<bool> Sample(SpotMarket& market, const std::string& type, milliseconds step,
                         milliseconds span) {
  std::vector<bool> out;
  for (milliseconds t{0}; t < span; t += step) out.push_back(market.Available(type, kEpoch + t));
  return out;
}

TEST(SpotMarketTest, AvailabilityAlternatesFromAvailable) {
  SpotMarket market(AvailabilityConfig(3), kEpoch);
  const std::string type = "ml.p3.2xlarge";
  EXPECT_TRUE(market.Available(type, kEpoch));

  int outages = 0;
  milliseconds unavailable{0};
  const milliseconds span = hours(2000);
  TimePoint t = kEpoch;
  while (t < kEpoch + span) {
    std::optional<TimePoint> until = market.UnavailableUntil(type, t);
    if (!until) {
      t += seconds(10);
      continue;
    }
    // Inside an outage: it ends later, capacity is back at its end, and the
    // whole window reports the same end.
    ASSERT_GT(*until, t);
    EXPECT_FALSE(market.Available(type, *until - milliseconds(1)));
    EXPECT_EQ(market.UnavailableUntil(type, *until - milliseconds(1)), until);
    EXPECT_TRUE(market.Available(type, *until));
    ++outages;
    unavailable += std::chrono::duration_cast<milliseconds>(*until - t);
    t = *until;
  }
  // ~2000 h / (1 h + 10 min) cycles; the unavailable share ~ 600 / 4200.
  EXPECT_GT(outages, 1400);
  EXPECT_LT(outages, 2000);
  double share = static_cast<double>(unavailable.count()) / static_cast<double>(span.count());
  EXPECT_NEAR(share, 600.0 / 4200.0, 0.03);
}

TEST(SpotMarketTest, AvailabilityIsDeterministicWhateverTheQueryOrder) {
  SpotMarket forward(AvailabilityConfig(11), kEpoch);
  SpotMarket jumping(AvailabilityConfig(11), kEpoch);
  // Reaching far ahead first, and other types in between, changes nothing.
  (void)jumping.Available("ml.p3.2xlarge", kEpoch + hours(500));
  (void)jumping.Available("ml.g5.xlarge", kEpoch + hours(100));
  std::vector<bool> a = Sample(forward, "ml.p3.2xlarge", minutes(1), hours(200));
  std::vector<bool> b = Sample(jumping, "ml.p3.2xlarge", minutes(1), hours(200));
  EXPECT_EQ(a, b);
  EXPECT_NE(std::count(a.begin(), a.end(), false), 0);

  SpotMarket other_seed(AvailabilityConfig(12), kEpoch);
  EXPECT_NE(Sample(other_seed, "ml.p3.2xlarge", minutes(1), hours(200)), a);
  EXPECT_NE(Sample(forward, "ml.g5.xlarge", minutes(1), hours(200)), a);
}

TEST(SpotMarketTest, MakeUnavailableOpensAWindow) {
  SpotMarket market({}, kEpoch);
  TimePoint now = kEpoch + minutes(5);
  market.MakeUnavailable("ml.g5.xlarge", minutes(10), now);
  EXPECT_TRUE(market.Available("ml.g5.xlarge", now - milliseconds(1)));
  EXPECT_FALSE(market.Available("ml.g5.xlarge", now));
  EXPECT_EQ(market.UnavailableUntil("ml.g5.xlarge", now + minutes(3)), now + minutes(10));
  EXPECT_TRUE(market.Available("ml.g5.xlarge", now + minutes(10)));
  EXPECT_TRUE(market.Available("ml.m5.large", now));

  market.MakeUnavailable("ml.m5.large", milliseconds(0), now);
  EXPECT_TRUE(market.Available("ml.m5.large", now));
}

struct MergeCase {
  std::string label;
  std::vector<std::pair<int, int>> windows;  // [start, end) in minutes after the epoch
  int query;                                 // minutes after the epoch
  std::optional<int> until;                  // minutes after the epoch
};

class OutageMergeTest : public ::testing::TestWithParam<MergeCase> {};

TEST_P(OutageMergeTest, UnavailableUntil) {
  SpotMarket market({}, kEpoch);
  for (auto [start, end] : GetParam().windows) {
    market.MakeUnavailable("ml.m5.large", minutes(end - start), kEpoch + minutes(start));
  }
  std::optional<TimePoint> want;
  if (GetParam().until) want = kEpoch + minutes(*GetParam().until);
  EXPECT_EQ(market.UnavailableUntil("ml.m5.large", kEpoch + minutes(GetParam().query)), want);
  EXPECT_EQ(market.Available("ml.m5.large", kEpoch + minutes(GetParam().query)), !want);
}

INSTANTIATE_TEST_SUITE_P(
    Table, OutageMergeTest,
    ::testing::Values(MergeCase{"Single", {{0, 10}}, 1, 10},
                      MergeCase{"Overlapping", {{0, 10}, {5, 20}}, 1, 20},
                      MergeCase{"OverlappingGivenLaterFirst", {{5, 20}, {0, 10}}, 1, 20},
                      MergeCase{"Adjacent", {{0, 10}, {10, 15}}, 1, 15},
                      MergeCase{"Chain", {{0, 10}, {20, 30}, {8, 22}}, 1, 30},
                      MergeCase{"Nested", {{0, 30}, {5, 10}}, 6, 30},
                      MergeCase{"GapStops", {{0, 10}, {11, 20}}, 1, 10},
                      MergeCase{"InTheGap", {{0, 10}, {11, 20}}, 10, std::nullopt},
                      MergeCase{"AfterTheGap", {{0, 10}, {11, 20}}, 11, 20},
                      MergeCase{"Before", {{5, 10}}, 4, std::nullopt},
                      MergeCase{"AtTheEnd", {{0, 10}}, 10, std::nullopt}),
    [](const ::testing::TestParamInfo<MergeCase>& p) { return p.param.label; });

// The first window of the random availability process of `type`.
std::pair<TimePoint, TimePoint> FirstRandomOutage(SpotMarket& market, const std::string& type) {
  TimePoint t = kEpoch;
  while (market.Available(type, t)) t += seconds(1);
  return {t, *market.UnavailableUntil(type, t)};
}

TEST(SpotMarketTest, InjectedOutagesChainWithTheRandomProcess) {
  const std::string type = "ml.p3.2xlarge";
  SpotMarket probe(AvailabilityConfig(5), kEpoch);
  auto [start, end] = FirstRandomOutage(probe, type);

  // An injected window overlapping the random one's end extends it.
  SpotMarket extended(AvailabilityConfig(5), kEpoch);
  extended.MakeUnavailable(type, minutes(30), end - seconds(1));
  EXPECT_EQ(extended.UnavailableUntil(type, start), end - seconds(1) + minutes(30));

  // An injected window ending inside the random one reaches to its end.
  SpotMarket bridged(AvailabilityConfig(5), kEpoch);
  TimePoint injected = start - minutes(1);
  bridged.MakeUnavailable(type, minutes(1), injected);
  EXPECT_FALSE(bridged.Available(type, injected));
  EXPECT_EQ(bridged.UnavailableUntil(type, injected), end);
}

TEST(ParseTraceTest, ParsesEventsCommentsAndBlankLines) {
  auto events = ParseTrace(
      "# a spot trace\n"
      "\n"
      "90 interrupt ml.g5.xlarge\n"
      "  12.5   unavailable ml.p3.2xlarge 300   # half a minute in\n"
      "0.001 interrupt ml.m5.large\n"
      "\t\n");
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].at, seconds(90));
  EXPECT_EQ((*events)[0].kind, TraceEvent::Kind::kInterrupt);
  EXPECT_EQ((*events)[0].instance_type, "ml.g5.xlarge");
  EXPECT_EQ((*events)[1].at, milliseconds(12500));
  EXPECT_EQ((*events)[1].kind, TraceEvent::Kind::kUnavailable);
  EXPECT_EQ((*events)[1].instance_type, "ml.p3.2xlarge");
  EXPECT_EQ((*events)[1].duration, seconds(300));
  EXPECT_EQ((*events)[2].at, milliseconds(1));
}

TEST(ParseTraceTest, EmptyTraceIsFine) {
  auto events = ParseTrace("# nothing yet\n\n");
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
}

struct BadTraceCase {
  std::string label;
  std::string text;
  std::string error;  // substring of the message
};

class BadTraceTest : public ::testing::TestWithParam<BadTraceCase> {};

TEST_P(BadTraceTest, Refused) {
  auto events = ParseTrace(GetParam().text);
  ASSERT_FALSE(events.ok());
  EXPECT_EQ(events.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(events.status().message().find(GetParam().error), std::string::npos)
      << events.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadTraceTest,
    ::testing::Values(
        BadTraceCase{"BadTime", "# ok\nsoon interrupt ml.m5.large\n",
                     "trace line 2: bad time 'soon'"},
        BadTraceCase{"NegativeTime", "-5 interrupt ml.m5.large\n", "trace line 1: bad time '-5'"},
        BadTraceCase{"TimeWithUnit", "5s interrupt ml.m5.large\n", "trace line 1: bad time '5s'"},
        BadTraceCase{"NanTime", "nan interrupt ml.m5.large\n", "trace line 1: bad time"},
        BadTraceCase{"MissingEvent", "\n\n\n30\n", "trace line 4: missing event"},
        BadTraceCase{"UnknownEvent", "30 preempt ml.m5.large\n",
                     "trace line 1: unknown event 'preempt'"},
        BadTraceCase{"InterruptWithoutType", "30 interrupt\n",
                     "trace line 1: want '<seconds> interrupt"},
        BadTraceCase{"InterruptExtraField", "30 interrupt ml.m5.large 60\n",
                     "trace line 1: want '<seconds> interrupt"},
        BadTraceCase{"UnavailableWithoutDuration", "1 interrupt a\n30 unavailable ml.m5.large\n",
                     "trace line 2: want '<seconds> unavailable"},
        BadTraceCase{"BadDuration", "30 unavailable ml.m5.large long\n",
                     "trace line 1: bad duration 'long'"},
        BadTraceCase{"ZeroDuration", "30 unavailable ml.m5.large 0\n",
                     "trace line 1: bad duration '0'"}),
    [](const ::testing::TestParamInfo<BadTraceCase>& p) { return p.param.label; });

TEST(SpotMarketTest, DueTraceInterruptionsFireOnceInTimeOrder) {
  SpotMarketConfig config;
  auto trace = ParseTrace(
      "300 interrupt ml.p3.2xlarge\n"
      "60 interrupt ml.g5.xlarge\n"
      "120 unavailable ml.g5.xlarge 30\n"
      "120 interrupt ml.m5.large\n"
      "120 interrupt ml.g5.xlarge\n");
  ASSERT_TRUE(trace.ok());
  config.trace = *trace;
  SpotMarket market(config, kEpoch);

  EXPECT_TRUE(market.DueTraceInterruptions(kEpoch + seconds(59)).empty());
  EXPECT_EQ(market.DueTraceInterruptions(kEpoch + seconds(60)),
            std::vector<std::string>{"ml.g5.xlarge"});
  EXPECT_TRUE(market.DueTraceInterruptions(kEpoch + seconds(60)).empty());
  // Same time: the file's order.
  EXPECT_EQ(market.DueTraceInterruptions(kEpoch + seconds(200)),
            (std::vector<std::string>{"ml.m5.large", "ml.g5.xlarge"}));
  // An earlier `now` does not bring anything back.
  EXPECT_TRUE(market.DueTraceInterruptions(kEpoch + seconds(100)).empty());
  EXPECT_EQ(market.DueTraceInterruptions(kEpoch + hours(1)),
            std::vector<std::string>{"ml.p3.2xlarge"});
  EXPECT_TRUE(market.DueTraceInterruptions(kEpoch + hours(2)).empty());
}

TEST(SpotMarketTest, TraceUnavailabilityIsAnOutage) {
  SpotMarketConfig config;
  config.trace = {{seconds(120), TraceEvent::Kind::kUnavailable, "ml.g5.xlarge", seconds(30)},
                  {seconds(150), TraceEvent::Kind::kUnavailable, "ml.g5.xlarge", seconds(30)}};
  SpotMarket market(config, kEpoch);
  EXPECT_TRUE(market.Available("ml.g5.xlarge", kEpoch + seconds(119)));
  EXPECT_FALSE(market.Available("ml.g5.xlarge", kEpoch + seconds(120)));
  // Back to back with the next event: one outage.
  EXPECT_EQ(market.UnavailableUntil("ml.g5.xlarge", kEpoch + seconds(125)), kEpoch + seconds(180));
  EXPECT_TRUE(market.Available("ml.g5.xlarge", kEpoch + seconds(180)));
  // Not an interruption.
  EXPECT_TRUE(market.DueTraceInterruptions(kEpoch + hours(1)).empty());
}

TEST(SpotMarketTest, StatusListsEveryNamedTypeSorted) {
  SpotMarketConfig config;
  SpotModel p3;
  p3.price_fraction = 0.5;
  config.types["ml.p3.2xlarge"] = p3;
  config.trace = {{seconds(10), TraceEvent::Kind::kInterrupt, "ml.g5.xlarge", {}}};
  SpotMarket market(config, kEpoch);
  market.MakeUnavailable("ml.c5.xlarge", minutes(10), kEpoch);

  std::vector<SpotTypeStatus> status =
      market.Status(kEpoch + minutes(1), {"ml.m5.large", "ml.g5.xlarge"});
  std::vector<std::string> names;
  for (const auto& s : status) names.push_back(s.instance_type);
  EXPECT_EQ(names, (std::vector<std::string>{"ml.c5.xlarge", "ml.g5.xlarge", "ml.m5.large",
                                             "ml.p3.2xlarge"}));

  EXPECT_FALSE(status[0].available);
  EXPECT_EQ(status[0].unavailable_until, kEpoch + minutes(10));
  EXPECT_TRUE(status[1].available);
  EXPECT_EQ(status[1].unavailable_until, std::nullopt);
  EXPECT_DOUBLE_EQ(status[2].model.price_fraction, 0.3);
  EXPECT_DOUBLE_EQ(status[3].model.price_fraction, 0.5);

  // Once the outage is over.
  EXPECT_TRUE(market.Status(kEpoch + minutes(10), {})[0].available);
}

}  // namespace
}  // namespace ty::capacity
